"""Turning sensitivity (or any importance) scores into a weighted subset of units
(docs/method.md §1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import GeometryError

__all__ = [
    "WeightedSubset",
    "sample_distinct",
    "top_k_subset",
    "sample_size_bound",
    "coreset_error_bound",
]


@dataclass(frozen=True)
class WeightedSubset:
    """Units to keep and the factor each kept unit's outgoing weights are multiplied by.

    Attributes:
        indices: (k,) sorted unit indices.
        weights: (k,) coreset weights (1.0 for deterministic selections).
        draws: number of i.i.d. draws taken (0 for deterministic selections).
    """

    indices: np.ndarray
    weights: np.ndarray
    draws: int = 0


def _check_scores(scores: np.ndarray, k: int) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise GeometryError(f"scores must be a non-empty 1-D array, got shape {s.shape}")
    if not np.all(np.isfinite(s)) or np.any(s < 0):
        raise GeometryError("scores must be finite and non-negative")
    if not 1 <= k <= s.size:
        raise GeometryError(f"k must lie in [1, {s.size}], got {k}")
    return s


def top_k_subset(scores: np.ndarray, k: int) -> WeightedSubset:
    """The k units of largest score (ties broken by lower index), each with weight 1."""
    s = _check_scores(scores, k)
    order = np.lexsort((np.arange(s.size), -s))
    return WeightedSubset(np.sort(order[:k]), np.ones(k))


def sample_distinct(
    probabilities: np.ndarray, k: int, rng: np.random.Generator, batch: int = 4096,
    max_draws: int = 10_000_000,
) -> WeightedSubset:
    """Draw i.i.d. from ``probabilities`` until k distinct units are drawn (docs/method.md §1-2).

    Each kept unit i gets the importance weight ``count_i / (N p_i)`` (N: total draws), so that
    ``sum_{i kept} w_i f(q_i) `` is an unbiased estimate of ``sum_i f(q_i)``.

    If fewer than k units have positive probability, all of them are kept with weight 1 and the
    rest filled by index (their contribution is zero). If ``max_draws`` is reached first (very
    skewed probabilities), the remaining places go to the undrawn units of largest probability
    with weight 1, and the draws so far keep their weights.

    Args:
        probabilities: (n,) non-negative scores; normalised here.
        k: number of distinct units wanted, 1 <= k <= n.
        rng: a seeded ``numpy.random.Generator``.
    """
    p = _check_scores(probabilities, k)
    n = p.size
    positive = np.flatnonzero(p > 0)
    if k == n or positive.size <= k:
        keep = np.concatenate([positive, np.setdiff1d(np.arange(n), positive)[: k - positive.size]])
        return WeightedSubset(np.sort(keep), np.ones(k))
    p = p / p.sum()
    cdf = np.cumsum(p)
    cdf[-1] = 1.0
    counts = np.zeros(n, dtype=np.int64)
    distinct = 0
    total = 0
    while distinct < k and total < max_draws:
        draws = np.minimum(np.searchsorted(cdf, rng.random(batch), side="right"), n - 1)
        # stop exactly at the draw that brings the k-th distinct unit
        first_seen = np.zeros(n, dtype=bool)
        for pos, unit in enumerate(draws):
            if counts[unit] == 0 and not first_seen[unit]:
                first_seen[unit] = True
                distinct += 1
                if distinct == k:
                    draws = draws[: pos + 1]
                    break
        np.add.at(counts, draws, 1)
        total += draws.size
    kept = np.flatnonzero(counts)
    weights = counts[kept] / (total * p[kept])
    if kept.size < k:  # max_draws reached
        rest = [i for i in np.argsort(-p, kind="stable") if counts[i] == 0][: k - kept.size]
        kept = np.concatenate([kept, rest])
        weights = np.concatenate([weights, np.ones(len(rest))])
    order = np.argsort(kept)
    return WeightedSubset(kept[order], weights[order], int(total))


def sample_size_bound(total_sensitivity: float, dim: int, eps: float, delta: float) -> float:
    """Sample size ``N = (t / eps^2) (r log t + log 1/delta)`` of docs/method.md §1 (constant 1).

    The constant of the O(.) is not known; this is the bound's shape with constant 1.
    """
    t = max(total_sensitivity, 1.0 + 1e-12)
    return float(t / eps**2 * (dim * np.log(t) + np.log(1.0 / delta)))


def coreset_error_bound(total_sensitivity: float, dim: int, draws: int, delta: float) -> float:
    """The ``eps`` that :func:`sample_size_bound` gives for ``draws`` samples (constant 1)."""
    t = max(total_sensitivity, 1.0 + 1e-12)
    return float(np.sqrt(t * (dim * np.log(t) + np.log(1.0 / delta)) / max(draws, 1)))
