"""The README's figure: accuracy before fine-tuning (no data read by pruning) against the level
removed, coreprune's default beside the paper's coreset and the data-free peers, on four trained
models, drawn from the committed bench records.

    python benchmarks/headline_figure.py      # writes docs/headline.png
"""

from __future__ import annotations

import sys
from io import BytesIO
from pathlib import Path

from coreprune import io
from coreprune.bench import load_config, read_records, summarize

ROOT = Path(__file__).resolve().parents[1]
PANELS = [  # (config, title)
    ("lenet300_fmnist_datafree", "LeNet-300-100, Fashion-MNIST"),
    ("mlp_fmnist_gelu", "MLP 784-500-300 GELU, Fashion-MNIST"),
    ("vgg16_fmnist32_datafree", "VGG-16, Fashion-MNIST-32"),
    ("resnet56_fmnist32_datafree", "ResNet-56, Fashion-MNIST-32"),
]
LINES = [  # (method label, legend, style)
    ("greedy", "coreprune default (greedy + reconstruct)", dict(color="C3", lw=2.4)),
    ("coreset", "coreset + reconstruct", dict(color="C0", lw=1.6)),
    ("coreset+none", "coreset (Tukan et al.), dropped", dict(color="C0", lw=1.2, ls="--")),
    ("neuron-merging", "Neuron Merging", dict(color="C2", lw=1.2, ls="--")),
    ("mussay", "Mussay et al.", dict(color="C4", lw=1.2, ls="--")),
    ("tp-magnitude", "Torch-Pruning magnitude", dict(color="C7", lw=1.2, ls="--")),
]


def main() -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.6))
    for ax, (name, title) in zip(axes, PANELS, strict=True):
        cfg = load_config(ROOT / "benchmarks" / f"{name}.yaml")
        rows = summarize(read_records(ROOT / cfg.records))
        for label, legend, style in LINES:
            pts = [r for r in rows if r["method"] == label]
            if pts:
                ax.plot([100 * r["target"] for r in pts], [r["pruned_mean"] for r in pts],
                        marker="o", ms=3, label=legend, **style)
        ax.axhline(rows[0]["unpruned_mean"], color="k", lw=0.8, ls=":", label="unpruned")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("hidden units removed per layer (%)" if rows[0]["kind"] == "units"
                      else "parameters removed (%)", fontsize=8)
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy before fine-tuning (%)", fontsize=8)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    png = BytesIO()
    fig.savefig(png, format="png", dpi=100)
    out = io.atomic_write_bytes(ROOT / "docs" / "headline.png", png.getvalue(), overwrite=True)
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
