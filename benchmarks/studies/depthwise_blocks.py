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
import time
import warnings

import torch
import torchvision
from _outputs import write_study
from torch import nn

from coreprune.data import load_dataset
from coreprune.errors import CorepruneWarning
from coreprune.experiment import prune_model
from coreprune.metrics import count_params
from coreprune.train import evaluate, train

LEVELS = (0.3, 0.5)
SETTINGS = (  # (label, method, Pruner options)
    ("random", "random", {"compensate": "none"}),
    ("l1+none", "l1", {"compensate": "none"}),
    ("l1+bn-mean", "l1", {"compensate": "bn-mean"}),
    ("l1+reconstruct", "l1", {"compensate": "reconstruct", "moment_model": "synthetic"}),
    ("greedy+reconstruct", "greedy", {"moment_model": "synthetic"}),
    ("tp-magnitude", "tp-magnitude", {}),
)


def mobilenet() -> nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(num_classes=10, width_mult=0.5)
    stem = model.features[0][0]
    model.features[0][0] = nn.Conv2d(1, stem.out_channels, 3, 1, 1, bias=False)  # 32x32 input
    return model


def main() -> int:
    warnings.simplefilter("ignore", CorepruneWarning)
    torch.set_num_threads(2)
    tr, te = load_dataset("fashion-mnist-32")
    te = te.subset(2000, seed=0)
    model = mobilenet()
    t0 = time.perf_counter()
    train(model, tr, epochs=2, lr=0.05, optimizer="sgd", weight_decay=4e-5, seed=0,
          progress=False)
    model.eval()
    base = evaluate(model, te)
    lines = [f"MobileNet-V2 (width 0.5), Fashion-MNIST-32, 2 epochs ({time.perf_counter() - t0:.0f}"
             f" s): {base:.2f} on {len(te)} test images, {count_params(model)} parameters",
             "| setting | " + " | ".join(f"{100 * r:.0f}% params" for r in LEVELS) + " |",
             "|---|---|---|"]
    print("\n".join(lines), flush=True)
    result = {"unpruned": base, "rows": {}}
    for label, method, options in SETTINGS:
        cells, accs = [], []
        for r in LEVELS:
            t = time.perf_counter()
            pruned = prune_model(model, method, {"params_removed": r}, seed=0,
                                 example_inputs=te.x[:2], **options)[0]
            acc = evaluate(pruned.eval(), te)
            accs.append(acc)
            cells.append(f"{acc:.2f} ({1 - count_params(pruned) / count_params(model):.1%}, "
                         f"{time.perf_counter() - t:.0f} s)")
        result["rows"][label] = accs
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    write_study("depthwise_blocks", lines, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
