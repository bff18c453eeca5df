"""Carathéodory's theorem, constructively: shrink a weighted point set to at most d + 1 points
with the same weighted mean.

Two algorithms:

* :func:`caratheodory_reduce` — exact null-space elimination: one SVD of the lifted points,
  then each step moves along a null vector until one weight is zero.
* :func:`fast_caratheodory_reduce` — Maalouf, Jubran, Feldman (NeurIPS 2019): split the points
  into k clusters, reduce the clusters' weighted means with the exact method, keep only the
  surviving clusters, repeat; O(n d + log(n/d) d^4 k) time for k = 2(d + 1).

Both return ``(indices, weights)`` with ``len(indices) <= d + 1``, weights >= 0 summing to the
input total, and ``weights @ points[indices] == input weights @ points`` up to rounding.
"""

from __future__ import annotations

import numpy as np

from ..errors import GeometryError
from ..validation import check_points

__all__ = ["caratheodory_reduce", "fast_caratheodory_reduce", "reduce_convex_combination"]


def _check(points: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = check_points(points)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (p.shape[0],):
        raise GeometryError(f"weights must have shape ({p.shape[0]},), got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise GeometryError("weights must be finite and non-negative")
    return p, w


def _exact(p: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact elimination on validated input; returns indices into ``p`` and their weights.

    One SVD gives a basis of the null space of ``[p^T; 1^T]`` (the directions that keep both
    the weighted sum and the total weight); each step moves along one null vector until a
    weight hits zero, then eliminates that point from the remaining null vectors
    (Gaussian elimination), so m points cost one SVD plus O(m (m - d)^2).
    """
    idx = np.flatnonzero(w > 0)
    m, d = idx.size, p.shape[1]
    if m <= d + 1:
        return idx, w[idx].copy()
    pts, wts = p[idx], w[idx].copy()
    lifted = np.vstack([pts.T, np.ones((1, m))])  # (d + 1, m)
    _, s, vt = np.linalg.svd(lifted, full_matrices=True)
    rank = int(np.sum(s > s[0] * max(lifted.shape) * np.finfo(float).eps))
    null = vt[rank:].T.copy()  # (m, m - rank)
    alive = np.ones(m, dtype=bool)
    for col in range(null.shape[1]):
        v = null[:, col]
        if not np.any(v[alive] > 0):
            v = -v
        cand = np.flatnonzero(alive & (v > 1e-14 * np.abs(v).max()))
        ratios = wts[cand] / v[cand]
        j = int(cand[np.argmin(ratios)])
        wts -= ratios.min() * v
        wts[j] = 0.0
        np.maximum(wts, 0.0, out=wts)
        alive[j] = False
        rest = null[:, col + 1:]
        rest -= np.outer(v / v[j], rest[j])
        rest[j] = 0.0
    keep = alive & (wts > 0)
    return idx[keep], wts[keep]


def caratheodory_reduce(points: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact Carathéodory: at most d + 1 of ``points`` (n, d) with the same weighted sum.

    Args:
        points: (n, d) finite array.
        weights: (n,) non-negative weights (any positive total).

    Returns:
        ``(indices (m,), new_weights (m,))``, ``m <= d + 1``, ``new_weights.sum() == weights.sum()``
        and ``new_weights @ points[indices] == weights @ points`` (up to rounding).
    """
    p, w = _check(points, weights)
    return _exact(p, w)


def fast_caratheodory_reduce(
    points: np.ndarray, weights: np.ndarray, clusters: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Fast Carathéodory (Maalouf, Jubran, Feldman 2019, Algorithm 2); same contract as
    :func:`caratheodory_reduce`.

    Args:
        points: (n, d) finite array.
        weights: (n,) non-negative weights.
        clusters: number of clusters per round, at least d + 2 (default 2(d + 1)).
    """
    p, w = _check(points, weights)
    d = p.shape[1]
    k = max(d + 2, clusters or 2 * (d + 1))
    idx = np.flatnonzero(w > 0)
    cur_w = w[idx].copy()
    while idx.size > k:
        chunks = np.array_split(np.arange(idx.size), k)
        cw = np.array([cur_w[c].sum() for c in chunks])
        means = np.stack([cur_w[c] @ p[idx[c]] / cw[i] for i, c in enumerate(chunks)])
        keep, new_cw = _exact(means, cw)
        sel = np.concatenate([chunks[i] for i in keep])
        factor = np.concatenate([np.full(chunks[i].size, new_cw[j] / cw[i])
                                 for j, i in enumerate(keep)])
        idx, cur_w = idx[sel], cur_w[sel] * factor
    sub_idx, sub_w = _exact(p[idx], cur_w)
    return idx[sub_idx], sub_w


def reduce_convex_combination(
    points: np.ndarray, weights: np.ndarray, fast_threshold: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Carathéodory reduction that picks the exact or fast algorithm by the support size
    (fast above ``fast_threshold`` points, default 4(d + 1))."""
    threshold = fast_threshold if fast_threshold is not None else 4 * (np.shape(points)[1] + 1)
    if np.count_nonzero(np.asarray(weights) > 0) > threshold:
        return fast_caratheodory_reduce(points, weights)
    return caratheodory_reduce(points, weights)
