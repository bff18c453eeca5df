"""Does giving every layer the same predicted reconstruction error (``allocation="error"``) beat
the same fraction per layer (``"uniform"``, the default)? Greedy + reconstruction on every
trained model of the data-free configs, at their parameter levels, before fine-tuning.

    python benchmarks/studies/allocation.py   # ~1 hour on 2 CPU cores

Writes ``benchmarks/results/studies/allocation.{json,log}``; the CNNs are tested on a seeded
2,000-image subset, the MLPs on their whole test sets.

It measured ``allocation="error"`` as it was before every layer kept at least half of its
uniform width (allocation_capped.py); ``_outputs.uncapped_error_allocation`` pins that rule.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from _outputs import INDEPENDENT_PIXELS, uncapped_error_allocation, write_study

from coreprune.bench import load_bench_data, load_config, trained_model
from coreprune.pruning import Pruner
from coreprune.train import evaluate

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {  # config -> parameter levels
    "lenet300_fmnist_datafree": (0.7, 0.8, 0.9), "lenet300_fmnist_nm": (0.7, 0.8, 0.9),
    "mlp_fmnist_gelu": (0.7, 0.8, 0.9), "mlp_fmnist_silu": (0.7, 0.8, 0.9),
    "mlp_fmnist_tanh": (0.7, 0.8, 0.9), "mlp_digits_gelu": (0.7, 0.8, 0.9),
    "mlp_digits_tanh": (0.7, 0.8, 0.9), "resnet20_fmnist32_datafree": (0.3, 0.5, 0.7),
    "vgg16_fmnist32_datafree": (0.3, 0.5, 0.7),
}  # ResNet-56 left out for time (its synthesis is most of an hour here)


def main() -> int:
    uncapped_error_allocation()  # the rule measured here (module docstring)
    result = {}
    lines = ["# Allocation: uniform vs same predicted error (greedy + reconstruct, before "
             "fine-tuning; mean over trained models)", "",
             "| config | levels (params removed) | uniform | error |", "|---|---|---|---|"]
    for name, levels in CONFIGS.items():
        cfg = load_config(ROOT / "benchmarks" / f"{name}.yaml")
        tr, te, _ = load_bench_data(cfg)
        if cfg.model not in ("lenet300", "mlp"):
            te = te.subset(2000, seed=0)
        accs: dict[str, list[list[float]]] = {"uniform": [], "error": []}
        for seed in cfg.train_seeds:
            model = trained_model(cfg, tr, print, seed)
            for allocation in accs:
                accs[allocation].append([evaluate(Pruner(
                    "greedy", params_removed=r, allocation=allocation,
                    input_prior=INDEPENDENT_PIXELS).fit_transform(
                    model, te.x[:2]), te) for r in levels])
        result[name] = accs
        cells = [" / ".join(f"{a:.2f}" for a in np.mean(accs[k], 0)) for k in accs]
        lines.append(f"| {name} | {' / '.join(f'{100 * r:.0f}%' for r in levels)} | "
                     f"{cells[0]} | {cells[1]} |")
        print(lines[-1], flush=True)
    write_study("allocation", lines, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
