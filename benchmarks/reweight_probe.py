"""Probe: does folding a mean-preserving weight into deterministic top-k selections rescue
BatchNorm networks before fine-tuning?

Every kept unit's outgoing weights are multiplied by n/k (n units, k kept: the next layer's
input keeps its average mass, as the sampled methods' ``count/(N·prob)`` weights do in
expectation). Compared with the plain top-k coreset, on the trained CNNs of the CPU bench
configs, one seed (these selections do not depend on it; ``random-nk`` uses seed 0), before
fine-tuning, on the configs' test subsets, all without BatchNorm compensation
(``compensate=False``; the top-k coreset compensates by default since 0.3). The ``*-nk``
methods are registered here only; they are not part of coreprune.

Regenerate (about 2 minutes per config on 2 CPU cores; needs the configs' checkpoints,
trained by the bench code when missing):

    python benchmarks/reweight_probe.py --configs benchmarks/resnet56_fmnist32_cpu.yaml \\
        benchmarks/vgg16_fmnist32_cpu.yaml | tee benchmarks/results/reweight_probe.log

Writes ``benchmarks/results/reweight_probe.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from coreprune import io
from coreprune.bench import unpruned_models
from coreprune.importance import ImportanceMethod, Selection, UnitSet, get_method, register_method
from coreprune.pruning import Pruner
from coreprune.train import evaluate

ROOT = Path(__file__).resolve().parent
BASES = ["coreset", "coreset-scaled", "l1", "l2", "random"]
METHODS = ["coreset"] + [f"{b}-nk" for b in BASES]
LEVELS = [0.3, 0.5, 0.7]


class MeanPreserving(ImportanceMethod):
    """``base``'s selection with every kept unit's weight multiplied by n/k."""

    def __init__(self, base: str) -> None:
        self.base = get_method(base)
        self.name = f"{base}-nk"  # type: ignore[misc]

    def scores(self, units: UnitSet) -> np.ndarray:
        return self.base.scores(units)

    def select(self, units: UnitSet, k: int, rng: np.random.Generator) -> Selection:
        s = self.base.select(units, k, rng)
        return Selection(s.indices, s.weights * (units.n / k), s.scores, s.info)

    def config(self) -> dict:
        return {"method": self.name}


for _base in BASES:
    register_method(f"{_base}-nk", f"probe: {_base} with n/k folded")(
        lambda b=_base: MeanPreserving(b))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", type=Path,
                    default=[ROOT / "resnet56_fmnist32_cpu.yaml", ROOT / "vgg16_fmnist32_cpu.yaml"])
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "reweight_probe.json")
    args = ap.parse_args()
    records = []
    for cfg, model, te, acc0 in unpruned_models(args.configs,
                                                log=lambda s: print(s, flush=True)):
        for level in LEVELS:
            for method in METHODS:
                t0 = time.perf_counter()
                # no BatchNorm compensation: the probe isolates the folded n/k
                pruner = Pruner(method, params_removed=level, seed=0, compensate=False)
                acc = evaluate(pruner.fit_transform(model, te.x[:2]), te)
                records.append({"model": cfg.model, "config": cfg.name, "method": method,
                                "seed": 0, "target": level,
                                "params_removed": pruner.report_.params_removed,
                                "acc_unpruned": acc0, "acc_pruned": acc, "test_images": len(te)})
                print(f"  {level:.1f} {method:18s} pruned {acc:6.2f}  "
                      f"({time.perf_counter() - t0:.1f} s)", flush=True)
    io.write_json(args.out, records, overwrite=True)


if __name__ == "__main__":
    main()
