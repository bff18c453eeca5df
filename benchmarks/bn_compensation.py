"""BatchNorm moment compensation (``Pruner(compensate=True)``) on the trained CNNs of the CPU
benchmark configs: every registered method at three compression levels, before fine-tuning,
with and without compensation, on the same test subset as the config.

Regenerate (about 5 minutes for ResNet-56 on 2 CPU cores; needs the configs' checkpoints,
trained here by the bench code when missing):

    python benchmarks/bn_compensation.py --configs benchmarks/resnet56_fmnist32_cpu.yaml

VGG-16 without ``coreset-theory`` (its whole-span peeling takes 2.5 minutes a run; about 4
minutes):

    python benchmarks/bn_compensation.py --configs benchmarks/vgg16_fmnist32_cpu.yaml \
        --methods coreset coreset-scaled mussay l1 l2 random \
        --out benchmarks/results/bn_compensation_vgg16.json

Writes ``benchmarks/results/bn_compensation.json`` (one record per run) and prints a table
(tee it to ``benchmarks/results/bn_compensation.log``). One seed (0): ``coreset``,
``coreset-scaled``, ``l1`` and ``l2`` keep the same units whatever the seed; the sampled
methods' spread is not measured here.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from coreprune import io
from coreprune.bench import unpruned_models
from coreprune.pruning import Pruner
from coreprune.train import evaluate

ROOT = Path(__file__).resolve().parent
METHODS = ["coreset", "coreset-scaled", "coreset-theory", "mussay", "l1", "l2", "random"]
LEVELS = [0.3, 0.5, 0.7]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", type=Path,
                    default=[ROOT / "resnet56_fmnist32_cpu.yaml", ROOT / "vgg16_fmnist32_cpu.yaml"])
    ap.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bn_compensation.json")
    args = ap.parse_args()
    records = []
    for cfg, model, te, acc0 in unpruned_models(args.configs,
                                                log=lambda s: print(s, flush=True)):
        x = te.x[:2]
        for level in LEVELS:
            for method in args.methods:
                for seed in [0]:
                    accs = {}
                    for compensate in (False, True):
                        t0 = time.perf_counter()
                        pruner = Pruner(method, params_removed=level, seed=seed,
                                        compensate=compensate)
                        pruned = pruner.fit_transform(model, x)
                        accs[compensate] = evaluate(pruned, te)
                        seconds = time.perf_counter() - t0
                    records.append({"model": cfg.model, "config": cfg.name, "method": method,
                                    "seed": seed, "target": level,
                                    "params_removed": pruner.report_.params_removed,
                                    "acc_unpruned": acc0, "acc_pruned": accs[False],
                                    "acc_pruned_compensated": accs[True],
                                    "test_images": len(te)})
                    print(f"  {level:.1f} {method:15s} seed {seed}  plain {accs[False]:6.2f}  "
                          f"compensated {accs[True]:6.2f}  ({seconds:.1f} s)", flush=True)
    io.write_json(args.out, records, overwrite=True)
    print("\nconfig                  target method           plain  compensated (mean over seeds)")
    keys = sorted({(r["config"], r["target"], r["method"]) for r in records},
                  key=lambda k: (k[0], k[1], METHODS.index(k[2])))
    for name, level, method in keys:
        rs = [r for r in records
              if (r["config"], r["target"], r["method"]) == (name, level, method)]
        a = statistics.mean(r["acc_pruned"] for r in rs)
        b = statistics.mean(r["acc_pruned_compensated"] for r in rs)
        print(f"{name:23s} {level:.1f}    {method:15s} {a:6.2f}  {b:6.2f}")


if __name__ == "__main__":
    main()
