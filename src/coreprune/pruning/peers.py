"""Peer methods: Torch-Pruning's own importances, run through Torch-Pruning's own pruner.

These are the benchmark's outside reference (Fang et al., DepGraph, CVPR 2023). For a fair
comparison they prune to exactly the same structure as coreprune's methods at the same target:
coreprune's budget rule decides how many units each group keeps, and Torch-Pruning's
``MetaPruner`` decides which, by its importance, with no folding. ``tp-taylor`` reads a small
batch of training data (marked ``data_independent=False``); the others read weights only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn

from ..errors import InvalidArgumentError, UnsupportedModelError
from .groups import NORMS, UnitGroup, deeper_channel_search, run_model, traced_outputs
from .layers import restore_layers, working_copy

__all__ = ["Peer", "PEERS", "BatchNormScaleImportance", "is_peer", "prune_with_torch_pruning"]


@dataclass(frozen=True)
class Peer:
    """A Torch-Pruning importance: ``make()`` builds it; ``data_independent`` says whether it
    reads data (then a calibration batch is required)."""

    name: str
    make: Callable[[], tp.importance.Importance]
    data_independent: bool
    description: str


class BatchNormScaleImportance(tp.importance.Importance):
    """Network slimming's importance (Liu et al., ICCV 2017): a unit's ``|gamma|`` in the
    BatchNorm of its group (Torch-Pruning's ``BNScaleImportance``); a group with no BatchNorm
    (a squeeze-and-excitation layer, a classifier's hidden layer) is scored by its group L2
    magnitude instead, as ``tp-magnitude`` scores it. Torch-Pruning alone leaves such a group
    unscored and unpruned, which would prune another structure than the one asked for."""

    def __init__(self) -> None:
        self.scale = tp.importance.BNScaleImportance()
        self.magnitude = tp.importance.GroupMagnitudeImportance(p=2)

    def __call__(self, group: tp.dependency.Group) -> torch.Tensor | None:
        score = self.scale(group)
        return score if score is not None else self.magnitude(group)


PEERS: dict[str, Peer] = {p.name: p for p in (
    Peer("tp-magnitude", lambda: tp.importance.GroupMagnitudeImportance(p=2), True,
         "Torch-Pruning: group L2 magnitude (all coupled weights)"),
    Peer("tp-bnscale", BatchNormScaleImportance, True,
         "Torch-Pruning: |BatchNorm scale| (network slimming), L2 magnitude for groups without "
         "BatchNorm; models with BatchNorm only"),
    Peer("tp-taylor", lambda: tp.importance.GroupTaylorImportance(), False,
         "Torch-Pruning: first-order Taylor (Molchanov 2019); DATA-DEPENDENT, one batch"),
)}


def is_peer(name: object) -> bool:
    """Whether ``name`` names a Torch-Pruning peer method."""
    return isinstance(name, str) and name in PEERS


def prune_with_torch_pruning(model: nn.Module, peer: str, groups: list[UnitGroup],
                             keep_counts: list[int], example_inputs: torch.Tensor,
                             calibration: tuple[torch.Tensor, torch.Tensor] | None = None
                             ) -> nn.Module:
    """A copy of ``model`` pruned by Torch-Pruning's ``MetaPruner`` with importance ``peer``,
    keeping ``keep_counts[i]`` units of ``groups[i]`` (the groups of
    :func:`coreprune.pruning.find_unit_groups`); every other layer is left whole.

    Args:
        model: the trained model (not modified).
        peer: a key of :data:`PEERS`.
        groups, keep_counts: the structure to prune to (from :class:`coreprune.Pruner`'s fit).
        example_inputs: a batch for tracing.
        calibration: ``(x, y)`` batch for ``tp-taylor`` (cross-entropy gradients).

    Raises:
        InvalidArgumentError: unknown peer, or ``tp-taylor`` without ``calibration``.
        UnsupportedModelError: ``tp-bnscale`` on a model without BatchNorm, or Torch-Pruning
            pruned to another structure than asked.
    """
    if peer not in PEERS:
        raise InvalidArgumentError(f"unknown peer {peer!r}; known: {', '.join(PEERS)}")
    spec = PEERS[peer]
    if not spec.data_independent and calibration is None:
        raise InvalidArgumentError(f"{peer} reads data: pass a calibration batch (x, y)")
    if peer == "tp-bnscale" and not any(isinstance(m, NORMS) for m in model.modules()):
        raise UnsupportedModelError(f"{peer} needs BatchNorm layers; {type(model).__name__} "
                                    "has none")
    work, replaced = working_copy(model)  # Hugging Face Conv1D as Linear, as coreprune sees it
    work.eval()
    named = dict(work.named_modules())
    ratio = {named[g.name]: 1.0 - (k + 0.5) / g.n_units
             for g, k in zip(groups, keep_counts, strict=True) if k < g.n_units}
    roots = [named[g.name] for g in groups]
    # the depthwise convolutions and gates of a pruned group are pruned with it
    riders = {id(named[n]) for g, k in zip(groups, keep_counts, strict=True) if k < g.n_units
              for n in g.carriers + g.gates}
    ignored = [m for m in work.modules()
               if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d) and m not in ratio
               and id(m) not in riders]
    if not ratio:
        restore_layers(work, replaced)
        return work
    with deeper_channel_search():  # traces as coreprune does
        pruner = tp.pruner.MetaPruner(work, example_inputs, importance=spec.make(),
                                      pruning_ratio=0.0, pruning_ratio_dict=ratio,
                                      ignored_layers=ignored, global_pruning=False,
                                      forward_fn=run_model, output_transform=traced_outputs)
        if calibration is not None and not spec.data_independent:
            x, y = calibration
            work.zero_grad()
            with torch.enable_grad():
                F.cross_entropy(work(x), y).backward()
        pruner.step()
    work.zero_grad(set_to_none=True)
    for g, root, k in zip(groups, roots, keep_counts, strict=True):
        got = root.out_features if isinstance(root, nn.Linear) else root.out_channels
        if got != k * g.channel_groups:
            raise UnsupportedModelError(
                f"Torch-Pruning kept {got} output channels of {g.name!r}, not the "
                f"{k * g.channel_groups} asked for")
    restore_layers(work, replaced)
    return work
