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
import time
import warnings

import timm
import torch
from _outputs import write_study

from coreprune.data import load_dataset
from coreprune.errors import CorepruneWarning
from coreprune.experiment import prune_model
from coreprune.metrics import count_params
from coreprune.train import evaluate, train

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
    warnings.simplefilter("ignore", CorepruneWarning)
    torch.set_num_threads(2)
    tr, te = load_dataset("fashion-mnist")
    te = te.subset(2000, seed=0)
    model = vit()
    t0 = time.perf_counter()
    train(model, tr, epochs=3, lr=1e-3, optimizer="adam", seed=0, progress=False)
    model.eval()
    base = evaluate(model, te)
    lines = [f"ViT (width 64, depth 4), Fashion-MNIST, 3 epochs ({time.perf_counter() - t0:.0f} "
             f"s): {base:.2f} on {len(te)} test images, {count_params(model)} parameters",
             "| setting | " + " | ".join(f"FFN keeps {100 * k:.0f}%" for k in KEEP) + " |",
             "|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    result = {"unpruned": base, "rows": {}}
    ffn = {f"blocks.{i}.mlp.fc1" for i in range(4)}
    for label, method, options in SETTINGS:
        cells, accs = [], []
        for k in KEEP:
            pruned = prune_model(model, method, {"layer_ratios": dict.fromkeys(ffn, k)},
                                 seed=0, example_inputs=te.x[:2], **options)[0]
            acc = evaluate(pruned.eval(), te)
            accs.append(acc)
            cells.append(f"{acc:.2f} ({1 - count_params(pruned) / count_params(model):.1%})")
        result["rows"][label] = accs
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    write_study("vit_ffn", lines, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
