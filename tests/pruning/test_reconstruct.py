"""End to end: pruning with least-squares reconstruction through the Pruner."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from coreprune.importance import ImportanceMethod, Selection
from coreprune.metrics import count_params
from coreprune.pruning import Pruner


class KeepFirst(ImportanceMethod):
    """Keeps the first k units (a fixed choice, to test the folds)."""

    name = "keep-first"

    def scores(self, units):
        return -np.arange(units.n, dtype=float)

    def select(self, units, k, rng):
        return Selection(np.arange(k), np.ones(k), self.scores(units))


def _redundant_mlp(act=nn.ReLU):
    """784-8-4-3 MLP whose hidden units 5, 6, 7 are 2.5 x unit 0, a copy of unit 1 and zero."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(10, 8), act(), nn.Linear(8, 4), act(),
                          nn.Linear(4, 3)).eval()
    with torch.no_grad():
        w, b = model[1].weight, model[1].bias
        w[5], b[5] = 2.5 * w[0], 2.5 * b[0]
        w[6], b[6] = w[1], b[1]
        w[7], b[7] = 0.0, 0.0
    return model


@pytest.mark.parametrize("act, exact", [(nn.ReLU, True), (nn.GELU, False)])
def test_removed_multiples_copies_and_zero_units_fold_exactly(act, exact):
    model = _redundant_mlp(act)
    x = torch.randn(64, 10)
    p = Pruner(KeepFirst(), layer_ratios={"1": 5 / 8}, compensate="reconstruct")
    out = p.fit_transform(model, x[:2])
    assert out[1].out_features == 5 and out[3].in_features == 5
    layer = p.report_.layers[0]
    assert layer.info["compensation"] == "reconstruct"
    err = (out(x) - model(x)).abs().max().item()
    if exact:  # ReLU is positively homogeneous: the removed units are exact functions of kept
        assert err < 1e-4 and layer.info["predicted_error"] < 1e-7
    else:  # GELU: the copy is exact, the multiple is not (and Monte Carlo moments are noisy)
        drop = Pruner(KeepFirst(), layer_ratios={"1": 5 / 8}, compensate="none").fit_transform(
            model, x[:2])
        assert err < (drop(x) - model(x)).abs().max().item()


def test_zero_percent_removed_changes_no_output_for_every_compensation():
    model = _redundant_mlp()
    x = torch.randn(16, 10)
    for comp in ("none", "bn-mean", "merge", "reconstruct"):
        for method in ("coreset", "greedy", "neuron-merging"):
            out = Pruner(method, params_removed=0.0, compensate=comp).fit_transform(model, x[:2])
            torch.testing.assert_close(out(x), model(x), rtol=0, atol=0)


class _Functional(nn.Module):
    def __init__(self, act):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(12, 16), nn.Linear(16, 12), nn.Linear(12, 4)
        self.act = act

    def forward(self, x):
        return self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))


ACTS = [nn.ReLU(), nn.LeakyReLU(0.1), nn.GELU(), nn.GELU(approximate="tanh"), nn.SiLU(),
        nn.Tanh(), nn.Sigmoid(), nn.ELU(0.5), nn.SELU(), nn.ReLU6(), nn.Softplus(), nn.Mish(),
        nn.Hardswish(), nn.Hardsigmoid(), nn.Hardtanh(), nn.Identity(),
        lambda t: F.leaky_relu(t, 0.2)]


@pytest.mark.parametrize("act", ACTS, ids=lambda a: getattr(a, "__name__", type(a).__name__))
def test_every_supported_activation_reconstructs_and_runs(act):
    torch.manual_seed(1)
    model = _Functional(act).eval()
    x = torch.randn(256, 12)
    p = Pruner("greedy", keep_ratio=0.5)
    out = p.fit_transform(model, x[:2])
    assert [lr.info["compensation"] for lr in p.report_.layers] == ["reconstruct"] * 2
    assert count_params(out) == p.report_.params_after < count_params(model)
    y = out(x)
    assert y.shape == (256, 4) and torch.isfinite(y).all()
    drop = Pruner("greedy", keep_ratio=0.5, compensate="none").fit_transform(model, x[:2])
    # least squares under N(0, I) beats dropping on N(0, I) inputs
    ref = model(x)
    assert (y - ref).pow(2).mean() < (drop(x) - ref).pow(2).mean()


class _Residual(nn.Module):
    """fc3 reads a residual sum: outside the analytic moment model (and no BatchNorm)."""

    def __init__(self):
        super().__init__()
        self.fc0, self.fc1, self.fc2 = nn.Linear(6, 8), nn.Linear(8, 16), nn.Linear(16, 8)
        self.fc3, self.fc4 = nn.Linear(8, 12), nn.Linear(12, 3)

    def forward(self, x):
        a = torch.relu(self.fc0(x))
        c = self.fc2(torch.relu(self.fc1(a))) + a
        return self.fc4(torch.relu(self.fc3(torch.relu(c))))


def test_unsupported_paths_fall_back_and_say_why():
    torch.manual_seed(0)
    p = Pruner("coreset", keep_ratio=0.5, moment_model="analytic")
    out = p.fit_transform(_Residual().eval(), torch.randn(2, 6))
    infos = {lr.name: lr.info for lr in p.report_.layers}
    assert infos["fc1"]["compensation"] == "reconstruct"
    assert infos["fc3"]["compensation"].startswith("none (fallback")
    assert "AddBackward0" in infos["fc3"]["moment_model"]
    assert out(torch.randn(4, 6)).shape == (4, 3)
    # the default on this classifier (no convolution, no normalisation) mixes the prior with
    # inputs inverted from its scores, which reach the layer behind the residual sum too
    auto = Pruner("coreset", keep_ratio=0.5, synthetic_inputs=32, synthetic_steps=5)
    auto.fit_transform(_Residual().eval(), torch.randn(2, 6))
    infos = {lr.name: lr.info for lr in auto.report_.layers}
    assert "mixed with 32 inputs inverted" in infos["fc1"]["moment_model"]
    assert infos["fc3"]["compensation"] == "reconstruct"
    assert infos["fc3"]["moment_model"].startswith("32 inputs inverted")


def test_residual_cnn_blocks_use_a_local_prior_or_synthetic_inputs_and_say_so():
    from coreprune.models import build_model

    net = build_model("resnet20", in_channels=1).eval()
    x = torch.randn(2, 1, 32, 32)
    p = Pruner("coreset", keep_ratio=0.5, moment_model="analytic")
    out = p.fit_transform(net, x)
    infos = {lr.name: lr.info for lr in p.report_.layers}
    assert all(i["compensation"] == "reconstruct" for i in infos.values())
    # the first block reads the stem's output (a chain); the others a residual sum
    assert "moment_model" not in infos["layers.0.conv1"]
    assert all(i["moment_model"].startswith("local prior (input: the input passes through "
                                            "AddBackward0") for n, i in infos.items()
               if n != "layers.0.conv1")
    assert out(x).shape == (2, 10)
    # auto: synthetic inputs for those blocks (a tiny synthesis here), within the budget
    auto = Pruner("coreset", keep_ratio=0.5, synthetic_inputs=8, synthetic_steps=3)
    auto.fit_transform(net, x)
    infos = {lr.name: lr.info for lr in auto.report_.layers}
    assert "moment_model" not in infos["layers.0.conv1"]
    assert all(i["moment_model"].startswith("8 synthetic inputs") for n, i in infos.items()
               if n != "layers.0.conv1")
    assert auto.report_.target["synthesis"]["used"] is True
    # the synthesis starts from the prior's first component (independent pixels), the analytic
    # groups take the whole mixture
    assert auto.report_.target["synthesis"]["start_prior"]["spatial_correlation"] == 0.0
    assert auto.report_.target["input_prior"]["spatial_correlation"] == [0.0, 0.5, 0.9]
    # over the budget: the local prior, and the record says why
    tight = Pruner("coreset", keep_ratio=0.5, synthesis_budget=1e6)
    tight.fit_transform(net, x)
    assert tight.report_.target["synthesis"]["used"] is False
    assert tight.report_.target["synthesis"]["flops"] > 1e6
    assert tight.report_.layers[-1].info["moment_model"].startswith("local prior")


def test_synthetic_inputs_match_the_batchnorm_statistics_and_are_seeded():
    from coreprune.models import build_model
    from coreprune.pruning.propagation import InputPrior
    from coreprune.pruning.synthesis import batchnorm_matched_inputs

    torch.manual_seed(0)
    net = build_model("resnet20", in_channels=1)
    for m in net.modules():  # running statistics of inputs from N(0.5, 2^2)
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        net.train()(0.5 + 2.0 * torch.randn(256, 1, 32, 32))
    net.eval()
    x = torch.randn(2, 1, 32, 32)
    a, rel = batchnorm_matched_inputs(net, x, InputPrior(), n=32, steps=60, seed=1)
    b, _ = batchnorm_matched_inputs(net, x, InputPrior(), n=32, steps=60, seed=1)
    c, _ = batchnorm_matched_inputs(net, x, InputPrior(), n=32, steps=60, seed=2)
    assert a.shape == (32, 1, 32, 32) and rel < 0.1
    # started from N(0, 1): the inputs moved toward the distribution the statistics came from
    assert 0.3 < a.mean() < 0.7 and 1.5 < a.std() < 2.5
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert all(p.requires_grad for p in net.parameters()) and not net.training


def test_inverted_inputs_are_assigned_their_classes_seeded_and_leave_the_model_as_it_was():
    from coreprune.pruning.propagation import InputPrior
    from coreprune.pruning.synthesis import class_inverted_inputs

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 3)).train()
    x = torch.randn(2, 10)
    before = [p.detach().clone() for p in model.parameters()]
    a, share = class_inverted_inputs(model, x, InputPrior(), n=60, steps=80, seed=1)
    b, _ = class_inverted_inputs(model, x, InputPrior(), n=60, steps=80, seed=1)
    c, _ = class_inverted_inputs(model, x, InputPrior(), n=60, steps=80, seed=2)
    assert a.shape == (60, 10) and share > 0.9  # input i is assigned to class i mod 3
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert 0.3 < a.std().item() < 3.0  # the scale penalty keeps them near the prior's scale
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))


def test_inverted_moments_need_a_classifier_and_fold_copies_exactly():
    from coreprune.errors import InvalidArgumentError

    model = _redundant_mlp()
    x = torch.randn(256, 10)
    p = Pruner(KeepFirst(), layer_ratios={"1": 5 / 8}, compensate="reconstruct",
               moment_model="inverted", synthetic_inputs=64, synthetic_steps=20)
    out = p.fit_transform(model, x[:2])
    layer = p.report_.layers[0]
    assert "inverted from the class scores" in layer.info["moment_model"]
    assert p.report_.target["synthesis"]["kind"] == "inverted"
    # the removed units are a multiple, a copy and a zero unit of kept ones: exact on any inputs
    assert (out(x) - model(x)).abs().max().item() < 1e-4
    dense = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))
    with pytest.raises(InvalidArgumentError, match="needs a classifier"):
        Pruner("greedy", keep_ratio=0.5, moment_model="inverted").fit(dense,
                                                                      torch.randn(2, 1, 6, 6))


@pytest.mark.library_inversion
def test_the_default_mixes_the_prior_with_inverted_inputs_only_on_fully_connected_classifiers():
    p = Pruner(keep_ratio=0.5)
    p.fit_transform(_redundant_mlp(), torch.randn(2, 10))
    syn = p.report_.target["synthesis"]
    assert (syn["kind"], syn["inputs"], syn["steps"], syn["used"]) == ("inverted", 2048, 300,
                                                                       True)
    assert p.report_.layers[0].info["moment_model"].startswith(
        "the input prior, mixed with 2048 inputs inverted from the class scores")
    # a convolution, a normalisation layer or an output that is not class scores: as before
    conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 3))
    normed = nn.Sequential(nn.LayerNorm(10), nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 3))
    regressor = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 1))
    for model, x in ((conv, torch.randn(2, 1, 4, 4)), (normed, torch.randn(2, 10)),
                     (regressor, torch.randn(2, 10))):
        p = Pruner(keep_ratio=0.5)
        p.fit_transform(model.eval(), x)
        assert "inverted" not in repr(p.report_.target.get("synthesis")), model


def test_prior_samples_of_a_mixture_take_each_component_in_turn():
    from coreprune.pruning.propagation import InputPrior
    from coreprune.pruning.synthesis import _prior_samples

    x = torch.randn(2, 1, 12, 12)
    z = _prior_samples(InputPrior(0.0, 1.0, (0.0, 0.8)), x, 2000, seed=0).double()
    for k, rho in enumerate((0.0, 0.8)):
        part = z[k::2]
        neighbour = (part[..., :, :-1] * part[..., :, 1:]).mean().item()
        assert neighbour == pytest.approx(rho, abs=0.03)
        assert part.var().item() == pytest.approx(1.0, abs=0.05)


def test_reconstruction_is_reproducible_and_seeded():
    model = _Functional(nn.SiLU()).eval()
    x = torch.randn(8, 12)
    a = Pruner("greedy", keep_ratio=0.5, seed=3).fit_transform(model, x[:2])
    b = Pruner("greedy", keep_ratio=0.5, seed=3).fit_transform(model, x[:2])
    c = Pruner("greedy", keep_ratio=0.5, seed=4).fit_transform(model, x[:2])
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    assert not torch.equal(a(x), c(x))  # Monte Carlo moments take the seed


class _ConvNet(torch.nn.Module):
    """conv(3->8) -> ReLU -> conv(8->6) -> ReLU -> pool -> linear; filters 5, 6, 7 of the first
    conv are 2.5 x filter 0, a copy of filter 1 and zero."""

    def __init__(self, batchnorm: bool):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1, bias=not batchnorm)
        self.bn = nn.BatchNorm2d(8) if batchnorm else nn.Identity()
        self.c2 = nn.Conv2d(8, 6, 3, padding=1)
        self.fc = nn.Linear(6, 4)
        with torch.no_grad():
            w = self.c1.weight
            w[5], w[6], w[7] = 2.5 * w[0], w[1], 0.0
            if not batchnorm:
                b = self.c1.bias
                b[5], b[6], b[7] = 2.5 * b[0], b[1], 0.0

    def forward(self, x):
        h = torch.relu(self.c2(torch.relu(self.bn(self.c1(x)))))
        return self.fc(h.mean((2, 3)))


def test_conv_reconstruction_is_exact_for_removed_multiples_copies_and_zero_filters():
    torch.manual_seed(0)
    model = _ConvNet(batchnorm=False).eval()
    x = torch.randn(16, 3, 12, 12)
    p = Pruner(KeepFirst(), layer_ratios={"c1": 5 / 8}, compensate="reconstruct")
    out = p.fit_transform(model, x[:2])
    assert out.c1.out_channels == 5 and out.c2.in_channels == 5
    assert p.report_.layers[0].info["predicted_error"] < 1e-7
    # exact everywhere, borders included: the linear part maps padding zeros to zeros and
    # there is no constant to fold
    torch.testing.assert_close(out(x), model(x), rtol=1e-4, atol=1e-5)
    drop = Pruner(KeepFirst(), layer_ratios={"c1": 5 / 8}, compensate="none").fit_transform(
        model, x[:2])
    assert (drop(x) - model(x)).abs().max() > 1e-2


def test_conv_reconstruction_with_batchnorm_beats_dropping_and_runs():
    torch.manual_seed(1)
    model = _ConvNet(batchnorm=True)
    with torch.no_grad():  # BatchNorm statistics of N(0, 1) images, as training would leave
        model.bn.momentum = None
        model.train()(torch.randn(512, 3, 12, 12))
    model.eval()
    x = torch.randn(256, 3, 12, 12)
    recon = Pruner(KeepFirst(), layer_ratios={"c1": 0.5}, compensate="reconstruct").fit_transform(
        model, x[:2])
    drop = Pruner(KeepFirst(), layer_ratios={"c1": 0.5}, compensate="none").fit_transform(
        model, x[:2])
    ref = model(x)
    assert (recon(x) - ref).pow(2).mean() < 0.5 * (drop(x) - ref).pow(2).mean()


class _ResidualNet(torch.nn.Module):
    """stem conv(1->4) -> ReLU -> s; s + conv(ReLU(conv(s))) -> ReLU -> mean -> linear: the
    four stream channels are coupled across the addition; stream channel 3 is a copy of
    channel 0 in every state (its stem and block filters copy channel 0's)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.c1 = nn.Conv2d(4, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)
        with torch.no_grad():
            for conv in (self.stem, self.c2):
                conv.weight[3], conv.bias[3] = conv.weight[0], conv.bias[0]

    def forward(self, x):
        s = torch.relu(self.stem(x))
        s = torch.relu(s + self.c2(torch.relu(self.c1(s))))
        return self.fc(s.mean((2, 3)))


def _copy_reconstructed_per_consumer(model, x, options, drop_gap):
    """``model`` pruned (``KeepFirst``, ``reconstruct``, ``options``) where the removed unit
    copies a kept one in every state its consumers read: asserts the fold per consumer, its
    predicted error 0, outputs unchanged, and dropping the unit instead moving them by more than
    ``drop_gap``; returns ``(pruned model, the first layer's report info)``."""
    p = Pruner(KeepFirst(), compensate="reconstruct", **options)
    out = p.fit_transform(model, x[:2])
    info = p.report_.layers[0].info
    assert info["compensation"] == "reconstruct (per consumer)"
    assert info["predicted_error"] < 1e-7 < info["predicted_error_drop"]
    torch.testing.assert_close(out(x), model(x), rtol=1e-4, atol=1e-5)
    drop = Pruner(KeepFirst(), compensate="none", **options).fit_transform(model, x[:2])
    assert (drop(x) - model(x)).abs().max() > drop_gap
    return out, info


def test_coupled_residual_channels_are_reconstructed_per_consumer():
    torch.manual_seed(0)
    model = _ResidualNet().eval()
    x = torch.randn(16, 1, 10, 10)
    options = {"prune_coupled": True, "layer_ratios": {"stem": 0.75},
               "moment_model": "synthetic", "synthetic_inputs": 8, "synthetic_steps": 2}
    # the removed channel is a copy of a kept one in every state its consumers read: exact
    out, _ = _copy_reconstructed_per_consumer(model, x, options, drop_gap=1e-2)
    assert out.stem.out_channels == out.c2.out_channels == out.c1.in_channels == 3
    assert out.fc.in_features == 3
    # greedy has no moments to select on here (benchmarks/studies/coupled_selection.py): the
    # coreset selects, the folds are per consumer
    greedy = Pruner("greedy", **options)
    greedy.fit_transform(model, x[:2])
    info = greedy.report_.layers[0].info
    assert info["fallback"] == "coreset (no moment model)"
    assert info["moment_model"].startswith("channels coupled")
    assert info["compensation"] == "reconstruct (per consumer)"


class _ExcitedNet(torch.nn.Module):
    """conv(3->6) -> SiLU -> depthwise conv(6) -> SiLU = h; g = sigmoid(fc2(SiLU(fc1(mean h))));
    conv(6->4)(g * h) -> ReLU -> mean -> linear (EfficientNet's block, squeeze-and-excitation
    included): unit 5 is a copy of unit 0 in h and in its gate."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 1)
        self.dw = nn.Conv2d(6, 6, 3, padding=1, groups=6)
        self.fc1 = nn.Conv2d(6, 2, 1)
        self.fc2 = nn.Conv2d(2, 6, 1)
        self.c2 = nn.Conv2d(6, 4, 1)
        self.fc = nn.Linear(4, 3)
        with torch.no_grad():
            for conv in (self.c1, self.dw, self.fc2):
                conv.weight[5], conv.bias[5] = conv.weight[0], conv.bias[0]

    def forward(self, x):
        h = F.silu(self.dw(F.silu(self.c1(x))))
        g = torch.sigmoid(self.fc2(F.silu(self.fc1(h.mean((2, 3), keepdim=True)))))
        return self.fc(torch.relu(self.c2(g * h)).mean((2, 3)))


def test_squeeze_excited_units_are_reconstructed_per_consumer():
    """Units gated by squeeze-and-excitation: the projection reads ``g * h``, the squeeze layer
    the average of ``h``; each takes its own fold from moments measured where it reads, so a
    removed copy of a kept unit (in ``h`` and in its gate) is reconstructed exactly; greedy
    selection, which reads the moments too, then removes the copy rather than a unit that
    carries something of its own."""
    torch.manual_seed(0)
    model = _ExcitedNet().eval()
    x = torch.randn(16, 3, 10, 10)
    options = {"layer_ratios": {"c1": 5 / 6}, "moment_model": "synthetic",
               "synthetic_inputs": 8, "synthetic_steps": 2}
    out, info = _copy_reconstructed_per_consumer(model, x, options, drop_gap=1e-3)
    assert out.c1.out_channels == out.dw.out_channels == out.fc2.out_channels == 5
    assert out.fc1.in_channels == out.c2.in_channels == 5
    assert info["moment_model"].startswith("squeeze-and-excitation")
    greedy = Pruner("greedy", **options)
    greedy.fit_transform(model, x[:2])
    assert set(greedy.report_.layers[0].indices) in ({0, 1, 2, 3, 4}, {1, 2, 3, 4, 5})


class _DepthwiseNet(torch.nn.Module):
    """conv(3->8) -> ReLU -> depthwise conv(8) -> ReLU -> conv(8->6) -> ReLU -> mean -> linear
    (MobileNet's expansion, depthwise and projection): units 5, 6, 7 are 2.5 x unit 0, a copy of
    unit 1 and zero through both convolutions that carry them."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.c2 = nn.Conv2d(8, 6, 1)
        self.fc = nn.Linear(6, 4)
        with torch.no_grad():
            for conv, bias_scale in ((self.c1, 2.5), (self.dw, 2.5)):
                w, b = conv.weight, conv.bias
                w[5] = (2.5 if conv is self.c1 else 1.0) * w[0]
                b[5] = bias_scale * b[0]
                w[6], b[6], w[7], b[7] = w[1], b[1], 0.0, 0.0

    def features(self, x):
        return torch.relu(self.c2(torch.relu(self.dw(torch.relu(self.c1(x))))))

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def test_units_carried_through_a_depthwise_conv_reconstruct_exactly():
    torch.manual_seed(0)
    model = _DepthwiseNet().eval()
    x = torch.randn(16, 3, 10, 10)
    p = Pruner(KeepFirst(), layer_ratios={"c1": 5 / 8}, compensate="reconstruct")
    out = p.fit_transform(model, x[:2])
    assert (out.c1.out_channels, out.dw.in_channels, out.dw.out_channels, out.dw.groups,
            out.c2.in_channels) == (5, 5, 5, 5, 5)
    assert [g.carriers for g in p.groups_] == [["dw"], []]  # c1 (carried), c2
    assert p.report_.params_after == count_params(out) == count_params(model) - 3 * (3 + 1) \
        - 3 * (9 + 1) - 6 * 3
    assert p.report_.layers[0].info["predicted_error"] < 1e-7  # analytic moments through dw
    torch.testing.assert_close(out.features(x), model.features(x), rtol=1e-4, atol=1e-5)
    same = Pruner(KeepFirst(), layer_ratios={"c1": 1.0}).fit_transform(model, x[:2])
    torch.testing.assert_close(same(x), model(x), rtol=0, atol=0)
    drop = Pruner(KeepFirst(), layer_ratios={"c1": 5 / 8}, compensate="none").fit_transform(
        model, x[:2])
    assert (drop.features(x) - model.features(x)).abs().max() > 1e-2


class _TokenMLP(torch.nn.Module):
    """A transformer's FFN on a batch of token sequences: LayerNorm -> fc1 -> ReLU -> fc2; fc1's
    units 5, 6, 7 are 2.5 x unit 0, a copy of unit 1 and zero."""

    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(6)
        self.fc1 = nn.Linear(6, 8)
        self.fc2 = nn.Linear(8, 6)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.normal_()
            w, b = self.fc1.weight, self.fc1.bias
            w[5], b[5] = 2.5 * w[0], 2.5 * b[0]
            w[6], b[6], w[7], b[7] = w[1], b[1], 0.0, 0.0

    def forward(self, x):  # x: (batch, tokens, 6)
        return x + self.fc2(torch.relu(self.fc1(self.norm(x))))


def test_ffn_neurons_of_token_sequences_reconstruct_exactly_after_a_layernorm():
    torch.manual_seed(0)
    model = _TokenMLP().eval()
    x = torch.randn(16, 5, 6)
    p = Pruner(KeepFirst(), layer_ratios={"fc1": 5 / 8}, compensate="reconstruct")
    out = p.fit_transform(model, x[:2])
    assert out.fc1.out_features == 5 and out.fc2.in_features == 5
    assert p.report_.params_after == count_params(out) == count_params(model) - 3 * 7 - 3 * 6
    layer = p.report_.layers[0]
    assert layer.info["compensation"] == "reconstruct" and layer.info["predicted_error"] < 1e-7
    assert "LayerNorm" in layer.info["moment_model"]
    torch.testing.assert_close(out(x), model(x), rtol=1e-4, atol=1e-5)
    same = Pruner(KeepFirst(), layer_ratios={"fc1": 1.0}).fit_transform(model, x[:2])
    torch.testing.assert_close(same(x), model(x), rtol=0, atol=0)


class _RMSNorm(nn.Module):
    """Hugging Face LLaMA's RMSNorm, op for op."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.linspace(0.5, 1.5, d))

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))


class _GatedMLP(nn.Module):
    """``head(down(silu(gate(h)) * up(h)))``, ``h = n(embed(x))`` on token sequences (the
    embedding is left whole: ignored); hidden unit 7 copies unit 0 (its gate and up rows), unit
    6 is zero."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Linear(6, 6)
        self.norm, self.gate, self.up = _RMSNorm(6), nn.Linear(6, 8, bias=False), \
            nn.Linear(6, 8, bias=False)
        self.down, self.head = nn.Linear(8, 6, bias=False), nn.Linear(6, 3)
        with torch.no_grad():
            self.gate.weight[7], self.up.weight[7] = self.gate.weight[0], self.up.weight[0]
            self.up.weight[6] = 0.0

    def forward(self, x):
        h = self.norm(self.embed(x))
        return self.head(self.down(F.silu(self.gate(h)) * self.up(h)))


def test_gated_mlp_units_reconstruct_under_the_rmsnorm_model():
    """The gated units take the RMSNorm moment model and the gated product's moments: a copied
    unit and a zero unit are removed exactly (up to the ridge), where dropping the copy is not."""
    model = _GatedMLP().eval()
    x = torch.randn(4, 5, 6)
    p = Pruner("greedy", layer_ratios={"gate": 6 / 8}, ignored_layers=(model.embed,))
    out = p.fit_transform(model, x[:1])
    layer = p.report_.layers[0]
    assert layer.name == "gate" and sorted(set(range(8)) - set(layer.indices)) in ([6, 7],
                                                                                  [0, 6])
    assert layer.info["compensation"] == "reconstruct"
    assert "RMSNorm" in layer.info["moment_model"] and "gated" in layer.info["moment_model"]
    torch.testing.assert_close(out(x), model(x), rtol=1e-4, atol=1e-4)
    keep = [i for i in range(8) if i not in (6, 7)]
    drop = Pruner("greedy", layer_ratios={"gate": 6 / 8}, compensate="none",
                  ignored_layers=(model.embed,))
    dropped = drop.fit_transform(model, x[:1])
    assert drop.report_.layers[0].indices == keep
    assert (dropped(x) - model(x)).abs().max() > 1e-2
    same = Pruner("greedy", keep_ratio=1.0, ignored_layers=(model.embed,))
    assert torch.equal(same.fit_transform(model, x[:1])(x), model(x))
