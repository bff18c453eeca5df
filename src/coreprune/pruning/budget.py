"""From a global target (fraction of parameters or FLOPs removed) to units kept per group.

The cost of every ``Conv``/``Linear``/``BatchNorm`` is bilinear in the fractions of its output
and input channels kept, so the cost of any assignment of keep counts is exact and cheap; a
bisection finds the uniform keep-ratio (or the scale of keep counts proportional to each layer's
total sensitivity) that meets the target.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from ..errors import BudgetError
from .groups import NORMS, PRODUCERS, LayerShapes, UnitGroup, _full_group, layer_shapes

__all__ = ["CostModel", "build_cost_model", "keep_floors", "uniform_keep_counts",
           "proportional_keep_counts", "error_budget_keep_counts", "keep_counts_from_ratios"]


@dataclass
class _Term:
    weight: float  # cost of the weight tensor at full size
    bias: float  # cost proportional to the output fraction only
    out_group: int | None
    in_group: int | None


@dataclass
class CostModel:
    """Parameter and FLOP counts of a model as a function of the units kept per group."""

    params_terms: list[_Term]
    flops_terms: list[_Term]
    fixed_params: float
    n_units: list[int]

    def _cost(self, terms: list[_Term], keep: list[int]) -> float:
        f = [k / n for k, n in zip(keep, self.n_units, strict=True)]
        total = 0.0
        for t in terms:
            fo = 1.0 if t.out_group is None else f[t.out_group]
            fi = 1.0 if t.in_group is None else f[t.in_group]
            total += t.weight * fo * fi + t.bias * fo
        return total

    def params(self, keep: list[int]) -> float:
        """Number of parameters once group g keeps ``keep[g]`` units."""
        return self._cost(self.params_terms, keep) + self.fixed_params

    def flops(self, keep: list[int]) -> float:
        """Multiply-accumulates of the Conv/Linear layers once group g keeps ``keep[g]`` units."""
        return self._cost(self.flops_terms, keep)


def build_cost_model(graph: tp.DependencyGraph, groups: list[UnitGroup],
                     example_inputs: torch.Tensor, shapes: LayerShapes | None = None
                     ) -> CostModel:
    """Cost model of ``graph``'s model for ``groups`` (others stay at full size); ``shapes``:
    the model's :func:`layer_shapes` on ``example_inputs``, if already known."""
    model = graph.model
    out_of: dict[int, int] = {}
    in_of: dict[int, int] = {}
    for gi, g in enumerate(groups):
        group, _ = _full_group(graph, g.root)
        for item in group.items:
            m = item.dep.target.module
            if graph.is_out_channel_pruning_fn(item.dep.handler):
                out_of[id(m)] = gi
            elif graph.is_in_channel_pruning_fn(item.dep.handler):
                in_of[id(m)] = gi
    shapes = layer_shapes(model, example_inputs) if shapes is None else shapes
    positions: dict[int, float] = {}
    for m in model.modules():
        out = shapes.outputs.get(id(m))
        if isinstance(m, PRODUCERS) and out is not None:
            channels = out[-1] if isinstance(m, nn.Linear) else out[1]
            positions[id(m)] = math.prod(out) / out[0] / channels
    p_terms, f_terms = [], []
    counted = 0
    for m in model.modules():
        if isinstance(m, PRODUCERS + NORMS):
            w = float(m.weight.numel()) if m.weight is not None else 0.0
            b = float(m.bias.numel()) if m.bias is not None else 0.0
            counted += int(w + b)
            fin = None if isinstance(m, NORMS) else in_of.get(id(m))
            p_terms.append(_Term(w, b, out_of.get(id(m)), fin))
            if isinstance(m, PRODUCERS) and id(m) in positions:
                f_terms.append(_Term(w * positions[id(m)], 0.0, out_of.get(id(m)), fin))
    fixed = sum(p.numel() for p in model.parameters()) - counted
    return CostModel(p_terms, f_terms, float(fixed), [g.n_units for g in groups])


def keep_floors(n_units: list[int], min_keep_fraction: float = 0.0) -> list[int]:
    """The fewest units each group may keep: ``max(1, ceil(min_keep_fraction * n_g))``."""
    return [max(1, math.ceil(min_keep_fraction * n - 1e-9)) for n in n_units]


def uniform_keep_counts(cost: CostModel, target: float, metric: str = "params",
                        min_keep_fraction: float = 0.0) -> list[int]:
    """Keep counts ``round(rho * n_g)`` (at least :func:`keep_floors`) for the largest uniform
    keep-ratio rho that removes at least ``target`` of the model's ``metric`` ("params" or
    "flops").

    Raises:
        BudgetError: the target cannot be met even keeping the floor of every group.
    """
    return proportional_keep_counts(cost, target, [float(n) for n in cost.n_units], metric,
                                    min_keep_fraction)


def proportional_keep_counts(cost: CostModel, target: float, shares: list[float],
                             metric: str = "params", min_keep_fraction: float = 0.0) -> list[int]:
    """Keep counts ``min(n_g, max(floor_g, round(c * shares[g])))`` (``floor_g``:
    :func:`keep_floors`) for the largest c that removes at least ``target`` of ``metric``.

    ``shares = n_g`` is the uniform rule; ``shares = t_g``, each layer's total sensitivity, keeps
    coresets of sizes proportional to t_g, the size docs/method.md §1 needs for the same eps in
    every layer (``N = O(t / eps^2 ...)``).

    Raises:
        BudgetError: the target cannot be met even keeping the floor of every group.
    """
    shares = [max(float(s), 1e-12) for s in shares]
    floors = keep_floors(cost.n_units, min_keep_fraction)

    def keep_at(c: float) -> list[int]:
        return [int(min(n, max(f, round(c * s)))) for n, s, f in zip(cost.n_units, shares,
                                                                     floors, strict=True)]

    hi = max(n / s for n, s in zip(cost.n_units, shares, strict=True))
    return _most_kept(cost, target, metric, keep_at, 0.0, hi, min_keep_fraction)


def _most_kept(cost: CostModel, target: float, metric: str,
               keep_at: Callable[[float], list[int]], lo: float, hi: float,
               min_keep_fraction: float = 0.0) -> list[int]:
    """``keep_at(t)`` for the largest ``t`` in ``[lo, hi]`` whose keep counts remove at least
    ``target`` of ``metric`` (``keep_at`` keeps more units as ``t`` grows; 60 bisection steps).

    Raises:
        BudgetError: even ``keep_at(lo)`` removes less than ``target``.
    """
    fn = cost.params if metric == "params" else cost.flops
    full = fn(cost.n_units)

    def removed(t: float) -> float:
        return 1.0 - fn(keep_at(t)) / full

    if removed(lo) < target:
        floor, lower = "one unit", ""
        if min_keep_fraction > 0:
            floor = f"{min_keep_fraction:.0%} of the units (min_keep_fraction)"
            lower = "; lower min_keep_fraction (--min-keep-fraction)"
        raise BudgetError(
            f"removing {target:.1%} of {metric} is impossible: keeping {floor} in every "
            f"prunable layer removes only {removed(lo):.1%} (the rest is in layers coreprune "
            f"does not prune{lower})")
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if removed(mid) >= target:
            lo = mid
        else:
            hi = mid
    return keep_at(lo)


def error_budget_keep_counts(cost: CostModel, target: float, curves: list[np.ndarray],
                             metric: str = "params", min_keep_fraction: float = 0.0,
                             min_keep: list[int] | None = None) -> list[int]:
    """Keep counts that give every group the same predicted error: ``k_g = min{k >= floor_g :
    curves[g][k] <= eps}`` (``floor_g``: :func:`keep_floors`, raised to ``min_keep[g]`` where
    given) for the smallest ``eps`` that removes at least ``target`` of ``metric``.

    ``curves[g]`` ((n_g + 1,), non-increasing, ``curves[g][n_g] = 0``) is group g's relative
    predicted error with its first k units kept, e.g. the greedy selection's error curve divided
    by its first value (:func:`coreprune.reconstruction.greedy_selection`).

    Raises:
        BudgetError: the target cannot be met even keeping the floor of every group.
    """
    curves = [np.minimum.accumulate(np.asarray(c, dtype=np.float64)) for c in curves]
    floors = keep_floors(cost.n_units, min_keep_fraction)
    if min_keep is not None:
        floors = [max(f, int(m)) for f, m in zip(floors, min_keep, strict=True)]

    def keep_at(minus_eps: float) -> list[int]:  # more units kept as eps shrinks
        return [int(max(f, np.argmax(c <= -minus_eps))) for c, f in zip(curves, floors,
                                                                         strict=True)]

    lo = -(max(float(c[1]) for c in curves) + 1.0)  # eps above every curve: the floors
    return _most_kept(cost, target, metric, keep_at, lo, 0.0, min_keep_fraction)


def keep_counts_from_ratios(groups: list[UnitGroup], ratios: dict[str, float] | float) -> list[int]:
    """Keep counts from a keep-ratio for every group, or a ``{layer name: keep ratio}`` mapping
    (layers not named are kept whole)."""
    out = []
    for g in groups:
        r = ratios if isinstance(ratios, float) else ratios.get(g.name, 1.0)
        k = int(round(r * g.n_units))
        if k < 1:
            raise BudgetError(f"keep ratio {r} removes every unit of layer {g.name!r} "
                              f"({g.n_units} units)")
        out.append(min(k, g.n_units))
    return out

