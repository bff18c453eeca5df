"""torchvision ResNet-50 pruned to 62% fewer parameters (the paper's ImageNet operating point):
time per group and in total on the CPU, reported counts against an independent count.

Regenerate (2 CPU cores, randomly initialised weights: none are downloaded):

    python benchmarks/resnet50_timing.py

Writes ``benchmarks/results/resnet50_timing.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from coreprune import io
from coreprune.metrics import count_flops, count_params
from coreprune.models import build_model
from coreprune.pruning import Pruner


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = build_model("tv_resnet50").eval()
    x = torch.randn(1, 3, 224, 224)
    t0 = time.perf_counter()
    pruner = Pruner("coreset", params_removed=0.62, seed=0)
    small = pruner.fit_transform(model, x)
    total = time.perf_counter() - t0
    rep = pruner.report_
    out = small(torch.randn(2, 3, 224, 224))
    result = {"seconds_total": total, "params": [rep.params_before, rep.params_after],
              "params_removed": rep.params_removed, "flops": [rep.flops_before, rep.flops_after],
              "independent_params": count_params(small),
              "independent_flops": count_flops(small, x), "output_shape": list(out.shape),
              "groups": [{"name": g.name, "units": g.n_units, "kept": g.kept,
                          "seconds": g.seconds} for g in rep.layers]}
    for g in rep.layers:
        print(f"{g.name:24s} {g.n_units:5d} -> {g.kept:5d}  {g.seconds:6.2f}s")
    print(f"total {total:.1f}s, params {rep.params_before:,} -> {rep.params_after:,} "
          f"({rep.params_removed:.1%} removed; independent count {count_params(small):,}), "
          f"FLOPs {rep.flops_before:,} -> {rep.flops_after:,}")
    io.write_json(Path(__file__).resolve().parent / "results" / "resnet50_timing.json", result,
                  overwrite=True)


if __name__ == "__main__":
    main()
