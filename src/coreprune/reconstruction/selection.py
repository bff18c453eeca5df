"""Choosing the units that best explain the others: greedy forward selection.

Keeping the units ``K`` and reconstructing every unit from them by least squares leaves, in the
consumer's output, the error ``E|| V (h - h_hat) ||^2 = tr(G Cov(h | h_K))`` with ``G = V^T V``
and ``Cov(h | h_K)`` the residual covariance of the affine regression on ``h_K``. Forward
selection adds, k times, the unit that lowers that error most. Adding unit j to K lowers it by

    gain_j = S[:, j]^T G S[:, j] / S[j, j]

with ``S`` the current residual covariance; afterwards ``S <- S - u u^T``, ``u = S[:, j] /
sqrt(S[j, j])`` (one step of a pivoted Cholesky factorisation of the covariance, pivoting on
the weighted gain instead of the largest diagonal). The error after each step is returned too:
the curve of error against k.

``S`` is never formed. With ``G = F F^T`` (``F`` (n, r), r the rank of ``G``: at most the
consumer's output size) the numerators ``|F^T S[:, j]|^2`` are updated in place:
``F^T S <- F^T S - a u^T`` with ``a = F^T u`` changes numerator j by
``-2 u_j (S^T F a)_j + u_j^2 |a|^2``, and ``S^T F = S_0^T F - L Q^T`` needs only the Cholesky
columns ``L`` chosen so far and ``Q = F^T L``. Step i costs ``O(n (i + r))`` instead of the
``O(n^2)`` of downdating ``S``; the whole selection ``O(n r^2 + n k (k + r))``, and reads
``O(n (k + r))`` memory besides the covariance.

With two networks (the original network's units as targets, an already pruned network's units as
candidates), ``S`` splits into the target-candidate cross-covariance and the candidates'
covariance, updated alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg.lapack import dpstrf

from ..errors import GeometryError, InvalidArgumentError

__all__ = ["GreedySelection", "greedy_selection"]


@dataclass(frozen=True)
class GreedySelection:
    """Result of :func:`greedy_selection`.

    Attributes:
        indices: (k,) the chosen candidates, sorted.
        order: (k,) the same, in the order they were chosen.
        errors: (k + 1,) the model-predicted output error ``tr(G Cov(h_T | h_K))`` with the
            first 0, 1, ..., k chosen units (non-increasing; same units as ``G``'s).
        alone: (n_c,) the error each candidate would explain alone (the first step's gains).
    """

    indices: np.ndarray
    order: np.ndarray
    errors: np.ndarray
    alone: np.ndarray


def _gram_factor(gram: np.ndarray) -> np.ndarray:
    """(n, r) ``F`` with ``F F^T = gram`` to rounding: a pivoted Cholesky factor (LAPACK
    ``dpstrf``) cut at the numerical rank ``r``, or, where that fails, the eigenvectors of the
    eigenvalues above ``1e-12`` of the largest."""
    n = gram.shape[0]
    if n and np.any(gram):
        c, piv, rank, info = dpstrf(gram, lower=1, tol=-1.0)
        if info >= 0 and rank > 0:
            factor = np.empty((n, rank))
            factor[piv - 1] = np.tril(c[:, :rank])
            return factor
    vals, vecs = np.linalg.eigh(gram)
    keep = vals > 1e-12 * max(float(vals.max(initial=0.0)), 1e-300)
    return vecs[:, keep] * np.sqrt(vals[keep])


def greedy_selection(k: int, gram: np.ndarray, cov: np.ndarray,
                     cross: np.ndarray | None = None, target_cov: np.ndarray | None = None,
                     tol: float = 1e-12) -> GreedySelection:
    """Forward-select ``k`` candidate units minimising the output error (module docstring).

    Args:
        k: units to keep, ``1 <= k <= n_candidates``.
        gram: (n_t, n_t) ``V^T V`` over the target units (:func:`~.affine.output_gram`).
        cov: (n_c, n_c) covariance of the candidate units.
        cross: (n_t, n_c) covariance of targets and candidates; ``None``: the targets are the
            candidates (``cross = cov``).
        target_cov: (n_t, n_t) the targets' covariance, for ``errors`` with two networks
            (``None``: ``cov`` when ``cross`` is None, else errors are relative to 0).
        tol: a candidate whose residual variance is at most ``tol`` times the largest initial
            variance is explained already and is not chosen while others are left; once every
            candidate is explained, the rest are taken by their initial weighted variance.

    Returns:
        :class:`GreedySelection`.

    Cost: ``O(n_c n_t r)`` once (``r`` the rank of ``gram``, at most the consumer's output
    size), then ``O((n_c + n_t) (i + r))`` for step ``i``: the residual covariance is never
    formed; step ``i`` reads the ``i`` Cholesky columns chosen so far (module docstring).
    """
    s_cc = np.asarray(cov, dtype=np.float64)
    n_c = s_cc.shape[0]
    if s_cc.shape != (n_c, n_c):
        raise GeometryError(f"cov must be square, got {s_cc.shape}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= n_c:
        raise InvalidArgumentError(f"k must be an integer in [1, {n_c}], got {k!r}")
    one = cross is None
    g = np.asarray(gram, dtype=np.float64)
    s_tc = s_cc if one else np.asarray(cross, dtype=np.float64)
    if s_tc.shape != (g.shape[0], n_c) or g.shape[0] != g.shape[1]:
        raise GeometryError(f"gram {g.shape} and cross-covariance {s_tc.shape} disagree")
    if one:
        t_cov = s_cc
    else:
        t_cov = None if target_cov is None else np.asarray(target_cov, dtype=np.float64)
    error = float(np.sum(g * t_cov)) if t_cov is not None else 0.0
    # B = F^T S_tc, kept as B_0 - Q L_c^T: P = B_0^T, Q = F^T L_t; gain_j = |B[:, j]|^2 / d_j
    f = _gram_factor(0.5 * (g + g.T))
    p = s_tc.T @ f  # (n_c, r)
    numer = np.einsum("ij,ij->i", p, p)
    d = np.diag(s_cc).copy()
    floor = tol * max(float(d.max(initial=0.0)), 1e-300)
    fallback = numer / np.where(d > floor, d, 1.0)
    alone = np.where(d > floor, fallback, 0.0)
    l_c = np.zeros((k, n_c))  # row i: the i-th chosen Cholesky column, candidates
    l_t = l_c if one else np.zeros((k, s_tc.shape[0]))  # ... targets
    q = np.zeros((k, f.shape[1]))
    chosen = np.zeros(n_c, dtype=bool)
    order, errors = [], [error]
    for i in range(k):
        live = ~chosen & (d > floor)
        if np.any(live):
            gain = np.where(live, np.maximum(numer, 0.0) / np.where(live, d, 1.0), -np.inf)
            j = int(np.argmax(gain))
            root = np.sqrt(d[j])
            u_c = (s_cc[:, j] - l_c[:i].T @ l_c[:i, j]) / root
            u_t = u_c if one else (s_tc[:, j] - l_t[:i].T @ l_c[:i, j]) / root
            a = f.T @ u_t
            b = p @ a - l_c[:i].T @ (q[:i] @ a)  # B^T a before this step
            error -= float(gain[j])
            numer -= u_c * (2.0 * b - u_c * (a @ a))
            d -= u_c * u_c
            l_c[i] = u_c
            if not one:
                l_t[i] = u_t
            q[i] = a
        else:  # everything is explained: the rest by their initial weighted variance
            j = int(np.argmax(np.where(chosen, -np.inf, fallback)))
        chosen[j] = True
        order.append(j)
        errors.append(max(error, 0.0))
    order_arr = np.asarray(order, dtype=np.int64)
    return GreedySelection(np.sort(order_arr), order_arr, np.asarray(errors), alone)
