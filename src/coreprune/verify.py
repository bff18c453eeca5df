"""Check a pruned model's coreset against its original, layer by layer (docs/method.md §1).

A pruned checkpoint written by coreprune records, for every pruned layer, the kept units and
the weight folded into each. :func:`verify_layers` rebuilds each layer's point set ``q_i`` of
the setting it was pruned with (``v_i`` by default, ``||p_i|| v_i`` for ``coreset-scaled`` and
``coreset-theory``; docs/method.md §1; the whole span, no projection) from the *original* model
and measures the coreset's relative error

    err(y) = | sum_{i kept} w_i |q_i . y| - sum_i |q_i . y| | / sum_i |q_i . y|

over random queries y and queries found by gradient ascent, beside

* ``bound``: ``sum_i |w_i - 1| s_i`` with s_i the peeling sensitivity bounds of the full point
  set (docs/method.md §1, peeling); it holds for every y (see
  :func:`coreprune.geometry.approximation.sensitivity_error_bound`), whatever selected the units;
* ``eps_sampling``: for sampled coresets, the eps of the sample size bound (docs/method.md §1)
  with the recorded number of draws, total sensitivity t and rank r (O-constant taken as 1,
  delta = 0.1);
* ``predicted_error``: for layers compensated by least-squares reconstruction, the
  model-predicted relative error of the consumer's output after the fold, as recorded when the
  model was pruned (:func:`coreprune.reconstruction.fold_error`; a prediction under the input
  prior, not a bound), and ``predicted_error_drop``, the same for plain dropping.

The query y plays the role of the next layer's weights and input (docs/method.md, notation:
z = sum_i phi(p_i.x) v_i, with |phi(p_i.x)| <= ||p_i|| for unit-norm x).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .errors import CheckpointError
from .geometry import coreset_error_bound, peel_sensitivities
from .geometry.approximation import sensitivity_error_bound, worst_relative_error
from .importance import CoresetImportance
from .metrics import count_params
from .pruning.groups import build_graph, find_unit_groups, unit_set
from .pruning.layers import working_copy

__all__ = ["LayerCheck", "verify_layers", "verify_checkpoint_record"]

DEFAULT_SCALING = CoresetImportance().scaling  # the default coreset's point set


@dataclass(frozen=True)
class LayerCheck:
    """The verification of one pruned layer (errors are fractions, not percent)."""

    name: str
    units: int
    kept: int
    rank: int
    total_sensitivity: float
    error_random: float
    error_ascent: float
    bound: float
    eps_sampling: float | None
    predicted_error: float | None = None
    predicted_error_drop: float | None = None

    @property
    def within_bound(self) -> bool:
        return self.error_ascent <= self.bound * (1 + 1e-9) + 1e-12

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "within_bound": self.within_bound}


def verify_layers(original: nn.Module, layers: list[dict[str, Any]], example_inputs: torch.Tensor,
                  scaling: str = DEFAULT_SCALING, prune_coupled: bool = False, seed: int = 0,
                  n_random: int = 256, steps: int = 100, tol: float = 1e-2,
                  delta: float = 0.1, progress: bool = False) -> list[LayerCheck]:
    """Measure every recorded layer's coreset error on ``original``'s weights.

    Args:
        original: the unpruned model the pruned one was cut from (not modified).
        layers: records ``{"name", "units", "indices", "weights", "draws"?}``, as
            :class:`coreprune.pruning.LayerReport` and the pruned checkpoint's metadata hold.
        example_inputs: a batch for tracing ``original``.
        scaling: the point scaling (``CoresetImportance``'s ``scaling``).
        seed: seed of the random queries.
        progress: show a progress bar over layers (wide conv layers take seconds each: the
            sensitivities are computed in the whole span, e.g. ~13 s per 512-filter VGG-16 layer
            on 2 CPU cores).

    Raises:
        CheckpointError: a recorded layer is missing from ``original``, has another number of
            units, or records no kept indices.
    """
    work = working_copy(original)[0].eval()
    graph = build_graph(work, example_inputs)
    groups = {g.name: g for g in find_unit_groups(graph, prune_coupled)}
    points_of = CoresetImportance(scaling=scaling, projection=None).points
    out = []
    for li, rec in enumerate(tqdm(layers, desc="verify", unit="layer", disable=not progress)):
        name = rec.get("name")
        if name not in groups:
            raise CheckpointError(f"layer {name!r} of the pruned model is not a prunable layer "
                                  f"of the original (prunable: {sorted(groups)})")
        g = groups[name]
        if rec.get("units") != g.n_units:
            raise CheckpointError(f"layer {name!r} has {g.n_units} units in the original, but the "
                                  f"pruned model was cut from {rec.get('units')}")
        if "indices" not in rec or "weights" not in rec:
            raise CheckpointError(f"layer {name!r}: the pruned checkpoint records no kept "
                                  "indices (pruned by a Torch-Pruning peer, or by an older "
                                  "coreprune); verify checks coreprune's own methods")
        idx = np.asarray(rec["indices"], dtype=np.int64)
        w_hat = np.zeros(g.n_units)
        w_hat[idx] = np.asarray(rec["weights"], dtype=np.float64)
        q = points_of(unit_set(graph, g))
        if not np.any(q):
            out.append(LayerCheck(name, g.n_units, idx.size, 0, 0.0, 0.0, 0.0, 0.0, None,
                                  rec.get("predicted_error"), rec.get("predicted_error_drop")))
            continue
        peel = peel_sensitivities(q, tol=tol)
        rng = np.random.default_rng([seed, li])
        worst = worst_relative_error(q, w_hat, rng, n_random=n_random, steps=steps)
        rank = int(np.linalg.matrix_rank(q))
        draws = rec.get("draws")
        eps = (coreset_error_bound(peel.total, rank, int(draws), delta)
               if draws else None)
        out.append(LayerCheck(name, g.n_units, int(idx.size), rank, float(peel.total),
                              worst.random, worst.ascent,
                              sensitivity_error_bound(peel.upper_bounds, w_hat), eps,
                              rec.get("predicted_error"), rec.get("predicted_error_drop")))
    return out


def verify_checkpoint_record(pruned: nn.Module, record: dict[str, Any], original: nn.Module,
                             example_inputs: torch.Tensor, **kwargs: Any) -> list[LayerCheck]:
    """:func:`verify_layers` from a pruned checkpoint's ``metadata["pruned"]`` record, after
    checking that the parameter counts it records match both models.

    Raises:
        CheckpointError: the record is missing or the counts do not match (the checkpoints
            are not a pruned model and its original).
    """
    if not isinstance(record, dict) or "layers" not in record:
        raise CheckpointError("the pruned checkpoint holds no pruning record: verify needs a "
                              "checkpoint written by `coreprune prune --out`")
    before, after = record.get("params", [None, None])
    if before != count_params(original):
        raise CheckpointError(f"ORIGINAL has {count_params(original):,} parameters, but the "
                              f"pruned model was cut from one with {before}")
    if after != count_params(pruned):
        raise CheckpointError(f"PRUNED has {count_params(pruned):,} parameters, but its record "
                              f"says {after}")
    settings = record.get("settings", {})
    if settings.get("units", "neurons") != "neurons":
        raise CheckpointError(f"PRUNED lost whole attention {settings['units']} "
                              "(units='heads'): verify checks the coreset bound of pruned "
                              "neurons, and no coreset chose these heads")
    return verify_layers(original, record["layers"], example_inputs,
                         scaling=settings.get("scaling", DEFAULT_SCALING),
                         prune_coupled=bool(settings.get("prune_coupled", False)), **kwargs)
