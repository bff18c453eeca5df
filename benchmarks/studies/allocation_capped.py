"""Does bounding the equal-error allocation's cuts stop them compounding? ``allocation="error"``
with every layer keeping at least half of the units the uniform allocation keeps it at the same
target (``ERROR_ALLOCATION_MIN_SHARE``; the rule ``"error"`` has followed since), greedy +
reconstruct, before fine-tuning, on the BatchNorm CNNs of ``allocation_cnn.py`` (whose uniform
and uncapped error columns it sits beside: same models, levels and 2,000 test images).

    python benchmarks/studies/allocation_capped.py   # ~30 minutes on 2 CPU cores

Writes ``benchmarks/results/studies/allocation_capped.{json,log}``. (The run that wrote the log
applied the floor by wrapping ``error_budget_keep_counts``, before the library had it; the
library's rule keeps the same units.)
"""

from __future__ import annotations

import sys

import numpy as np
from _outputs import config_models, write_study

from coreprune.pruning import Pruner
from coreprune.pruning.pruner import ERROR_ALLOCATION_MIN_SHARE
from coreprune.train import evaluate

CONFIGS = ("tv_mobilenet_v2_fmnist32_datafree", "tv_efficientnet_b0_fmnist32_datafree",
           "resnet20_fmnist32_datafree", "vgg16_fmnist32_datafree")
LEVELS = (0.3, 0.5, 0.7)


def main() -> int:
    result: dict[str, list[list[float]]] = {}
    share = ERROR_ALLOCATION_MIN_SHARE
    lines = [f"# allocation='error' with every layer keeping at least {share} x the uniform "
             "fraction (greedy + reconstruct, default prior, before fine-tuning; 2,000 "
             "test images); compare allocation_cnn.log", "",
             "| config | training seed | 30% | 50% | 70% |", "|---|---|---|---|---|"]
    means = ["", "| config | mean at 30 / 50 / 70% |", "|---|---|"]
    for name in CONFIGS:
        runs = []
        for _, seed, model, te in config_models(name, test_images=2000):
            runs.append([evaluate(Pruner("greedy", params_removed=level, allocation="error")
                                  .fit_transform(model, te.x[:2]), te) for level in LEVELS])
            lines.append(f"| {name} | {seed} | " + " | ".join(f"{a:.2f}" for a in runs[-1]) + " |")
            print(lines[-1], flush=True)
        result[name] = runs
        means.append(f"| {name} | " + " / ".join(f"{a:.2f}" for a in np.mean(runs, 0)) + " |")
        write_study("allocation_capped", lines + means, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
