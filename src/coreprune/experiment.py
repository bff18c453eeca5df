"""One pruning experiment as a record: prune, evaluate, fine-tune, evaluate.

Shared by the command line (``coreprune prune``, the main job) and the benchmarks so that the
numbers in ``benchmarks/results`` are produced by the same code a user runs.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import torch
from torch import nn

from .data import Split
from .errors import InvalidArgumentError
from .metrics import count_flops, count_params
from .pruning import Pruner
from .pruning.peers import PEERS, is_peer, prune_with_torch_pruning
from .train import FINETUNE_EPOCHS, FINETUNE_LR, FINETUNE_OPTIMIZER, evaluate, finetune

__all__ = ["RECORD_KEYS", "prune_and_evaluate", "prune_model"]

RECORD_KEYS = ("model", "dataset", "method", "seed", "params_removed", "flops_removed",
               "acc_unpruned", "acc_pruned", "acc_finetuned")

CALIBRATION_SIZE = 256  # images a data-dependent peer (tp-taylor) reads


def _peer_prune(model: nn.Module, method: str, target: dict[str, Any], seed: int,
                train_split: Split | None, example_inputs: torch.Tensor | None,
                **structure_options: Any) -> tuple[nn.Module, Pruner, dict[str, Any]]:
    """Torch-Pruning peer ``method`` at the structure coreprune's budget rule gives ``target``
    (``structure_options``: ``prune_coupled``, ``allocation``, ...)."""
    if structure_options.get("units", "neurons") != "neurons":
        raise InvalidArgumentError(f"the Torch-Pruning peer {method!r} prunes neurons here; "
                                   "units='heads' takes a head method")
    if structure_options.pop("compensate", None) not in (None, False, "none"):
        raise InvalidArgumentError(f"compensate applies to coreprune's own methods, not to the "
                                   f"Torch-Pruning peer {method!r}")
    if structure_options.pop("distill_steps", 0):
        raise InvalidArgumentError(f"distill_steps applies to coreprune's own methods, not to "
                                   f"the Torch-Pruning peer {method!r}")
    structure = Pruner("l1", seed=seed, **target, **structure_options)
    structure.fit(model, example_inputs)
    calibration = None
    if not PEERS[method].data_independent:
        idx = torch.randperm(len(train_split), generator=torch.Generator().manual_seed(seed))
        idx = idx[:CALIBRATION_SIZE]
        p = next(model.parameters())
        calibration = (train_split.x[idx].to(p.device, p.dtype), train_split.y[idx].to(p.device))
    pruned = prune_with_torch_pruning(model, method, structure.groups_, structure.keep_counts_,
                                      structure.example_inputs_, calibration)
    x = structure.example_inputs_
    stats = {"params": [count_params(model), count_params(pruned)],
             "flops": [count_flops(model, x), count_flops(pruned, x)],
             "settings": {"method": method, "data_independent": PEERS[method].data_independent,
                          "calibration_images": 0 if calibration is None else CALIBRATION_SIZE},
             "layers": [{"name": g.name, "units": g.n_units, "kept": k, "total_sensitivity": None}
                        for g, k in zip(structure.groups_, structure.keep_counts_, strict=True)]}
    return pruned, structure, stats


def prune_model(model: nn.Module, method: str, target: dict[str, Any], seed: int,
                example_inputs: torch.Tensor | None = None, train_split: Split | None = None,
                **options: Any) -> tuple[nn.Module, Pruner, dict[str, Any], float]:
    """Prune ``model`` (untouched) with ``method`` (a registered method or a Torch-Pruning
    peer) to ``target``: ``(pruned, pruner, stats, seconds)``, ``stats`` holding the
    parameters and FLOPs before and after, the settings and the per-layer report.

    Raises:
        InvalidArgumentError: a peer that reads data (``tp-taylor``) without ``train_split``.
    """
    t0 = time.perf_counter()
    if is_peer(method):
        if train_split is None and not PEERS[method].data_independent:
            raise InvalidArgumentError(f"method {method!r} reads training data: give a dataset")
        pruned, pruner, stats = _peer_prune(model, method, target, seed, train_split,
                                            example_inputs, **options)
    else:
        pruner = Pruner(method, seed=seed, **target, **options)
        pruned = pruner.fit_transform(model, example_inputs)
        stats = _report_stats(pruner)
    return pruned, pruner, stats, time.perf_counter() - t0


def prune_and_evaluate(model: nn.Module, method: str, target: dict[str, Any], seed: int,
                       train_split: Split, test_split: Split, model_name: str,
                       dataset: str, finetune_epochs: int = FINETUNE_EPOCHS,
                       finetune_lr: float = FINETUNE_LR,
                       finetune_optimizer: str = FINETUNE_OPTIMIZER,
                       acc_unpruned: float | None = None,
                       example_inputs: torch.Tensor | None = None,
                       device: str | None = None, **options: Any
                       ) -> tuple[dict[str, Any], nn.Module, Pruner]:
    """Prune ``model`` (untouched) with ``method`` to ``target`` (e.g. ``{"params_removed": 0.9}``),
    evaluate before and after ``finetune_epochs`` of fine-tuning.

    ``method`` is a registered importance method or a Torch-Pruning peer (``tp-*``, see
    :data:`coreprune.pruning.peers.PEERS`), which prunes to the same per-layer structure.

    Returns:
        ``(record, finetuned_model, pruner)``; ``record`` has :data:`RECORD_KEYS` plus
        ``prune_seconds``, ``params``, ``flops`` and the method's settings.
    """
    if acc_unpruned is None:
        acc_unpruned = evaluate(model, test_split, device=device)
    pruned, pruner, stats, seconds = prune_model(model, method, target, seed, example_inputs,
                                                 train_split, **options)
    if device is not None:
        pruned.to(device)
    acc_pruned = evaluate(pruned, test_split, device=device)
    tuned = copy.deepcopy(pruned)
    acc_ft = acc_pruned
    if finetune_epochs > 0:
        finetune(tuned, train_split, epochs=finetune_epochs, lr=finetune_lr, seed=seed,
                 device=device, progress=False, optimizer=finetune_optimizer)
        acc_ft = evaluate(tuned, test_split, device=device)
    (p0, p1), (f0, f1) = stats["params"], stats["flops"]
    record = {
        "model": model_name, "dataset": dataset, "method": method, "seed": seed,
        "params_removed": 1.0 - p1 / p0, "flops_removed": 1.0 - f1 / f0 if f0 else 0.0,
        "acc_unpruned": acc_unpruned, "acc_pruned": acc_pruned, "acc_finetuned": acc_ft,
        "prune_seconds": seconds, "target": target,
        "finetune": {"epochs": finetune_epochs, "lr": finetune_lr,
                     "optimizer": finetune_optimizer},
        **stats,
    }
    return record, tuned, pruner


def _report_stats(pruner: Pruner) -> dict[str, Any]:
    rep = pruner.report_
    return {"params": [rep.params_before, rep.params_after],
            "flops": [rep.flops_before, rep.flops_after],
            "settings": {**rep.method, **{k: rep.target[k] for k in _SETTINGS
                                          if k in rep.target}},
            "layers": [{"name": lr.name, "units": lr.n_units, "kept": lr.kept,
                        "total_sensitivity": lr.info.get("total_sensitivity"),
                        "draws": lr.info.get("draws"), "indices": lr.indices,
                        "weights": lr.weights,
                        **{k: lr.info[k] for k in _LAYER_INFO if k in lr.info}}
                       for lr in rep.layers]}


# what a record keeps of the pruner's target and of each layer's report
_SETTINGS = ("units", "fold", "prune_coupled", "allocation", "compensate", "compensation",
             "input_prior", "moment_model", "moment_method", "synthesis", "distillation")
_LAYER_INFO = ("compensation", "predicted_error", "predicted_error_drop", "fold_growth", "guard",
               "variance_share", "guard_offset_dropped",
               "moment_model", "merged", "skipped", "fallback")
