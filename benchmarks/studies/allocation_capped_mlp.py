"""Does ``allocation="error"`` with its floor (every layer keeping at least half of its uniform
width) also hold on the MLPs, where the rule without the floor lost (``allocation.py``)? Uniform,
error without the floor and error, greedy + reconstruct under the default prior, every trained
model of the MLP data-free configs at 70 / 80 / 90% of parameters, before fine-tuning, on their
whole test sets.

    python benchmarks/studies/allocation_capped_mlp.py   # ~10 minutes on 2 CPU cores

Writes ``benchmarks/results/studies/allocation_capped_mlp.{json,log}``.
"""

from __future__ import annotations

import sys

import numpy as np
from _outputs import config_models, write_study

import coreprune.pruning.pruner as pruner_module
from coreprune.pruning import Pruner
from coreprune.train import evaluate

CONFIGS = ("lenet300_fmnist_datafree", "lenet300_fmnist_nm", "mlp_fmnist_gelu", "mlp_fmnist_silu",
           "mlp_fmnist_tanh", "mlp_digits_gelu", "mlp_digits_silu", "mlp_digits_tanh")
LEVELS = (0.7, 0.8, 0.9)
SETTINGS = (("uniform", "uniform", None), ("error without the floor", "error", 0.0),
            ("error", "error", pruner_module.ERROR_ALLOCATION_MIN_SHARE))


def main() -> int:
    result: dict[str, dict[str, list[list[float]]]] = {}
    lines = ["# Allocation on the MLPs: uniform, error without the floor, error (greedy + "
             "reconstruct, default prior, before fine-tuning; mean over trained models at "
             "70 / 80 / 90% of parameters)", "",
             "| config | " + " | ".join(s[0] for s in SETTINGS) + " |",
             "|---|" + "---|" * len(SETTINGS)]
    for name in CONFIGS:
        accs: dict[str, list[list[float]]] = {label: [] for label, _, _ in SETTINGS}
        for _, _, model, te in config_models(name):
            for label, allocation, share in SETTINGS:
                if share is not None:
                    pruner_module.ERROR_ALLOCATION_MIN_SHARE = share
                accs[label].append([evaluate(Pruner(
                    "greedy", params_removed=level, allocation=allocation
                ).fit_transform(model, te.x[:2]), te) for level in LEVELS])
        result[name] = accs
        lines.append(f"| {name} | " + " | ".join(
            " / ".join(f"{a:.2f}" for a in np.mean(accs[label], 0))
            for label, _, _ in SETTINGS) + " |")
        print(lines[-1], flush=True)
        write_study("allocation_capped_mlp", lines, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
