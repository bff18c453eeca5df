import math

import numpy as np
import pytest
import torch
from torch import nn

from coreprune import BudgetError, InvalidArgumentError
from coreprune.metrics import count_params
from coreprune.models import build_model
from coreprune.pruning import Pruner
from coreprune.pruning.budget import (
    build_cost_model,
    error_budget_keep_counts,
    keep_floors,
    proportional_keep_counts,
    uniform_keep_counts,
)
from coreprune.pruning.groups import build_graph, find_unit_groups
from coreprune.pruning.pruner import ERROR_ALLOCATION_MIN_SHARE


def cost_of(model, x):
    graph = build_graph(model, x)
    groups = find_unit_groups(graph)
    return build_cost_model(graph, groups, x), groups


def test_proportional_rule_meets_target_and_follows_shares():
    model = nn.Sequential(nn.Linear(20, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(),
                          nn.Linear(40, 5))
    cost, _ = cost_of(model, torch.randn(2, 20))
    full = cost.params(cost.n_units)
    keep = proportional_keep_counts(cost, 0.6, [1.0, 3.0])
    assert 1 - cost.params(keep) / full >= 0.6
    assert keep[1] > keep[0]  # three times the share, more units
    assert uniform_keep_counts(cost, 0.6) == proportional_keep_counts(cost, 0.6, [40.0, 40.0])
    with pytest.raises(BudgetError, match="impossible"):
        proportional_keep_counts(cost, 0.999, [1.0, 1.0])


@pytest.mark.parametrize("target", [0.3, 0.6])
def test_sensitivity_allocation_on_a_cnn(target):
    model = build_model("resnet20", in_channels=1)
    x = torch.randn(2, 1, 32, 32)
    pruner = Pruner("l1", params_removed=target, allocation="sensitivity")
    pruned = pruner.fit_transform(model, x)
    assert pruner.report_.params_removed >= target
    assert pruner.report_.params_after == count_params(pruned)
    assert pruner.report_.target["allocation"] == "sensitivity"
    assert pruned(x).shape == (2, 10)


def test_unknown_allocation_is_named():
    with pytest.raises(InvalidArgumentError, match="allocation"):
        Pruner("l1", params_removed=0.5, allocation="greedy")


def test_sensitivity_allocation_with_the_coreset_peels_each_layer_once(monkeypatch):
    import coreprune.importance as importance

    calls = []
    real = importance.peel_sensitivities
    monkeypatch.setattr(importance, "peel_sensitivities",
                        lambda q, **kw: calls.append(q.shape) or real(q, **kw))
    model = nn.Sequential(nn.Linear(20, 40), nn.ReLU(), nn.Linear(40, 30), nn.ReLU(),
                          nn.Linear(30, 5))
    x = torch.randn(2, 20)
    memo = Pruner("coreset", params_removed=0.6, allocation="sensitivity").fit(model, x)
    assert len(calls) == 2  # two hidden layers, each peeled once for allocation and selection
    calls.clear()
    fresh = Pruner(importance.CoresetImportance(), params_removed=0.6, allocation="sensitivity")
    fresh.fit(model, x)
    assert memo.keep_counts_ == fresh.keep_counts_
    for a, b in zip(memo.selections_, fresh.selections_, strict=True):
        assert (a.indices == b.indices).all() and (a.scores == b.scores).all()


def test_keep_floors_hold_under_every_allocation_and_name_the_option_when_impossible():
    assert keep_floors([40, 7, 1], 0.1) == [4, 1, 1] and keep_floors([40, 7], 0.0) == [1, 1]
    assert keep_floors([30], 0.1) == [3]  # 0.1 * 30 is 3, not 4
    model = nn.Sequential(nn.Linear(20, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(),
                          nn.Linear(40, 5))
    cost, _ = cost_of(model, torch.randn(2, 20))
    full = cost.params(cost.n_units)
    # shares 1 : 10 would cut the first layer to 2 units; the floor keeps 4 of its 40
    assert proportional_keep_counts(cost, 0.9, [1.0, 10.0]) == [2, 25]
    keep = proportional_keep_counts(cost, 0.9, [1.0, 10.0], min_keep_fraction=0.1)
    assert keep == [4, 17] and 1 - cost.params(keep) / full >= 0.9
    curves = [np.linspace(1, 0, 41) ** 8, np.linspace(1, 0, 41)]  # the first layer is cheap
    keep = error_budget_keep_counts(cost, 0.5, curves, min_keep_fraction=0.25)
    assert keep[0] >= 10 and 1 - cost.params(keep) / full >= 0.5
    with pytest.raises(BudgetError, match="25% of the units .*lower min_keep_fraction"):
        uniform_keep_counts(cost, 0.9, min_keep_fraction=0.25)
    uniform_keep_counts(cost, 0.9)  # one unit per layer meets it


def test_pruner_floors_global_targets_only_and_checks_the_option():
    model = nn.Sequential(nn.Linear(20, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(),
                          nn.Linear(40, 5))
    x = torch.randn(2, 20)
    with pytest.raises(BudgetError, match="min_keep_fraction"):  # the default floor: 4 of 40
        Pruner("l1", params_removed=0.97).fit(model, x)
    p = Pruner("l1", params_removed=0.97, min_keep_fraction=0.0).fit(model, x)
    assert max(p.keep_counts_) < 4
    p = Pruner("l1", keep_ratio=0.05).fit(model, x)  # asked for: no floor
    assert p.keep_counts_ == [2, 2]
    with pytest.raises(InvalidArgumentError, match="min_keep_fraction must lie in"):
        Pruner("l1", params_removed=0.5, min_keep_fraction=1.5)


def test_equal_error_allocation_keeps_a_share_of_the_uniform_widths():
    """A layer whose predicted error vanishes after a few units is not cut below ``min_keep``
    (the error allocation's half of the uniform width): the target is still met, by the other
    layers."""
    model = nn.Sequential(nn.Linear(20, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(),
                          nn.Linear(40, 5))
    cost, _ = cost_of(model, torch.randn(2, 20))
    full = cost.params(cost.n_units)
    curves = [np.r_[1.0, np.zeros(40)], np.linspace(1, 0, 41)]  # the first: one unit explains all
    free = error_budget_keep_counts(cost, 0.3, curves)
    assert free[0] == 1
    floor = [math.ceil(0.5 * k) for k in uniform_keep_counts(cost, 0.3)]
    kept = error_budget_keep_counts(cost, 0.3, curves, min_keep=floor)
    assert all(k >= f for k, f in zip(kept, floor, strict=True)) and kept[0] == floor[0] > 1
    assert 1 - cost.params(kept) / full >= 0.3
    assert error_budget_keep_counts(cost, 0.3, curves, min_keep=[0, 0]) == free
    x = torch.randn(2, 20)
    pruner = Pruner("greedy", params_removed=0.3, allocation="error").fit(model, x)
    uniform = Pruner("greedy", params_removed=0.3).fit(model, x).keep_counts_
    assert all(k >= math.ceil(ERROR_ALLOCATION_MIN_SHARE * u)
               for k, u in zip(pruner.keep_counts_, uniform, strict=True))
