"""torchvision ResNet-50 pruned to 62% fewer parameters (the paper's ImageNet operating point):
whole pruning time on the CPU for coreprune's settings, with and without reconstruction, beside
Torch-Pruning's magnitude pruning of the same model to the same per-layer widths, measured in
the same run; counts checked against an independent count.

Regenerate (2 CPU cores, randomly initialised weights: none are downloaded):

    python benchmarks/resnet50_timing.py

Writes ``benchmarks/results/resnet50_timing.json`` and prints the table with the ratio of each
setting's time to Torch-Pruning's.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from coreprune import io
from coreprune.metrics import count_flops, count_params
from coreprune.models import build_model
from coreprune.pruning import Pruner
from coreprune.pruning.peers import prune_with_torch_pruning

SETTINGS = [  # (label, method, options)
    ("greedy (default: reconstruct)", "greedy", {}),
    ("coreset (reconstruct)", "coreset", {}),
    ("coreset+bn-mean (the 0.3 default)", "coreset", {"compensate": "bn-mean"}),
    ("coreset+none", "coreset", {"compensate": "none"}),
]


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = build_model("tv_resnet50").eval()
    x = torch.randn(1, 3, 224, 224)
    rows, structure = [], None
    for label, method, options in SETTINGS:
        t0 = time.perf_counter()
        pruner = Pruner(method, params_removed=0.62, seed=0, **options)
        small = pruner.fit_transform(model, x)
        seconds = time.perf_counter() - t0
        rep = pruner.report_
        assert rep.params_after == count_params(small)
        structure = structure or (pruner.groups_, pruner.keep_counts_, pruner.example_inputs_)
        rows.append({"setting": label, "seconds": seconds, "params": [rep.params_before,
                                                                      rep.params_after],
                     "params_removed": rep.params_removed,
                     "flops": [rep.flops_before, rep.flops_after],
                     "independent_flops": count_flops(small, x),
                     "output_shape": list(small(torch.randn(2, 3, 224, 224)).shape),
                     "moment_model": rep.target.get("moment_model"),
                     "synthesis": rep.target.get("synthesis"),
                     "groups": [{"name": g.name, "units": g.n_units, "kept": g.kept,
                                 "seconds": g.seconds,
                                 "compensation": g.info.get("compensation")}
                                for g in rep.layers]})
    t0 = time.perf_counter()
    peer = prune_with_torch_pruning(model, "tp-magnitude", *structure)
    tp_seconds = time.perf_counter() - t0
    tp = {"setting": "Torch-Pruning magnitude (same widths)", "seconds": tp_seconds,
          "params": [count_params(model), count_params(peer)]}
    print(f"{'setting':40s} {'seconds':>8s} {'x Torch-Pruning':>16s}  params after")
    for r in [*rows, tp]:
        print(f"{r['setting']:40s} {r['seconds']:8.2f} {r['seconds'] / tp_seconds:16.1f}  "
              f"{r['params'][1]:,}")
    print(f"(params before {count_params(model):,}; {rows[0]['params_removed']:.1%} removed; "
          f"FLOPs {rows[0]['flops'][0]:,} -> {rows[0]['flops'][1]:,})")
    io.write_json(Path(__file__).resolve().parent / "results" / "resnet50_timing.json",
                  {"torch_threads": 2, "settings": rows, "torch_pruning": tp}, overwrite=True)


if __name__ == "__main__":
    main()
