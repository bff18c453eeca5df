import warnings

import numpy as np
import pytest
import torch
from torch import nn

import coreprune
from coreprune.errors import CorepruneWarning
from coreprune.importance import Selection
from coreprune.metrics import count_params
from coreprune.models import build_model
from coreprune.pruning import (
    Pruner,
    apply_selection,
    build_cost_model,
    build_graph,
    find_unit_groups,
    prune,
    unit_set,
)

METHODS = ["coreset", "coreset-theory", "mussay", "l1", "l2", "random"]


def mlp(widths=(12, 20, 16, 5)):
    layers = [nn.Flatten()]
    for a, b in zip(widths[:-1], widths[1:], strict=False):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def small_cnn():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 4))


def randomise_bn(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_()
            m.bias.data.normal_()
    return model.eval()


@pytest.mark.parametrize("method", METHODS)
def test_zero_percent_is_identity(method):
    model = mlp()
    x = torch.randn(7, 12)
    out = prune(model, method, params_removed=0.0, example_inputs=x)
    torch.testing.assert_close(out(x), model(x), rtol=0, atol=0)
    cnn = randomise_bn(small_cnn())
    xi = torch.randn(3, 3, 8, 8)
    out = prune(cnn, method, keep_ratio=1.0, example_inputs=xi)
    torch.testing.assert_close(out.eval()(xi), cnn(xi), rtol=0, atol=0)


def test_model_given_is_untouched():
    model = mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prune(model, "coreset-theory", params_removed=0.5)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_zero_units_are_dropped_and_outputs_preserved_exactly():
    model = mlp((12, 20, 5))
    with torch.no_grad():
        model[3].weight[:, 10:] = 0.0  # units 10..19 of layer 1 feed nothing
    x = torch.randn(9, 12)
    for method in ("coreset", "coreset-theory", "mussay"):
        out = prune(model, method, keep_ratio=0.5, example_inputs=x)
        assert out[1].out_features == 10
        torch.testing.assert_close(out(x), model(x), rtol=1e-6, atol=1e-6)


def _duplicate_mlp():
    model = mlp((6, 8, 3))
    with torch.no_grad():  # units 4..7 repeat units 0..3 exactly
        model[1].weight[4:] = model[1].weight[:4]
        model[1].bias[4:] = model[1].bias[:4]
        model[3].weight[:, 4:] = model[3].weight[:, :4]
    return model


def test_folding_duplicate_units_preserves_outputs_exactly():
    model = _duplicate_mlp()
    x = torch.randn(11, 6)
    ref = model(x)
    graph = build_graph(model, x)
    (g,) = find_unit_groups(graph)
    apply_selection(graph, g, Selection(np.arange(4), np.full(4, 2.0), np.ones(8)))
    assert model[1].out_features == 4 and model[3].in_features == 4
    torch.testing.assert_close(model(x), ref, rtol=1e-6, atol=1e-6)


def test_folding_into_conv_consumer_with_batchnorm():
    model = randomise_bn(nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4),
                                       nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1)))
    with torch.no_grad():
        model[0].weight[2:] = model[0].weight[:2]
        model[0].bias[2:] = model[0].bias[:2]
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(model[1], name)[2:] = getattr(model[1], name)[:2]
        model[3].weight[:, 2:] = model[3].weight[:, :2]
    x = torch.randn(2, 2, 5, 5)
    ref = model(x)
    graph = build_graph(model, x)
    (g,) = find_unit_groups(graph)
    units = unit_set(graph, g)
    np.testing.assert_allclose(units.incoming[2:], units.incoming[:2])
    apply_selection(graph, g, Selection(np.array([0, 1]), np.array([2.0, 2.0]), np.ones(4)))
    torch.testing.assert_close(model(x), ref, rtol=1e-5, atol=1e-5)


def test_unit_set_shapes_through_flatten():
    model = build_model("vgg16", in_channels=1)
    x = torch.randn(2, 1, 32, 32)
    graph = build_graph(model, x)
    groups = find_unit_groups(graph)
    assert len(groups) == 13  # every conv; the classifier's outputs are the model's
    last = unit_set(graph, groups[-1])
    assert last.outgoing.shape == (512, 10)
    first = unit_set(graph, groups[0])
    assert first.incoming.shape == (64, 10) and first.outgoing.shape == (64, 64 * 9)


ZOO = [("lenet300", (1, 28, 28)), ("vgg16", (3, 32, 32)), ("resnet20", (1, 32, 32)),
       ("resnet56", (3, 32, 32))]


@pytest.mark.parametrize("name,shape", ZOO)
@pytest.mark.parametrize("ratio,method", [(0.3, "coreset"), (0.6, "l1")])
def test_zoo_prunes_runs_and_reports_true_counts(name, shape, ratio, method):
    kwargs = {"in_channels": shape[0]}
    if name == "lenet300":
        kwargs["image_size"] = shape[1]
    model = build_model(name, **kwargs).eval()
    x = torch.randn(2, *shape)
    pruner = Pruner(method, params_removed=ratio, seed=0)
    small = pruner.fit_transform(model, x)
    assert small(x).shape == model(x).shape
    rep = pruner.report_
    assert rep.params_after == count_params(small)
    assert rep.params_before == count_params(model)
    assert rep.params_removed >= ratio - 0.02
    graph = build_graph(model, x)
    groups = find_unit_groups(graph)
    assert [g.name for g in groups] == [g.name for g in pruner.groups_]
    cost = build_cost_model(graph, groups, x)
    assert cost.params(pruner.keep_counts_) == pytest.approx(count_params(small))


def test_torchvision_resnet18_prunes():
    model = build_model("tv_resnet18", num_classes=10).eval()
    x = torch.randn(1, 3, 64, 64)
    pruner = Pruner("coreset", params_removed=0.3, seed=0)
    small = pruner.fit_transform(model, x)
    assert small(x).shape == (1, 10)
    assert pruner.report_.params_after == count_params(small)
    for name in ("conv1", "layer1.0.conv2"):  # residual stream left alone by default
        assert dict(small.named_modules())[name].out_channels == 64


def test_prune_coupled_reaches_residual_stream():
    model = build_model("resnet20", in_channels=1).eval()
    x = torch.randn(2, 1, 32, 32)
    pruner = Pruner("l1", keep_ratio=0.5, prune_coupled=True)
    small = pruner.fit_transform(model, x)
    assert small.conv1.out_channels == 8
    assert small(x).shape == (2, 10)
    assert any(not g.foldable for g in pruner.groups_)


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_model(method):
    model = mlp((12, 40, 30, 5))
    a = prune(model, method, params_removed=0.5, seed=3)
    b = prune(model, method, params_removed=0.5, seed=3)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


def test_torchvision_resnet50_at_paper_operating_point():
    model = build_model("tv_resnet50").eval()
    x = torch.randn(1, 3, 224, 224)
    pruner = Pruner("coreset", params_removed=0.62, seed=0)
    small = pruner.fit_transform(model, x)
    assert small(x).shape == (1, 1000)
    assert pruner.report_.params_after == count_params(small)
    assert 0.62 <= pruner.report_.params_removed < 0.64


TORCHVISION_CNNS = {  # the torchvision CNNs the README lists as supported: (kwargs, image size)
    "resnet18": ({}, 32), "resnet50": ({}, 32), "vgg11_bn": ({}, 32), "alexnet": ({}, 64),
    "squeezenet1_0": ({}, 32), "densenet121": ({}, 32), "convnext_tiny": ({}, 32),
    "googlenet": ({"aux_logits": False, "init_weights": True}, 32),
}


@pytest.mark.parametrize("name", sorted(TORCHVISION_CNNS))
def test_torchvision_cnns_prune_with_reconstruction_and_run(name):
    """Default pruning (greedy + reconstruct) of every supported torchvision CNN runs forward with
    finite outputs and the reported parameter count; every layer reconstructs or its record
    names why not (no moment model behind a concatenation or a ceil-mode pool); ConvNeXt's FFNs
    reconstruct under their LayerNorm prior. The 4096-wide classifiers of AlexNet and VGG and
    ConvNeXt's widest FFNs are left whole here: their moment models take minutes on 2
    cores."""
    import torchvision

    torch.manual_seed(0)
    kwargs, size = TORCHVISION_CNNS[name]
    model = getattr(torchvision.models, name)(num_classes=10, **kwargs).eval()
    ignored = tuple(m for m in getattr(model, "classifier", nn.Sequential()).modules()
                    if isinstance(m, nn.Linear) and m.in_features > 1024)
    if name == "convnext_tiny":  # its 1,536- and 3,072-wide FFNs too (minutes of moments)
        ignored = tuple(m for m in model.modules()
                        if isinstance(m, nn.Linear) and m.out_features > 1024)
    x = torch.randn(2, 3, size, size)
    target = {"keep_ratio": 0.7} if ignored else {"params_removed": 0.3}
    pruner = Pruner(**target, synthetic_inputs=4, synthetic_steps=2, ignored_layers=ignored)
    small = pruner.fit_transform(model, x[:1])
    y = small(x)
    assert y.shape == (2, 10) and torch.isfinite(y).all()
    assert pruner.report_.params_after == count_params(small)
    assert pruner.report_.params_removed >= (0.01 if ignored else 0.28)
    for lr in pruner.report_.layers:
        comp = lr.info["compensation"]
        assert comp.startswith("reconstruct") or ("fallback" in comp and lr.info["moment_model"])
    reconstructed = [lr.info["compensation"] == "reconstruct" for lr in pruner.report_.layers]
    assert any(reconstructed) == (name != "squeezenet1_0")


MOBILE_CNNS = ("mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "mnasnet0_5")


@pytest.mark.parametrize("name", MOBILE_CNNS)
def test_depthwise_networks_prune_every_block(name):
    """Networks of depthwise blocks (with squeeze-and-excitation gates in MobileNet-V3 and
    EfficientNet) prune every depthwise block's expansion, none below the 10% floor, and run
    with the reported parameter count; reconstruction (L1 selection: greedy takes minutes on
    their 1,000-wide layers on 2 cores) runs on every group with moments, per consumer where
    squeeze-and-excitation gates the units, and the record says why elsewhere."""
    import torchvision

    from coreprune.pruning.groups import is_depthwise

    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    pruner = Pruner("l1", params_removed=0.5, compensate="reconstruct", moment_model="synthetic",
                    synthetic_inputs=4, synthetic_steps=2)
    with pytest.warns(CorepruneWarning, match=r"output width of \d+ layers whole"):
        small = pruner.fit_transform(model, x[:1])
    y = small(x)
    assert y.shape == (2, 10) and torch.isfinite(y).all()
    report = coreprune.report_of(small)
    assert report is pruner.report_ and report.params_after == count_params(small)
    assert report.params_removed >= 0.5 and 0 < report.unpruned_share < 0.5
    before = [m for m in model.modules() if is_depthwise(m)]
    after = [m for m in small.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(before) == len(after)
    assert all(a.groups == a.in_channels == a.out_channels < b.groups
               for b, a in zip(before, after, strict=True))
    assert min(lr.kept / lr.n_units for lr in report.layers) >= 0.1
    comps = [lr.info["compensation"] for lr in report.layers]
    assert all(c.startswith("reconstruct") or "fallback" in c for c in comps)
    assert "reconstruct" in comps
    excited = [c for c, lr in zip(comps, report.layers, strict=True)
               if lr.info.get("moment_model", "").startswith("squeeze-and-excitation")]
    assert bool(excited) == (name in ("mobilenet_v3_small", "efficientnet_b0"))
    assert all(c == "reconstruct (per consumer)" for c in excited)


def test_layers_left_whole_are_named_in_one_warning_and_the_report():
    model = build_model("resnet20", in_channels=1).eval()
    x = torch.randn(2, 1, 32, 32)
    with pytest.warns(CorepruneWarning) as caught:
        small = coreprune.prune(model, "l1", params_removed=0.3, example_inputs=x[:1])
    assert len(caught) == 1 and caught[0].filename == __file__  # points at the user's call
    message = str(caught[0].message)
    report = coreprune.report_of(small)
    assert set(report.unpruned) >= {"conv1", "layers.0.conv2"} and "\n" not in message
    assert f"{len(report.unpruned)} layers" in message and "prune_coupled=True" in message
    share = sum(p.numel() for name in report.unpruned
                for p in model.get_submodule(name).parameters()) / count_params(model)
    assert share < report.unpruned_share < share + 0.01  # plus their BatchNorms
    assert f"{report.unpruned_share:.1%}" in message
    with pytest.raises(coreprune.InvalidArgumentError, match="no pruning report"):
        coreprune.report_of(model)
    coupled = coreprune.prune(model, "l1", params_removed=0.3, example_inputs=x[:1],
                              prune_coupled=True)
    assert coreprune.report_of(coupled).unpruned == {}


def test_timm_vit_prunes_its_ffn_neurons_and_names_the_attention_projections_it_leaves():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10,
                              img_size=32, patch_size=8, embed_dim=48, depth=2,
                              num_heads=3).eval()
    x = torch.randn(2, 3, 32, 32)
    with pytest.warns(CorepruneWarning, match="an attention projection"):
        small = coreprune.prune(model, params_removed=0.3, example_inputs=x[:1])
    report = coreprune.report_of(small)
    assert [lr.name for lr in report.layers] == ["blocks.0.mlp.fc1", "blocks.1.mlp.fc1"]
    assert {"blocks.0.attn.qkv", "blocks.1.attn.qkv"} <= set(report.unpruned)
    assert report.params_after == count_params(small) and report.params_removed >= 0.3
    assert all(lr.info["compensation"] == "reconstruct" for lr in report.layers)
    y = small(x)
    assert y.shape == (2, 10) and torch.isfinite(y).all()
    same = coreprune.prune(model, keep_ratio=1.0, example_inputs=x[:1])
    torch.testing.assert_close(same(x), model(x), rtol=0, atol=0)


def test_zoo_vit_prunes_its_ffn_neurons_with_reconstruction_and_reloads(tmp_path):
    from coreprune import io

    torch.manual_seed(0)
    model = build_model("vit").eval()
    x = torch.randn(2, 1, 28, 28)
    with pytest.warns(CorepruneWarning, match="an attention projection"):
        small = coreprune.prune(model, params_removed=0.3)
    report = coreprune.report_of(small)
    assert [lr.name for lr in report.layers] == [f"blocks.{i}.fc1" for i in range(4)]
    assert all(lr.info["compensation"] == "reconstruct" for lr in report.layers)
    assert report.params_after == count_params(small) and report.params_removed >= 0.3
    assert [b.fc1.out_features for b in small.blocks] == [lr.kept for lr in report.layers]
    again = io.load(io.save(small, tmp_path / "vit.pt"))
    torch.testing.assert_close(again(x), small(x), rtol=0, atol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorepruneWarning)
        same = coreprune.prune(model, keep_ratio=1.0)
    torch.testing.assert_close(same(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("method", ["l1", "greedy"])
def test_fit_transform_is_fit_then_transform_and_counts_what_a_forward_pass_shows(method):
    from coreprune.metrics import count_flops
    from coreprune.pruning.groups import input_sizes, layer_shapes

    model = randomise_bn(small_cnn())
    x = torch.randn(2, 3, 8, 8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    one = Pruner(method, params_removed=0.4, seed=0)
    small = one.fit_transform(model, x)  # prunes the copy fit traced
    two = Pruner(method, params_removed=0.4, seed=0).fit(model, x)
    again = two.transform(model)
    torch.testing.assert_close(small.eval()(x), again.eval()(x), rtol=0, atol=0)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert one.report_.flops_before == two.report_.flops_before == count_flops(model, x)
    assert one.report_.flops_after == count_flops(small, x)
    shapes = layer_shapes(model, x)
    assert shapes.flops == count_flops(model, x)
    assert input_sizes(model, x, shapes) == input_sizes(model, x) == {"0": (8, 8), "3": (8, 8)}
