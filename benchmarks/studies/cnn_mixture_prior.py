"""Does the default mixture prior of image inputs (pixel correlations 0 / 0.5 / 0.9) hold on
CNNs, where it was chosen on MLPs? Greedy + reconstruct on the trained VGG-16 of the data-free
CNN config at 30 / 50 / 70% of parameters, under the earlier default
(independent pixels, ``input_prior=(0, 1, 0)``) and the mixture; before fine-tuning, no data
read by pruning.

    python benchmarks/studies/cnn_mixture_prior.py [CONFIG ...]   # VGG-16: ~5 minutes, 2 cores

Writes ``benchmarks/results/studies/cnn_mixture_prior.{log,json}``. Accuracy on each config's
test images (VGG-16: its seeded 2,000-image subset); prune time in seconds on 2 CPU cores.
Other data-free configs (e.g. ``resnet20_fmnist32_datafree``) can be named on the command line.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from _outputs import write_study

from coreprune.bench import load_bench_data, load_config, trained_model
from coreprune.pruning import Pruner
from coreprune.pruning.propagation import SPATIAL_CORRELATIONS
from coreprune.train import evaluate

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ("vgg16_fmnist32_datafree",)
LEVELS = (0.3, 0.5, 0.7)
PRIORS = {"independent pixels (0, 1, 0)": (0.0, 1.0, 0.0),
          "mixture (0, 1, (0, 0.5, 0.9)) (default)": (0.0, 1.0, SPATIAL_CORRELATIONS)}


def main(argv: list[str] | None = None) -> int:
    configs = (sys.argv[1:] if argv is None else argv) or CONFIGS
    torch.set_num_threads(2)
    result: dict[str, dict] = {}
    lines = ["# Mixture prior on CNNs (greedy + reconstruct, before fine-tuning)", "",
             "| model | prior | " + " | ".join(f"{int(100 * lv)}%" for lv in LEVELS)
             + " | prune s |", "|---" * (len(LEVELS) + 3) + "|"]
    for name in configs:
        cfg = load_config(ROOT / "benchmarks" / f"{name}.yaml")
        tr, te, _ = load_bench_data(cfg)
        model = trained_model(cfg, tr, print, 0)
        acc0 = evaluate(model, te)
        lines.append(f"| {cfg.model} (unpruned {acc0:.2f}, {len(te)} images) | - |"
                     + " |" * (len(LEVELS) + 1))
        for label, prior in PRIORS.items():
            accs, secs = [], []
            for level in LEVELS:
                t0 = time.perf_counter()
                small = Pruner("greedy", input_prior=prior, **cfg.target(level)).fit_transform(
                    model, te.x[:2])
                secs.append(time.perf_counter() - t0)
                accs.append(evaluate(small, te))
            result[f"{name}/{label}"] = {"acc_unpruned": acc0, "acc": accs, "seconds": secs}
            lines.append(f"| {cfg.model} | {label} | " + " | ".join(f"{a:.2f}" for a in accs)
                         + f" | {sum(secs) / len(secs):.1f} |")
            print(lines[-1], flush=True)
    write_study("cnn_mixture_prior", lines, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
