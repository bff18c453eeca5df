import numpy as np
import pytest
import torch
from torch import nn

from coreprune.compensation import get_compensation
from coreprune.errors import InvalidArgumentError
from coreprune.importance import Selection
from coreprune.pruning import Pruner, apply_selection, build_graph, find_unit_groups, unit_set


def _bn_mlp(consumer_bn: bool):
    torch.manual_seed(0)
    layers = [nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3, bias=not consumer_bn)]
    if consumer_bn:
        layers.append(nn.BatchNorm1d(3))
    model = nn.Sequential(*layers)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.bias.normal_()
        # units 1, 4, 6 are constant: BatchNorm scale 0, so their output is relu(beta)
        model[1].weight[[1, 4, 6]] = 0.0
        model[1].bias[[1, 4, 6]] = torch.tensor([0.8, 1.5, -0.3])
    return model.eval()


@pytest.mark.parametrize("consumer_bn", [False, True])
def test_removing_constant_units_with_compensation_is_exact(consumer_bn):
    model = _bn_mlp(consumer_bn)
    x = torch.randn(10, 6)
    ref = model(x)
    keep = np.array([0, 2, 3, 5, 7])
    for compensation, exact in (("bn-mean", True), ("none", False)):
        work = _bn_mlp(consumer_bn)
        graph = build_graph(work, x)
        (g,) = find_unit_groups(graph)
        apply_selection(graph, g, Selection(keep, np.ones(5), np.ones(8)),
                        compensation=compensation)
        assert work[0].out_features == 5
        assert torch.allclose(work(x), ref, atol=1e-5) is exact


def test_compensation_covers_reweighted_units():
    # folding weight 2 on unit 0 doubles its contribution; compensation removes its mean
    model = _bn_mlp(False)
    with torch.no_grad():
        model[1].weight[0] = 0.0  # unit 0 constant relu(beta_0)
        model[1].bias[0] = 0.9
    x = torch.randn(4, 6)
    ref = model(x)
    graph = build_graph(model, x)
    (g,) = find_unit_groups(graph)
    keep = np.array([0, 1, 2, 3, 4, 5, 6, 7])
    w = np.ones(8)
    w[0] = 2.0
    apply_selection(graph, g, Selection(keep, w, np.ones(8)), compensation="bn-mean")
    torch.testing.assert_close(model(x), ref, rtol=1e-5, atol=1e-5)


def _bn_mean_change(graph, g):
    keep = np.arange(0, g.n_units, 2)
    sel = Selection(keep, np.ones(keep.size), np.ones(g.n_units))
    return get_compensation("bn-mean").change(unit_set(graph, g), sel, reweight=False)


def test_no_compensation_without_batchnorm_or_through_residual_coupling():
    mlp = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 2))
    graph = build_graph(mlp, torch.randn(2, 5))
    (g,) = find_unit_groups(graph)
    change = _bn_mean_change(graph, g)
    assert change.fold.is_drop() and change.renormalize is None
    assert change.info["skipped"] == "no BatchNorm after the layer"
    from coreprune.models import build_model

    net = build_model("resnet20", in_channels=1).eval()
    x = torch.randn(2, 1, 32, 32)
    graph = build_graph(net, x)
    groups = find_unit_groups(graph, prune_coupled=True)
    coupled = [g for g in groups if g.coupled]
    inner = [g for g in groups if not g.coupled]
    assert coupled and inner
    assert _bn_mean_change(graph, coupled[0]).fold.is_drop()
    inner_change = _bn_mean_change(graph, inner[0])
    assert np.any(inner_change.fold.offset) and inner_change.renormalize is not None


@pytest.mark.parametrize("compensate", ["bn-mean", "merge", "reconstruct", True])
def test_pruner_compensate_is_recorded_and_zero_percent_stays_identity(compensate):
    model = _bn_mlp(True)
    x = torch.randn(6, 6)
    p = Pruner("l1", params_removed=0.0, compensate=compensate)
    out = p.fit_transform(model, x)
    torch.testing.assert_close(out(x), model(x), rtol=0, atol=0)
    assert p.report_.target["compensate"] == ("bn-mean" if compensate is True else compensate)


def test_compensated_batchnorm_matches_the_pruned_model_on_gaussian_inputs():
    # orthonormal incoming rows on N(0, I) inputs: every unit's pre-activation is an independent
    # N(0, 1), the Gaussian model is exact, and the pruned consumer's true output mean and
    # variance must equal the compensated running statistics (up to sampling error)
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(16, 16))
    model = nn.Sequential(nn.Linear(16, 12, bias=False), nn.BatchNorm1d(12), nn.ReLU(),
                          nn.Linear(12, 5, bias=False), nn.BatchNorm1d(5)).eval()
    with torch.no_grad():
        model[0].weight.copy_(q[:12])
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.normal_(0.0, 0.7)
        x = torch.randn(200_000, 16)
        pre = model[:4](x)
        model[4].running_mean.copy_(pre.mean(0))
        model[4].running_var.copy_(pre.var(0))
    graph = build_graph(model, x[:2])
    (g,) = find_unit_groups(graph)
    apply_selection(graph, g, Selection(np.array([0, 3, 4, 8, 9]), np.ones(5), np.ones(12)),
                    compensation="bn-mean")
    with torch.no_grad():
        pre = model[:4](torch.randn(200_000, 16))
    torch.testing.assert_close(model[4].running_mean, pre.mean(0), rtol=0, atol=0.01)
    torch.testing.assert_close(model[4].running_var, pre.var(0), rtol=0.02, atol=0)


def test_each_method_has_its_default_compensation_and_baselines_run_as_published():
    assert Pruner("coreset", params_removed=0.5).compensate == "reconstruct"
    assert Pruner("coreset-scaled", params_removed=0.5).compensate == "reconstruct"
    assert Pruner("greedy", params_removed=0.5).compensate == "reconstruct"
    assert Pruner("neuron-merging", params_removed=0.5).compensate == "merge"
    assert Pruner("coreset", params_removed=0.5, selection="sample").compensate == "none"
    for method in ("coreset-theory", "mussay", "l1", "l2", "random"):
        assert Pruner(method, params_removed=0.5).compensate == "none"
    assert Pruner("coreset", params_removed=0.5, compensate=False).compensate == "none"
    assert Pruner("l1", params_removed=0.5, compensate=True).compensate == "bn-mean"
    assert Pruner("l1", params_removed=0.5, compensate="merge").compensate == "merge"
    with pytest.raises(InvalidArgumentError, match="unknown compensation 'yes'"):
        Pruner("coreset", params_removed=0.5, compensate="yes")
    with pytest.raises(InvalidArgumentError, match="compensate must be one of"):
        Pruner("coreset", params_removed=0.5, compensate=3)


def test_default_coreset_equals_explicit_reconstruction_and_differs_from_none():
    model = _bn_mlp(True)
    x = torch.randn(16, 6)
    default = Pruner("coreset", keep_ratio=0.5).fit_transform(model, x)
    on = Pruner("coreset", keep_ratio=0.5, compensate="reconstruct").fit_transform(model, x)
    off = Pruner("coreset", keep_ratio=0.5, compensate="none").fit_transform(model, x)
    torch.testing.assert_close(default(x), on(x), rtol=0, atol=0)
    assert not torch.allclose(default(x), off(x))


def test_reweighted_selection_compensates_the_mean_only_and_plain_drops_the_variance_too():
    # reweighted samples estimate the whole sum, whose variance is unchanged; dropping units
    # with weight 1 removes part of it (independence model); units 2, 3, 5, 7 vary
    keep = np.array([0, 1, 4, 6])
    running_var = {}
    for name, w in (("plain", np.ones(4)), ("reweighted", np.full(4, 2.0))):
        model = _bn_mlp(True)
        before = model[4].running_var.clone()
        graph = build_graph(model, torch.randn(4, 6))
        (g,) = find_unit_groups(graph)
        apply_selection(graph, g, Selection(keep, w, np.ones(8)), compensation="bn-mean")
        running_var[name] = model[4].running_var / before
    assert torch.all(running_var["plain"] < 1.0)
    torch.testing.assert_close(running_var["reweighted"], torch.ones(3), rtol=0, atol=0)
