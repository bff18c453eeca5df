"""How well a weighted subset approximates a point set's sum, measured and bounded
(docs/method.md §1).

For points ``q_i`` (rows of an (n, d) array), f(q, y) = |q . y| and a weight ``w_i >= 0`` per
point (0 for points left out), the relative error at a query y is

    err(y) = | sum_i w_i |q_i . y| - sum_i |q_i . y| | / sum_i |q_i . y|.

A coreset promises ``err(y) <= eps`` for every y at once. These functions measure the worst
error over random and gradient-ascent queries, and give the deterministic bound implied by
sensitivity upper bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import GeometryError
from ..validation import check_points, check_positive_int

__all__ = ["relative_errors", "sensitivity_error_bound", "WorstError", "worst_relative_error"]


def _check_weights(points: np.ndarray, weights: np.ndarray) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (points.shape[0],) or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise GeometryError(f"weights must be {points.shape[0]} finite non-negative numbers "
                            f"(0 for points left out), got shape {w.shape}")
    return w


def relative_errors(points: np.ndarray, weights: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """err(y) for each row y of ``queries`` (m, d) -> (m,); 0 where ``sum_i |q_i . y| = 0``."""
    q = check_points(points)
    w = _check_weights(q, weights)
    y = check_points(queries, "queries")
    if y.shape[1] != q.shape[1]:
        raise GeometryError(f"queries have dimension {y.shape[1]}, points {q.shape[1]}")
    a = np.abs(y @ q.T)  # (m, n)
    full = a.sum(axis=1)
    diff = np.abs(a @ (w - 1.0))
    return np.divide(diff, full, out=np.zeros_like(full), where=full > 0)


def sensitivity_error_bound(sensitivities: np.ndarray, weights: np.ndarray) -> float:
    """``min(sum_i |w_i - 1| s_i, max_i |w_i - 1|)``: an upper bound on err(y) for every y.

    Proof: ``|sum_i (w_i - 1)|q_i.y|| <= sum_i |w_i - 1| |q_i.y|``; by the definition of
    sensitivity ``|q_i.y| <= s_i sum_k |q_k.y|`` for any upper bound s_i, which gives the first
    term, and ``|q_i.y| <= sum_k |q_k.y|`` trivially gives the second. For a deterministic
    subset with weights 1 the first term is the total sensitivity of the points left out.
    """
    s = np.asarray(sensitivities, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if s.shape != w.shape or not np.all(np.isfinite(s)) or np.any(s < 0):
        raise GeometryError("sensitivities must be finite, non-negative and match the weights")
    dev = np.abs(w - 1.0)
    return float(min(np.sum(dev * s), dev.max(initial=0.0)))


@dataclass(frozen=True)
class WorstError:
    """Result of :func:`worst_relative_error`.

    Attributes:
        random: the largest err(y) over the random queries.
        ascent: the largest err(y) after gradient ascent (>= ``random``).
        query: (d,) the unit-norm query attaining ``ascent``.
    """

    random: float
    ascent: float
    query: np.ndarray


def worst_relative_error(points: np.ndarray, weights: np.ndarray, rng: np.random.Generator,
                         n_random: int = 256, n_starts: int = 8, steps: int = 100,
                         step_size: float = 0.05) -> WorstError:
    """Search for the query y of largest err(y): ``n_random`` Gaussian queries, then projected
    gradient ascent on the unit sphere from the ``n_starts`` best of them and from the points
    left out of the subset with the largest norms (adversarial starts: a query aligned with a
    dropped point is where dropping it shows most).

    err is scale-invariant and piecewise smooth; its gradient where ``N = sum_i c_i |q_i.y|``
    (c = w - 1), ``D = sum_i |q_i.y|`` is ``sign(N) (D grad N - N grad D) / D^2``.
    """
    q = check_points(points)
    w = _check_weights(q, weights)
    n_random = check_positive_int(n_random, "n_random")
    c = w - 1.0
    y0 = rng.standard_normal((n_random, q.shape[1]))
    errs = relative_errors(q, w, y0)
    best_random = float(errs.max())
    dropped = np.flatnonzero(w == 0)
    norms = np.linalg.norm(q, axis=1)
    adversarial = dropped[np.argsort(-norms[dropped], kind="stable")][:n_starts]
    starts = np.vstack([y0[np.argsort(-errs, kind="stable")[:n_starts]],
                        q[adversarial][norms[adversarial] > 0]])
    best, best_y = best_random, y0[int(np.argmax(errs))]
    for y in starts:
        y = y / np.linalg.norm(y)
        for _ in range(steps):
            t = q @ y
            sg = np.sign(t)
            a = np.abs(t)
            d, num = a.sum(), c @ a
            if d <= 0:
                break
            e = abs(num) / d
            if e > best:
                best, best_y = e, y.copy()
            grad = np.sign(num) * (d * (q.T @ (c * sg)) - num * (q.T @ sg)) / d**2
            grad -= (grad @ y) * y  # tangent to the sphere
            gn = np.linalg.norm(grad)
            if gn == 0:
                break
            y = y + step_size * grad / gn
            y /= np.linalg.norm(y)
    return WorstError(best_random, float(best), best_y / np.linalg.norm(best_y))
