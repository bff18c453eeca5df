"""Gaussian moments of unit outputs ``h = phi(a)``, ``a = P x + b``, with no data.

The layer input is modelled as ``x ~ N(m, S)``; then ``a ~ N(P m + b, P S P^T)`` exactly and
the outputs' mean ``E[h]`` and covariance ``Cov(h)`` follow from the activation:

* ``"closed"``: exact formulas for ReLU (the rectified bivariate normal, below), leaky ReLU
  (ReLU plus a linear part), GELU (below) and the identity; the tanh form of GELU takes GELU's
  (it is within 4.8e-4 of it everywhere);
* ``"quadrature"``: two-dimensional Gauss-Hermite quadrature of every pair of units (any
  activation; exact for polynomials of degree < 2 ``order`` in each variable);
* ``"montecarlo"``: ``samples`` seeded draws of ``a`` from ``N(mu, C)`` (never from data).

The next layer then sees ``h`` moment-matched as a Gaussian, ``N(E[h], Cov(h))``
(:class:`Gaussian`).

ReLU, for a pair of units with means ``mu_i, mu_j``, standard deviations ``s_i, s_j``,
correlation ``rho`` and ``h_i = mu_i / s_i``: ``E[relu(a_i)] = s_i (h_i Phi(h_i) + phi(h_i))``
and ``E[relu(a_i) relu(a_j)] = s_i s_j M`` with::

    M = (rho + h_i h_j) Phi2(h_i, h_j; rho) + h_j phi(h_i) Phi((h_j - rho h_i) / r)
        + h_i phi(h_j) Phi((h_i - rho h_j) / r) + r phi(h_i) phi((h_j - rho h_i) / r)

``r = sqrt(1 - rho^2)`` and ``Phi2`` the bivariate normal CDF (Owen's T). At zero means it is
Cho & Saul's arc-cosine kernel ``(s_i s_j / 2 pi)(sin t + (pi - t) cos t)``, ``cos t = rho``;
at ``rho = +-1`` it is the limit (duplicates and positive multiples are exact).

GELU, ``gelu(t) = t Phi(t)``: with ``z_1, z_2`` standard normals independent of ``(x, y)``,
``Phi(x) = P(z_1 < x | x)``, so ``E[gelu(x) gelu(y)] = E[x y 1{u > 0, v > 0}]`` with ``u = x -
z_1``, ``v = y - z_2``: jointly Gaussian, ``Var u = v_x + 1``, ``Cov(u, v) = c`` (never
degenerate, also for ``x = y``). Conditioning on ``w = (u, v)``, ``E[x | w]`` is affine in ``w``
and ``Cov(x, y | w) = c / det Cov(w)``, so the product moment is a combination of the zeroth,
first and second moments of the bivariate normal ``w`` over the quadrant ``w > 0``
(Rosenbaum 1961): ``Phi2``, ``phi`` and ``Phi`` as for ReLU. ``E[gelu(x)] = m Phi(m / s) +
(v / s) phi(m / s)``, ``s = sqrt(1 + v)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import ndtr, owens_t

from ..errors import GeometryError, InvalidArgumentError
from .activations import Activation

__all__ = ["Gaussian", "activation_moments", "bivariate_normal_cdf", "gated_moments",
           "pair_covariance", "MOMENT_METHODS"]

MOMENT_METHODS = ("auto", "closed", "quadrature", "montecarlo")
_SQRT_2PI = np.sqrt(2.0 * np.pi)
_BLOCK = 1 << 21  # entries of one block of pairwise work (bounds memory)
# activations computed by the closed form of gelu(t) = t Phi(t): gelu_tanh (PyTorch's
# approximate="tanh", GPT-2's gelu_new) is within 4.8e-4 of it everywhere, and its moments by
# this form are ~100x closer to the exact ones than 20,000 Monte Carlo draws (test_moments.py)
_GELU = ("gelu", "gelu_tanh")


@dataclass(frozen=True)
class Gaussian:
    """A Gaussian model ``N(mean, cov)`` of a d-dimensional vector.

    Attributes:
        mean: (d,) float64.
        cov: (d, d) float64, symmetric positive semi-definite.
    """

    mean: np.ndarray
    cov: np.ndarray

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, dtype=np.float64).reshape(-1)
        cov = np.asarray(self.cov, dtype=np.float64)
        if cov.shape != (mean.size, mean.size):
            raise GeometryError(f"cov must have shape ({mean.size}, {mean.size}), "
                                f"got {cov.shape}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(cov))):
            raise GeometryError("Gaussian moments hold NaN or Inf")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "cov", 0.5 * (cov + cov.T))

    @property
    def dim(self) -> int:
        return int(self.mean.size)

    @property
    def std(self) -> np.ndarray:
        """(d,) standard deviations."""
        return np.sqrt(np.clip(np.diag(self.cov), 0.0, None))

    def second_moment(self) -> np.ndarray:
        """(d, d) ``E[x x^T] = cov + mean mean^T``."""
        return self.cov + np.outer(self.mean, self.mean)

    def affine(self, weight: np.ndarray, bias: np.ndarray | None = None) -> Gaussian:
        """The law of ``weight @ x + bias``: ``N(W m + b, W S W^T)`` (weight: (m, d))."""
        w = np.asarray(weight, dtype=np.float64)
        if w.ndim != 2 or w.shape[1] != self.dim:
            raise GeometryError(f"weight must have shape (m, {self.dim}), got {w.shape}")
        mean = w @ self.mean + (0.0 if bias is None else np.asarray(bias, dtype=np.float64))
        return Gaussian(mean, w @ self.cov @ w.T)

    def take(self, indices: np.ndarray) -> Gaussian:
        """The marginal of the coordinates ``indices``."""
        idx = np.asarray(indices, dtype=np.int64)
        return Gaussian(self.mean[idx], self.cov[np.ix_(idx, idx)])

    @staticmethod
    def independent(dim: int, mean: float | np.ndarray = 0.0,
                    std: float | np.ndarray = 1.0) -> Gaussian:
        """``N(mean, diag(std^2))`` in ``dim`` coordinates (scalars broadcast)."""
        m = np.broadcast_to(np.asarray(mean, dtype=np.float64), (dim,)).copy()
        s = np.broadcast_to(np.asarray(std, dtype=np.float64), (dim,))
        if np.any(s < 0):
            raise InvalidArgumentError("std must be non-negative")
        return Gaussian(m, np.diag(s**2))

    @staticmethod
    def mixture(components: Sequence[Gaussian],
                weights: Sequence[float] | np.ndarray | None = None) -> Gaussian:
        """The mean and covariance of the mixture ``sum_k w_k N(m_k, S_k)`` (equal weights by
        default): ``m = sum_k w_k m_k`` and ``S = sum_k w_k (S_k + m_k m_k^T) - m m^T``, exact
        (the mixture itself is not Gaussian; these are its first two moments). A least-squares
        fold computed from them minimises the error averaged over the components, because the
        expected squared error is linear in the second moments."""
        if not components:
            raise GeometryError("a mixture needs at least one component")
        dims = {c.dim for c in components}
        if len(dims) != 1:
            raise GeometryError(f"mixture components differ in dimension: {sorted(dims)}")
        w = (np.full(len(components), 1.0 / len(components)) if weights is None
             else np.asarray(weights, dtype=np.float64))
        if w.shape != (len(components),) or np.any(w < 0) or not np.isclose(w.sum(), 1.0):
            raise InvalidArgumentError("mixture weights must be one non-negative weight per "
                                       "component, summing to 1")
        if len(components) == 1:
            return components[0]
        mean = sum(wk * c.mean for wk, c in zip(w, components, strict=True))
        second = sum(wk * c.second_moment() for wk, c in zip(w, components, strict=True))
        return Gaussian(mean, second - np.outer(mean, mean))


def bivariate_normal_cdf(h: np.ndarray, k: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """``P(Z1 <= h, Z2 <= k)`` for standard normals with correlation ``rho``, elementwise,
    by Owen's T: ``Phi2 = (Phi(h) + Phi(k)) / 2 - T(h, a_h) - T(k, a_k) - beta`` with
    ``a_h = (k - rho h) / (h r)``, ``a_k = (h - rho k) / (k r)``, ``r = sqrt(1 - rho^2)`` and
    ``beta = 1/2`` when ``h k < 0`` (0 otherwise); ``|h|, |k| < 1e-10`` are moved to 1e-10
    (the CDF is continuous; the error is below 1e-10). Exact at ``rho = +-1``."""
    h = np.where(np.abs(h) < 1e-10, 1e-10, h)
    k = np.where(np.abs(k) < 1e-10, 1e-10, k)
    r = np.maximum(np.sqrt(np.clip(1.0 - rho * rho, 0.0, None)), 1e-300)
    beta = np.where(h * k > 0, 0.0, 0.5)
    return (0.5 * (ndtr(h) + ndtr(k)) - owens_t(h, (k - rho * h) / (h * r))
            - owens_t(k, (h - rho * k) / (k * r)) - beta)


def _varying(sd: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Which units vary: standard deviation above 1e-12 of the scale (the largest sd or
    absolute mean); the others are taken as constant."""
    scale = max(float(sd.max(initial=0.0)), float(np.abs(mean).max(initial=0.0)), 1e-300)
    return sd > 1e-12 * scale


def _standardise(pre: Gaussian) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(sd, random, rho)``: standard deviations, which units vary (:func:`_varying`), and
    the correlation matrix (0 for constant units)."""
    sd = pre.std
    random = _varying(sd, pre.mean)
    safe = np.where(random, sd, 1.0)
    rho = np.clip(pre.cov / np.outer(safe, safe), -1.0, 1.0)
    rho[~random, :] = 0.0
    rho[:, ~random] = 0.0
    return sd, random, rho


def _relu_product(hi: np.ndarray, hj: np.ndarray, p: np.ndarray, pdf_i: np.ndarray,
                  pdf_j: np.ndarray) -> np.ndarray:
    """``E[relu(a_i) relu(a_j)] / (sd_i sd_j)`` for jointly Gaussian ``a_i, a_j`` with
    ``mu / sd = hi, hj``, correlation ``p`` and ``pdf_* = phi(h_*)``, elementwise (broadcast):
    the rectified bivariate normal's product moment (module docstring)."""
    r = np.maximum(np.sqrt(np.clip(1.0 - p * p, 0.0, None)), 1e-12)
    d_ij, d_ji = (hj - p * hi) / r, (hi - p * hj) / r
    return ((p + hi * hj) * bivariate_normal_cdf(hi, hj, p) + hj * pdf_i * ndtr(d_ij)
            + hi * pdf_j * ndtr(d_ji) + r * pdf_i * np.exp(-0.5 * d_ij * d_ij) / _SQRT_2PI)


def pair_covariance(mean: np.ndarray, var: np.ndarray, rho: float,
                    activation: Activation | str) -> np.ndarray:
    """``Cov(phi(x_1), phi(x_2))`` for each of n independent pairs ``(x_1, x_2) ~ N((m, m),
    v [[1, rho], [rho, 1]])`` (a channel at two neighbouring positions), in closed form: ReLU
    (the rectified bivariate normal), leaky ReLU (``phi = s a + (1 - s) relu(a)``, with
    ``Cov(x_1, relu(x_2)) = v rho Phi(m / sd)``) and identity. O(n); equal to the cross block's
    diagonal of :func:`activation_moments` on the 2n-dimensional Gaussian of all pairs.

    Args:
        mean, var: (n,) each pair's mean ``m`` and variance ``v``.
        rho: the correlation within a pair, in [-1, 1].
        activation: an :class:`Activation` with a closed form (``closed_form``) or its name.

    Returns:
        (n,) covariances; 0 for a constant pair (:func:`_varying`).
    """
    act = activation if isinstance(activation, Activation) else Activation(activation)
    if not act.closed_form:
        raise InvalidArgumentError(f"no closed-form moments for {act.name!r}")
    m = np.asarray(mean, dtype=np.float64)
    v = np.clip(np.asarray(var, dtype=np.float64), 0.0, None)
    linear = v * rho
    if act.name == "identity":
        return linear
    sd = np.sqrt(v)
    random = _varying(sd, m)
    if act.name in _GELU:
        first = _gelu_mean(m, v)
        product = _gelu_product(m, m, v, v, linear)
        return np.where(random, product - first**2, 0.0)
    safe = np.where(random, sd, 1.0)
    h = m / safe
    cdf, pdf = ndtr(h), np.exp(-0.5 * h * h) / _SQRT_2PI
    first = safe * (h * cdf + pdf)
    p = np.full_like(h, float(np.clip(rho, -1.0, 1.0)))
    relu = np.where(random, v * _relu_product(h, h, p, pdf, pdf) - first**2, 0.0)
    if act.name == "relu":
        return relu
    s = float(act.param)
    return np.where(random, s * s * linear + 2.0 * s * (1.0 - s) * linear * cdf
                    + (1.0 - s) ** 2 * relu, 0.0)


def _gelu_mean(mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """``E[gelu(x)] = m Phi(m / s) + v / s phi(m / s)``, ``s = sqrt(1 + v)``, for ``x ~ N(m,
    v)``, elementwise."""
    s = np.sqrt(var + 1.0)
    return mean * ndtr(mean / s) + var / s * np.exp(-0.5 * (mean / s) ** 2) / _SQRT_2PI


def _gelu_product(mx: np.ndarray, my: np.ndarray, vx: np.ndarray, vy: np.ndarray,
                  c: np.ndarray) -> np.ndarray:
    """``E[gelu(x) gelu(y)]``, ``gelu(t) = t Phi(t)``, for jointly Gaussian ``x, y`` with means
    ``mx, my``, variances ``vx, vy`` and covariance ``c``, elementwise (broadcast; the module
    docstring gives the derivation). Exact for every input, ``x = y`` included."""
    su, sv = np.sqrt(vx + 1.0), np.sqrt(vy + 1.0)
    det = (vx + 1.0) * (vy + 1.0) - c * c
    r = np.clip(c / (su * sv), -1.0, 1.0)
    rr = np.maximum(np.sqrt(1.0 - r * r), 1e-12)  # |r| < 1 unless a variance overflows
    hu, hv = mx / su, my / sv
    pu, pv = np.exp(-0.5 * hu * hu) / _SQRT_2PI, np.exp(-0.5 * hv * hv) / _SQRT_2PI
    cu, cv = ndtr((hv - r * hu) / rr), ndtr((hu - r * hv) / rr)
    joint = pu * np.exp(-0.5 * ((hv - r * hu) / rr) ** 2) / _SQRT_2PI  # rr phi2(hu, hv; r)
    mass = bivariate_normal_cdf(hu, hv, r)
    # truncated moments of the standardised (u, v) over u > -hu, v > -hv
    m10 = pu * cu + r * pv * cv
    m01 = pv * cv + r * pu * cu
    m20 = mass - hu * pu * cu - r * r * hv * pv * cv + r * rr * joint
    m02 = mass - hv * pv * cv - r * r * hu * pu * cu + r * rr * joint
    m11 = r * mass - r * hu * pu * cu - r * hv * pv * cv + rr * joint
    # E[x | u, v] = mx + bx . (w - E w), in standardised w: coefficients bx * sd(w)
    bxu, bxv = (vx * (vy + 1.0) - c * c) / det * su, c / det * sv
    byu, byv = c / det * su, (vy * (vx + 1.0) - c * c) / det * sv
    return ((mx * my + c / det) * mass + mx * (byu * m10 + byv * m01)
            + my * (bxu * m10 + bxv * m01)
            + bxu * byu * m20 + (bxu * byv + bxv * byu) * m11 + bxv * byv * m02)


def _gelu_moments(pre: Gaussian) -> Gaussian:
    """``(E[gelu(a)], Cov(gelu(a)))`` in closed form (module docstring), a block of rows at a
    time."""
    mu, var = pre.mean, np.clip(np.diag(pre.cov), 0.0, None)
    mean = _gelu_mean(mu, var)
    n = mu.size
    cov = np.empty_like(pre.cov)
    rows = max(1, _BLOCK // max(n, 1))
    for start in range(0, n, rows):  # the blocks on and above the diagonal, mirrored
        b, c = slice(start, start + rows), slice(start, n)
        block = _gelu_product(mu[b, None], mu[None, c], var[b, None], var[None, c],
                              pre.cov[b, c]) - np.outer(mean[b], mean[c])
        cov[b, c] = block
        cov[c, b] = block.T
    # the diagonal came from the same formula at c = Var (x = y exactly); rounding clipped
    diag = np.arange(n)
    cov[diag, diag] = np.clip(cov[diag, diag], 0.0, None)
    return Gaussian(mean, cov)


def _relu_moments(pre: Gaussian) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(E[relu(a)], Cov(relu(a)), Phi(mu / sd))`` in closed form (module docstring)."""
    mu = pre.mean
    sd, random, rho = _standardise(pre)
    safe = np.where(random, sd, 1.0)
    h = mu / safe
    cdf, pdf = ndtr(h), np.exp(-0.5 * h * h) / _SQRT_2PI
    mean = np.where(random, sd * (h * cdf + pdf), np.maximum(mu, 0.0))
    cov = np.zeros_like(pre.cov)
    idx = np.flatnonzero(random)
    hr, pr, sr = h[idx], pdf[idx], sd[idx]
    rows = max(1, _BLOCK // max(idx.size, 1))
    for start in range(0, idx.size, rows):  # the blocks on and above the diagonal, mirrored
        b, c = slice(start, start + rows), slice(start, idx.size)
        m = _relu_product(hr[b, None], hr[None, c], rho[np.ix_(idx[b], idx[c])], pr[b, None],
                          pr[None, c])
        block = sr[b, None] * sr[None, c] * m - np.outer(mean[idx[b]], mean[idx[c]])
        cov[np.ix_(idx[b], idx[c])] = block
        cov[np.ix_(idx[c], idx[b])] = block.T
    # the diagonal from the univariate formula (no rho = 1 limit taken)
    var = sd**2 * ((1.0 + h * h) * cdf + h * pdf) - mean**2
    cov[idx, idx] = np.clip(var[idx], 0.0, None)
    return mean, cov, np.where(random, cdf, (mu > 0).astype(np.float64))


def _closed_form(pre: Gaussian, act: Activation) -> Gaussian:
    if act.name == "identity":
        return pre
    if act.name in _GELU:
        return _gelu_moments(pre)
    mean, cov, cdf = _relu_moments(pre)
    if act.name == "relu":
        return Gaussian(mean, cov)
    # leaky ReLU: phi(a) = s a + (1 - s) relu(a); Cov(a_i, relu(a_j)) = C_ij Phi(h_j)
    s = float(act.param)
    c = pre.cov
    cross = c * cdf[None, :]
    return Gaussian(s * pre.mean + (1.0 - s) * mean,
                    s * s * c + s * (1.0 - s) * (cross + cross.T) + (1.0 - s) ** 2 * cov)


def _quadrature(pre: Gaussian, act: Activation, order: int) -> Gaussian:
    """Pairwise 2-D Gauss-Hermite: ``z1 = x_a``, ``z2 = rho x_a + r x_b`` (probabilists'
    nodes), every pair of units (the diagonal with ``rho = 1``, i.e. 1-D quadrature); the
    covariance is projected onto the positive semi-definite matrices (eigenvalues clipped at
    0)."""
    x, w = hermegauss(order)
    w = w / _SQRT_2PI
    mu = pre.mean
    sd, random, rho = _standardise(pre)
    sd = np.where(random, sd, 0.0)
    f_nodes = act(mu[:, None] + sd[:, None] * x[None, :])  # (n, q)
    mean = f_nodes @ w
    n = mu.size
    iu, ju = np.triu_indices(n)
    second = np.empty((n, n))
    chunk = max(1, _BLOCK // (order * order))
    for start in range(0, iu.size, chunk):
        i, j = iu[start:start + chunk], ju[start:start + chunk]
        p = rho[i, j]
        p = np.where(i == j, 1.0, p)
        r = np.sqrt(np.clip(1.0 - p * p, 0.0, None))
        z2 = p[:, None, None] * x[None, :, None] + r[:, None, None] * x[None, None, :]
        g = act(mu[j, None, None] + sd[j, None, None] * z2) @ w  # (P, q): E over x_b
        e = (f_nodes[i] * g) @ w
        second[i, j] = e
        second[j, i] = e
    cov = second - np.outer(mean, mean)
    cov[~random, :] = 0.0
    cov[:, ~random] = 0.0
    # each pair is integrated on its own nodes: the matrix can be slightly indefinite; clip
    vals, vecs = np.linalg.eigh(0.5 * (cov + cov.T))
    return Gaussian(mean, (vecs * np.clip(vals, 0.0, None)) @ vecs.T)


def _sample_moments(pre: Gaussian, fn, n: int, samples: int,
                    seed: int | list[int]) -> Gaussian:
    """Mean and covariance of ``fn(x)`` ((m, d) -> (m, n)) over ``samples`` seeded draws
    ``x = mu + L z`` from ``pre``, ``L L^T = C`` (eigendecomposition; eigenvalues below 1e-12 of
    the largest dropped), in chunks of 4096 draws."""
    lam, u = np.linalg.eigh(pre.cov)
    keep = lam > 1e-12 * max(float(lam.max(initial=0.0)), 1e-300)
    factor = u[:, keep] * np.sqrt(lam[keep])  # (d, r)
    rng = np.random.default_rng(seed)
    total, outer = np.zeros(n), np.zeros((n, n))
    for start in range(0, samples, 4096):
        m = min(4096, samples - start)
        h = fn(pre.mean + rng.standard_normal((m, factor.shape[1])) @ factor.T)
        total += h.sum(0)
        outer += h.T @ h
    mean = total / samples
    return Gaussian(mean, outer / samples - np.outer(mean, mean))


def _monte_carlo(pre: Gaussian, act: Activation, samples: int, seed: int | list[int]) -> Gaussian:
    """``samples`` seeded draws of ``a`` from ``pre``, through ``act``."""
    return _sample_moments(pre, act, pre.dim, samples, seed)


def gated_moments(x: Gaussian, gate_weight: np.ndarray, gate_bias: np.ndarray | None,
                  up_weight: np.ndarray, up_bias: np.ndarray | None,
                  activation: Activation | str, samples: int = 20_000,
                  seed: int | list[int] = 0) -> Gaussian:
    """Mean and covariance of the gated units ``h = phi(G x + g) * (U x + u)`` (a gated MLP's
    hidden layer: LLaMA's ``act(gate_proj(x)) * up_proj(x)``) for ``x ~ N(mu, C)``, by seeded
    Monte Carlo drawn from the model (never from data): ``samples`` draws of ``x``, each unit
    exact given the draw. The two pre-activations of a unit are jointly Gaussian and
    correlated (both read ``x``), which the draws keep.

    Args:
        x: the input's Gaussian model (d features).
        gate_weight, up_weight: (n, d); gate_bias, up_bias: (n,) or None.
        activation: phi, an :class:`Activation` or its name.
        samples, seed: Monte Carlo draws and seed (``numpy.random.default_rng``).

    Returns:
        ``Gaussian(E[h], Cov(h))`` (n units); the error of each entry shrinks as
        ``samples^-1/2``.
    """
    act = activation if isinstance(activation, Activation) else Activation(activation)
    gw, uw = np.asarray(gate_weight, np.float64), np.asarray(up_weight, np.float64)
    if gw.shape != uw.shape or gw.ndim != 2 or gw.shape[1] != x.dim:
        raise InvalidArgumentError(f"gate_weight and up_weight must both have shape (n, "
                                   f"{x.dim}), got {gw.shape} and {uw.shape}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise InvalidArgumentError(f"samples must be an integer >= 2, got {samples!r}")
    gb = 0.0 if gate_bias is None else np.asarray(gate_bias, np.float64)
    ub = 0.0 if up_bias is None else np.asarray(up_bias, np.float64)
    return _sample_moments(x, lambda z: act(z @ gw.T + gb) * (z @ uw.T + ub), gw.shape[0],
                           samples, seed)


def activation_moments(pre: Gaussian, activation: Activation | str, method: str = "auto",
                       order: int = 24, samples: int = 20_000,
                       seed: int | list[int] = 0) -> Gaussian:
    """Mean and covariance of ``h = phi(a)`` for ``a ~ pre`` (n units), as a :class:`Gaussian`.

    Args:
        pre: the pre-activations' Gaussian model ``N(mu, C)`` (n units).
        activation: an :class:`Activation` or its name.
        method: ``"closed"`` (ReLU, leaky ReLU, GELU, identity only; exact, GELU's tanh form
            by GELU's), ``"quadrature"``
            (2-D Gauss-Hermite with ``order`` nodes per axis: ``n (n + 1) / 2 * order^2``
            evaluations of phi), ``"montecarlo"`` (``samples`` draws from ``pre`` seeded by
            ``seed``: ``samples * n^2`` multiply-adds), or ``"auto"``: closed form where there
            is one, else Monte Carlo (Gauss-Hermite converges slowly for steep activations:
            tanh with pre-activation sd 3 is off by 3% at 24 nodes).
        order: Gauss-Hermite nodes per axis.
        samples: Monte Carlo draws.
        seed: Monte Carlo seed (``numpy.random.default_rng`` accepts an int or a list).

    Returns:
        ``Gaussian(E[h], Cov(h))``; constant units (zero variance) have zero rows and columns.

    Raises:
        InvalidArgumentError: unknown method, or ``"closed"`` for an activation without a
            closed form.
    """
    act = activation if isinstance(activation, Activation) else Activation(activation)
    if method not in MOMENT_METHODS:
        raise InvalidArgumentError(f"moment method must be one of {MOMENT_METHODS}, "
                                   f"got {method!r}")
    if method == "auto":
        method = "closed" if act.closed_form else "montecarlo"
    if method == "closed":
        if not act.closed_form:
            raise InvalidArgumentError(f"no closed-form moments for {act.name!r}; use "
                                       "'quadrature' or 'montecarlo'")
        return _closed_form(pre, act)
    if method == "quadrature":
        if isinstance(order, bool) or not isinstance(order, int) or order < 2:
            raise InvalidArgumentError(f"order must be an integer >= 2, got {order!r}")
        return _quadrature(pre, act, order)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise InvalidArgumentError(f"samples must be an integer >= 2, got {samples!r}")
    return _monte_carlo(pre, act, samples, seed)
