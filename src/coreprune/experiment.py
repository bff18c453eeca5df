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
from .pruning import Pruner
from .train import FINETUNE_EPOCHS, FINETUNE_LR, FINETUNE_OPTIMIZER, evaluate, finetune

__all__ = ["RECORD_KEYS", "prune_and_evaluate"]

RECORD_KEYS = ("model", "dataset", "method", "seed", "params_removed", "flops_removed",
               "acc_unpruned", "acc_pruned", "acc_finetuned")


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

    Returns:
        ``(record, finetuned_model, pruner)``; ``record`` has :data:`RECORD_KEYS` plus
        ``prune_seconds``, ``params``, ``flops`` and the method's settings.
    """
    if acc_unpruned is None:
        acc_unpruned = evaluate(model, test_split, device=device)
    pruner = Pruner(method, seed=seed, **target, **options)
    t0 = time.perf_counter()
    pruned = pruner.fit_transform(model, example_inputs)
    seconds = time.perf_counter() - t0
    rep = pruner.report_
    if device is not None:
        pruned.to(device)
    acc_pruned = evaluate(pruned, test_split, device=device)
    tuned = copy.deepcopy(pruned)
    if finetune_epochs > 0:
        finetune(tuned, train_split, epochs=finetune_epochs, lr=finetune_lr, seed=seed,
                 device=device, progress=False, optimizer=finetune_optimizer)
    acc_ft = evaluate(tuned, test_split, device=device)
    record = {
        "model": model_name, "dataset": dataset, "method": method, "seed": seed,
        "params_removed": rep.params_removed, "flops_removed": rep.flops_removed,
        "acc_unpruned": acc_unpruned, "acc_pruned": acc_pruned, "acc_finetuned": acc_ft,
        "prune_seconds": seconds, "params": [rep.params_before, rep.params_after],
        "flops": [rep.flops_before, rep.flops_after], "target": target,
        "finetune": {"epochs": finetune_epochs, "lr": finetune_lr,
                     "optimizer": finetune_optimizer},
        "settings": rep.method,
        "layers": [{"name": lr.name, "units": lr.n_units, "kept": lr.kept,
                    "total_sensitivity": lr.info.get("total_sensitivity")} for lr in rep.layers],
    }
    return record, tuned, pruner
