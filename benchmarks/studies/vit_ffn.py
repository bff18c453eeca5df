"""Does data-free reconstruction keep a trained vision transformer's accuracy when its FFN
neurons are pruned? A small timm ViT (28x28 Fashion-MNIST, patch 4, width 64, depth 4, 4
heads, MLP ratio 4) trained here for 3 epochs (Adam, seed 0); every block's FFN keeps 70 / 50 /
30% of its 256 neurons (the residual stream and attention stay whole). Moments come from the
LayerNorm before each FFN (independent N(beta, gamma^2)); no data is read by pruning. Needs
``pip install coreprune[timm]``.

    python benchmarks/studies/vit_ffn.py   # ~10 minutes on 2 CPU cores

Writes ``benchmarks/results/studies/vit_ffn.{log,json}``; accuracy on a seeded 2,000-image test
subset, before fine-tuning.
"""

from __future__ import annotations

import sys

import timm
import torch
from _outputs import accuracy_rows, trained_model_and_table, write_study

KEEP = (0.7, 0.5, 0.3)
SETTINGS = (  # (label, method, Pruner options)
    ("random", "random", {"compensate": "none"}),
    ("l1+none", "l1", {"compensate": "none"}),
    ("l1+reconstruct", "l1", {"compensate": "reconstruct"}),
    ("coreset+reconstruct", "coreset", {"compensate": "reconstruct"}),
    ("greedy+reconstruct", "greedy", {}),
    ("tp-magnitude", "tp-magnitude", {}),
)


def vit() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10,
                             img_size=28, patch_size=4, in_chans=1, embed_dim=64, depth=4,
                             num_heads=4, mlp_ratio=4.0)


def main() -> int:
    model, te, lines, base = trained_model_and_table(
        vit(), "fashion-mnist", "ViT (width 64, depth 4), Fashion-MNIST, 3 epochs",
        [f"FFN keeps {100 * k:.0f}%" for k in KEEP], epochs=3, lr=1e-3, optimizer="adam")
    ffn = {f"blocks.{i}.mlp.fc1" for i in range(4)}
    result = {"unpruned": base, "rows": accuracy_rows(
        model, SETTINGS, [{"layer_ratios": dict.fromkeys(ffn, k)} for k in KEEP], te, lines)}
    write_study("vit_ffn", lines, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
