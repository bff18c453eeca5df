import numpy as np
import pytest
import torch
import torch.nn.functional as F

from coreprune.errors import GeometryError
from coreprune.reconstruction import Activation, Gaussian, activation_moments, spatial
from coreprune.reconstruction.spatial import Field


def _sample_field(field: Field, n: int, seed: int = 0) -> torch.Tensor:
    """n maps of the field: channels mixed by chol(S), positions an AR(1) process per axis
    (separable correlation rho^(|dy| + |dx|))."""
    c = field.channels
    h, w = field.size
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, c.dim, h, w, generator=g, dtype=torch.float64)

    def ar(k):
        i = torch.arange(k, dtype=torch.float64)
        return torch.linalg.cholesky(field.rho ** (i[:, None] - i[None, :]).abs())

    z = ar(h) @ z @ ar(w).T
    lc = torch.as_tensor(np.linalg.cholesky(c.cov + 1e-12 * np.eye(c.dim)))
    return torch.as_tensor(c.mean)[None, :, None, None] + torch.einsum("cd,ndhw->nchw", lc, z)


def _interior_moments(x: torch.Tensor, margin: int) -> tuple[np.ndarray, np.ndarray, float]:
    x = x[:, :, margin:x.shape[2] - margin, margin:x.shape[3] - margin]
    flat = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]).numpy()
    a, b = x[..., :-1].numpy(), x[..., 1:].numpy()
    am, bm = a.mean((0, 2, 3), keepdims=True), b.mean((0, 2, 3), keepdims=True)
    rho = ((a - am) * (b - bm)).mean((0, 2, 3)).sum() / x.var((0, 2, 3)).sum().item()
    return flat.mean(0), np.cov(flat.T, bias=True), float(rho)


def _field(seed=0, c=5, rho=0.6, size=(20, 20)):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(c, c))
    return Field(Gaussian(rng.normal(size=c) * 0.5, a @ a.T / c + 0.2 * np.eye(c)), rho, size)


@pytest.mark.parametrize("stride", [1, 2])
def test_conv2d_moments_match_monte_carlo_through_torch(stride):
    field = _field()
    rng = np.random.default_rng(1)
    w, b = rng.normal(size=(4, 5, 3, 3)) * 0.4, rng.normal(size=4)
    out = spatial.conv2d(field, w, b, (stride, stride), (1, 1), (1, 1))
    x = _sample_field(field, 3000)
    y = F.conv2d(x, torch.as_tensor(w), torch.as_tensor(b), stride=stride, padding=1)
    mean, cov, rho = _interior_moments(y, 1)
    assert out.size == tuple(y.shape[2:])
    np.testing.assert_allclose(out.channels.mean, mean, atol=0.03 * np.abs(mean).max())
    np.testing.assert_allclose(out.channels.cov, cov, atol=0.03 * np.abs(cov).max())
    assert out.rho == pytest.approx(rho, abs=0.03)


@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_conv2d_equals_conv2d_with_block_diagonal_weight(stride):
    field = _field(seed=3)
    rng = np.random.default_rng(4)
    w, b = rng.normal(size=(5, 1, 3, 3)), rng.normal(size=5)
    full = np.zeros((5, 5, 3, 3))
    full[np.arange(5), np.arange(5)] = w[:, 0]
    dw = spatial.depthwise_conv2d(field, w, b, (stride, stride), (1, 1), (1, 1))
    ref = spatial.conv2d(field, full, b, (stride, stride), (1, 1), (1, 1))
    np.testing.assert_allclose(dw.channels.mean, ref.channels.mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw.channels.cov, ref.channels.cov, rtol=1e-10, atol=1e-12)
    assert dw.rho == pytest.approx(ref.rho, abs=1e-12) and dw.size == ref.size
    x = _sample_field(field, 3000)  # and both match torch's depthwise convolution
    y = F.conv2d(x, torch.as_tensor(w), torch.as_tensor(b), stride=stride, padding=1, groups=5)
    mean, cov, _ = _interior_moments(y, 1)
    np.testing.assert_allclose(dw.channels.cov, cov, atol=0.04 * np.abs(cov).max())
    np.testing.assert_allclose(dw.channels.mean, mean, atol=0.04 * np.abs(mean).max())
    with pytest.raises(GeometryError):
        spatial.depthwise_conv2d(field, w[:4], b[:4], (1, 1), (1, 1), (1, 1))


def test_relu_after_batchnorm_and_pooling_match_monte_carlo():
    field = _field(seed=2, rho=0.7)
    gamma, beta = np.array([1.0, -0.5, 2.0, 0.7, 1.2]), np.array([0.3, 0.0, -0.4, 1.0, 0.2])
    x = _sample_field(field, 3000, seed=3)
    xm, xc, _ = _interior_moments(x, 0)
    y = (x - torch.as_tensor(xm)[None, :, None, None]) / torch.as_tensor(
        np.sqrt(np.diag(xc)))[None, :, None, None]
    y = y * torch.as_tensor(gamma)[None, :, None, None] + torch.as_tensor(beta)[None, :, None, None]
    # BatchNorm whose running statistics are the input's: marginals N(beta, gamma^2)
    bn = spatial.batchnorm(field, gamma, beta)
    mean, cov, _ = _interior_moments(y, 0)
    np.testing.assert_allclose(bn.channels.mean, mean, atol=0.02)
    np.testing.assert_allclose(bn.channels.cov, cov, atol=0.03 * np.abs(cov).max())
    h = spatial.activate(bn, Activation("relu"))
    mean, cov, rho = _interior_moments(torch.relu(y), 0)
    np.testing.assert_allclose(h.channels.mean, mean, atol=0.02 * np.abs(mean).max())
    np.testing.assert_allclose(h.channels.cov, cov, atol=0.03 * np.abs(cov).max())
    assert h.rho == pytest.approx(rho, abs=0.03)
    relu = Activation("relu")
    for pool, torch_pool, tol in ((spatial.max_pool(bn, (2, 2), (2, 2), samples=50_000,
                                                    activation=relu),
                                   F.max_pool2d(torch.relu(y), 2), 0.03),
                                  (spatial.avg_pool(h, (2, 2), (2, 2)),
                                   F.avg_pool2d(torch.relu(y), 2), 0.03)):
        mean, cov, _ = _interior_moments(torch_pool, 0)
        np.testing.assert_allclose(pool.channels.mean, mean, atol=tol * np.abs(mean).max())
        np.testing.assert_allclose(pool.channels.cov, cov, atol=tol * np.abs(cov).max())
    g = spatial.global_avg_pool(h)
    ref = torch.relu(y).mean((2, 3)).numpy()
    # after an activation the correlation no longer decays exactly as rho^d: the model's
    # exponential underestimates long-range correlation (here by up to 37%)
    np.testing.assert_allclose(g.channels.mean, ref.mean(0), atol=0.02 * np.abs(ref).max())
    np.testing.assert_allclose(g.channels.cov, np.cov(ref.T, bias=True),
                               atol=0.4 * np.abs(g.channels.cov).max())


@pytest.mark.parametrize("method", ["montecarlo", "quadrature"])
@pytest.mark.parametrize("name", ["silu", "relu6", "tanh"])
def test_neighbour_correlation_after_an_activation_matches_sampling(name, method):
    field = _field(seed=6, rho=0.6)
    act = Activation(name)
    h = spatial.activate(field, act, method, samples=40_000)
    x = _sample_field(field, 3000, seed=7)
    _, _, rho = _interior_moments(torch.as_tensor(act(x.numpy())), 0)
    assert h.rho == pytest.approx(rho, abs=0.03)
    # the channel-by-channel neighbour covariance equals that of all 2n positions jointly
    var = np.diag(field.channels.cov)
    pair = Gaussian(np.r_[field.channels.mean, field.channels.mean],
                    np.block([[np.diag(var), 0.6 * np.diag(var)], [0.6 * np.diag(var),
                                                                    np.diag(var)]]))
    joint = np.diag(activation_moments(pair, act, "quadrature", order=24).cov[:5, 5:]).sum()
    cross = spatial._neighbour_covariance(field.channels.mean, var, 0.6, act, method, 24,
                                          200_000, 0)
    # (the joint route projects its 2n x 2n covariance onto the PSD cone: not bit-equal)
    assert cross == pytest.approx(joint, rel=0.02 if method == "montecarlo" else 0.005)


def test_flatten_and_input_fit():
    field = _field(c=2, size=(3, 2))
    flat = spatial.flatten(field)
    x = _sample_field(field, 40_000, seed=4).reshape(40_000, -1).numpy()
    np.testing.assert_allclose(flat.cov, np.cov(x.T, bias=True), atol=0.05 * flat.cov.max())
    # the input field fitted to a conv's output statistics reproduces them
    rng = np.random.default_rng(5)
    w = rng.normal(size=(8, 3, 3, 3))
    truth = Field(Gaussian.independent(3, [0.5, 1.0, -0.2], [1.0, 0.5, 2.0]), 0.6, (10, 10))
    out = spatial.conv2d(truth, w, None, (1, 1), (1, 1), (1, 1))
    fitted, rel = spatial.fit_input_field(w, None, out.channels.mean,
                                          np.diag(out.channels.cov), (10, 10))
    assert rel < 1e-6 and fitted.rho == pytest.approx(0.6)
    np.testing.assert_allclose(np.diag(fitted.channels.cov), [1.0, 0.25, 4.0], rtol=1e-5)
    np.testing.assert_allclose(fitted.channels.mean, [0.5, 1.0, -0.2], atol=1e-8)
    with pytest.raises(GeometryError, match="rho must lie in"):
        Field(field.channels, 1.0, (2, 2))
