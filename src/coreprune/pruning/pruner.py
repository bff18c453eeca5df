"""The pruner: choose units with an importance method, fold, and cut (scikit-learn style).

``Pruner(...).fit(model)`` computes every group's selection from the weights alone;
``.transform(model)`` returns a pruned copy; ``prune(...)`` does both in one call.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import InvalidArgumentError, InvalidWeightsError, UnsupportedModelError
from ..importance import CoresetImportance, ImportanceMethod, Selection, get_method
from ..metrics import count_flops, count_params
from ..validation import check_device
from .budget import (
    build_cost_model,
    keep_counts_from_ratios,
    proportional_keep_counts,
    uniform_keep_counts,
)
from .groups import PRODUCERS, UnitGroup, apply_selection, build_graph, find_unit_groups, unit_set

ALLOCATIONS = ("uniform", "sensitivity")

__all__ = ["Pruner", "PruneReport", "LayerReport", "prune", "check_model", "default_example_inputs"]


@dataclass
class LayerReport:
    """What happened to one group.

    ``indices`` are the kept units (in the original numbering) and ``weights`` the factor
    folded into each one's outgoing weights (all 1.0 when nothing was folded); together they
    let :func:`coreprune.verify.verify_layers` rebuild the coreset from the original model.
    """

    name: str
    n_units: int
    kept: int
    folded: bool
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)
    indices: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)


@dataclass
class PruneReport:
    """Everything needed to reproduce and judge one pruning run."""

    method: dict[str, Any]
    seed: int
    target: dict[str, Any]
    params_before: int
    params_after: int
    flops_before: int
    flops_after: int
    seconds: float
    layers: list[LayerReport]

    @property
    def params_removed(self) -> float:
        return 1.0 - self.params_after / self.params_before

    @property
    def flops_removed(self) -> float:
        return 1.0 - self.flops_after / self.flops_before if self.flops_before else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["params_removed"] = self.params_removed
        d["flops_removed"] = self.flops_removed
        return d


def check_model(model: Any, device: str | torch.device | None = None,
                inputs: torch.Tensor | None = None) -> nn.Module:
    """Check ``model`` is an ``nn.Module`` whose parameters are finite floating-point tensors,
    all on one device (``device``, when given), the device of ``inputs`` (when given)."""
    if not isinstance(model, nn.Module):
        raise InvalidArgumentError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_device(model, device, inputs)
    found = False
    for name, p in model.named_parameters():
        found = True
        if not p.is_floating_point():
            raise InvalidWeightsError(f"parameter {name!r} has non-float dtype {p.dtype}")
        if p.numel() == 0:
            raise InvalidWeightsError(f"parameter {name!r} is empty (shape {tuple(p.shape)})")
        if not torch.isfinite(p).all():
            raise InvalidWeightsError(f"parameter {name!r} holds NaN or Inf values")
    if not found:
        raise InvalidWeightsError("model has no parameters to prune")
    return model


def default_example_inputs(model: nn.Module) -> torch.Tensor:
    """A batch of two inputs for tracing: ``model.example_input_shape`` if the model declares
    it, else ``(2, in_features)`` when the first layer is ``Linear``."""
    param = next(model.parameters())
    shape = getattr(model, "example_input_shape", None)
    if shape is None:
        first = next((m for m in model.modules() if isinstance(m, PRODUCERS)), None)
        if isinstance(first, nn.Linear):
            shape = (first.in_features,)
        else:
            raise InvalidArgumentError(
                "example_inputs is required for models whose first layer is not Linear "
                "(e.g. example_inputs=torch.randn(1, 3, 32, 32))")
    gen = torch.Generator().manual_seed(0)
    return torch.randn((2, *shape), generator=gen).to(device=param.device, dtype=param.dtype)


class Pruner:
    """Structured pruning of a model's units by an importance method.

    Args:
        method: a registered method name (see :func:`coreprune.methods`) or an instance.
        params_removed: fraction of all parameters to remove, in [0, 1) (0: identity).
        flops_removed: fraction of FLOPs to remove, in [0, 1), instead of ``params_removed``.
        keep_ratio: fraction of units every group keeps, in (0, 1], instead of a global target.
        layer_ratios: ``{layer name: keep ratio}``; layers not named are kept whole.
        seed: seed of every random choice (sampling, random baseline).
        fold: fold coreset weights into consumers (METHOD §3(e)); only matters for methods that
            reweight.
        prune_coupled: also prune channels coupled across residual additions.
        compensate: for units followed by BatchNorm and ReLU, correct the consumer's bias (or
            the running mean and variance of the BatchNorm after it) for the removed units'
            expected output, estimated from the BatchNorm's own parameters; no data read (see
            :func:`coreprune.pruning.groups.moment_compensation`). ``None`` (default): the
            method's choice (:meth:`ImportanceMethod.compensates_by_default`: on for the
            top-k coreset methods, off for the baselines and for sampling methods).
        ignored_layers: modules whose groups are left alone.
        progress: show a progress bar over groups.
        device: the device the model must be on (``None``: any single device).
        allocation: how a global target is split over layers: ``"uniform"`` (every group keeps
            the same fraction) or ``"sensitivity"`` (keep counts proportional to each group's
            total sensitivity under the default coreset, METHOD §2: the same eps per layer).
        **options: passed to the method (e.g. ``projection=16``, ``selection="sample"``).

    After :meth:`fit`: ``groups_`` (the prunable groups), ``selections_`` (one per group) and
    ``keep_counts_``; after :meth:`transform`: ``report_``.
    """

    def __init__(self, method: str | ImportanceMethod = "coreset",
                 params_removed: float | None = None, flops_removed: float | None = None,
                 keep_ratio: float | None = None, layer_ratios: dict[str, float] | None = None,
                 seed: int = 0, fold: bool = True, prune_coupled: bool = False,
                 ignored_layers: tuple[nn.Module, ...] = (), progress: bool = False,
                 device: str | torch.device | None = None, allocation: str = "uniform",
                 compensate: bool | None = None, **options: Any) -> None:
        given = {k: v for k, v in {"params_removed": params_removed, "flops_removed": flops_removed,
                                   "keep_ratio": keep_ratio, "layer_ratios": layer_ratios}.items()
                 if v is not None}
        if len(given) != 1:
            raise InvalidArgumentError(
                "give exactly one of params_removed, flops_removed, keep_ratio, layer_ratios "
                f"(got {sorted(given) or 'none'})")
        (self.target_kind, self.target_value), = given.items()
        if self.target_kind in ("params_removed", "flops_removed"):
            v = self.target_value
            if not isinstance(v, int | float) or not 0.0 <= float(v) < 1.0:
                raise InvalidArgumentError(f"{self.target_kind} must lie in [0, 1), got {v!r}")
        elif self.target_kind == "keep_ratio":
            v = self.target_value
            if not isinstance(v, int | float) or not 0.0 < float(v) <= 1.0:
                raise InvalidArgumentError(f"keep_ratio must lie in (0, 1], got {v!r}")
        else:
            for name, v in layer_ratios.items():
                if not isinstance(v, int | float) or not 0.0 < float(v) <= 1.0:
                    raise InvalidArgumentError(
                        f"keep ratio of layer {name!r} must lie in (0, 1], got {v!r}")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise InvalidArgumentError(f"seed must be an integer, got {seed!r}")
        self.method = get_method(method, **options)
        self.seed, self.fold, self.prune_coupled = int(seed), fold, prune_coupled
        self.ignored_layers, self.progress = tuple(ignored_layers), progress
        self.device = device
        if allocation not in ALLOCATIONS:
            raise InvalidArgumentError(f"allocation must be one of {ALLOCATIONS}, "
                                       f"got {allocation!r}")
        self.allocation = allocation
        if compensate is not None and not isinstance(compensate, bool | np.bool_):
            raise InvalidArgumentError(f"compensate must be True, False or None, got "
                                       f"{compensate!r}")
        self.compensate = (self.method.compensates_by_default() if compensate is None
                           else bool(compensate))

    # -- fitting -------------------------------------------------------------------------
    def fit(self, model: nn.Module, example_inputs: torch.Tensor | None = None) -> Pruner:
        """Choose the units of every group of ``model`` (which is not modified)."""
        check_model(model, self.device, example_inputs)
        x = default_example_inputs(model) if example_inputs is None else example_inputs
        work = copy.deepcopy(model)
        ignored = tuple(m2 for m1, m2 in zip(model.modules(), work.modules(), strict=True)
                        if any(m1 is m for m in self.ignored_layers))
        graph = build_graph(work, x)
        groups = find_unit_groups(graph, self.prune_coupled, ignored)
        if not groups:
            raise UnsupportedModelError(
                f"found no prunable layer in {type(model).__name__}: coreprune prunes the "
                "output units of Linear/Conv layers that feed another Linear/Conv layer")
        if self.target_kind == "layer_ratios":
            unknown = set(self.target_value) - {g.name for g in groups}
            if unknown:
                raise InvalidArgumentError(
                    f"layer_ratios names layers that are not prunable: {sorted(unknown)}; "
                    f"prunable: {[g.name for g in groups]}")
            keep = keep_counts_from_ratios(groups, self.target_value)
        elif self.target_kind == "keep_ratio":
            keep = keep_counts_from_ratios(groups, float(self.target_value))
        elif float(self.target_value) == 0.0:
            keep = [g.n_units for g in groups]
        else:
            cost = build_cost_model(graph, groups, x)
            metric = "params" if self.target_kind == "params_removed" else "flops"
            if self.allocation == "uniform":
                keep = uniform_keep_counts(cost, float(self.target_value), metric)
            else:
                sens = get_method("coreset")
                if isinstance(self.method, CoresetImportance) and \
                        self.method.config() == sens.config():
                    sens = self.method  # its memo then serves the selection below
                totals = [float(sens.scores(unit_set(graph, g)).sum()) for g in groups]
                keep = proportional_keep_counts(cost, float(self.target_value), totals, metric)
        selections, seconds = [], []
        bar = tqdm(list(zip(groups, keep, strict=True)), desc="coreprune", unit="layer",
                   disable=not self.progress)
        for gi, (g, k) in enumerate(bar):
            t0 = time.perf_counter()
            if k >= g.n_units:
                sel = Selection(np.arange(g.n_units), np.ones(g.n_units), np.ones(g.n_units),
                                {"identity": True})
            else:
                units = unit_set(graph, g)
                rng = np.random.default_rng([self.seed, gi])
                sel = self.method.select(units, k, rng)
            selections.append(sel)
            seconds.append(time.perf_counter() - t0)
        self.example_inputs_ = x
        self.groups_: list[UnitGroup] = groups
        self.keep_counts_ = keep
        self.selections_: list[Selection] = selections
        self.seconds_ = seconds
        return self

    # -- applying ------------------------------------------------------------------------
    def transform(self, model: nn.Module) -> nn.Module:
        """A pruned copy of ``model`` (the fitted model's architecture); ``model`` is untouched."""
        if not hasattr(self, "selections_"):
            raise InvalidArgumentError("call fit(model) before transform(model)")
        t0 = time.perf_counter()
        check_model(model, self.device)
        x = self.example_inputs_
        pruned = copy.deepcopy(model)
        graph = build_graph(pruned, x)
        named = dict(pruned.named_modules())
        layers = []
        for g, sel, sec in zip(self.groups_, self.selections_, self.seconds_, strict=True):
            if g.name not in named:
                raise InvalidArgumentError(f"model has no layer {g.name!r}: transform needs the "
                                           "architecture fit saw")
            g_here = UnitGroup(g.name, named[g.name], g.n_units, g.producers, g.consumers,
                               g.foldable, g.note)
            apply_selection(graph, g_here, sel, fold=self.fold, compensate=self.compensate)
            folded = bool(self.fold and g.foldable and not np.all(sel.weights == 1.0))
            info = {k: v for k, v in sel.info.items() if k != "identity"}
            applied = sel.weights if folded else np.ones(sel.indices.size)
            layers.append(LayerReport(g.name, g.n_units, int(sel.indices.size), folded, sec, info,
                                      [int(i) for i in sel.indices],
                                      [float(w) for w in applied]))
        self.report_ = PruneReport(
            method=self.method.config(), seed=self.seed,
            target={self.target_kind: self.target_value, "fold": self.fold,
                    "prune_coupled": self.prune_coupled, "allocation": self.allocation,
                    "compensate": self.compensate},
            params_before=count_params(model), params_after=count_params(pruned),
            flops_before=count_flops(model, x), flops_after=count_flops(pruned, x),
            seconds=sum(self.seconds_) + time.perf_counter() - t0, layers=layers)
        return pruned

    def fit_transform(self, model: nn.Module,
                      example_inputs: torch.Tensor | None = None) -> nn.Module:
        """``fit(model, example_inputs).transform(model)``."""
        return self.fit(model, example_inputs).transform(model)


def prune(model: nn.Module, method: str | ImportanceMethod = "coreset",
          params_removed: float | None = 0.9, seed: int = 0,
          example_inputs: torch.Tensor | None = None, **options: Any) -> nn.Module:
    """Return a pruned copy of ``model``; ``model`` itself is left untouched.

    Args:
        model: a trained ``nn.Module`` (MLP, CNN, ResNet, ...).
        method: registered importance method (``coreprune.methods()``), default ``"coreset"``.
        params_removed: fraction of parameters to remove, in [0, 1). Pass ``None`` with
            ``flops_removed=``, ``keep_ratio=`` or ``layer_ratios=`` in ``options`` instead.
        seed: seed of every random choice; the same seed gives the same pruned model.
        example_inputs: a batch for tracing; optional when the first layer is ``Linear``.
        **options: further :class:`Pruner` arguments and method options.

    Example:
        >>> import coreprune
        >>> small = coreprune.prune(model, method="coreset", params_removed=0.9, seed=0)
    """
    if any(k in options for k in ("flops_removed", "keep_ratio", "layer_ratios")):
        params_removed = None
    return Pruner(method, params_removed=params_removed, seed=seed, **options).fit_transform(
        model, example_inputs)
