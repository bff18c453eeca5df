"""Does the default mixture prior of image inputs (pixel correlations 0 / 0.5 / 0.9) hold on
CNNs, where it was chosen on MLPs? Greedy + reconstruct on the trained VGG-16 of the data-free
CNN config at 30 / 50 / 70% of parameters, under the earlier default
(independent pixels, ``input_prior=(0, 1, 0)``) and the mixture; before fine-tuning, no data
read by pruning.

    python benchmarks/studies/cnn_mixture_prior.py vgg16_fmnist32_datafree \
        resnet20_fmnist32_datafree resnet56_fmnist32_datafree     # the committed log
    python benchmarks/studies/cnn_mixture_prior.py resnet56_fmnist32_datafree \
        resnet20_fmnist32_datafree --levels 0.5 0.7 --seeds 1 2 --name cnn_mixture_prior_seeds

The logs ``cnn_mixture_prior`` (seed 0, before the seed column) and ``cnn_mixture_prior_seeds``
were made at commit 92f1525, when synthetic inputs started from samples of the whole mixture;
``cnn_mixture_prior_synthesis_resnet56`` and ``_resnet20`` (``--priors mixture --levels 0.5 0.7
--seeds 0 1 2 --name ...``) measure the default since, synthetic inputs started from the first
component. Independent-pixel rows are the same in both.

Writes ``benchmarks/results/studies/NAME.{log,json}`` (default ``cnn_mixture_prior``). Accuracy
on each config's test images (VGG-16: its seeded 2,000-image subset) of its first trained
model; ``--seeds``: the pruning seeds (they seed the synthetic inputs that ResNets' moments
come from, behind residual additions, and Monte Carlo moments). Prune time in seconds on 2 CPU
cores (with other jobs running when the committed logs were made).
"""

from __future__ import annotations

import argparse
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
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("configs", nargs="*", default=list(CONFIGS))
    ap.add_argument("--levels", nargs="+", type=float, default=list(LEVELS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--name", default="cnn_mixture_prior")
    ap.add_argument("--priors", nargs="+", choices=("independent", "mixture"),
                    default=["independent", "mixture"])
    args = ap.parse_args(argv)
    levels = args.levels
    torch.set_num_threads(2)
    result: dict[str, dict] = {}
    lines = ["# Mixture prior on CNNs (greedy + reconstruct, before fine-tuning)", "",
             "| model | prior | seed | " + " | ".join(f"{100 * lv:g}%" for lv in levels)
             + " | prune s |", "|---" * (len(levels) + 4) + "|"]
    for name in args.configs:
        cfg = load_config(ROOT / "benchmarks" / f"{name}.yaml")
        tr, te, _ = load_bench_data(cfg)
        model = trained_model(cfg, tr, print, 0)
        acc0 = evaluate(model, te)
        lines.append(f"| {cfg.model} (unpruned {acc0:.2f}, {len(te)} images) | - | - |"
                     + " |" * (len(levels) + 1))
        for seed in args.seeds:
            for label, prior in PRIORS.items():
                if label.split()[0] not in args.priors:
                    continue
                accs, secs = [], []
                for level in levels:
                    t0 = time.perf_counter()
                    small = Pruner("greedy", input_prior=prior, seed=seed,
                                   **cfg.target(level)).fit_transform(model, te.x[:2])
                    secs.append(time.perf_counter() - t0)
                    accs.append(evaluate(small, te))
                result[f"{name}/{label}/seed {seed}"] = {"acc_unpruned": acc0, "levels": levels,
                                                         "acc": accs, "seconds": secs}
                lines.append(f"| {cfg.model} | {label} | {seed} | "
                             + " | ".join(f"{a:.2f}" for a in accs)
                             + f" | {sum(secs) / len(secs):.1f} |")
                print(lines[-1], flush=True)
    write_study(args.name, lines, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
