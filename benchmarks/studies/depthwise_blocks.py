"""Does carrying units through depthwise convolutions prune a trained MobileNet well without
data? torchvision MobileNet-V2 (width 0.5, a 1-channel stem) trained here for 2 epochs on
Fashion-MNIST-32 (SGD, seed 0), pruned at 30 / 50% of parameters with every expansion pruned
through its depthwise conv: L1 selection with no compensation, with BatchNorm mean compensation
and with least-squares reconstruction, and greedy + reconstruct (the default; moments on
BatchNorm-matched synthetic inputs, the analytic ReLU6 moments being Monte Carlo and slow here),
next to random selection and Torch-Pruning's magnitude pruning to the same structure.

    python benchmarks/studies/depthwise_blocks.py   # ~10 minutes on 2 CPU cores

Writes ``benchmarks/results/studies/depthwise_blocks.{log,json}``; accuracy on a seeded
2,000-image test subset, before fine-tuning.
"""

from __future__ import annotations

import sys

import torch
import torchvision
from _outputs import INDEPENDENT_PIXELS, accuracy_rows, trained_model_and_table, write_study
from torch import nn

LEVELS = (0.3, 0.5)
SETTINGS = (  # (label, method, Pruner options)
    ("random", "random", {"compensate": "none"}),
    ("l1+none", "l1", {"compensate": "none"}),
    ("l1+bn-mean", "l1", {"compensate": "bn-mean"}),
    ("l1+reconstruct", "l1", {"compensate": "reconstruct", "moment_model": "synthetic",
                              "input_prior": INDEPENDENT_PIXELS}),
    ("greedy+reconstruct", "greedy", {"moment_model": "synthetic",
                                      "input_prior": INDEPENDENT_PIXELS}),
    ("tp-magnitude", "tp-magnitude", {}),
)


def mobilenet() -> nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(num_classes=10, width_mult=0.5)
    stem = model.features[0][0]
    model.features[0][0] = nn.Conv2d(1, stem.out_channels, 3, 1, 1, bias=False)  # 32x32 input
    return model


def main() -> int:
    model, te, lines, base = trained_model_and_table(
        mobilenet(), "fashion-mnist-32", "MobileNet-V2 (width 0.5), Fashion-MNIST-32, 2 epochs",
        [f"{100 * r:.0f}% params" for r in LEVELS], epochs=2, lr=0.05, optimizer="sgd",
        weight_decay=4e-5)
    result = {"unpruned": base, "rows": accuracy_rows(
        model, SETTINGS, [{"params_removed": r} for r in LEVELS], te, lines, timed=True)}
    write_study("depthwise_blocks", lines, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
