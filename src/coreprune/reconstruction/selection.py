"""Choosing the units that best explain the others: greedy forward selection.

Keeping the units ``K`` and reconstructing every unit from them by least squares leaves, in the
consumer's output, the error ``E|| V (h - h_hat) ||^2 = tr(G Cov(h | h_K))`` with ``G = V^T V``
and ``Cov(h | h_K)`` the residual covariance of the affine regression on ``h_K``. Forward
selection adds, k times, the unit that lowers that error most. Adding unit j to K lowers it by

    gain_j = S[:, j]^T G S[:, j] / S[j, j]

with ``S`` the current residual covariance; afterwards ``S <- S - S[:, j] S[j, :] / S[j, j]``
(one step of a pivoted Cholesky factorisation of the covariance, pivoting on the weighted
gain instead of the largest diagonal). Each step costs O(n^2); the whole selection O(k n^2).
The error after each step is returned too: the curve of error against k.

With two networks (the original network's units as targets, an already pruned network's units as
candidates), ``S`` splits into the target-candidate cross-covariance and the candidates'
covariance, updated alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg.blas import dger

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


def _downdate(a: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    """``a -= x y^T`` in place (``a`` float64 in Fortran order)."""
    out = dger(-1.0, x, y, a=a, overwrite_a=True)
    if out is not a:  # not updated in place (never for a Fortran-ordered float64 array)
        a[...] = out


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
    """
    s_cc = np.array(cov, dtype=np.float64, order="F")  # Fortran order: BLAS updates in place
    n_c = s_cc.shape[0]
    if s_cc.shape != (n_c, n_c):
        raise GeometryError(f"cov must be square, got {s_cc.shape}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= n_c:
        raise InvalidArgumentError(f"k must be an integer in [1, {n_c}], got {k!r}")
    one = cross is None
    g = np.asarray(gram, dtype=np.float64)
    s_tc = s_cc if one else np.array(cross, dtype=np.float64, order="F")
    if s_tc.shape != (g.shape[0], n_c) or g.shape[0] != g.shape[1]:
        raise GeometryError(f"gram {g.shape} and cross-covariance {s_tc.shape} disagree")
    if one:
        t_cov = s_cc
    else:
        t_cov = None if target_cov is None else np.asarray(target_cov, dtype=np.float64)
    error = float(np.sum(g * t_cov)) if t_cov is not None else 0.0
    gs = np.asfortranarray(g @ s_tc)
    d0 = np.diag(s_cc).copy()
    floor = tol * max(float(d0.max(initial=0.0)), 1e-300)
    fallback = np.einsum("ij,ij->j", s_tc, gs) / np.where(d0 > floor, d0, 1.0)
    alone = np.where(d0 > floor, fallback, 0.0)
    chosen = np.zeros(n_c, dtype=bool)
    order, errors = [], [error]
    for _ in range(k):
        d = np.diag(s_cc)
        live = ~chosen & (d > floor)
        if np.any(live):
            gain = np.where(live, np.einsum("ij,ij->j", s_tc, gs) / np.where(live, d, 1.0),
                            -np.inf)
            j = int(np.argmax(gain))
            u_c = s_cc[:, j] / np.sqrt(d[j])
            u_t = u_c if one else s_tc[:, j] / np.sqrt(d[j])
            error -= float(gain[j])
            # rank-one downdates in place (BLAS dger: one pass, no n x n temporary)
            _downdate(s_cc, u_c, u_c)
            if not one:
                _downdate(s_tc, u_t, u_c)
            _downdate(gs, g @ u_t, u_c)
        else:  # everything is explained: the rest by their initial weighted variance
            j = int(np.argmax(np.where(chosen, -np.inf, fallback)))
        chosen[j] = True
        order.append(j)
        errors.append(max(error, 0.0))
    order_arr = np.asarray(order, dtype=np.int64)
    return GreedySelection(np.sort(order_arr), order_arr, np.asarray(errors), alone)
