"""Does reconstructing the residual stream per consumer make ``prune_coupled=True`` usable? The
default (greedy + reconstruct) on the seed-0 ResNet-20 of ``resnet20_fmnist32_datafree.yaml``
at 30 / 50% of parameters removed: the stream left whole (the default), the stream pruned and
reconstructed per consumer, and the stream pruned and dropped (what 0.4 did before).

    python benchmarks/studies/coupled_reconstruction.py   # ~3 minutes on 2 CPU cores

Writes ``benchmarks/results/studies/coupled_reconstruction.log``; accuracy on a seeded
2,000-image test subset, before fine-tuning.
"""

from __future__ import annotations

import sys
from pathlib import Path

from _outputs import INDEPENDENT_PIXELS, write_study

from coreprune.bench import load_bench_data, load_config, trained_model
from coreprune.metrics import count_params
from coreprune.pruning import Pruner, synthesis
from coreprune.train import evaluate

ROOT = Path(__file__).resolve().parents[2]
LEVELS = (0.3, 0.5)


def main() -> int:
    cfg = load_config(ROOT / "benchmarks" / "resnet20_fmnist32_datafree.yaml")
    tr, te, _ = load_bench_data(cfg)
    te = te.subset(2000, seed=0)
    model = trained_model(cfg, tr, train_seed=0).eval()
    lines = [f"ResNet-20 seed 0, unpruned {evaluate(model, te):.2f} on {len(te)} test images",
             "| setting | " + " | ".join(f"{100 * r:.0f}% params" for r in LEVELS) + " |",
             "|---|---|---|"]

    def row(label: str, coupled: bool) -> None:
        cells = []
        for r in LEVELS:
            pruned = Pruner(params_removed=r, prune_coupled=coupled,
                            input_prior=INDEPENDENT_PIXELS).fit_transform(
                model, te.x[:2])
            cells.append(f"{evaluate(pruned, te):.2f} ({count_params(pruned)} params)")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)

    row("stream whole (default)", False)
    row("stream pruned, reconstructed per consumer", True)
    for cls in (synthesis.SampledMoments, synthesis.AutoMoments):  # the per-consumer folds off
        cls.consumer_moments = lambda self, g: None
    row("stream pruned, dropped", True)
    write_study("coupled_reconstruction", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
