"""Geometry speed: our MVEE against cvxpy's log-det formulation, and the growth of a full layer
sensitivity computation with n (units) and d (outgoing dimension).

Regenerate (about 5 minutes on 2 CPU cores; needs the benchmark extra, ``pip install -e
.[bench]``, which installs cvxpy and its solvers):

    python benchmarks/geometry_speed.py

Writes ``benchmarks/results/geometry_speed.json``. Part 1 solves the symmetric MVEE of the same
1000 x 50 point sets both ways and prints the time ratio (reference / ours) and the volume
ratio (ours / reference) of the two *enclosing* ellipsoids, each scaled by its measured
violation so that it contains every point. Tolerances: ours at relative containment
tolerance 1e-3 and 1e-4 (volume within (1+tol)^(r/2) of optimal, by weak duality); the
reference is cvxpy with SCS at eps 1e-3 (the same nominal tolerance) and 1e-5 (accurate: the
optimum to compare volumes with). cvxpy's interior-point CLARABEL took 97 s on 200 x 50 here,
so SCS is the faster of the two references. Part 2 times ``CoresetImportance.scores``
(projection, Löwner ellipsoids, Carathéodory, peeling) on random layers, default setting and
theory-faithful setting (whole span), and fits the growth exponent ``time ~ n^a`` / ``d^b`` by
least squares on log-log.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from coreprune.geometry import loewner_ellipsoid
from coreprune.importance import CoresetImportance, UnitSet
from coreprune.io import write_json

ROOT = Path(__file__).resolve().parent
OUR_TOLS = (1e-3, 1e-4)
REF_EPS = (1e-3, 1e-5)


def ours(q: np.ndarray, tol: float) -> tuple[float, float]:
    """(seconds, log volume of the enclosing ellipsoid) of our symmetric MVEE at ``tol``."""
    t0 = time.perf_counter()
    ell = loewner_ellipsoid(q, tol=tol, symmetric=True)
    sec = time.perf_counter() - t0
    _, logdet = np.linalg.slogdet(ell.shape)  # E = {x : x^T S x <= 1}, vol ~ det(S)^(-1/2)
    v = max(ell.max_violation, 0.0)
    return sec, -0.5 * logdet + 0.5 * ell.rank * math.log1p(v)


def reference(q: np.ndarray, eps: float) -> tuple[float, float]:
    """(seconds, log volume) of cvxpy + SCS: maximise log det A s.t. ||A q_i|| <= 1
    (E = {x : ||A x|| <= 1}), scaled by its violation so that it contains every point."""
    import cvxpy as cp

    d = q.shape[1]
    a = cp.Variable((d, d), PSD=True)
    prob = cp.Problem(cp.Maximize(cp.log_det(a)), [cp.norm(q @ a, 2, axis=1) <= 1])
    t0 = time.perf_counter()
    prob.solve(solver=cp.SCS, eps=eps)
    sec = time.perf_counter() - t0
    A = a.value
    viol = max(float(np.max(np.linalg.norm(q @ A, axis=1) ** 2)) - 1.0, 0.0)
    _, logdet = np.linalg.slogdet(A)  # vol ~ det(A)^(-1) = det(A^2)^(-1/2)
    return sec, -logdet + 0.5 * d * math.log1p(viol)


def mvee_vs_reference(n: int, d: int, seeds: int) -> list[dict]:
    rows = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        # anisotropic Gaussian cloud: a realistic, not axis-aligned shape
        q = rng.standard_normal((n, d)) @ rng.standard_normal((d, d))
        mine = {tol: ours(q, tol) for tol in OUR_TOLS}
        ref = {eps: reference(q, eps) for eps in REF_EPS}
        for tol, eps in ((1e-3, 1e-3), (1e-4, 1e-5), (1e-3, 1e-5)):
            (t_o, lv_o), (t_r, lv_r) = mine[tol], ref[eps]
            row = {"n": n, "d": d, "seed": seed, "tol_ours": tol, "eps_scs": eps,
                   "seconds_ours": t_o, "seconds_ref": t_r, "time_ratio": t_r / t_o,
                   "volume_ratio": math.exp(lv_o - lv_r)}
            rows.append(row)
            print(f"MVEE n={n} d={d} seed={seed} ours tol={tol:g}: {t_o:.3f} s; cvxpy+SCS "
                  f"eps={eps:g}: {t_r:.2f} s; time ratio {row['time_ratio']:.0f}x; volume "
                  f"ours/ref {row['volume_ratio']:.4f}", flush=True)
    return rows


def layer_time(method: CoresetImportance, n: int, d: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    units = UnitSet(rng.standard_normal((n, 64)), rng.standard_normal((n, d)),
                    rng.standard_normal((n, 63)), f"n{n}_d{d}")
    t0 = time.perf_counter()
    method.scores(units)
    return time.perf_counter() - t0


def exponent(xs: list[int], ts: list[float]) -> float:
    return float(np.polyfit(np.log(xs), np.log(ts), 1)[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "geometry_speed.json")
    args = ap.parse_args()
    try:
        import cvxpy  # noqa: F401
    except ImportError:
        sys.exit("geometry_speed.py needs cvxpy: pip install -e '.[bench]'")
    result: dict = {"mvee": mvee_vs_reference(1000, 50, args.seeds)}
    summary = {}
    for tol, eps in ((1e-3, 1e-3), (1e-4, 1e-5), (1e-3, 1e-5)):
        rows = [r for r in result["mvee"] if (r["tol_ours"], r["eps_scs"]) == (tol, eps)]
        summary[f"ours_tol{tol:g}_vs_scs_eps{eps:g}"] = {
            "time_ratio_min": min(r["time_ratio"] for r in rows),
            "time_ratio_median": float(np.median([r["time_ratio"] for r in rows])),
            "volume_ratio_min": min(r["volume_ratio"] for r in rows),
            "volume_ratio_max": max(r["volume_ratio"] for r in rows)}
    result["mvee_1000x50"] = summary
    print(json.dumps(summary, indent=1))

    default = CoresetImportance()
    theory = CoresetImportance(projection=None)
    grid_n = [256, 512, 1024, 2048, 4096]
    grid_d = [576, 1152, 2304, 4608]
    scaling: dict = {"default_vs_n": [], "default_vs_d": [], "theory_vs_n": []}
    for n in grid_n:
        t = layer_time(default, n, 4608)
        scaling["default_vs_n"].append({"n": n, "d": 4608, "seconds": t})
        print(f"layer sensitivity (default, k=8) n={n} d=4608: {t:.2f} s", flush=True)
    for d in grid_d:
        t = layer_time(default, 4096, d)
        scaling["default_vs_d"].append({"n": 4096, "d": d, "seconds": t})
        print(f"layer sensitivity (default, k=8) n=4096 d={d}: {t:.2f} s", flush=True)
    for n in [32, 64, 128, 256]:
        t = layer_time(theory, n, 4608)
        scaling["theory_vs_n"].append({"n": n, "d": 4608, "seconds": t})
        print(f"layer sensitivity (theory, whole span r=n) n={n} d=4608: {t:.2f} s", flush=True)
    scaling["exponents"] = {
        "default_n": exponent(grid_n, [r["seconds"] for r in scaling["default_vs_n"]]),
        "default_d": exponent(grid_d, [r["seconds"] for r in scaling["default_vs_d"]]),
        "theory_n": exponent([r["n"] for r in scaling["theory_vs_n"]],
                             [r["seconds"] for r in scaling["theory_vs_n"]])}
    result["layer_sensitivity"] = scaling
    print(json.dumps(scaling["exponents"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result, overwrite=True)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
