"""Ablation of the coreset's settings (METHOD §4) on the trained BatchNorm CNNs, with the
0.3 default BatchNorm compensation: point scaling and projection rank, each changed alone from
the default, beside the uncompensated default and compensated L1 (the strongest baseline of
the GPU bench before fine-tuning). Before fine-tuning, seed 0 (every setting here is
deterministic top-k), at three compression levels.

Regenerate (about 15 minutes on 2 CPU cores for the four configs; needs their checkpoints,
trained by the bench code when missing; the GPU configs' checkpoints come from a GPU session):

    python benchmarks/cnn_ablation.py --test-images 2000 | tee benchmarks/results/cnn_ablation.log

``--test-images N`` tests on a seeded subset of N test images where the config itself tests
on more (the CPU configs' own subsets are smaller and are kept). VGG-16's whole-span setting
is left out (2.5 minutes of whole-span peeling a run). Writes
``benchmarks/results/cnn_ablation.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from coreprune import io
from coreprune.bench import SUBSET_SEED, unpruned_models
from coreprune.pruning import Pruner
from coreprune.train import evaluate

ROOT = Path(__file__).resolve().parent
LEVELS = [0.3, 0.5, 0.7]
# (label, method, options): each changes one setting of the default coreset
SETTINGS: list[tuple[str, str, dict[str, Any]]] = [
    ("default (v, k=8, +bn)", "coreset", {}),
    ("no compensation", "coreset", {"compensate": False}),
    ("scaling ‖p‖·v", "coreset", {"scaling": "outgoing_x_incoming_norm"}),
    ("scaling ‖v‖·p", "coreset", {"scaling": "incoming_x_outgoing_norm"}),
    ("projection k=4", "coreset", {"projection": 4}),
    ("projection k=16", "coreset", {"projection": 16}),
    ("projection auto", "coreset", {"projection": "auto"}),
    ("whole span", "coreset", {"projection": None}),
    ("l1+bn", "l1", {"compensate": True}),
]
CONFIGS = ["resnet56_fmnist32.yaml", "vgg16_fmnist32.yaml", "resnet56_fmnist32_cpu.yaml",
           "vgg16_fmnist32_cpu.yaml"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", type=Path, default=[ROOT / c for c in CONFIGS])
    ap.add_argument("--test-images", type=int, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "cnn_ablation.json")
    args = ap.parse_args()
    records = []
    for cfg, model, te, acc0 in unpruned_models(args.configs,
                                                log=lambda s: print(s, flush=True)):
        if args.test_images is not None and len(te) > args.test_images:
            te = te.subset(args.test_images, seed=SUBSET_SEED)
            acc0 = evaluate(model, te)
            print(f"  tested on {len(te)} images: unpruned {acc0:.2f}", flush=True)
        for label, method, options in SETTINGS:
            if options.get("projection", 8) is None and cfg.model.startswith("vgg"):
                continue
            row = []
            for level in LEVELS:
                t0 = time.perf_counter()
                pruner = Pruner(method, params_removed=level, seed=0, **options)
                acc = evaluate(pruner.fit_transform(model, te.x[:2]), te)
                records.append({"config": cfg.name, "model": cfg.model, "setting": label,
                                "method": method, "options": options, "target": level,
                                "params_removed": pruner.report_.params_removed,
                                "acc_unpruned": acc0, "acc_pruned": acc,
                                "test_images": len(te),
                                "seconds": time.perf_counter() - t0})
                row.append(f"{acc:6.2f}")
            print(f"  {label:24s} " + "  ".join(row), flush=True)
    io.write_json(args.out, records, overwrite=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
