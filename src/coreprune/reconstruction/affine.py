"""The best affine reconstruction of removed units from kept ones, and how it folds.

A layer's n units feed a consumer ``z = V h + b`` (V: (m, n)). Keeping the units ``K`` and
predicting every unit from them by an affine map ``h ~ M h_K + o`` (``M``: (n, k), ``o``: (n,))
turns the consumer into ``z ~ (V M) h_K + (b + V o)``: a plain layer on the kept units. Under a
Gaussian moment model of ``h`` the least-squares choice is

    M = Cov(h, h_K) (Cov(h_K) + lambda I)^-1,     o = E[h] - M E[h_K]

(one regression per unit; it is optimal for every consumer V at once). On kept rows it is the
identity (up to the ridge ``lambda``), on a removed unit it is ``A = Cov_RK Cov_KK^-1``. The
target may also be another network's units (the original one's, when the kept units come from
an already pruned network): then ``Cov(h, h_K)`` is the cross-covariance.

A :class:`Fold` is any such ``(M, o)``: dropping units (``M`` = the kept rows of the identity,
``o = 0``), a coreset's reweighting (``M`` diagonal on kept rows), Neuron Merging (one entry per
removed row) and least squares are all folds, and :func:`fold_error` measures any of them by the
same model-predicted error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from ..errors import GeometryError, InvalidArgumentError
from .moments import Gaussian

__all__ = ["Fold", "drop_fold", "least_squares_fold", "fold_error", "output_gram"]


@dataclass(frozen=True)
class _Dropping:
    """The mixing of a plain drop, not yet built: (n, k) zeros but ``weights`` (default 1) at
    ``(keep[j], j)``."""

    n: int
    keep: np.ndarray
    weights: np.ndarray | None

    def build(self) -> np.ndarray:
        m = np.zeros((self.n, self.keep.size))
        m[self.keep, np.arange(self.keep.size)] = 1.0 if self.weights is None else self.weights
        return m


class _MixingField:
    """:attr:`Fold.mixing`: an array, or a :class:`_Dropping` built on first access (a drop of
    a wide layer would otherwise fill an (n, k) array that only a fold reads)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = "_" + name

    def __get__(self, obj: Fold | None, owner: type | None = None) -> np.ndarray:
        if obj is None:
            raise AttributeError("mixing")  # a required field: no class-level default
        value = obj.__dict__[self.slot]
        if isinstance(value, _Dropping):
            value = value.build()
            obj.__dict__[self.slot] = value
        return value

    def __set__(self, obj: Fold, value: np.ndarray | _Dropping) -> None:
        obj.__dict__[self.slot] = value


@dataclass(frozen=True)
class Fold:
    """How a consumer's input slices change when only ``keep`` remains: the new slice of kept
    unit j is ``sum_i V[:, i] mixing[i, j]`` and the consumer's output gains ``V @ offset``.

    Attributes:
        keep: (k,) sorted indices of the kept units.
        mixing: (n, k) the map ``M`` (the kept rows of the identity: plain dropping).
        offset: (n,) the constant ``o`` (zeros: nothing added).
    """

    keep: np.ndarray
    mixing: np.ndarray = _MixingField()  # type: ignore[assignment]
    offset: np.ndarray

    @property
    def n(self) -> int:
        value = self.__dict__["_mixing"]
        return value.n if isinstance(value, _Dropping) else int(value.shape[0])

    def is_drop(self) -> bool:
        """Whether the fold only drops units (identity on kept rows, zero elsewhere)."""
        if np.any(self.offset):
            return False
        value = self.__dict__["_mixing"]
        if isinstance(value, _Dropping):
            return value.weights is None or bool(np.all(value.weights == 1.0))
        k = self.keep.size
        return bool(value.shape == (self.n, k) and np.count_nonzero(value) == k
                    and np.all(value[self.keep, np.arange(k)] == 1.0))

    def apply(self, weight: np.ndarray, bias: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray | None]:
        """Fold into a linear consumer ``z = W h + b`` (W: (m, n)): ``(W M, b + W o)``; with
        ``bias=None`` the second item is the shift ``W o`` alone (or None if it is zero)."""
        w = np.asarray(weight, dtype=np.float64)
        shift = w @ self.offset
        if bias is None:
            return w @ self.mixing, (shift if np.any(shift) else None)
        return w @ self.mixing, np.asarray(bias, dtype=np.float64) + shift


def _check_keep(keep: np.ndarray, n: int) -> np.ndarray:
    keep = np.asarray(keep, dtype=np.int64)
    if keep.ndim != 1 or keep.size == 0 or np.any(keep < 0) or np.any(keep >= n) \
            or np.any(np.diff(keep) <= 0):
        raise InvalidArgumentError(f"keep must be sorted distinct indices in [0, {n}), "
                                   f"got {keep!r}")
    return keep


def drop_fold(n: int, keep: np.ndarray, weights: np.ndarray | None = None) -> Fold:
    """Dropping every unit not in ``keep``, the kept ones scaled by ``weights`` (default 1):
    the fold of plain pruning and of a coreset's reweighting (docs/method.md §1, folding)."""
    keep = _check_keep(keep, n)
    w = None if weights is None else np.asarray(weights, float)
    return Fold(keep, _Dropping(n, keep, w), np.zeros(n))


def least_squares_fold(target: Gaussian | None, cross: np.ndarray | None, kept: Gaussian,
                       keep: np.ndarray, n: int | None = None, ridge: float = 1e-6) -> Fold:
    """The least-squares affine map from kept units to target units (module docstring).

    Two uses:

    * one network: ``target`` is the layer's n units, ``kept = target.take(keep)`` and
      ``cross=None`` (taken as ``target.cov[:, keep]``);
    * two networks: ``target`` is the original network's n units, ``kept`` the k units kept in
      the pruned network (their moments there) and ``cross`` (n, k) the cross-covariance
      ``Cov(h_original, h_kept)``.

    Args:
        target: the target units' moments (n).
        cross: (n, k) cross-covariance of target and kept units, or None (one network).
        kept: the kept units' moments (k).
        keep: (k,) indices of the kept units among the layer's n.
        ridge: ``lambda`` relative to the mean variance of the kept units (``lambda = ridge *
            trace(Cov(h_K)) / k``); keeps the solve stable when kept units are (nearly)
            collinear. Negative eigenvalues of ``Cov(h_K)`` (approximate moments) count as 0.
            A kept unit that is a positive multiple or duplicate of another, or a removed one
            of a kept one, is reconstructed to within a relative ``ridge``.

    Returns:
        The :class:`Fold` ``(M, o)``: with ``cross=None`` its kept rows are the identity exactly
        (the ridge only shrinks the removed rows).
    """
    n = target.dim if n is None else n
    keep = _check_keep(keep, n)
    if kept.dim != keep.size:
        raise GeometryError(f"kept moments have {kept.dim} units, keep has {keep.size}")
    if not ridge >= 0:
        raise InvalidArgumentError(f"ridge must be >= 0, got {ridge!r}")
    one_network = cross is None
    cross = target.cov[:, keep] if one_network else np.asarray(cross, dtype=np.float64)
    if cross.shape != (n, keep.size):
        raise GeometryError(f"cross-covariance must have shape ({n}, {keep.size}), "
                            f"got {cross.shape}")
    ckk = kept.cov
    scale = float(np.trace(ckk)) / keep.size
    if scale <= 0.0:  # every kept unit is constant: only the means can be matched
        mixing = np.zeros((n, keep.size))
    else:
        lam = max(ridge, 1e-12) * scale
        try:
            mixing = cho_solve(cho_factor(ckk + lam * np.eye(keep.size), lower=True), cross.T).T
        except np.linalg.LinAlgError:  # moments that are not quite PSD (quadrature, rounding)
            vals, vecs = np.linalg.eigh(ckk)
            inv = vecs / (np.clip(vals, 0.0, None) + lam)
            mixing = cross @ inv @ vecs.T
    if one_network:
        mixing[keep] = np.eye(keep.size)
    offset = target.mean - mixing @ kept.mean
    if one_network:
        offset[keep] = 0.0
    return Fold(keep, mixing, offset)


def output_gram(outgoing: np.ndarray) -> np.ndarray:
    """(n, n) ``G = V^T V`` of the units' outgoing vectors (outgoing: (n, D), row i is
    v_i): the consumer's squared output error of a unit-space error e is ``e^T G e``."""
    v = np.asarray(outgoing, dtype=np.float64)
    return v @ v.T


def _inexact_rows(fold: Fold) -> np.ndarray:
    """The units a one-network fold does not reproduce exactly: all but the kept units whose
    row of ``mixing`` is their own unit vector and whose offset is 0."""
    m, k = fold.mixing, fold.keep.size
    exact = np.zeros(fold.n, dtype=bool)
    own = m[fold.keep, np.arange(k)] == 1.0
    alone = np.count_nonzero(m[fold.keep], axis=1) == 1
    exact[fold.keep] = own & alone & (fold.offset[fold.keep] == 0.0)
    return np.flatnonzero(~exact)


def fold_error(moments: Gaussian, gram: np.ndarray, fold: Fold,
               kept: Gaussian | None = None, cross: np.ndarray | None = None) -> float:
    """Model-predicted relative error of a consumer's output after ``fold``:

        E|| V (h - M h_K - o) ||^2  /  E|| V h ||^2

    under the Gaussian moments of h (``gram = V^T V``, :func:`output_gram`); 0 when nothing is
    lost, 1 for dropping every unit of a layer whose outputs have zero mean. For two networks,
    ``kept`` and ``cross`` are the pruned network's kept units and their cross-covariance with
    h (as in :func:`least_squares_fold`).
    """
    g = np.asarray(gram, dtype=np.float64)
    den = float(np.sum(g * moments.second_moment()))
    if kept is None:  # only units not reproduced exactly (M row e_j, o = 0) carry an error
        drop = fold.is_drop()
        rows = np.setdiff1d(np.arange(fold.n), fold.keep) if drop else _inexact_rows(fold)
        g = g[np.ix_(rows, rows)]
        if drop:
            mean_e, cov_e = moments.mean[rows], moments.cov[np.ix_(rows, rows)]
        else:
            m, keep = fold.mixing[rows], fold.keep
            cross = moments.cov[np.ix_(rows, keep)]
            mean_e = moments.mean[rows] - m @ moments.mean[keep] - fold.offset[rows]
            mc = m @ cross.T
            cov_e = (moments.cov[np.ix_(rows, rows)] - mc - mc.T
                     + m @ moments.cov[np.ix_(keep, keep)] @ m.T)
    else:
        m, o = fold.mixing, fold.offset
        mean_e = moments.mean - m @ kept.mean - o
        mc = m @ np.asarray(cross, dtype=np.float64).T
        cov_e = moments.cov - mc - mc.T + m @ kept.cov @ m.T
    num = float(np.sum(g * (cov_e + np.outer(mean_e, mean_e))))
    return max(num, 0.0) / den if den > 0 else 0.0
