import pytest
import torch
from torch import nn

from coreprune import (
    BudgetError,
    InvalidArgumentError,
    InvalidWeightsError,
    UnsupportedModelError,
    prune,
)
from coreprune.pruning import Pruner


def mlp():
    return nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 3))


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5, float("nan"), "x"])
def test_ratio_outside_range(ratio):
    with pytest.raises(InvalidArgumentError, match="params_removed"):
        prune(mlp(), params_removed=ratio)


@pytest.mark.parametrize("ratio", [0.0, 1.1])
def test_keep_ratio_outside_range(ratio):
    with pytest.raises(InvalidArgumentError, match="keep_ratio"):
        prune(mlp(), keep_ratio=ratio)


def test_nan_weight_names_parameter():
    m = mlp()
    with torch.no_grad():
        m[2].weight[0, 0] = float("nan")
    with pytest.raises(InvalidWeightsError, match="2.weight"):
        prune(m, params_removed=0.5)


def test_non_float_weights():
    m = mlp().to(torch.float64)
    prune(m, params_removed=0.3)  # float64 is fine
    m = mlp()
    m[0].weight = nn.Parameter(torch.ones(10, 6, dtype=torch.int32), requires_grad=False)
    with pytest.raises(InvalidWeightsError, match="non-float"):
        prune(m, params_removed=0.3)


def test_unknown_method_and_option():
    with pytest.raises(InvalidArgumentError, match="unknown method"):
        prune(mlp(), method="nope")
    with pytest.raises(InvalidArgumentError, match="bad options"):
        prune(mlp(), method="l1", projection=3)
    with pytest.raises(InvalidArgumentError, match="scaling"):
        prune(mlp(), method="coreset", scaling="sideways")


def test_budget_that_empties_a_layer():
    with pytest.raises(BudgetError, match="0"):
        prune(mlp(), layer_ratios={"0": 0.01})
    with pytest.raises(BudgetError, match="impossible"):
        prune(mlp(), params_removed=0.99)


def test_unsupported_layer_named():
    m = nn.Sequential(nn.Linear(6, 10), nn.LayerNorm(10), nn.ReLU(), nn.Linear(10, 8), nn.ReLU(),
                      nn.Linear(8, 3))
    with pytest.raises(UnsupportedModelError, match="'1'.*LayerNorm"):
        prune(m, params_removed=0.3)
    pruned = prune(m, keep_ratio=0.5, ignored_layers=(m[0],))
    assert pruned[0].out_features == 10 and pruned[3].out_features == 4


def test_conv_model_needs_example_inputs():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3))
    with pytest.raises(InvalidArgumentError, match="example_inputs"):
        prune(m, params_removed=0.3)


def test_nothing_to_prune():
    with pytest.raises(UnsupportedModelError, match="no prunable layer"):
        prune(nn.Sequential(nn.Linear(3, 2)), params_removed=0.3)


def test_exactly_one_target():
    with pytest.raises(InvalidArgumentError, match="exactly one"):
        Pruner("l1", params_removed=0.3, keep_ratio=0.5)


def test_device_mismatch_is_named():
    from coreprune.errors import DeviceMismatchError

    with pytest.raises(DeviceMismatchError, match="0.weight.*cuda"):
        Pruner("l1", params_removed=0.3, device="cuda").fit(mlp())
    with pytest.raises(DeviceMismatchError, match="example inputs are on meta"):
        prune(mlp(), params_removed=0.3, example_inputs=torch.randn(2, 6, device="meta"))
    m = mlp()
    m[2].to("meta")
    with pytest.raises(DeviceMismatchError, match="several devices.*2.weight"):
        prune(m, params_removed=0.3)
    prune(mlp(), params_removed=0.3, device="cpu")  # the right device is fine


def test_all_zero_layer_prunes_without_nan():
    m = mlp()
    with torch.no_grad():
        m[0].weight.zero_()
        m[0].bias.zero_()
    for method in ("coreset", "coreset-theory", "mussay", "l1"):
        out = prune(m, method=method, keep_ratio=0.5)
        assert out[0].out_features == 5
        assert all(torch.isfinite(p).all() for p in out.parameters())


def test_errors_from_inside_dependencies_become_one_coreprune_error(monkeypatch):
    """An exception raised inside Torch-Pruning (here injected into its tracing, as
    ShuffleNet-V2's channel shuffle once raised it) ends in one UnsupportedModelError line
    naming the model and the stage, the original error kept as the cause."""
    import torch_pruning as tp

    def failing_trace(self, *args, **kwargs):
        return 1 // 0

    monkeypatch.setattr(tp.DependencyGraph, "build_dependency", failing_trace)
    with pytest.raises(UnsupportedModelError, match=r"Sequential: tracing the model failed "
                       r"\(ZeroDivisionError: .*\); coreprune cannot prune this model as it is: "
                       r"pass the modules involved in ignored_layers") as info:
        Pruner("coreset", params_removed=0.3).fit(mlp(), torch.randn(2, 6))
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert "\n" not in str(info.value)


def test_finite_check_holds_for_sums_that_overflow_and_catches_inf():
    m = mlp()
    with torch.no_grad():
        m[0].weight.fill_(3e38)  # finite entries whose float32 sum overflows
    prune(m, params_removed=0.5)
    with torch.no_grad():
        m[0].weight[1, 1] = float("-inf")
    with pytest.raises(InvalidWeightsError, match="0.weight"):
        prune(m, params_removed=0.5)
