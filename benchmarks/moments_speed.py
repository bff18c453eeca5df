"""How the data-free reconstruction's cost grows with a layer's width n (2 CPU cores here).

For n = 256 ... 4096 units fed by a 784-wide input under N(0, I), times each step of one layer's
reconstruction: the pre-activation moments, the activation moments by each route (closed-form
ReLU and GELU; Monte Carlo with 20,000 draws and 24-node Gauss-Hermite for GELU), greedy
selection of n/4 units and the least-squares fold; then the whole ``prune`` of LeNet-300-100
with reconstruction.

    python benchmarks/moments_speed.py [--max-n 4096] [--quadrature-max-n 1024]

Writes ``benchmarks/results/moments_speed.{json,log}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from coreprune.models import build_model
from coreprune.pruning import Pruner
from coreprune.reconstruction import (
    Gaussian,
    activation_moments,
    greedy_selection,
    least_squares_fold,
    output_gram,
)

OUT = Path(__file__).resolve().parent / "results"


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def layer_times(n: int, quadrature: bool, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n, 784)) / np.sqrt(784)
    v = rng.normal(size=(256, n)) / np.sqrt(n)
    x = Gaussian.independent(784)
    pre, t_pre = _timed(lambda: x.affine(w, rng.normal(size=n) * 0.1))
    relu, t_relu = _timed(lambda: activation_moments(pre, "relu", method="closed"))
    _, t_gelu = _timed(lambda: activation_moments(pre, "gelu", method="closed"))
    _, t_mc = _timed(lambda: activation_moments(pre, "gelu", method="montecarlo", seed=0))
    t_quad = None
    if quadrature:
        _, t_quad = _timed(lambda: activation_moments(pre, "gelu", method="quadrature"))
    k = n // 4
    sel, t_sel = _timed(lambda: greedy_selection(k, output_gram(v.T), relu.cov))
    _, t_fold = _timed(lambda: least_squares_fold(relu, None, relu.take(sel.indices),
                                                  sel.indices))
    return {"n": n, "preactivation_s": t_pre, "relu_closed_s": t_relu,
            "gelu_closed_s": t_gelu, "gelu_montecarlo_s": t_mc, "gelu_quadrature_s": t_quad,
            "greedy_select_s": t_sel, "lstsq_fold_s": t_fold}


def lenet_times(repeats: int = 3) -> dict[str, float]:
    torch.manual_seed(0)
    model = build_model("lenet300")
    out = {}
    for method in ("greedy", "coreset"):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            Pruner(method, keep_ratio=0.2).fit_transform(model)
            times.append(time.perf_counter() - t0)
        out[f"lenet300_{method}_reconstruct_s"] = min(times)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-n", type=int, default=4096)
    ap.add_argument("--quadrature-max-n", type=int, default=1024)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    rows = []
    n = 256
    while n <= args.max_n:
        rows.append(layer_times(n, n <= args.quadrature_max_n))
        print(json.dumps(rows[-1]), flush=True)
        n *= 2
    lenet = lenet_times()
    OUT.mkdir(exist_ok=True)
    (OUT / "moments_speed.json").write_text(json.dumps({"layers": rows, **lenet}, indent=2)
                                            + "\n")
    cols = [k for k in rows[0] if k != "n"]
    lines = ["# One layer's reconstruction cost vs width n (784-wide input, seconds, 2 cores)", "",
             "| n | " + " | ".join(c[:-2].replace("_", " ") for c in cols) + " |",
             "|---" * (len(cols) + 1) + "|"]
    for r in rows:
        lines.append(f"| {r['n']} | " + " | ".join(
            "-" if r[c] is None else f"{r[c]:.3f}" for c in cols) + " |")
    lines += ["", f"LeNet-300-100, 80% of units removed, whole prune with reconstruction: greedy "
              f"{lenet['lenet300_greedy_reconstruct_s']:.2f} s, coreset "
              f"{lenet['lenet300_coreset_reconstruct_s']:.2f} s (best of 3)."]
    (OUT / "moments_speed.log").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
