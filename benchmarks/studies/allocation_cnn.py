"""Under the default moment model (the mixture prior; BatchNorm-matched synthetic inputs where
their synthesis is within budget), does giving every layer the same predicted reconstruction
error (``allocation="error"``) beat the same fraction per layer (``"uniform"``) on every
BatchNorm CNN trained here? Greedy + reconstruct (the default method), before fine-tuning.

    python benchmarks/studies/allocation_cnn.py   # ~40 minutes on 2 CPU cores

Writes ``benchmarks/results/studies/allocation_cnn.{json,log}``; accuracy on a seeded 2,000-image
test subset (0.05 points per image). ``allocation.py`` asked the same of the MLPs and of two CNNs
under the earlier independent-pixel prior. ResNet-56 is left out for time (its synthesis takes
most of an hour here).

It measured ``allocation="error"`` as it was before every layer kept at least half of its
uniform width (allocation_capped.py); ``_outputs.uncapped_error_allocation`` pins that rule.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from _outputs import config_models, uncapped_error_allocation, write_study

from coreprune.pruning import Pruner
from coreprune.train import evaluate

CONFIGS = ("tv_mobilenet_v2_fmnist32_datafree", "tv_efficientnet_b0_fmnist32_datafree",
           "resnet20_fmnist32_datafree", "vgg16_fmnist32_datafree")
LEVELS = (0.3, 0.5, 0.7)
ALLOCATIONS = ("uniform", "error")


def main() -> int:
    uncapped_error_allocation()  # the rule measured here (module docstring)
    result: dict[str, dict[str, list[list[float]]]] = {}
    lines = ["# Allocation on BatchNorm CNNs: uniform vs same predicted error (greedy + "
             "reconstruct, default prior and moment model, before fine-tuning; 2,000 test "
             "images)", "",
             "| config | training seed | params removed | uniform | error | seconds (uniform / "
             "error) |", "|---|---|---|---|---|---|"]
    means = ["", "| config | params removed | uniform (mean) | error (mean) |", "|---|---|---|---|"]
    for name in CONFIGS:
        accs: dict[str, list[list[float]]] = {a: [] for a in ALLOCATIONS}
        for _, seed, model, te in config_models(name, test_images=2000):
            for level in LEVELS:
                cells, secs = [], []
                for allocation in ALLOCATIONS:
                    t = time.perf_counter()
                    pruned = Pruner("greedy", params_removed=level,
                                    allocation=allocation).fit_transform(model, te.x[:2])
                    secs.append(time.perf_counter() - t)
                    cells.append(evaluate(pruned, te))
                    if level == LEVELS[0]:
                        accs[allocation].append([])
                    accs[allocation][-1].append(cells[-1])
                lines.append(f"| {name} | {seed} | {level:.0%} | {cells[0]:.2f} | "
                             f"{cells[1]:.2f} | {secs[0]:.0f} / {secs[1]:.0f} |")
                print(lines[-1], flush=True)
        result[name] = accs
        for i, level in enumerate(LEVELS):
            u, e = (np.mean([run[i] for run in accs[a]]) for a in ALLOCATIONS)
            means.append(f"| {name} | {level:.0%} | {u:.2f} | {e:.2f} |")
        write_study("allocation_cnn", lines + means, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
