"""Unit groups: grouped convolutions (units are slots of one channel per channel group), and
layer scales, which are no gates."""

import numpy as np
import pytest
import torch
from torch import nn

import coreprune
from coreprune.importance import Selection
from coreprune.metrics import count_params
from coreprune.pruning import Pruner, apply_selection, build_graph, find_unit_groups, unit_set
from coreprune.pruning.peers import prune_with_torch_pruning
from coreprune.pruning.propagation import InputPrior, MomentPropagator


class _GroupedBlock(nn.Module):
    """A ResNeXt-style bottleneck: 1x1 conv (12 channels) -> grouped 3x3 conv (3 groups of 4)
    -> 1x1 conv, BatchNorm and ReLU after each, then pooling and a Linear."""

    def __init__(self, groups: int = 3, dense: nn.Conv2d | None = None) -> None:
        super().__init__()
        self.a = nn.Conv2d(2, 12, 1)
        self.bn_a = nn.BatchNorm2d(12)
        self.b = dense or nn.Conv2d(12, 12, 3, padding=1, groups=groups)
        self.bn_b = nn.BatchNorm2d(12)
        self.c = nn.Conv2d(12, 6, 1)
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn_a(self.a(x)))
        h = torch.relu(self.bn_b(self.b(h)))
        return self.head(torch.relu(self.c(h)).mean((2, 3)))


def _block() -> _GroupedBlock:
    torch.manual_seed(0)
    return _GroupedBlock().eval()


def test_units_of_a_grouped_convolution_are_slots_across_its_groups():
    model = _block()
    x = torch.randn(2, 2, 6, 6)
    graph = build_graph(model, x)
    groups = {g.name: g for g in find_unit_groups(graph)}
    a, b = groups["a"], groups["b"]
    assert (a.n_units, a.channel_groups, b.n_units, b.channel_groups) == (4, 3, 4, 3)
    assert groups["c"].channel_groups == 1
    np.testing.assert_array_equal(a.channels(np.array([1, 3])), [1, 3, 5, 7, 9, 11])
    units = unit_set(graph, a)
    w = model.a.weight.detach().double().reshape(12, -1)
    scale = 1 / np.sqrt(1 + model.bn_a.eps)
    # slot j: channels j, j + 4, j + 8 side by side, each [w | b] with the BatchNorm folded in
    assert units.incoming.shape == (4, 3 * 3)
    np.testing.assert_allclose(units.incoming[1, 3:5], w[5].numpy() * scale)
    # the grouped conv reads slot j through its weight column j
    np.testing.assert_allclose(units.outgoing[2],
                               model.b.weight.detach().double()[:, 2].reshape(-1).numpy())
    assert unit_set(graph, b).outgoing.shape == (4, 3 * 6)


def test_dropping_slots_that_feed_nothing_preserves_outputs_and_keeps_the_groups():
    model = _block()
    with torch.no_grad():
        model.b.weight[:, 1] = 0.0  # slot 1 of a (channels 1, 5, 9) reaches nothing
        model.c.weight[:, [3, 7, 11]] = 0.0  # slot 3 of b reaches nothing
    x = torch.randn(4, 2, 6, 6)
    ref = model(x)
    graph = build_graph(model, x)
    groups = {g.name: g for g in find_unit_groups(graph)}
    apply_selection(graph, groups["a"], Selection(np.array([0, 2, 3]), np.ones(3), np.ones(4)))
    apply_selection(graph, groups["b"], Selection(np.array([0, 1, 2]), np.ones(3), np.ones(4)))
    assert (model.a.out_channels, model.b.in_channels, model.b.out_channels) == (9, 9, 9)
    assert model.b.groups == 3 and model.c.in_channels == 9
    torch.testing.assert_close(model(x), ref, rtol=1e-5, atol=1e-5)


def test_merging_a_duplicate_slot_is_exact():
    """Neuron Merging of a slot whose channels repeat another slot's (rows and BatchNorm) moves
    its outgoing columns onto the copy: exact for ReLU units."""
    model = _block()
    with torch.no_grad():
        for t in range(3):  # slot 3 of a repeats slot 0 in every channel group
            model.a.weight[4 * t + 3] = model.a.weight[4 * t]
            model.a.bias[4 * t + 3] = model.a.bias[4 * t]
    x = torch.randn(4, 2, 6, 6)
    ref = model(x)
    graph = build_graph(model, x)
    g = next(g for g in find_unit_groups(graph) if g.name == "a")
    apply_selection(graph, g, Selection(np.arange(3), np.ones(3), np.ones(4)),
                    compensation="merge")
    assert model.b.in_channels == 9 and model.b.weight.shape[1] == 3
    torch.testing.assert_close(model(x), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", ["greedy", "coreset", "l1", "neuron-merging"])
def test_a_grouped_network_prunes_runs_and_reports_true_counts(method):
    model = _block()
    x = torch.randn(2, 2, 6, 6)
    assert torch.equal(Pruner(method, keep_ratio=1.0).fit_transform(model, x)(x), model(x))
    pruner = Pruner(method, params_removed=0.3)
    small = pruner.fit_transform(model, x)
    assert torch.isfinite(small(x)).all()
    assert small.b.groups == 3 and small.b.in_channels % 3 == small.b.out_channels % 3 == 0
    assert pruner.report_.params_after == count_params(small) < count_params(model)
    slots = {lr.name: lr for lr in pruner.report_.layers}
    assert small.a.out_channels == 3 * slots["a"].kept
    if method == "greedy":  # no moment model for slots: the record says so
        assert "slots" in slots["a"].info["moment_model"]


def test_moments_through_a_grouped_convolution_are_those_of_its_dense_equivalent():
    grouped = _block()
    dense = nn.Conv2d(12, 12, 3, padding=1)
    with torch.no_grad():
        dense.weight.zero_()
        for t in range(3):
            rows = slice(4 * t, 4 * t + 4)
            dense.weight[rows, rows] = grouped.b.weight[rows]
        dense.bias.copy_(grouped.b.bias)
    twin = _GroupedBlock(dense=dense).eval()
    twin.load_state_dict({k: v for k, v in grouped.state_dict().items() if not k.startswith("b.")},
                         strict=False)
    x = torch.randn(2, 2, 6, 6)
    torch.testing.assert_close(twin(x), grouped(x), rtol=1e-5, atol=1e-6)
    got = []
    for model in (grouped, twin):
        graph = build_graph(model, x)
        c = next(g for g in find_unit_groups(graph) if g.name == "c")
        h, why = MomentPropagator(graph, x, InputPrior(0.0, 1.0, 0.5)).unit_moments(c, 0)
        assert why == ""
        got.append(h)
    np.testing.assert_allclose(got[0].mean, got[1].mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got[0].cov, got[1].cov, rtol=1e-10, atol=1e-12)


def test_torch_pruning_peer_keeps_the_same_slots_count():
    model = _block()
    x = torch.randn(2, 2, 6, 6)
    structure = Pruner("l1", params_removed=0.3).fit(model, x)
    out = prune_with_torch_pruning(model, "tp-magnitude", structure.groups_,
                                   structure.keep_counts_, x)
    assert out.b.groups == 3 and count_params(out) == count_params(structure.transform(model))


def test_torchvision_regnet_prunes_every_grouped_block():
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.regnet_y_400mf(num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    with pytest.warns(coreprune.CorepruneWarning, match="residual"):
        small = coreprune.prune(model, "l1", params_removed=0.3, example_inputs=x[:1])
    assert torch.isfinite(small(x)).all()
    report = coreprune.report_of(small)
    assert report.params_after == count_params(small) and report.params_removed >= 0.3
    grouped = [(m, s) for m, s in zip(model.modules(), small.modules(), strict=True)
               if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert grouped and all(s.groups == m.groups and s.out_channels < m.out_channels
                           for m, s in grouped)


class _LayerScaleBlock(nn.Module):
    """A ConvNeXt-style block on a stem: 1x1 convs ``fc1 -> GELU -> fc2``, ``fc2``'s output
    multiplied by a per-channel layer scale (a parameter) and added to the stem's output."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 1)
        self.fc1 = nn.Conv2d(4, 12, 1)
        self.fc2 = nn.Conv2d(12, 4, 1)
        self.gamma = nn.Parameter(torch.linspace(0.5, 1.5, 4))
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stem(x)
        h = s + self.fc2(nn.functional.gelu(self.fc1(s))) * self.gamma.reshape(1, -1, 1, 1)
        return self.head(h.mean((2, 3)))


def test_a_layer_scale_is_no_gate():
    """A product with a parameter (a layer scale) leaves the residual stream coupled (skipped)
    and the FFN units foldable; timm's ConvNeXt raised on its LayerNorm2d before."""
    torch.manual_seed(0)
    model, x = _LayerScaleBlock().eval(), torch.randn(2, 2, 5, 5)
    skipped: dict[str, str] = {}
    groups = find_unit_groups(build_graph(model, x), skipped=skipped)
    assert [(g.name, g.gates, g.foldable) for g in groups] == [("fc1", [], True)]
    assert set(skipped) == {"stem", "fc2"}
    assert torch.equal(Pruner("greedy", keep_ratio=1.0).fit_transform(model, x)(x), model(x))
    pruner = Pruner("greedy", keep_ratio=0.5)
    small = pruner.fit_transform(model, x)
    assert small.fc1.out_channels == small.fc2.in_channels == 6
    assert pruner.report_.params_after == count_params(small)
    assert pruner.report_.layers[0].info["compensation"] == "reconstruct"


class _InputResidual(nn.Module):
    """``head(c(x + relu(a(x))))``: ``a``'s channels are added to the model input."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.c, self.head = nn.Linear(6, 6), nn.Linear(6, 10), nn.Linear(10, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.c(x + torch.relu(self.a(x)))))


def test_channels_added_to_the_model_input_stay_whole():
    """Before, ``a`` was taken as prunable and the pruned model failed after surgery."""
    torch.manual_seed(0)
    model, x = _InputResidual().eval(), torch.randn(4, 6)
    skipped: dict[str, str] = {}
    groups = find_unit_groups(build_graph(model, x), skipped=skipped)
    assert [g.name for g in groups] == ["c"] and "model input" in skipped["a"]
    with pytest.warns(coreprune.CorepruneWarning, match="model input"):
        small = coreprune.prune(model, keep_ratio=0.5, example_inputs=x)
    assert (small.a.out_features, small.c.out_features) == (6, 5)
    assert small(x).shape == (4, 2)


class _Adds(nn.Module):
    """``a``: added to its own activation; ``b``: plus a bias parameter; ``c`` and ``d``: added
    to each other (a residual addition); all read by ``head``."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c, self.d = (nn.Linear(4, 4) for _ in range(4))
        self.shift = nn.Parameter(torch.ones(4))
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        ya = self.a(x)
        h = torch.relu(ya) + ya
        h = self.b(h) + self.shift
        return self.head(self.c(h) + self.d(h))


def test_residual_additions_are_found_before_the_group_is_built():
    """The pre-check that skips coupled channels before Torch-Pruning builds their group (which
    blew up on torchvision's Swin) agrees with the groups: a sum of one layer's own outputs or
    with a parameter is no coupling, a sum of two layers' outputs is."""
    from coreprune.pruning.groups import added_to_another_branch

    model, x = _Adds().eval(), torch.randn(3, 4)
    graph = build_graph(model, x)
    assert [added_to_another_branch(graph, m) for m in (model.a, model.b, model.c, model.d)] \
        == [False, False, True, True]
    skipped: dict[str, str] = {}
    ignored = (model.b,)  # (a bare parameter in its group is unsupported; a feeds b: left too)
    assert find_unit_groups(graph, ignored_layers=ignored, skipped=skipped) == []
    assert set(skipped) == {"c", "d"} and "residual" in skipped["c"]
    coupled = find_unit_groups(graph, prune_coupled=True, ignored_layers=ignored)
    assert [(g.name, g.producers) for g in coupled] == [("c", ["c", "d"])]


def test_channel_search_is_deeper_while_tracing_and_restored_after():
    """Torch-Pruning's channel inference gives up after 500 nodes (torchvision's Swin-S/B then
    failed to trace); coreprune raises the limit while it traces, and puts it back."""
    from torch_pruning.dependency import constants, index_mapping

    from coreprune.pruning.groups import CHANNEL_SEARCH_STEPS, deeper_channel_search

    before = constants.MAX_RECURSION_DEPTH
    mapping = index_mapping.update_reshape_index_mapping
    with pytest.raises(RuntimeError), deeper_channel_search():
        assert constants.MAX_RECURSION_DEPTH == max(before, CHANNEL_SEARCH_STEPS)
        assert index_mapping.update_reshape_index_mapping is not mapping
        raise RuntimeError
    assert constants.MAX_RECURSION_DEPTH == before
    assert index_mapping.update_reshape_index_mapping is mapping


def test_channel_shuffle_leaves_its_channels_whole_and_prunes_the_block_interiors():
    """torchvision's ShuffleNet-V2: Torch-Pruning cannot map the channel shuffle's reshape (it
    divides by zero); the channels that pass through it stay whole and named, the channels
    inside each branch (1x1 conv, depthwise conv, 1x1 conv) are cut with no permutation, and
    the default (greedy + reconstruct) runs on it."""
    import torchvision

    from coreprune.pruning.groups import opaque_reshapes

    torch.manual_seed(0)
    model = torchvision.models.shufflenet_v2_x0_5(num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64)
    assert opaque_reshapes(build_graph(model, x[:1]))
    with pytest.warns(coreprune.CorepruneWarning, match="channel shuffle"):
        same = coreprune.prune(model, "l1", keep_ratio=1.0, example_inputs=x[:1])
    torch.testing.assert_close(same(x), model(x))
    with pytest.warns(coreprune.CorepruneWarning, match="channel shuffle"):
        small = coreprune.prune(model, "l1", params_removed=0.2, example_inputs=x[:1])
    report = coreprune.report_of(small)
    assert report.params_after == count_params(small) and report.params_removed >= 0.2
    assert torch.isfinite(small(x)).all() and small(x).shape == (2, 10)
    assert "stage2.0.branch2.5" in report.unpruned  # feeds the concatenation and shuffle
    kept = torch.as_tensor(next(r for r in report.layers
                                if r.name == "stage3.1.branch2.0").indices)
    before, after = model.stage3[1].branch2, small.stage3[1].branch2
    assert 0 < kept.numel() < before[0].out_channels
    torch.testing.assert_close(after[0].weight, before[0].weight[kept])
    torch.testing.assert_close(after[3].weight, before[3].weight[kept])
    torch.testing.assert_close(after[5].weight, before[5].weight[:, kept])
    with pytest.warns(coreprune.CorepruneWarning, match="channel shuffle"):  # the default
        default = Pruner(params_removed=0.2, synthetic_inputs=4, synthetic_steps=2)
        small = default.fit_transform(model, x[:1])
    assert torch.isfinite(small(x)).all() and default.report_.params_after == count_params(small)
    assert "reconstruct" in [lr.info["compensation"] for lr in default.report_.layers]
