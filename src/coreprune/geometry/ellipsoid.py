"""Minimum-volume enclosing (Löwner) ellipsoids with a containment certificate.

The solver is Khachiyan's first-order method on the dual (D-optimal design) problem

    maximise  log det M(u),   M(u) = sum_i u_i z_i z_i^T,   u in the simplex,

started from a Kumar–Yıldırım-style core set (pivoted QR: r points that span the space)
and run with Todd–Yıldırım away and drop steps, so that the support of ``u`` stays small.
Each iteration costs O(n r) using rank-one (Sherman–Morrison) updates of M(u)^{-1}.

Guarantee (docs/method.md §1, Löwner ellipsoid). For the *symmetric* ellipsoid of ±Q, with
``kappa_i = q_i^T M(u)^{-1} q_i`` and the returned ``A = M(u)^{-1} / r``:

* certificate: every point has ``q^T A q = kappa_i / r <= 1 + tol``;
* volume: ``vol(E) <= vol(MVEE) <= vol(sqrt(1 + tol) E)`` for ``E = {x : x^T A x <= 1}``
  (weak duality of the D-optimal design problem), so the enclosing ellipsoid
  ``sqrt(1+tol) E`` is within a factor ``(1 + tol)^(r/2)`` of the optimal volume;
* John: ``E / sqrt(r) = {x : x^T M^{-1} x <= 1}`` lies inside conv(±Q) (for any ``u``).

The *centred* (general) variant lifts ``q -> (q, 1)`` to dimension r + 1 and returns the
ellipsoid ``{x : (x - c)^T A (x - c) <= 1}`` with the same containment certificate.

Points may be rank deficient: the ellipsoid is computed in the span (the affine span for the
centred variant) found by an SVD at numerical rank, and ``basis`` maps back to R^d.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from ..errors import GeometryError
from ..validation import check_points

__all__ = ["Ellipsoid", "loewner_ellipsoid", "span_coordinates", "khachiyan_dual_weights"]


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid ``{center + basis @ y : y^T shape y <= 1}`` in R^d.

    Attributes:
        shape: (r, r) positive definite matrix A, in the coordinates of ``basis``.
        center: (d,) centre in ambient coordinates (zero for the symmetric variant).
        basis: (d, r) orthonormal columns spanning the (affine) span of the points.
        weights: (n,) dual weights u >= 0, summing to 1 (the D-optimal design).
        tol: the relative tolerance the solver was asked for.
        max_violation: ``max_i (q_i - c)^T A (q_i - c) - 1``; the certificate is
            ``max_violation <= tol`` (every point lies in ``sqrt(1 + tol) E``).
        log_volume_ratio_bound: upper bound on ``log(vol(sqrt(1+v) E) / vol(MVEE))`` with v the
            achieved violation: ``(r/2) log(1 + v)`` (weak duality of the dual problem).
        iterations: solver iterations used.
        symmetric: True for the ellipsoid of ±Q centred at the origin.
    """

    shape: np.ndarray
    center: np.ndarray
    basis: np.ndarray
    weights: np.ndarray
    tol: float
    max_violation: float
    log_volume_ratio_bound: float
    iterations: int
    symmetric: bool

    @property
    def rank(self) -> int:
        """Dimension r of the span the ellipsoid lives in."""
        return int(self.shape.shape[0])

    def mahalanobis(self, x: np.ndarray) -> np.ndarray:
        """Ellipsoid norm ``sqrt((x-c)^T A (x-c))`` of each row of ``x`` (m, d) (projected to the
        span).

        Returns an (m,) array; a point of the span is inside E exactly when its value is <= 1.
        """
        y = (np.atleast_2d(np.asarray(x, dtype=np.float64)) - self.center) @ self.basis
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", y, self.shape, y), 0.0))

    def log_volume(self) -> float:
        """Natural log of E's r-dimensional volume: ``log(unit ball) - 0.5 log det A``."""
        r = self.rank
        if r == 0:
            return 0.0
        sign, logdet = np.linalg.slogdet(self.shape)
        log_ball = (r / 2) * math.log(math.pi) - math.lgamma(r / 2 + 1)
        return float(log_ball - 0.5 * logdet)

    def semi_axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Semi-axis lengths (r,) and unit directions (d, r) in ambient coordinates."""
        evals, evecs = np.linalg.eigh(self.shape)
        return 1.0 / np.sqrt(evals), self.basis @ evecs


def span_coordinates(
    points: np.ndarray, rtol: float = 1e-10, center: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates of ``points`` (n, d) in an orthonormal basis of their (affine) span.

    Args:
        points: (n, d) array.
        rtol: singular values below ``rtol * max(s_max, sqrt(n) max_i ||points_i||)`` count as
            zero (numerical rank; the second term catches rounding left by centring).
        center: if True use the affine span through the mean.

    Returns:
        ``(coords (n, r), basis (d, r), origin (d,))`` with ``points ≈ origin + coords @ basis.T``.
    """
    origin = points.mean(axis=0) if center else np.zeros(points.shape[1])
    shifted = points - origin
    if not np.any(shifted):
        return np.zeros((points.shape[0], 0)), np.zeros((points.shape[1], 0)), origin
    _, s, vt = np.linalg.svd(shifted, full_matrices=False)
    ref = max(s[0], np.sqrt(points.shape[0]) * np.linalg.norm(points, axis=1).max())
    r = int(np.sum(s > rtol * ref))
    basis = vt[:r].T
    return shifted @ basis, basis, origin


def _kappa(z: np.ndarray, minv: np.ndarray) -> np.ndarray:
    return np.einsum("ij,jk,ik->i", z, minv, z)


def khachiyan_dual_weights(
    z: np.ndarray, tol: float = 1e-3, max_iter: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Dual weights of the origin-centred MVEE of ±Z for full-rank ``z`` (n, r).

    Kumar–Yıldırım start, Khachiyan (Frank–Wolfe) steps and Todd–Yıldırım away/drop steps.
    Stops when ``max_i kappa_i <= r (1 + tol)``.

    Returns:
        ``(u (n,), M^{-1} (r, r), kappa (n,), iterations)`` with ``kappa`` recomputed exactly.
    """
    n, r = z.shape
    if max_iter is None:
        max_iter = max(1000, int(50 * r * (math.log(r + 1) + 1.0 / tol)))
    # Kumar–Yıldırım-style core set: r points spanning R^r chosen by pivoted QR.
    _, _, piv = scipy.linalg.qr(z.T, mode="economic", pivoting=True)
    u = np.zeros(n)
    u[piv[:r]] = 1.0 / r
    m = (z.T * u) @ z
    minv = np.linalg.inv(m)
    kappa = _kappa(z, minv)
    bound = r * (1.0 + tol)
    refresh = max(50, r)
    it = 0
    for it in range(1, max_iter + 1):
        j = int(np.argmax(kappa))
        kj = kappa[j]
        if kj <= bound:
            break
        support = np.flatnonzero(u > 0)
        k = int(support[np.argmin(kappa[support])])
        kk = kappa[k]
        # Todd–Yıldırım: take the away step when it is the larger violation (relative to r).
        if (r - kk) > (kj - r) and u[k] < 1.0:
            idx, kv = k, kk
            drop = -u[k] / (1.0 - u[k])
            lam = drop if kv <= 1.0 else max((kv - r) / (r * (kv - 1.0)), drop)
        else:
            idx, kv = j, kj
            lam = (kv - r) / (r * (kv - 1.0))
        g = minv @ z[idx]
        h = z @ g
        denom = (1.0 - lam) + lam * kv
        minv = (minv - (lam / denom) * np.outer(g, g)) / (1.0 - lam)
        kappa = (kappa - (lam / denom) * h * h) / (1.0 - lam)
        u *= 1.0 - lam
        u[idx] += lam
        if u[idx] < 1e-14:
            u[idx] = 0.0
        if it % refresh == 0:  # limit drift of the rank-one updates
            u /= u.sum()
            minv = np.linalg.inv((z.T * u) @ z)
            kappa = _kappa(z, minv)
    u = np.maximum(u, 0.0)
    u /= u.sum()
    minv = np.linalg.inv((z.T * u) @ z)
    minv = 0.5 * (minv + minv.T)
    kappa = _kappa(z, minv)
    return u, minv, kappa, it


def loewner_ellipsoid(
    points: np.ndarray,
    tol: float = 1e-3,
    symmetric: bool = True,
    rtol: float = 1e-10,
    max_iter: int | None = None,
) -> Ellipsoid:
    """Löwner (minimum-volume enclosing) ellipsoid of ``points``, to relative tolerance ``tol``.

    Args:
        points: (n, d) array of finite values; duplicates, zero rows and rank deficiency are
            fine (the ellipsoid lives in the span, see ``basis``).
        tol: relative tolerance; the certificate is ``(q-c)^T A (q-c) <= 1 + tol`` for every row.
        symmetric: True for the MVEE of ±Q centred at the origin (what coresets use);
            False for the MVEE of Q with a free centre.
        rtol: relative threshold on singular values for the numerical rank.
        max_iter: cap on solver iterations (default grows with r and 1/tol); hitting it warns
            and returns the ellipsoid with its achieved certificate.

    Returns:
        An :class:`Ellipsoid`. Its ``max_violation`` is the certificate, recomputed exactly.

    Raises:
        GeometryError: non-finite input, wrong shape, or ``tol`` not in (0, 1).
    """
    q = check_points(points)
    if not 0.0 < tol < 1.0:
        raise GeometryError(f"tol must lie in (0, 1), got {tol!r}")
    n, d = q.shape
    # Work at unit scale: the answer is scale-equivariant and this keeps 1e-300 and 1e300 safe.
    unit = float(np.abs(q).max())
    coords, basis, origin = span_coordinates(q / unit if unit > 0 else q, rtol=rtol,
                                             center=not symmetric)
    origin = origin * unit
    r = coords.shape[1]
    if r == 0:  # every point coincides with the origin (symmetric) or with each other
        return Ellipsoid(np.zeros((0, 0)), origin, basis, np.full(n, 1.0 / n), tol, -1.0, 0.0,
                         0, symmetric)
    scale = float(np.max(np.linalg.norm(coords, axis=1)))
    y = coords / scale
    if symmetric:
        u, minv, kappa, it = khachiyan_dual_weights(y, tol=tol, max_iter=max_iter)
        shape = minv / r
        center = np.zeros(d)
        violation = float(kappa.max() / r - 1.0)
    else:
        z = np.hstack([y, np.ones((n, 1))])
        # (y-c)^T A (y-c) = (kappa_lift - 1)/r, so run the lifted problem at tol * r/(r+1).
        u, _, kappa, it = khachiyan_dual_weights(z, tol=tol * r / (r + 1), max_iter=max_iter)
        c = y.T @ u
        cov = (y.T * u) @ y - np.outer(c, c)
        shape = np.linalg.inv(cov) / r
        shape = 0.5 * (shape + shape.T)
        diff = y - c
        violation = float(np.max(np.einsum("ij,jk,ik->i", diff, shape, diff)) - 1.0)
        center = origin + basis @ (c * scale * unit)
    scale *= unit
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        shape = shape / scale**2
    if not np.all(np.isfinite(shape)):
        raise GeometryError(f"the ellipsoid of points of size {scale:.3g} is not representable "
                            "in float64 (its shape matrix overflows); rescale the points")
    log_ratio = 0.5 * r * math.log1p(max(violation, 0.0))
    if violation > tol * (1 + 1e-6):
        warnings.warn(f"loewner_ellipsoid stopped after {it} iterations with violation "
                      f"{violation:.3g} > tol {tol:.3g}", RuntimeWarning, stacklevel=2)
    return Ellipsoid(shape, center, basis, u, tol, violation, log_ratio, it, symmetric)
