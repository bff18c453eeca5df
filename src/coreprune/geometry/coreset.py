"""ℓ∞-coresets and sensitivity upper bounds for f(q, y) = |q . y| (docs/method.md §1).

All functions take plain arrays: ``points`` is (n, d), one row per unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.optimize

from ..errors import GeometryError
from ..validation import check_points
from .caratheodory import reduce_convex_combination
from .ellipsoid import Ellipsoid, loewner_ellipsoid

__all__ = [
    "LinfCoreset",
    "PeelResult",
    "linf_coreset",
    "peel_sensitivities",
    "project_top_k",
    "exact_sensitivities",
]


@dataclass(frozen=True)
class LinfCoreset:
    """Result of :func:`linf_coreset`.

    Attributes:
        indices: sorted row indices of the coreset S.
        alpha: the guarantee ``max_{q in S} |q.y| >= max_{q in Q} |q.y| / alpha`` for every y;
            ``alpha = sqrt(r * kappa_max) <= r sqrt(1 + tol) <= r (1 + tol)``.
        ellipsoid: the symmetric Löwner ellipsoid of ±Q it was built from.
        axis_supports: for each semi-axis, the (at most r + 1) rows whose convex combination
            (with signs) equals the scaled semi-axis endpoint.
    """

    indices: np.ndarray
    alpha: float
    ellipsoid: Ellipsoid
    axis_supports: tuple[np.ndarray, ...]


def linf_coreset(points: np.ndarray, tol: float = 1e-3, rtol: float = 1e-10) -> LinfCoreset:
    """ℓ∞-coreset of docs/method.md §1, Carathéodory: Löwner ellipsoid, semi-axes, Carathéodory.

    Let u be the ellipsoid's dual weights, ``M = sum_i u_i q_i q_i^T = sum_k s_k e_k e_k^T``.
    The endpoint ``b_k = sqrt(s_k) e_k`` of the John ellipsoid ``{x^T M^{-1} x <= 1}`` equals
    ``sum_i c_ik q_i`` with ``c_ik = u_i (q_i . e_k) / sqrt(s_k)`` and ``sum_i |c_ik| <= 1``
    (Cauchy–Schwarz), a convex combination of ±Q (the slack goes to ``0 = (q - q)/2``); no LP
    is needed. Carathéodory shrinks each combination to at most r + 1 points; S is their union.

    Guarantee: for every y, ``max_{q in S} |q.y| >= max_{q in Q} |q.y| / alpha`` with
    ``alpha = sqrt(r kappa_max)``, since ``|q.y| <= sqrt(kappa_max) sqrt(y^T M y)`` and
    ``sqrt(y^T M y) = ||(b_k.y)_k||_2 <= sqrt(r) max_k |b_k.y|``. ``|S| <= r (r + 1)``.

    Args:
        points: (n, d) finite array.
        tol: Löwner ellipsoid tolerance.
        rtol: numerical-rank threshold.
    """
    q = check_points(points)
    ell = loewner_ellipsoid(q, tol=tol, symmetric=True, rtol=rtol)
    r = ell.rank
    if r == 0:  # all points are zero: any single point is a coreset with alpha = 1
        return LinfCoreset(np.array([0]), 1.0, ell, (np.array([0]),))
    y = q @ ell.basis
    u = ell.weights
    support = np.flatnonzero(u > 0)
    ys, us = y[support], u[support]
    m = (ys.T * us) @ ys
    sig, evecs = np.linalg.eigh(m)
    minv = np.linalg.inv(m)
    kappa_max = float(np.max(np.einsum("ij,jk,ik->i", y, minv, y)))
    alpha = math.sqrt(r * kappa_max)
    anchor = int(np.argmax(us))
    supports: list[np.ndarray] = []
    for k in range(r):
        c = us * (ys @ evecs[:, k]) / math.sqrt(sig[k])
        signs = np.where(c >= 0, 1.0, -1.0)
        pts = signs[:, None] * ys
        wts = np.abs(c)
        slack = 1.0 - wts.sum()
        owner = support
        if slack > 0:
            pts = np.vstack([pts, ys[anchor], -ys[anchor]])
            wts = np.concatenate([wts, [slack / 2, slack / 2]])
            owner = np.concatenate([support, [support[anchor], support[anchor]]])
        idx, _ = reduce_convex_combination(pts, wts)
        supports.append(np.unique(owner[idx]))
    indices = np.unique(np.concatenate(supports))
    return LinfCoreset(indices, alpha, ell, tuple(supports))


@dataclass(frozen=True)
class PeelResult:
    """Result of :func:`peel_sensitivities`.

    Attributes:
        upper_bounds: (n,) valid upper bounds on each point's sensitivity (in [0, 1]).
        peel_index: (n,) 1-based peel that removed each point (0 for zero rows).
        alphas: (T,) the ℓ∞-coreset factor of each peel.
        coreset_sizes: (T,) the size of each peel.
        mahalanobis: (n,) ``||q_i||`` in the first peel's John ellipsoid (a bound on its own).
    """

    upper_bounds: np.ndarray
    peel_index: np.ndarray
    alphas: np.ndarray
    coreset_sizes: np.ndarray
    mahalanobis: np.ndarray

    @property
    def total(self) -> float:
        """Total sensitivity t = sum of the upper bounds (drives the sample size,
        docs/method.md §1)."""
        return float(self.upper_bounds.sum())


def peel_sensitivities(
    points: np.ndarray, tol: float = 1e-3, max_peels: int | None = None, rtol: float = 1e-10
) -> PeelResult:
    """Sensitivity upper bounds by peeling ℓ∞-coresets (docs/method.md §1, peeling).

    ``Q_1 = Q``, ``S_t = linf_coreset(Q_t)``, ``Q_{t+1} = Q_t \\ S_t``. A point removed in peel
    t(i) meets, in every earlier peel t' < t(i), a point with ``|q.y| >= |q_i.y| / alpha_t'``;
    the peels are disjoint, so

        s_i <= 1 / (1 + sum_{t' < t(i)} 1 / alpha_t')      (= alpha / (alpha + t(i) - 1)
                                                            for a constant alpha).

    Also ``s_i <= sqrt(q_i^T M_1^{-1} q_i)`` (its norm in the first peel's John ellipsoid, which
    lies in conv(±Q)). The returned bound is the minimum of the two (and 1). Zero rows have
    sensitivity 0. Total sensitivity is O(r^3 log n) (Σ_t 1/t over n / |S_t| peels).

    Args:
        points: (n, d) finite array.
        tol: Löwner ellipsoid tolerance of each peel.
        max_peels: stop after this many peels; the rest get the (valid) bound of peel T + 1.
        rtol: numerical-rank threshold.
    """
    q = check_points(points)
    n = q.shape[0]
    norms = np.linalg.norm(q, axis=1)
    nonzero = norms > 0
    bounds = np.zeros(n)
    peel_index = np.zeros(n, dtype=np.int64)
    mahal = np.zeros(n)
    remaining = np.flatnonzero(nonzero)
    alphas: list[float] = []
    sizes: list[int] = []
    inv_alpha_sum = 0.0
    while remaining.size:
        if max_peels is not None and len(alphas) >= max_peels:
            bounds[remaining] = 1.0 / (1.0 + inv_alpha_sum)
            peel_index[remaining] = len(alphas) + 1
            break
        core = linf_coreset(q[remaining], tol=tol, rtol=rtol)
        if not alphas:
            ell = core.ellipsoid
            mahal[remaining] = ell.mahalanobis(q[remaining]) * math.sqrt(ell.rank)
        chosen = remaining[core.indices]
        bounds[chosen] = 1.0 / (1.0 + inv_alpha_sum)
        peel_index[chosen] = len(alphas) + 1
        inv_alpha_sum += 1.0 / core.alpha
        alphas.append(core.alpha)
        sizes.append(chosen.size)
        remaining = np.setdiff1d(remaining, chosen, assume_unique=True)
    bounds = np.minimum(bounds, np.where(nonzero, mahal, 0.0))
    return PeelResult(np.minimum(bounds, 1.0), peel_index, np.asarray(alphas),
                      np.asarray(sizes, dtype=np.int64), mahal)


def project_top_k(
    points: np.ndarray, k: int | str | None = "auto", energy: float = 0.9
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project ``points`` (n, d) onto their top-k right singular directions (docs/method.md §1,
    a layer).

    Args:
        points: (n, d) array.
        k: number of directions; ``"auto"`` takes the fewest that capture ``energy`` of the
            squared Frobenius norm; ``None`` keeps the whole span.
        energy: fraction in (0, 1] for ``k="auto"``.

    Returns:
        ``(coords (n, k), basis (d, k), residual_norms (n,))``: ``points ≈ coords @ basis.T``,
        and for every y, ``|q_i.y - coords_i.(basis^T y)| <= residual_norms[i] * ||y||``.
    """
    q = check_points(points)
    s, vt = _right_singular(q)
    if k is None:
        k_eff = int(np.sum(s > 1e-10 * s[0])) if s[0] > 0 else 0
    elif k == "auto":
        if not 0.0 < energy <= 1.0:
            raise GeometryError(f"energy must lie in (0, 1], got {energy!r}")
        cum = np.cumsum(s**2)
        k_eff = int(np.searchsorted(cum, energy * cum[-1] * (1 - 1e-12)) + 1) if cum[-1] > 0 else 0
    elif isinstance(k, int | np.integer) and k >= 1:
        k_eff = int(min(k, s.size))
    else:
        raise GeometryError(f"k must be a positive integer, 'auto' or None, got {k!r}")
    basis = vt[:k_eff].T
    coords = q @ basis
    residual = np.linalg.norm(q - coords @ basis.T, axis=1)
    return coords, basis, residual


def _right_singular(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Singular values (descending) and right singular vectors (rows) of ``q`` (n, d); through
    the n x n Gram matrix when d > n, which is much faster for wide layers."""
    n, d = q.shape
    if d <= n:
        _, s, vt = np.linalg.svd(q, full_matrices=False)
        return s, vt
    evals, u = np.linalg.eigh(q @ q.T)
    order = np.argsort(evals)[::-1]
    evals, u = np.maximum(evals[order], 0.0), u[:, order]
    s = np.sqrt(evals)
    keep = s > s[0] * 1e-12 if s[0] > 0 else np.zeros(n, dtype=bool)
    vt = (q.T @ u[:, keep] / s[keep]).T
    return s[keep], vt


def exact_sensitivities(points: np.ndarray) -> np.ndarray:
    """Exact sensitivities ``s_i = sup_y |q_i.y| / sum_k |q_k.y|`` by linear programming.

    For each i solve ``max q_i.y  s.t.  sum_k t_k <= 1, -t_k <= q_k.y <= t_k`` (HiGHS). Costs n
    LPs of n + d variables: for tests and small layers only.

    Returns:
        (n,) array in [0, 1]; zero rows get 0.
    """
    q = check_points(points)
    n, d = q.shape
    out = np.zeros(n)
    # variables [y (d, free), t (n, >= 0)]
    a_ub = np.block([[q, -np.eye(n)], [-q, -np.eye(n)], [np.zeros((1, d)), np.ones((1, n))]])
    b_ub = np.concatenate([np.zeros(2 * n), [1.0]])
    bounds = [(None, None)] * d + [(0, None)] * n
    for i in range(n):
        if not np.any(q[i]):
            continue
        c = np.concatenate([-q[i], np.zeros(n)])
        res = scipy.optimize.linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
        if res.status != 0:
            raise GeometryError(f"exact sensitivity LP failed for row {i}: {res.message}")
        out[i] = -res.fun
    return np.clip(out, 0.0, 1.0)
