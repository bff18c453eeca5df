"""Moments of convolutional feature maps, with no data: channel-level Gaussian fields.

A feature map ``x`` (C channels, H x W positions) is modelled as a stationary Gaussian field
whose channels are correlated at one position and whose positions are correlated
separably and exponentially::

    E[x_c(p)] = m_c,     Cov(x_c(p), x_d(p + (dy, dx))) = S_cd * rho^(|dy| + |dx|)

(:class:`Field`: ``m``, ``S`` and the neighbour correlation ``rho``). Zero padding at the
borders is ignored (the interior model). Through the layers of a CNN:

* ``Conv2d`` (groups 1): ``mean = sum_t W_t m + b`` and ``S' = sum_{t, u} R_tu W_t S W_u^T``
  over kernel taps t, u with ``R_tu = rho^(|dy_t - dy_u| + |dx_t - dx_u|)`` (exact under the
  model); the output's ``rho`` is its neighbour correlation averaged over channels;
* depthwise ``Conv2d`` (groups = channels, one filter ``w_c`` per channel): ``mean_c =
  m_c sum_t w_ct + b_c`` and ``S'_cd = S_cd w_c^T R w_d`` (exact under the model);
* ``BatchNorm``: its running statistics make each channel's output mean ``beta`` and standard
  deviation ``|gamma|`` on the data the model was trained on: those marginals are taken as they
  are (exact, no data read) and only the correlations ``S_cd / (s_c s_d)`` come from the model
  (times ``sign(gamma_c gamma_d)``);
* an activation: the channels' moments by :func:`~.moments.activation_moments`, and the new
  ``rho`` from the same moments of each channel's pair of neighbouring positions;
* max pooling: seeded Monte Carlo over each window (channels and window positions jointly
  Gaussian); ``rho <- rho^stride``;
* average pooling: ``S <- S * f`` with ``f`` the mean correlation of a window's position pairs
  (the whole map for global pooling);
* flattening: a Gaussian over the ``C H W`` features (channels x positions, Kronecker).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import GeometryError
from .activations import Activation
from .moments import Gaussian, activation_moments, pair_covariance

__all__ = ["Field", "conv2d", "depthwise_conv2d", "batchnorm", "activate", "max_pool", "avg_pool",
           "global_avg_pool", "flatten", "tap_correlation", "fit_input_field"]


@dataclass(frozen=True)
class Field:
    """A stationary Gaussian feature map (module docstring).

    Attributes:
        channels: the C channels' mean and covariance at one position.
        rho: neighbour correlation along each axis, in [0, 1).
        size: (H, W).
    """

    channels: Gaussian
    rho: float
    size: tuple[int, int]

    def __post_init__(self) -> None:
        if not 0.0 <= self.rho < 1.0:
            raise GeometryError(f"rho must lie in [0, 1), got {self.rho!r}")


def tap_correlation(rho: float, offsets_a: np.ndarray, offsets_b: np.ndarray) -> np.ndarray:
    """``R[t, u] = rho^(|dy_t - dy_u| + |dx_t - dx_u|)`` for (T, 2) and (U, 2) offsets."""
    d = np.abs(offsets_a[:, None, :] - offsets_b[None, :, :]).sum(-1)
    return np.where(d == 0, 1.0, rho ** np.maximum(d, 1)) if rho > 0 else (d == 0).astype(float)


def _out_size(n: int, k: int, stride: int, pad: int, dil: int) -> int:
    return (n + 2 * pad - dil * (k - 1) - 1) // stride + 1


def _kernel_offsets_and_size(field: Field, kh: int, kw: int, stride: tuple[int, int],
                             padding: tuple[int, int], dilation: tuple[int, int]
                             ) -> tuple[np.ndarray, tuple[int, int]]:
    """A kernel's tap offsets ((kh kw, 2), dilated) and the output size of a convolution."""
    ky, kx = np.meshgrid(np.arange(kh) * dilation[0], np.arange(kw) * dilation[1],
                         indexing="ij")
    h, wd = field.size
    return np.stack([ky.ravel(), kx.ravel()], 1), (
        _out_size(h, kh, stride[0], padding[0], dilation[0]),
        _out_size(wd, kw, stride[1], padding[1], dilation[1]))


def conv2d(field: Field, weight: np.ndarray, bias: np.ndarray | None, stride: tuple[int, int],
           padding: tuple[int, int], dilation: tuple[int, int]) -> Field:
    """The field after ``Conv2d`` (weight (O, C, kh, kw), groups 1)."""
    w = np.asarray(weight, dtype=np.float64)
    o, c, kh, kw = w.shape
    if c != field.channels.dim:
        raise GeometryError(f"conv reads {c} channels, the field has {field.channels.dim}")
    offsets, size = _kernel_offsets_and_size(field, kh, kw, stride, padding, dilation)
    taps = w.reshape(o, c, kh * kw).transpose(2, 0, 1)  # (T, O, C)
    r = tap_correlation(field.rho, offsets, offsets)
    vals, vecs = np.linalg.eigh(r)
    factor = vecs * np.sqrt(np.clip(vals, 0.0, None))  # R = F F^T
    mixed = np.tensordot(factor, taps, axes=([0], [0]))  # (J, O, C)
    s = field.channels.cov
    cov = sum(mj @ s @ mj.T for mj in mixed)
    mean = taps.sum(0) @ field.channels.mean + (0.0 if bias is None else np.asarray(bias))
    # neighbour correlation of the output along x: the second position reads `stride` further
    shifted = offsets + np.array([0, stride[1]])
    r1 = tap_correlation(field.rho, offsets, shifted)
    ts = taps @ s  # (T, O, C)
    paired = np.tensordot(r1, taps, axes=([1], [0]))  # (T, O, C): sum_u R1[t, u] W_u
    cross = np.einsum("toc,toc->o", ts, paired)
    var = np.diag(cov)
    rho = float(np.clip(cross.sum() / var.sum(), 0.0, 0.999)) if var.sum() > 0 else 0.0
    return Field(Gaussian(mean, cov), rho, size)


def depthwise_conv2d(field: Field, weight: np.ndarray, bias: np.ndarray | None,
                     stride: tuple[int, int], padding: tuple[int, int],
                     dilation: tuple[int, int]) -> Field:
    """The field after a depthwise ``Conv2d`` (weight (C, 1, kh, kw), groups = C: channel c of
    the output reads channel c of the input only). Equal to :func:`conv2d` with the
    block-diagonal weight ``W[c, d] = w_c [c = d]``, in O(C^2 T^2) instead of O(C^3 T)."""
    w = np.asarray(weight, dtype=np.float64)
    c, one, kh, kw = w.shape
    if one != 1 or c != field.channels.dim:
        raise GeometryError(f"a depthwise conv of weight {w.shape} reads a field of "
                            f"{field.channels.dim} channels")
    offsets, size = _kernel_offsets_and_size(field, kh, kw, stride, padding, dilation)
    taps = w.reshape(c, kh * kw)  # (C, T)
    s = field.channels.cov
    cov = s * (taps @ tap_correlation(field.rho, offsets, offsets) @ taps.T)
    mean = field.channels.mean * taps.sum(1) + (0.0 if bias is None else np.asarray(bias))
    shifted = offsets + np.array([0, stride[1]])
    cross = np.diag(s) * np.einsum("ct,tu,cu->c", taps,
                                   tap_correlation(field.rho, offsets, shifted), taps)
    var = np.diag(cov)
    rho = float(np.clip(cross.sum() / var.sum(), 0.0, 0.999)) if var.sum() > 0 else 0.0
    return Field(Gaussian(mean, cov), rho, size)


def batchnorm(field: Field, weight: np.ndarray, bias: np.ndarray,
              running_var: np.ndarray | None = None, eps: float = 0.0) -> Field:
    """The field after BatchNorm with affine ``weight`` (gamma) and ``bias`` (beta): on the data
    its running statistics were measured on, each channel has mean ``beta`` and variance
    ``gamma^2 var / (var + eps)`` (``gamma^2`` unless the channel is nearly constant); those
    marginals are taken as they are, the correlations are the input's times
    ``sign(gamma_c gamma_d)``."""
    g = np.asarray(weight, dtype=np.float64)
    if running_var is not None:
        rv = np.asarray(running_var, dtype=np.float64)
        g = g * np.sqrt(rv / (rv + eps))
    sd = field.channels.std
    safe = np.where(sd > 0, sd, 1.0)
    corr = field.channels.cov / np.outer(safe, safe)
    np.fill_diagonal(corr, 1.0)
    return Field(Gaussian(np.asarray(bias, dtype=np.float64), corr * np.outer(g, g)),
                 field.rho, field.size)


def activate(field: Field, act: Activation, method: str = "auto", order: int = 24,
             samples: int = 20_000, seed: int | list[int] = 0) -> Field:
    """The field after an elementwise activation."""
    h = activation_moments(field.channels, act, method, order=order, samples=samples, seed=seed)
    # rho: the moments of (x_c(p), x_c(p + 1)) for every channel c (pairs independent)
    var = np.diag(field.channels.cov)
    if method in ("auto", "closed") and act.closed_form:  # exact, channel by channel
        cross = pair_covariance(field.channels.mean, var, field.rho, act).sum()
    else:
        cross = _neighbour_covariance(field.channels.mean, var, field.rho, act, method, order,
                                      samples, seed)
    total = np.diag(h.cov).sum()
    rho = float(np.clip(cross / total, 0.0, 0.999)) if total > 0 else 0.0
    return Field(h, rho, field.size)


def _neighbour_covariance(mean: np.ndarray, var: np.ndarray, rho: float, act: Activation,
                          method: str, order: int, samples: int,
                          seed: int | list[int]) -> float:
    """``sum_c Cov(phi(x_c(p)), phi(x_c(p + 1)))`` for independent pairs ``(x_c(p), x_c(p + 1))
    ~ N(m_c, v_c [[1, rho], [rho, 1]])``, channel by channel: 2-D Gauss-Hermite with ``order``
    nodes per axis (``method="quadrature"``) or ``samples`` seeded draws of the pair shared by
    every channel (Monte Carlo), ``O(n x nodes)`` instead of the ``O(samples n^2)`` of the
    moments of all 2n positions jointly."""
    if method == "quadrature":
        t, w = np.polynomial.hermite_e.hermegauss(order)
        z1, z2 = (a.ravel() for a in np.meshgrid(t, t, indexing="ij"))
        weights = np.outer(w, w).ravel() / w.sum() ** 2
    else:
        z1, z2 = np.random.default_rng(seed).standard_normal((2, samples))
        weights = np.full(samples, 1.0 / samples)
    z2 = rho * z1 + np.sqrt(max(1.0 - rho * rho, 0.0)) * z2
    sd = np.sqrt(np.clip(var, 0.0, None))
    cross = 0.0
    for start in range(0, mean.size, 256):  # 256 channels x nodes at a time
        c = slice(start, start + 256)
        a = act(mean[c, None] + sd[c, None] * z1[None, :])
        b = act(mean[c, None] + sd[c, None] * z2[None, :])
        cross += float(((a * b) @ weights - (a @ weights) * (b @ weights)).sum())
    return cross


def max_pool(field: Field, kernel: tuple[int, int], stride: tuple[int, int],
             padding: tuple[int, int] = (0, 0), samples: int = 20_000,
             seed: int | list[int] = 0, activation: Activation | None = None) -> Field:
    """The field after max pooling: Monte Carlo over one window (channels x window positions
    Gaussian with covariance ``S (x) R``), ``rho <- rho^stride``. With ``activation``, ``field``
    is the field *before* that activation and the pooled values are ``max`` over the window of
    ``activation(x)`` (exact under the model; pooling a moment-matched Gaussian of a ReLU's
    output instead overstates the mean by ~8%)."""
    c = field.channels
    lam, u = np.linalg.eigh(c.cov)
    keep = lam > 1e-12 * max(float(lam.max(initial=0.0)), 1e-300)
    lc = u[:, keep] * np.sqrt(lam[keep])  # (C, r)
    ky, kx = np.meshgrid(np.arange(kernel[0]), np.arange(kernel[1]), indexing="ij")
    offsets = np.stack([ky.ravel(), kx.ravel()], 1)
    rv, ru = np.linalg.eigh(tap_correlation(field.rho, offsets, offsets))
    lw = ru * np.sqrt(np.clip(rv, 0.0, None))  # (P, P)
    rng = np.random.default_rng(seed)
    n = c.dim
    total, outer = np.zeros(n), np.zeros((n, n))
    chunk = max(1, (1 << 22) // max(n * offsets.shape[0], 1))
    for start in range(0, samples, chunk):
        m = min(chunk, samples - start)
        z = rng.standard_normal((m, lc.shape[1], offsets.shape[0]))
        x = c.mean[None, :, None] + np.matmul(lc, z) @ lw.T  # (m, C, P)
        h = (x if activation is None else activation(x)).max(axis=2)
        total += h.sum(0)
        outer += h.T @ h
    mean = total / samples
    size = tuple(_out_size(s, k, st, p, 1) for s, k, st, p in
                 zip(field.size, kernel, stride, padding, strict=True))
    rho = field.rho
    if activation is not None:  # the neighbour correlation after the activation
        rho = activate(field, activation, "auto", samples=samples, seed=seed).rho
    return Field(Gaussian(mean, outer / samples - np.outer(mean, mean)),
                 float(rho ** max(stride)), size)


def _mean_window_correlation(rho: float, n: int) -> float:
    i = np.arange(n)
    return float((rho ** np.abs(i[:, None] - i[None, :])).mean()) if rho > 0 else 1.0 / n


def avg_pool(field: Field, kernel: tuple[int, int], stride: tuple[int, int],
             padding: tuple[int, int] = (0, 0)) -> Field:
    """The field after average pooling: ``S`` times the mean correlation of a window's position
    pairs; ``rho <- rho^stride``."""
    f = _mean_window_correlation(field.rho, kernel[0]) * \
        _mean_window_correlation(field.rho, kernel[1])
    size = tuple(_out_size(s, k, st, p, 1) for s, k, st, p in
                 zip(field.size, kernel, stride, padding, strict=True))
    return Field(Gaussian(field.channels.mean, field.channels.cov * f),
                 float(field.rho ** max(stride)), size)


def global_avg_pool(field: Field) -> Field:
    """The field after averaging over every position (a 1 x 1 map)."""
    return avg_pool(field, field.size, field.size)


def flatten(field: Field) -> Gaussian:
    """The Gaussian of the flattened ``(C, H, W)`` features (row-major)."""
    h, w = field.size
    ky, kx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    pos = np.stack([ky.ravel(), kx.ravel()], 1)
    r = tap_correlation(field.rho, pos, pos)
    return Gaussian(np.repeat(field.channels.mean, h * w), np.kron(field.channels.cov, r))


def fit_input_field(weight: np.ndarray, bias: np.ndarray | None, out_mean: np.ndarray,
                    out_var: np.ndarray, size: tuple[int, int],
                    rhos: tuple[float, ...] = tuple(np.arange(10) / 10)) -> tuple[Field, float]:
    """The field of independent channels that makes a convolution's outputs have the given
    per-channel means and variances (a BatchNorm's running statistics: measured on the
    training data, stored in the model).

    For independent input channels with means ``m`` and variances ``v`` and neighbour
    correlation ``rho``, output channel o has mean ``sum_c (sum_t W[o, c, t]) m_c + b_o`` and
    variance ``sum_c v_c sum_{t, u} R_tu W[o, c, t] W[o, c, u]``: ``m`` is the least-squares
    solution of the first (minimum norm), ``v >= 0`` the non-negative least-squares solution of
    the second, and ``rho`` the value of ``rhos`` with the smallest relative residual.

    Returns:
        ``(field, relative residual of the variances)``.
    """
    from scipy.optimize import nnls

    w = np.asarray(weight, dtype=np.float64)
    o, c, kh, kw = w.shape
    ky, kx = np.meshgrid(np.arange(kh), np.arange(kw), indexing="ij")
    offsets = np.stack([ky.ravel(), kx.ravel()], 1)
    taps = w.reshape(o, c, kh * kw)
    target_mean = np.asarray(out_mean, dtype=np.float64) - (0.0 if bias is None else bias)
    mean = np.linalg.lstsq(taps.sum(-1), target_mean, rcond=None)[0]
    target_var = np.asarray(out_var, dtype=np.float64)
    best = None
    for rho in rhos:
        r = tap_correlation(float(rho), offsets, offsets)
        design = np.einsum("oct,tu,ocu->oc", taps, r, taps)
        var, res = nnls(design, target_var)
        rel = res / max(float(np.linalg.norm(target_var)), 1e-300)
        if best is None or rel < best[2]:
            best = (var, float(rho), rel)
    var, rho, rel = best
    return Field(Gaussian(mean, np.diag(var)), rho, size), rel
