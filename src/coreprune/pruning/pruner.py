"""The pruner: choose units with an importance method, fold, and cut (scikit-learn style).

``Pruner(...).fit(model)`` computes every group's selection from the weights alone;
``.transform(model)`` returns a pruned copy; ``prune(...)`` does both in one call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
import warnings
import weakref
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn
from tqdm.auto import tqdm

from ..compensation import Compensation, ConsumerChange, NoCompensation, resolve_compensate
from ..errors import (
    CorepruneError,
    CorepruneWarning,
    InvalidArgumentError,
    InvalidWeightsError,
    UnsupportedModelError,
    describe,
)
from ..importance import CoresetImportance, ImportanceMethod, Selection, UnitSet, get_method
from ..metrics import count_flops, count_params
from ..reconstruction import MOMENT_METHODS, Gaussian, drop_fold, greedy_selection, output_gram
from ..validation import check_device
from .budget import (
    build_cost_model,
    error_budget_keep_counts,
    keep_counts_from_ratios,
    proportional_keep_counts,
    uniform_keep_counts,
)
from .distillation import DISTILLATION_DEFAULTS, distill_on_synthetic_inputs
from .groups import (
    PRODUCERS,
    UnitGroup,
    _batchnorm_after,
    apply_change,
    build_graph,
    find_unit_groups,
    fixed_index_mapping,
    input_sizes,
    layer_shapes,
    unit_set,
)
from .heads import (
    DEFAULT_HEAD_METHOD,
    HEAD_COMPENSATIONS,
    HEAD_METHODS,
    HeadImportance,
    apply_head_selection,
    find_attention_layers,
    head_arrays,
    head_cost_model,
    input_norm_of,
)
from .layers import restore_layers, update_hf_config, update_hf_head_config, working_copy
from .propagation import InputPrior, analytic_moments
from .synthesis import (
    AutoMoments,
    PriorAndSampledMoments,
    SampledMoments,
    batchnorm_matched_inputs,
    class_inverted_inputs,
    class_scores_width,
    synthesis_flops,
)

ALLOCATIONS = ("uniform", "sensitivity", "error")
# allocation="error": every layer keeps at least this share of what the uniform allocation keeps
# it at the same target; without it, cuts that are each harmless compound (MobileNet-V2 at 30%:
# 44.30 against 88.10 uniform; with it 89.27; benchmarks/studies/allocation_capped.py)
ERROR_ALLOCATION_MIN_SHARE = 0.5
UNITS = ("neurons", "heads")
# what a removed head leaves behind when units="heads" and compensate is None: nothing; adding
# its mean output under the moment model lost on almost every trained ViT measured
# (docs/method.md §5)
DEFAULT_HEAD_COMPENSATION = "none"
MOMENT_MODELS = ("auto", "analytic", "synthetic", "inverted")
# how many inputs and Adam steps each synthesis takes when synthetic_inputs / synthetic_steps are
# None: BatchNorm matching measures channels at every position (64 images are many samples);
# class inversion of a flat classifier gets one sample of each unit per input
SYNTHESIS_DEFAULTS = {"synthetic": (64, 100), "inverted": (2048, 300)}
# the method of ``prune`` and ``Pruner`` when none is named: greedy selection with least-squares
# reconstruction, the most accurate data-free setting measured (docs/results.md)
DEFAULT_METHOD = "greedy"

__all__ = ["Pruner", "PruneReport", "LayerReport", "prune", "report_of", "check_model",
           "default_example_inputs"]


def inverts_by_default(model: nn.Module, example_inputs: torch.Tensor) -> bool:
    """Whether ``moment_model="auto"`` mixes the prior with inputs inverted from the class
    scores: ``model`` is a classifier (float inputs, scores of shape (batch, classes)) made of
    fully connected layers with no normalisation layer (no convolution, nothing whose class name
    has "Norm"): the models it was measured on, where nothing else tells the inputs apart
    (``benchmarks/studies/inverted_inputs.py``)."""
    for m in model.modules():
        if isinstance(m, nn.modules.conv._ConvNd) or "Norm" in type(m).__name__:
            return False
    return class_scores_width(model, example_inputs) is not None


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
    """Everything needed to reproduce and judge one pruning run: the target, the parameter and
    FLOP counts before and after, the time (seconds), each group's widths before and after
    (``layers``), and the layers coreprune left at full output width with why (``unpruned``:
    {module path: reason}) and the share of the model's parameters they hold
    (``unpruned_share``, in [0, 1]). :func:`report_of` gives it for a pruned model."""

    method: dict[str, Any]
    seed: int
    target: dict[str, Any]
    params_before: int
    params_after: int
    flops_before: int
    flops_after: int
    seconds: float
    layers: list[LayerReport]
    unpruned: dict[str, str] = field(default_factory=dict)
    unpruned_share: float = 0.0

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


class _Traced(NamedTuple):
    """A working copy of the user's model (:func:`working_copy`) and its graph; ``pruned``: the
    fitted changes are applied to it already (the copy the moment model pruned while fitting);
    ``flops``: the unpruned model's FLOPs, where fit counted them."""

    model: nn.Module
    replaced: dict[str, nn.Module]
    graph: Any
    pruned: bool = False
    flops: int | None = None


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
        if not _all_finite(p):
            raise InvalidWeightsError(f"parameter {name!r} holds NaN or Inf values")
    if not found:
        raise InvalidWeightsError("model has no parameters to prune")
    return model


def _one_blas_thread() -> threadpool_limits:
    """numpy's and scipy's BLAS on one thread within the block. PyTorch's own threads stay busy
    between its operations; BLAS threads beside them on the same cores wait on each other:
    torchvision ResNet-50 with the default method took 9.3 s with two BLAS threads and 5.3 s
    with one (2 cores). One thread also makes the arithmetic independent of the core count."""
    return threadpool_limits(1, user_api="blas")


def _all_finite(t: torch.Tensor) -> bool:
    """Whether every entry of ``t`` is finite. A finite sum implies it (NaN and Inf propagate),
    so only a tensor whose sum is not finite (or overflows) is checked entry by entry."""
    with torch.no_grad():
        return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def default_example_inputs(model: nn.Module) -> torch.Tensor:
    """A batch of two inputs for tracing (seeded): ``model.example_input_shape`` if the model
    declares it; for a Hugging Face model, 16 token ids below its ``vocab_size`` (a model read
    from ``input_ids``) or images of its ``num_channels`` x ``image_size`` (``pixel_values``);
    else ``(2, in_features)`` when the first layer is ``Linear``."""
    param = next(model.parameters())
    shape = getattr(model, "example_input_shape", None)
    hf = _hf_example_inputs(model)
    if shape is None and hf is not None:
        return hf.to(param.device, param.dtype) if hf.is_floating_point() else hf.to(
            param.device)
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


def _hf_example_inputs(model: nn.Module) -> torch.Tensor | None:
    """:func:`default_example_inputs` of a Hugging Face model (None for other models, or a
    config without the sizes needed)."""
    config, main = getattr(model, "config", None), getattr(model, "main_input_name", None)
    gen = torch.Generator().manual_seed(0)
    if main == "input_ids" and isinstance(getattr(config, "vocab_size", None), int):
        return torch.randint(0, config.vocab_size, (2, 16), generator=gen)
    size = getattr(config, "image_size", None)
    if main == "pixel_values" and size is not None:
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        return torch.randn((2, getattr(config, "num_channels", 3), h, w), generator=gen)
    return None


class Pruner:
    """Structured pruning of a model's units by an importance method.

    Args:
        method: a registered method name (see :func:`coreprune.methods`) or an instance;
            ``None`` (default): ``"greedy"``. With ``units="heads"``, a head method
            (:data:`~coreprune.pruning.heads.HEAD_METHODS`; default ``"output-moment"``).
        params_removed: fraction of all parameters to remove, in [0, 1) (0: identity).
        flops_removed: fraction of FLOPs to remove, in [0, 1), instead of ``params_removed``.
        keep_ratio: fraction of units every group keeps, in (0, 1], instead of a global target.
        layer_ratios: ``{layer name: keep ratio}``; layers not named are kept whole.
        seed: seed of every random choice (sampling, random baseline).
        fold: fold coreset weights into consumers (docs/method.md §1, folding); only matters for
            methods that
            reweight.
        prune_coupled: also prune channels coupled across residual additions.
        compensate: what the consumers absorb of the removed units (:mod:`coreprune.compensation`):
            ``"none"``, ``"bn-mean"`` (BatchNorm mean compensation), ``"merge"`` (Neuron
            Merging), ``"reconstruct"`` (least squares under the moment model; where a layer
            has no moment model, ``bn-mean`` where it applies, else none), or an instance.
            ``None`` (default): the method's choice
            (:meth:`ImportanceMethod.default_compensation`: ``reconstruct`` for the top-k
            coreset and ``greedy``, ``merge`` for ``neuron-merging``, ``none`` for the other
            baselines and for sampling methods). ``True`` / ``False`` (0.3's flag) mean
            ``"bn-mean"`` / ``"none"``.
        input_prior: the model of the inputs for the moment model: ``(mean, std)`` of
            independent Gaussians per input element (scalars, one per channel, or the input's
            shape; :class:`~coreprune.pruning.propagation.InputPrior`), a third item the
            neighbour correlation of image pixels (one value or a sequence: an equal mixture).
            Default ``(0, 1)`` (inputs normalised the usual way) with, for images, the mixture
            over correlations ``SPATIAL_CORRELATIONS`` (0, 0.5, 0.9). Synthetic inputs start
            from its first component only (independent pixels for the default), the analytic
            moments take the whole mixture: measured on the trained ResNet-20 and ResNet-56
            (docs/method.md §3). No data is read.
        moment_method: how the analytic model computes activation moments: ``"auto"`` (closed
            form for ReLU, leaky ReLU, GELU and linear layers, Monte Carlo otherwise), ``"closed"``,
            ``"quadrature"`` or ``"montecarlo"`` (:func:`~coreprune.reconstruction.
            activation_moments`).
        moment_model: ``"analytic"`` (Gaussian moments propagated from the input prior,
            :mod:`~coreprune.pruning.propagation`), ``"synthetic"`` (moments measured on
            ``synthetic_inputs`` inputs optimised for ``synthetic_steps`` Adam steps to match
            the model's BatchNorm statistics, :mod:`~coreprune.pruning.synthesis`),
            ``"inverted"`` (the analytic moments mixed equally with moments measured on
            ``synthetic_inputs`` inputs that a classifier assigns to its classes in turn,
            optimised for ``synthetic_steps`` Adam steps from the prior:
            :func:`~coreprune.pruning.synthesis.class_inverted_inputs`; for classifiers
            without BatchNorm, docs/method.md §4), or ``"auto"`` (default): for a fully
            connected classifier without normalisation layers (:func:`inverts_by_default`)
            ``"inverted"`` when its synthesis costs at most ``synthesis_budget`` FLOPs, else the
            analytic model wherever it follows the network, synthetic inputs for the groups
            where it would use its local prior (after residual additions), if the model has
            BatchNorm and the synthesis costs at most ``synthesis_budget`` FLOPs
            (``3 x forward x inputs x steps``; 1e13 is a few minutes on 2 CPU cores, seconds
            on a GPU), else the local prior. Measured on ResNet-56 at 50%: greedy +
            reconstruct 49.45 (local prior) vs 88.15 (synthetic inputs;
            ``benchmarks/results/studies/cnn_moment_models.log``); on VGG-16 the analytic
            model is as good and much faster.
        synthetic_inputs, synthetic_steps: the synthesis's inputs and Adam steps (also those of
            the inverted inputs ``distill_steps`` reads); ``None`` takes
            :data:`SYNTHESIS_DEFAULTS` (64 and 100 for ``"synthetic"``, 2,048 and 300 for
            ``"inverted"``).
        synthesis_budget: the most FLOPs ``"auto"`` spends on a synthesis.
        ignored_layers: modules whose groups are left alone.
        progress: show a progress bar over groups.
        device: the device the model must be on (``None``: any single device).
        allocation: how a global target is split over layers: ``"uniform"`` (every group keeps
            the same fraction), ``"sensitivity"`` (keep counts proportional to each group's
            total sensitivity under the default coreset, docs/method.md §1: the same eps per
            layer) or ``"error"`` (the same model-predicted relative reconstruction error in
            every layer: each layer's greedy error curve under the moment model of the unpruned
            model, :func:`~coreprune.pruning.budget.error_budget_keep_counts`; every layer
            keeps at least :data:`ERROR_ALLOCATION_MIN_SHARE` of what ``"uniform"`` keeps it).
        min_keep_fraction: under a global target (``params_removed``, ``flops_removed``), every
            group keeps at least this fraction of its units (and at least one), default 0.1,
            so no layer is cut to a sliver; ``keep_ratio`` and ``layer_ratios`` are taken as
            given. A target the floors make impossible raises :class:`BudgetError`.
        units: what is pruned: ``"neurons"`` (default: the output units of Linear/Conv
            layers, FFN neurons of transformers) or ``"heads"`` (whole attention heads, a
            key/value head with its query heads under grouped-query attention; everything else
            stays whole; :mod:`coreprune.pruning.heads`). Heads take ``params_removed``,
            ``keep_ratio`` or ``layer_ratios`` (keyed by attention module path), uniform
            allocation, and ``compensate`` ``"none"`` (their default, measured), ``"mean"`` or
            ``"value-bias"``.
        distill_steps: after the folds, train the pruned model for this many Adam steps to
            reproduce the unpruned model's class scores on synthetic inputs (inputs inverted
            from those scores, ``synthetic_inputs`` of them made in ``synthetic_steps`` steps,
            and fresh samples of the input prior; no data read;
            :mod:`~coreprune.pruning.distillation`, docs/method.md §4). ``0`` (default): the
            pruned model is the folds' alone, no training. Classifiers only. On the eight MLP
            configs measured, 500 steps won 16 of 27 cells (LeNet-300-100 at 90% of units:
            78.47 against 70.87) and lost 9, by up to 0.86 point; a prune with them took 1.5 to
            8.4 s on 2 CPU cores, with 2,000 steps 5.6 to 27.6 s.
        **options: passed to the method (e.g. ``projection=16``, ``selection="sample"``).

    Layers whose output width coreprune leaves whole although they feed other layers (channels
    coupled through residual additions, unless ``prune_coupled``) are named in one
    :class:`~coreprune.errors.CorepruneWarning` with the share of parameters they hold, and in
    the report.

    After :meth:`fit`: ``groups_`` (the prunable groups), ``selections_`` (one per group) and
    ``keep_counts_``; after :meth:`transform`: ``report_``.
    """

    def __init__(self, method: str | ImportanceMethod | HeadImportance | None = None,
                 params_removed: float | None = None, flops_removed: float | None = None,
                 keep_ratio: float | None = None, layer_ratios: dict[str, float] | None = None,
                 seed: int = 0, fold: bool = True, prune_coupled: bool = False,
                 ignored_layers: tuple[nn.Module, ...] = (), progress: bool = False,
                 device: str | torch.device | None = None, allocation: str = "uniform",
                 compensate: str | bool | Compensation | None = None,
                 input_prior: InputPrior | tuple | None = None, moment_method: str = "auto",
                 moment_model: str = "auto", synthetic_inputs: int | None = None,
                 synthetic_steps: int | None = None, synthesis_budget: float = 1e13,
                 min_keep_fraction: float = 0.1, units: str = "neurons",
                 distill_steps: int = 0, **options: Any) -> None:
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
        if units not in UNITS:
            raise InvalidArgumentError(f"units must be one of {UNITS}, got {units!r}")
        self.units = units
        if units == "heads":
            if self.target_kind == "flops_removed":
                raise InvalidArgumentError("units='heads' takes params_removed, keep_ratio or "
                                           "layer_ratios (FLOPs of attention are not modelled)")
            if allocation != "uniform":
                raise InvalidArgumentError("units='heads' allocates uniformly: every attention "
                                           "layer keeps the same fraction of its heads")
            self.method = HEAD_METHODS.get(DEFAULT_HEAD_METHOD if method is None else method,
                                           **options)
            if compensate not in (None, *HEAD_COMPENSATIONS):
                raise InvalidArgumentError(f"units='heads' takes compensate in "
                                           f"{HEAD_COMPENSATIONS}, got {compensate!r}")
            compensate = DEFAULT_HEAD_COMPENSATION if compensate is None else compensate
        else:
            self.method = get_method(DEFAULT_METHOD if method is None else method, **options)
        self.seed, self.fold, self.prune_coupled = int(seed), fold, prune_coupled
        self.ignored_layers, self.progress = tuple(ignored_layers), progress
        self.device = device
        if allocation not in ALLOCATIONS:
            raise InvalidArgumentError(f"allocation must be one of {ALLOCATIONS}, "
                                       f"got {allocation!r}")
        self.allocation = allocation
        if units == "heads":
            self.compensation, self.compensate = None, compensate
        else:
            self.compensation = resolve_compensate(compensate,
                                                   self.method.default_compensation())
            self.compensate = self.compensation.name
        self.input_prior = InputPrior.from_value(input_prior)
        if moment_method not in MOMENT_METHODS:
            raise InvalidArgumentError(f"moment_method must be one of {MOMENT_METHODS}, "
                                       f"got {moment_method!r}")
        self.moment_method = moment_method
        if moment_model not in MOMENT_MODELS:
            raise InvalidArgumentError(f"moment_model must be one of {MOMENT_MODELS}, "
                                       f"got {moment_model!r}")
        self.moment_model = moment_model
        for name, v in (("synthetic_inputs", synthetic_inputs),
                        ("synthetic_steps", synthetic_steps)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)
                                  or v < (2 if "inputs" in name else 0)):
                raise InvalidArgumentError(f"{name} must be a positive integer, got {v!r}")
        self.synthetic_inputs, self.synthetic_steps = synthetic_inputs, synthetic_steps
        if not float(synthesis_budget) >= 0:
            raise InvalidArgumentError(f"synthesis_budget must be >= 0, got {synthesis_budget!r}")
        self.synthesis_budget = float(synthesis_budget)
        if isinstance(min_keep_fraction, bool) or not isinstance(min_keep_fraction, int | float) \
                or not 0.0 <= float(min_keep_fraction) <= 1.0:
            raise InvalidArgumentError(f"min_keep_fraction must lie in [0, 1], got "
                                       f"{min_keep_fraction!r}")
        self.min_keep_fraction = float(min_keep_fraction)
        if isinstance(distill_steps, bool) or not isinstance(distill_steps, int | np.integer) \
                or distill_steps < 0:
            raise InvalidArgumentError(f"distill_steps must be an integer >= 0, got "
                                       f"{distill_steps!r}")
        self.distill_steps = int(distill_steps)

    @property
    def needs_moments(self) -> bool:
        """Whether the method or the compensation reads the moment model (of the neurons)."""
        return self.units == "neurons" and (self.method.needs_moments
                                            or self.compensation.needs_moments)

    # -- fitting -------------------------------------------------------------------------
    def fit(self, model: nn.Module, example_inputs: torch.Tensor | None = None) -> Pruner:
        """Choose the units of every group of ``model`` (which is not modified).

        Raises:
            CorepruneError: bad input, or (:class:`UnsupportedModelError`) anything that fails
                inside tracing, the geometry or the surgery, with the stage and layer named.
        """
        self._fit_traced(model, example_inputs)
        return self

    def _fit_traced(self, model: nn.Module, example_inputs: torch.Tensor | None) -> _Traced:
        """:meth:`fit`; returns the working copy it traced (unchanged), for
        :meth:`fit_transform`."""
        check_model(model, self.device, example_inputs)
        self.__dict__.pop("synthesis_", None)
        x = default_example_inputs(model) if example_inputs is None else example_inputs
        stage = ["tracing the model"]
        with _public_boundary(model, stage), contextlib.ExitStack() as fixed, _one_blas_thread():
            if self.distill_steps and class_scores_width(model, x) is None:
                raise InvalidArgumentError(
                    "distill_steps needs a classifier: a model that maps float inputs to scores "
                    "of shape (batch, classes); pass distill_steps=0 (the default) for this model")
            return (self._fit_heads if self.units == "heads" else self._fit)(model, x, stage,
                                                                             fixed)

    def _trace(self, model: nn.Module, x: torch.Tensor, stage: list[str], what: str, find,
               fixed: contextlib.ExitStack) -> tuple[_Traced, list]:
        """Trace a working copy of ``model`` (which fit does not change: its index mappings are
        fixed until ``fixed`` closes), find its units with
        ``find(working copy, graph, ignored layers, skipped)``, record and warn about the layers
        left whole: ``(the traced copy, what find found)``."""
        work, replaced = working_copy(model, split_attention=self.units == "heads")
        ignored = tuple(work.get_submodule(name) for name, m1 in model.named_modules()
                        if any(m1 is m for m in self.ignored_layers))
        graph = build_graph(work, x)
        fixed.enter_context(fixed_index_mapping(graph, current=True))
        stage[0] = f"finding the {what}"
        skipped: dict[str, str] = {}
        found = find(work, graph, ignored, skipped)
        order = {name: i for i, (name, _) in enumerate(work.named_modules())}
        self.unpruned_ = dict(sorted(skipped.items(), key=lambda kv: order[kv[0]]))
        self.unpruned_share_ = _share_of_parameters(graph, skipped)
        if skipped:
            warnings.warn(_unpruned_message(self.unpruned_, self.unpruned_share_),
                          CorepruneWarning, stacklevel=_user_stacklevel())
        return _Traced(work, replaced, graph), found

    def _given_keep_counts(self, groups: list, what: str) -> list[int] | None:
        """Keep counts from ``keep_ratio`` / ``layer_ratios`` (None under a global target)."""
        if self.target_kind == "layer_ratios":
            unknown = set(self.target_value) - {g.name for g in groups}
            if unknown:
                raise InvalidArgumentError(
                    f"layer_ratios names layers that are not {what}: {sorted(unknown)}; "
                    f"{what}: {[g.name for g in groups]}")
            return keep_counts_from_ratios(groups, self.target_value)
        if self.target_kind == "keep_ratio":
            return keep_counts_from_ratios(groups, float(self.target_value))
        return None

    def _fit_heads(self, model: nn.Module, x: torch.Tensor, stage: list[str],
                   fixed: contextlib.ExitStack) -> _Traced:
        traced, layers = self._trace(
            model, x, stage, "attention layers",
            lambda work, graph, ignored, skipped: find_attention_layers(work, ignored, skipped),
            fixed)
        work, graph = traced.model, traced.graph
        if not layers:
            raise UnsupportedModelError(
                f"found no attention layer whose heads coreprune can cut in "
                f"{type(model).__name__}: it recognises nn.MultiheadAttention, torchvision's "
                "Swin and MaxViT and the layouts of timm's ViT and Swin, Hugging Face GPT-2, "
                "BERT and LLaMA-style models (coreprune.pruning.heads); prune its neurons with "
                "units='neurons'")
        keep = self._given_keep_counts(layers, "attention layers")
        if keep is None:
            keep = uniform_keep_counts(head_cost_model(work, layers), float(self.target_value),
                                       "params", self.min_keep_fraction)
        selections, seconds, norms = [], [], []
        for i, (layer, k) in enumerate(zip(layers, keep, strict=True)):
            stage[0] = f"layer {layer.name!r}"
            t0 = time.perf_counter()
            norm, why = input_norm_of(graph, layer)
            norms.append(norm)
            arrays = head_arrays(layer, norm)
            kept = self.method.select(layer, arrays, k, np.random.default_rng([self.seed, i]))
            selections.append(Selection(kept, np.ones(kept.size), np.zeros(layer.n_units),
                                        {"moment_model": why}))
            seconds.append(time.perf_counter() - t0)
        self.example_inputs_ = x
        self.groups_ = layers
        self.keep_counts_ = keep
        self.selections_ = selections
        self.seconds_ = seconds
        self.input_norms_ = norms  # (mean, std) of each layer's input, for transform's folds
        return traced

    def _transform_heads(self, model: nn.Module, stage: list[str],
                         traced: _Traced | None) -> nn.Module:
        t0 = time.perf_counter()
        pruned, replaced = (traced.model, traced.replaced) if traced else \
            working_copy(model, split_attention=True)
        here = {la.name: la for la in find_attention_layers(pruned)}
        layers = []
        for fitted, sel, sec, norm in zip(self.groups_, self.selections_, self.seconds_,
                                          self.input_norms_, strict=True):
            layer = here.get(fitted.name)
            if layer is None or layer.n_units != fitted.n_units:
                raise InvalidArgumentError(f"model has no attention layer {fitted.name!r} of "
                                           f"{fitted.n_units} heads: transform needs the "
                                           "architecture fit saw")
            stage[0] = f"layer {layer.name!r}"
            arrays = head_arrays(layer, norm) if self.compensate != "none" else None
            info = apply_head_selection(layer, sel.indices, self.compensate, arrays)
            layers.append(LayerReport(layer.name, fitted.n_units, int(sel.indices.size), False,
                                      sec, {**sel.info, **info},
                                      [int(i) for i in sel.indices],
                                      [1.0] * int(sel.indices.size)))
        restore_layers(pruned, replaced)
        message = update_hf_head_config(
            pruned, [(la.n_heads, la.n_kv_heads, la.head_dim) for la in here.values()],
            reads_head_dim=all(la.kind == "separate-qkv" for la in here.values()))
        if message:
            warnings.warn(message, CorepruneWarning, stacklevel=_user_stacklevel())
        return self._report(model, pruned, t0, layers, {"units": "heads",
                                                        "compensate": self.compensate})

    def _report(self, model: nn.Module, pruned: nn.Module, t0: float,
                layers: list[LayerReport], settings: dict[str, Any],
                flops_before: int | None = None) -> nn.Module:
        """Set ``report_`` (the target, then ``settings``) for ``pruned``; return it.
        ``flops_before``: ``model``'s FLOPs, where already counted. With ``distill_steps``,
        ``pruned`` is first distilled from ``model`` (:meth:`_distill`), unless nothing was
        removed (then it is ``model``'s copy, unchanged)."""
        x = self.example_inputs_
        params_before, params_after = count_params(model), count_params(pruned)
        if self.distill_steps and params_after < params_before:
            settings = {**settings, "distillation": self._distill(model, pruned)}
        self.report_ = PruneReport(
            method=self.method.config(), seed=self.seed,
            target={self.target_kind: self.target_value, **settings},
            params_before=params_before, params_after=params_after,
            flops_before=count_flops(model, x) if flops_before is None else flops_before,
            flops_after=count_flops(pruned, x),
            seconds=sum(self.seconds_) + time.perf_counter() - t0, layers=layers,
            unpruned=dict(self.unpruned_), unpruned_share=self.unpruned_share_)
        _REPORTS[pruned] = self.report_
        return pruned

    def _distill(self, model: nn.Module, pruned: nn.Module) -> dict[str, Any]:
        """Train ``pruned`` in place for ``distill_steps`` steps to reproduce ``model``'s class
        scores on inputs inverted from them and samples of the prior
        (:func:`~coreprune.pruning.distillation.distill_on_synthetic_inputs`); the inversion is
        the one ``moment_model="inverted"`` reads (remembered when it ran)."""
        _, steps = self._synthesis_size("inverted")
        t0 = time.perf_counter()
        inputs, share = self._inverted_inputs(model, self.example_inputs_)
        inverted = time.perf_counter() - t0
        result = distill_on_synthetic_inputs(pruned, model, inputs, self.input_prior,
                                             self.distill_steps, seed=self.seed,
                                             **DISTILLATION_DEFAULTS)
        return {**result.to_dict(), "inversion_steps": steps, "assigned_share": share,
                "inversion_seconds": inverted}

    def _synthesis_size(self, kind: str) -> tuple[int, int]:
        """``(inputs, Adam steps)`` of a synthesis of ``kind``: ``synthetic_inputs`` and
        ``synthetic_steps``, or :data:`SYNTHESIS_DEFAULTS` where they are None."""
        default_n, default_steps = SYNTHESIS_DEFAULTS[kind]
        return (default_n if self.synthetic_inputs is None else self.synthetic_inputs,
                default_steps if self.synthetic_steps is None else self.synthetic_steps)

    def _inverted_inputs(self, model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        """:func:`~coreprune.pruning.synthesis.class_inverted_inputs` of ``model`` at this
        pruner's size and seed, started from the prior's first component (not the mixture:
        measured, see ``input_prior``); remembered, so the moment model and the distillation
        make it once."""
        n, steps = self._synthesis_size("inverted")
        return class_inverted_inputs(model, x, self.input_prior.components()[0], n, steps,
                                     seed=self.seed)

    def _fit(self, model: nn.Module, x: torch.Tensor, stage: list[str],
             fixed: contextlib.ExitStack) -> _Traced:
        traced, groups = self._trace(
            model, x, stage, "prunable layers",
            lambda work, graph, ignored, skipped: find_unit_groups(graph, self.prune_coupled,
                                                                   ignored, skipped), fixed)
        work, graph = traced.model, traced.graph
        if not groups:
            raise UnsupportedModelError(
                f"found no prunable layer in {type(model).__name__}: coreprune prunes the "
                "output units of Linear/Conv layers that feed another Linear/Conv layer")
        keep = self._given_keep_counts(groups, "prunable layers")
        shapes = layer_shapes(work, x)
        if keep is None and float(self.target_value) == 0.0:
            keep = [g.n_units for g in groups]
        elif keep is None:
            cost = build_cost_model(graph, groups, x, shapes)
            metric = "params" if self.target_kind == "params_removed" else "flops"
            floor = self.min_keep_fraction
            if self.allocation == "uniform":
                keep = uniform_keep_counts(cost, float(self.target_value), metric, floor)
            elif self.allocation == "error":
                curves = self._error_curves(model, x, graph, groups)
                uniform = uniform_keep_counts(cost, float(self.target_value), metric, floor)
                keep = error_budget_keep_counts(
                    cost, float(self.target_value), curves, metric, floor,
                    [math.ceil(ERROR_ALLOCATION_MIN_SHARE * k) for k in uniform])
            else:
                sens = get_method("coreset")
                if isinstance(self.method, CoresetImportance) and \
                        self.method.config() == sens.config():
                    sens = self.method  # its memo then serves the selection below
                totals = [float(sens.scores(unit_set(graph, g)).sum()) for g in groups]
                keep = proportional_keep_counts(cost, float(self.target_value), totals, metric,
                                                floor)
        live = graph_live = propagator = None
        if self.needs_moments:  # a working copy pruned group by group, for the moment model
            live, live_replaced = working_copy(model)
            graph_live = build_graph(live, x)
            propagator = self._moment_model(work, x, graph_live)
            named_live = dict(live.named_modules())
        sizes = input_sizes(work, x, shapes)
        selections, changes, seconds = [], [], []
        bar = tqdm(list(zip(groups, keep, strict=True)), desc="coreprune", unit="layer",
                   disable=not self.progress)
        for gi, (g, k) in enumerate(bar):
            stage[0] = f"layer {g.name!r}"
            t0 = time.perf_counter()
            if k >= g.n_units:
                sel = Selection(np.arange(g.n_units), np.ones(g.n_units), np.ones(g.n_units),
                                {"identity": True})
                change = ConsumerChange(drop_fold(g.n_units, sel.indices))
            else:
                units = unit_set(graph, g)
                g_live = None
                per_consumer = None
                if propagator is not None:
                    g_live = _same_group(g, named_live)
                    moments, why = _group_moments(propagator, g_live, gi)
                    pre = (propagator.prior_preactivation(g_live) if moments is not None
                           else None)
                    if (read := _moments_where_read(propagator, g_live, units,
                                                    self.compensation.needs_moments)) is not None:
                        moments, why, measured = read
                        if self.compensation.needs_moments:
                            per_consumer = measured
                    units = units.replace(moments=moments, prior_preactivation=pre,
                                          consumer_moments=per_consumer)
                rng = np.random.default_rng([self.seed, gi])
                sel = self.method.select(units, k, rng)
                reweight = (self.fold and g.foldable
                            and not np.allclose(sel.weights, 1.0, rtol=0, atol=0))
                # coupled channels: only a fold per consumer (the identity paths cannot take one)
                comp = self.compensation if g.foldable or per_consumer else NoCompensation()
                change = comp.change(units, sel, reweight)
                if comp is not self.compensation and self.compensation.name != "none":
                    change.info["compensation"] = f"none (fallback: {g.note})"
                if propagator is not None and why:
                    change.info["moment_model"] = why
                if propagator is not None:
                    propagator.pruned(g_live, change.fold.keep)
                    apply_change(graph_live, g_live, change, sizes)
            selections.append(sel)
            changes.append(change)
            seconds.append(time.perf_counter() - t0)
        self.example_inputs_ = x
        self.groups_: list[UnitGroup] = groups
        self.keep_counts_ = keep
        self.selections_: list[Selection] = selections
        self.changes_: list[ConsumerChange] = changes
        self.input_sizes_ = sizes
        self.seconds_ = seconds
        # the moment model's copy has every change applied, in order: transform's result
        done = traced if live is None else _Traced(live, live_replaced, graph_live, True)
        return done._replace(flops=shapes.flops)

    def _error_curves(self, model: nn.Module, x: torch.Tensor, graph,
                      groups: list[UnitGroup]) -> list[np.ndarray]:
        """Each group's predicted relative error with its best k units kept and the rest
        reconstructed, k = 0..n (greedy selection under the moment model of the unpruned
        model); ``1 - k / n`` for a group without a moment model."""
        work, _ = working_copy(model)
        g_work = build_graph(work, x)
        named = dict(work.named_modules())
        model_of = self._moment_model(work, x, g_work)
        curves = []
        for gi, g in enumerate(groups):
            g_work, units = _same_group(g, named), unit_set(graph, g)
            h, _ = _group_moments(model_of, g_work, gi)
            if h is None and (read := _moments_where_read(model_of, g_work, units, False)):
                h = read[0]
            if h is None:
                curves.append(1.0 - np.arange(g.n_units + 1) / g.n_units)
                continue
            res = greedy_selection(g.n_units, output_gram(units.outgoing), h.cov)
            total = res.errors[0]
            curves.append(res.errors / total if total > 0 else np.zeros(g.n_units + 1))
        return curves

    def _moment_model(self, source: nn.Module, x: torch.Tensor, graph):
        """The moment model (``moment_model``) of ``graph``'s model: the analytic propagator,
        moments on synthetic inputs made from ``source``, the first mixed with moments on
        inputs inverted from the class scores (``"inverted"``; ``"auto"`` on fully connected
        classifiers, :func:`inverts_by_default`), or (``"auto"`` otherwise) the analytic model
        with synthetic inputs behind residual additions."""
        if self.moment_model == "synthetic":
            return self._synthetic(source, x, graph, "synthetic")
        analytic = analytic_moments(graph, x, self.input_prior, self.moment_method,
                                    seed=self.seed)
        if self.moment_model == "inverted":
            return PriorAndSampledMoments(analytic,
                                          self._synthetic(source, x, graph, "inverted"))
        if self.moment_model == "auto" and inverts_by_default(source, x):
            sampled = self._synthetic(source, x, graph, "inverted", budget=True)
            return analytic if sampled is None else PriorAndSampledMoments(analytic, sampled)
        if self.moment_model == "auto":
            return AutoMoments(analytic, lambda: self._synthetic(source, x, graph, "synthetic",
                                                                 budget=True))
        return analytic

    def _synthetic(self, model: nn.Module, x: torch.Tensor, graph, kind: str,
                   budget: bool = False) -> SampledMoments | None:
        """Moments on synthetic inputs of ``kind``: ``"synthetic"`` (matched to the BatchNorm
        statistics) or ``"inverted"`` (from the class scores); None when ``budget`` is asked
        and the synthesis would cost more than ``synthesis_budget`` FLOPs, or a BatchNorm
        synthesis finds no BatchNorm."""
        n, steps = self._synthesis_size(kind)
        self.synthesis_ = {"kind": kind, "inputs": n, "steps": steps}
        if budget:
            flops = synthesis_flops(model, x, n, steps)
            self.synthesis_["flops"] = flops
            usable = kind == "inverted" or any(
                isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
            if flops > self.synthesis_budget or not usable:
                self.synthesis_["used"] = False
                return None
        start = self.input_prior.components()[0]  # not the mixture: measured, see input_prior
        self.synthesis_["start_prior"] = start.config()
        t0 = time.perf_counter()
        if kind == "inverted":
            inputs, share = self._inverted_inputs(model, x)
            self.synthesis_.update({"used": True, "assigned_share": share,
                                    "seconds": time.perf_counter() - t0})
            return SampledMoments(graph, inputs, f"{n} inputs inverted from the class scores "
                                  f"({100 * share:.0f}% assigned to their class)")
        inputs, rel = batchnorm_matched_inputs(model, x, start, n, steps, seed=self.seed)
        self.synthesis_.update({"used": True, "relative_loss": rel,
                                "seconds": time.perf_counter() - t0})
        return SampledMoments(graph, inputs, f"{n} synthetic inputs "
                              f"(BatchNorm statistics matched to {rel:.3g} of the initial "
                              "loss)")

    # -- applying ------------------------------------------------------------------------
    def transform(self, model: nn.Module) -> nn.Module:
        """A pruned copy of ``model`` (the fitted model's architecture); ``model`` is untouched."""
        if not hasattr(self, "selections_"):
            raise InvalidArgumentError("call fit(model) before transform(model)")
        check_model(model, self.device)
        return self._transform_traced(model, None)

    def _transform_traced(self, model: nn.Module, traced: _Traced | None) -> nn.Module:
        """:meth:`transform`, pruning ``traced`` (fit's working copy of this ``model``) in
        place of a new copy where given."""
        stage = ["tracing the model"]
        with _public_boundary(model, stage), _one_blas_thread():
            if self.units == "heads":
                return self._transform_heads(model, stage, traced)
            return self._transform(model, stage, traced)

    def _transform(self, model: nn.Module, stage: list[str], traced: _Traced | None
                   ) -> nn.Module:
        t0 = time.perf_counter()
        x = self.example_inputs_
        if traced is None:
            pruned, replaced = working_copy(model)
            graph = build_graph(pruned, x)
        else:
            pruned, replaced, graph = traced.model, traced.replaced, traced.graph
        named = dict(pruned.named_modules())
        layers = []
        for g, sel, change, sec in zip(self.groups_, self.selections_, self.changes_,
                                       self.seconds_, strict=True):
            if g.name not in named:
                raise InvalidArgumentError(f"model has no layer {g.name!r}: transform needs the "
                                           "architecture fit saw")
            stage[0] = f"layer {g.name!r}"
            if traced is None or not traced.pruned:
                apply_change(graph, _same_group(g, named), change, self.input_sizes_)
            folded = bool(self.fold and g.foldable and not np.all(sel.weights == 1.0))
            info = {k: v for k, v in {**sel.info, **change.info}.items() if k != "identity"}
            applied = sel.weights if folded else np.ones(sel.indices.size)
            layers.append(LayerReport(g.name, g.n_units, int(sel.indices.size), folded, sec, info,
                                      [int(i) for i in sel.indices],
                                      [float(w) for w in applied]))
        restore_layers(pruned, replaced)
        message = update_hf_config(pruned, {r.name: r.kept for r in layers})
        if message:
            warnings.warn(message, CorepruneWarning, stacklevel=_user_stacklevel())
        return self._report(model, pruned, t0, layers, {
            "fold": self.fold, "prune_coupled": self.prune_coupled,
            "allocation": self.allocation, "compensate": self.compensate,
            "compensation": self.compensation.config(),
            **({"input_prior": self.input_prior.config(), "moment_model": self.moment_model,
                "moment_method": self.moment_method,
                **({"synthesis": self.synthesis_} if hasattr(self, "synthesis_") else {})}
               if self.needs_moments else {})},
            flops_before=None if traced is None else traced.flops)

    def fit_transform(self, model: nn.Module,
                      example_inputs: torch.Tensor | None = None) -> nn.Module:
        """``fit(model, example_inputs).transform(model)``, with the model traced and pruned
        once: the working copy that fit traced is the one pruned, or, where a moment model
        pruned a copy layer by layer while fitting, that copy is the result."""
        return self._transform_traced(model, self._fit_traced(model, example_inputs))


_REPORTS: weakref.WeakKeyDictionary[nn.Module, PruneReport] = weakref.WeakKeyDictionary()


def report_of(model: nn.Module) -> PruneReport:
    """The :class:`PruneReport` of a model that :func:`prune` or :meth:`Pruner.transform`
    returned in this process (which layers, their widths before and after, the time, the
    layers left whole and why).

    Raises:
        InvalidArgumentError: ``model`` was not returned by coreprune's pruning.
    """
    try:
        return _REPORTS[model]
    except (KeyError, TypeError):
        raise InvalidArgumentError(
            f"no pruning report for this {type(model).__name__}: report_of takes the model that "
            "coreprune.prune or Pruner.transform returned (a loaded checkpoint keeps its report "
            "in the metadata of coreprune.io.load_with_metadata)") from None


def _share_of_parameters(graph, layers: dict[str, str]) -> float:
    """The fraction of ``graph``'s model's parameters held by ``layers`` (module paths: layers,
    or attention modules with their projections) and the BatchNorm right after each."""
    named = dict(graph.model.named_modules())
    held = set()
    for name in layers:
        m = named[name]
        after = _batchnorm_after(graph, m) if m in graph.module2node else None
        for owner in (m, after):
            if owner is not None:
                held.update(id(p) for p in owner.parameters())
    params = list(graph.model.parameters())
    total = sum(p.numel() for p in params)
    return sum(p.numel() for p in params if id(p) in held) / total if total else 0.0


def _user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning raised by the caller point at the first frame
    outside coreprune (the user's call)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _unpruned_message(layers: dict[str, str], share: float) -> str:
    """One line: how many layers keep their output width, their share, names and why."""
    by_reason: dict[str, list[str]] = {}
    for name, why in layers.items():
        by_reason.setdefault(why, []).append(name)
    parts = [f"{', '.join(names[:3])}{f' and {len(names) - 3} more' if len(names) > 3 else ''}"
             f" ({why})" for why, names in by_reason.items()]
    return (f"coreprune leaves the output width of {len(layers)} layers whole ({share:.1%} of "
            f"the parameters): {'; '.join(parts)}")


@contextlib.contextmanager
def _public_boundary(model: nn.Module, stage: list[str]):
    """Re-raise anything that is not a :class:`CorepruneError` (an error inside Torch-Pruning,
    tracing, the geometry or torch) as one :class:`UnsupportedModelError` line naming the model,
    the stage (``stage[0]``, updated by the caller) and what to do; the original is the
    cause."""
    try:
        yield
    except CorepruneError:
        raise
    except Exception as exc:
        raise UnsupportedModelError(
            f"{type(model).__name__}: {stage[0]} failed ({describe(exc)}); "
            "coreprune cannot prune this model as it is: pass the modules involved in "
            "ignored_layers to leave them whole, or report the model") from exc


def _group_moments(model_of, g: UnitGroup, gi: int) -> tuple[Gaussian | None, str]:
    """``model_of.unit_moments(g, gi)`` where the moment model describes ``g``'s units; else
    ``(None, why)``: units that cannot take a fold, and slots of a grouped convolution (the
    moment model is per channel; a slot's channels would need one shared fold)."""
    if not g.foldable:
        return None, g.note
    if g.channel_groups > 1:
        return None, (f"units are slots of {g.channel_groups} channels (a grouped convolution); "
                      "the moment model is per channel")
    return model_of.unit_moments(g, gi)


def _moments_where_read(model_of, g: UnitGroup, units: UnitSet, fold_per_consumer: bool
                        ) -> tuple[Gaussian | None, str, dict[str, Gaussian]] | None:
    """For a group whose consumers read its units in different states, and whose consumers
    ``model_of`` measures (moments on synthetic inputs): ``(moments to select on, note, moments
    per consumer)``, else None. Two kinds of groups qualify:

    - squeeze-and-excitation expansions: the projection reads the gated units, the gate's
      squeeze layer only their averages; they are selected on the moments of the widest reader
      (:func:`_widest_reader`), typically the projection;
    - channels coupled through residual additions (``prune_coupled=True``), not carried through
      depthwise convolutions, when the caller folds per consumer (``fold_per_consumer``; their
      moments serve nothing else, so they are not measured otherwise): every layer that reads
      the residual stream reads another sum. They get no moments to select on (None: greedy
      falls back to the coreset); selecting on the widest reader's was better on
      EfficientNet-B0 and worse on ResNet-20 and MobileNet-V3-Small
      (``benchmarks/studies/coupled_selection.py``)."""
    excited = g.squeeze_excited
    if g.channel_groups > 1 or not (excited or (fold_per_consumer and g.coupled
                                                and not g.carriers)):
        return None
    measured = model_of.consumer_moments(g)
    if not measured:
        return None
    kind = "squeeze-and-excitation" if excited else "channels coupled through residual additions"
    return (_widest_reader(measured, units) if excited else None,
            f"{kind}: moments measured on the synthetic inputs where each consumer reads the "
            "units", measured)


def _widest_reader(measured: dict[str, Gaussian], units: UnitSet) -> Gaussian:
    """The moments (of ``measured``, per consumer) of the consumer whose output the units move
    most: the largest ``tr(V_c^T Cov_c V_c)`` (``V_c``: the units' outgoing weights in
    consumer c, the output error of dropping every unit)."""
    def energy(name: str) -> float:
        v = units.outgoing[:, units.consumer_columns[name]]
        return float(np.sum(measured[name].cov * (v @ v.T)))

    return measured[max(measured, key=energy)]


def _same_group(g: UnitGroup, named: dict[str, nn.Module]) -> UnitGroup:
    """Group ``g`` of another copy of the same model (its modules looked up by name)."""
    return dataclasses.replace(g, root=named[g.name])


def prune(model: nn.Module, method: str | ImportanceMethod | HeadImportance | None = None,
          params_removed: float | None = 0.9, seed: int = 0,
          example_inputs: torch.Tensor | None = None, **options: Any) -> nn.Module:
    """Return a pruned copy of ``model``; ``model`` itself is left untouched.

    Args:
        model: a trained ``nn.Module`` (MLP, CNN, ResNet, ...).
        method: registered importance method (``coreprune.methods()``), default ``"greedy"``
            (with least-squares reconstruction; ``"coreset"`` is the paper's coreset); with
            ``units="heads"`` a head method, default ``"output-moment"``.
        params_removed: fraction of parameters to remove, in [0, 1). Pass ``None`` with
            ``flops_removed=``, ``keep_ratio=`` or ``layer_ratios=`` in ``options`` instead.
        seed: seed of every random choice; the same seed gives the same pruned model.
        example_inputs: a batch for tracing; optional when the first layer is ``Linear``.
        **options: further :class:`Pruner` arguments and method options.

    Example:
        >>> import coreprune
        >>> small = coreprune.prune(model, params_removed=0.9, seed=0)
        >>> fewer_heads = coreprune.prune(vit, units="heads", keep_ratio=0.75,
        ...                               example_inputs=images)
    """
    if any(k in options for k in ("flops_removed", "keep_ratio", "layer_ratios")):
        params_removed = None
    return Pruner(method, params_removed=params_removed, seed=seed, **options).fit_transform(
        model, example_inputs)
