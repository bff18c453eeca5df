import numpy as np
import pytest
from scipy.stats import multivariate_normal

from coreprune.errors import GeometryError, InvalidArgumentError
from coreprune.reconstruction import Activation, Gaussian, activation_moments, bivariate_normal_cdf


def _model(seed=0, n=7, d=4, mean_scale=0.8):
    """Pre-activations of n units from a rank-d map; unit 3 = 2.5 x unit 1, unit 5 = unit 0,
    unit 6 = -unit 2 (rho = +1, +1, -1 pairs) and unit 4 constant."""
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, d))
    p[3], p[5], p[6], p[4] = 2.5 * p[1], p[0], -p[2], 0.0
    mean = rng.normal(size=n) * mean_scale
    mean[3], mean[5], mean[6] = 2.5 * mean[1], mean[0], -mean[2]
    return Gaussian(mean, p @ p.T), p


def _sampled(pre, p, act, n=1_000_000, seed=1):
    a = pre.mean + np.random.default_rng(seed).standard_normal((n, p.shape[1])) @ p.T
    h = Activation(act)(a) if isinstance(act, str) else act(a)
    return h.mean(0), np.cov(h.T, bias=True)


@pytest.mark.parametrize("act", ["relu", "leaky_relu", "gelu", "identity"])
def test_closed_form_matches_brute_force_sampling(act):
    pre, p = _model()
    mean, cov = _sampled(pre, p, act)
    got = activation_moments(pre, act, method="closed")
    scale = np.abs(cov).max()
    np.testing.assert_allclose(got.mean, mean, atol=4e-3 * np.sqrt(scale))
    np.testing.assert_allclose(got.cov, cov, atol=6e-3 * scale)


def test_relu_closed_form_is_exact_for_multiples_duplicates_and_constants():
    pre, _ = _model()
    h = activation_moments(pre, "relu", method="closed")
    # unit 3 = 2.5 unit 1 and unit 5 = unit 0, exactly (ReLU is positively homogeneous)
    np.testing.assert_allclose(h.cov[3], 2.5 * h.cov[1], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h.cov[5], h.cov[0], rtol=1e-10, atol=1e-12)
    assert h.mean[3] == pytest.approx(2.5 * h.mean[1], rel=1e-12)
    # the constant unit: relu(mean), no variance, no covariance
    assert h.mean[4] == pytest.approx(max(pre.mean[4], 0.0))
    assert not np.any(h.cov[4]) and not np.any(h.cov[:, 4])
    # positive semi-definite, as a true covariance
    assert np.linalg.eigvalsh(h.cov).min() > -1e-9 * np.abs(h.cov).max()


def test_gelu_closed_form_is_the_limit_of_quadrature_and_exact_for_duplicates_and_constants():
    pre, _ = _model(seed=3, mean_scale=1.0)
    closed = activation_moments(pre, "gelu", method="closed")
    scale = np.abs(closed.cov).max()
    # Gauss-Hermite converges to it: 120 then 240 nodes per axis
    errors = [np.abs(activation_moments(pre, "gelu", "quadrature", order=o).cov - closed.cov)
              .max() / scale for o in (120, 240)]
    assert errors[1] < 1e-6 and errors[1] < errors[0]
    small = Gaussian(0.3 * pre.mean, 0.09 * pre.cov)  # sd < 1: 60 nodes are exact to rounding
    np.testing.assert_allclose(activation_moments(small, "gelu", "closed").cov,
                               activation_moments(small, "gelu", "quadrature", order=60).cov,
                               atol=1e-13)
    np.testing.assert_allclose(closed.cov[5], closed.cov[0], rtol=1e-12, atol=1e-14)
    assert closed.mean[4] == pytest.approx(Activation("gelu")(pre.mean[4]))
    assert np.abs(closed.cov[4]).max() < 1e-14 and np.abs(closed.cov[:, 4]).max() < 1e-14
    assert np.linalg.eigvalsh(closed.cov).min() > -1e-9 * scale


def test_tanh_gelu_by_the_gelu_closed_form_beats_monte_carlo():
    pre, _ = _model(seed=4, mean_scale=0.5)
    exact = activation_moments(pre, "gelu_tanh", "quadrature", order=240)
    scale = np.abs(exact.cov).max()
    closed = activation_moments(pre, "gelu_tanh")  # auto: GELU's closed form
    np.testing.assert_array_equal(closed.cov, activation_moments(pre, "gelu", "closed").cov)
    sampled = activation_moments(pre, "gelu_tanh", "montecarlo", samples=20_000)
    closed_error = np.abs(closed.cov - exact.cov).max() / scale
    assert closed_error < 1e-3
    assert closed_error < 0.1 * np.abs(sampled.cov - exact.cov).max() / scale


def test_zero_mean_relu_is_the_arc_cosine_kernel():
    rng = np.random.default_rng(3)
    p = rng.normal(size=(5, 3))
    h = activation_moments(Gaussian(np.zeros(5), p @ p.T), "relu", method="closed")
    s = np.linalg.norm(p, axis=1)
    cos = np.clip(p @ p.T / np.outer(s, s), -1, 1)
    t = np.arccos(cos)
    second = np.outer(s, s) / (2 * np.pi) * (np.sin(t) + (np.pi - t) * cos)
    # (the bivariate CDF moves |h| < 1e-10 to 1e-10: an error below 1e-9 relative)
    np.testing.assert_allclose(h.cov + np.outer(h.mean, h.mean), second, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(h.mean, s / np.sqrt(2 * np.pi), rtol=1e-12)


@pytest.mark.parametrize("act", ["gelu", "silu", "tanh", "sigmoid", "elu", "softplus", "mish"])
def test_monte_carlo_and_quadrature_match_brute_force_for_smooth_activations(act):
    pre, p = _model(seed=2, mean_scale=0.5)
    for factor, routes in ((1.0, ("montecarlo",)), (0.3, ("montecarlo", "quadrature"))):
        # Monte Carlo at any scale; 24-node Gauss-Hermite at pre-activation sd up to ~1.5 (it
        # converges slowly for steep activations: tanh at sd 3 is 4% off)
        scaled = Gaussian(pre.mean * factor, pre.cov * factor**2)
        mean, cov = _sampled(scaled, p * factor, act)
        scale = np.abs(cov).max()
        got = {r: activation_moments(scaled, act, method=r, samples=200_000, seed=5, order=24)
               for r in routes}
        for g in got.values():
            np.testing.assert_allclose(g.mean, mean, atol=2e-2 * np.sqrt(scale) + 1e-3)
            np.testing.assert_allclose(g.cov, cov, atol=2e-2 * scale)
        if len(got) == 2:  # the two routes against each other
            np.testing.assert_allclose(got["montecarlo"].cov, got["quadrature"].cov,
                                       atol=3e-2 * scale)


def test_quadrature_agrees_with_the_closed_form_for_relu_within_its_known_error():
    pre, _ = _model(seed=4)
    closed = activation_moments(pre, "relu", method="closed")
    quad = activation_moments(pre, "relu", method="quadrature", order=48)
    assert np.abs(quad.cov - closed.cov).max() < 2e-2 * np.abs(closed.cov).max()


def test_monte_carlo_is_seeded_and_auto_picks_the_closed_form():
    pre, _ = _model()
    a = activation_moments(pre, "silu", samples=5000, seed=[1, 2])
    b = activation_moments(pre, "silu", samples=5000, seed=[1, 2])
    c = activation_moments(pre, "silu", samples=5000, seed=[1, 3])
    np.testing.assert_array_equal(a.cov, b.cov)
    assert not np.array_equal(a.cov, c.cov)
    np.testing.assert_array_equal(activation_moments(pre, "relu").cov,
                                  activation_moments(pre, "relu", method="closed").cov)


def test_bivariate_normal_cdf_matches_scipy_and_its_limits():
    rng = np.random.default_rng(0)
    for _ in range(25):
        h, k = rng.normal(size=2) * 1.5
        r = rng.uniform(-0.99, 0.99)
        ref = multivariate_normal([0, 0], [[1, r], [r, 1]]).cdf([h, k])
        assert bivariate_normal_cdf(np.array(h), np.array(k), np.array(r)) == \
            pytest.approx(ref, abs=1e-7)
    from scipy.special import ndtr

    h, k = np.array([0.3, -1.0, 0.0]), np.array([-0.2, 0.5, 0.0])
    np.testing.assert_allclose(bivariate_normal_cdf(h, k, np.ones(3)), ndtr(np.minimum(h, k)),
                               atol=1e-9)
    np.testing.assert_allclose(bivariate_normal_cdf(h, k, -np.ones(3)),
                               np.maximum(ndtr(h) + ndtr(k) - 1, 0), atol=1e-9)


def test_gaussian_affine_take_and_errors():
    g = Gaussian.independent(3, mean=[1.0, 2.0, 3.0], std=2.0)
    w = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    a = g.affine(w, np.array([1.0, -1.0]))
    np.testing.assert_allclose(a.mean, [4.0, 8.0])
    np.testing.assert_allclose(a.cov, [[8.0, 0.0], [0.0, 36.0]])
    np.testing.assert_allclose(g.take([2]).cov, [[4.0]])
    with pytest.raises(GeometryError, match="cov must have shape"):
        Gaussian(np.zeros(2), np.eye(3))
    with pytest.raises(GeometryError, match="NaN or Inf"):
        Gaussian(np.array([np.nan]), np.eye(1))
    with pytest.raises(GeometryError, match="weight must have shape"):
        g.affine(np.ones((2, 2)))
    with pytest.raises(InvalidArgumentError, match="no closed-form moments for 'silu'"):
        activation_moments(g, "silu", method="closed")
    with pytest.raises(InvalidArgumentError, match="moment method must be one of"):
        activation_moments(g, "relu", method="exact")
    with pytest.raises(InvalidArgumentError, match="unknown activation 'swish2'"):
        Activation("swish2")


def test_mixture_moments_match_sampling_the_mixture():
    rng = np.random.default_rng(0)
    comps = [Gaussian(rng.normal(size=3), (lambda a: a @ a.T)(rng.normal(size=(3, 3))))
             for _ in range(3)]
    w = np.array([0.2, 0.3, 0.5])
    mix = Gaussian.mixture(comps, w)
    n = 400_000
    which = rng.choice(3, size=n, p=w)
    x = np.empty((n, 3))
    for k, c in enumerate(comps):
        idx = which == k
        x[idx] = rng.multivariate_normal(c.mean, c.cov, size=idx.sum())
    np.testing.assert_allclose(mix.mean, x.mean(0), atol=0.02)
    np.testing.assert_allclose(mix.cov, np.cov(x.T, bias=True), atol=0.05 * np.abs(mix.cov).max())
    # equal weights by default; one component is itself; the covariance exceeds the average one
    # by the spread of the means
    eq = Gaussian.mixture(comps)
    spread = np.mean([np.outer(c.mean - eq.mean, c.mean - eq.mean) for c in comps], 0)
    np.testing.assert_allclose(eq.cov, np.mean([c.cov for c in comps], 0) + spread, atol=1e-12)
    assert Gaussian.mixture(comps[:1]) is comps[0]
    with pytest.raises(GeometryError, match="at least one component"):
        Gaussian.mixture([])
    with pytest.raises(GeometryError, match="differ in dimension"):
        Gaussian.mixture([comps[0], Gaussian.independent(2)])
    with pytest.raises(InvalidArgumentError, match="summing to 1"):
        Gaussian.mixture(comps, [0.5, 0.5, 0.5])


def test_gated_moments_match_gauss_hermite_and_are_seeded():
    """``silu(G x) * (U x + u)`` for x ~ N(m, diag(s^2)) in 3 dimensions: Monte Carlo from the
    model against a 3-D Gauss-Hermite grid (exact to many digits for this smooth integrand);
    a unit whose up row is zero has zero moments; the same seed gives the same moments."""
    from coreprune.reconstruction import gated_moments

    rng = np.random.default_rng(0)
    m, s = rng.normal(size=3), rng.uniform(0.5, 1.5, size=3)
    gw, uw, ub = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), rng.normal(size=4)
    uw[3], ub[3] = 0.0, 0.0
    x = Gaussian(m, np.diag(s ** 2))
    mc = gated_moments(x, gw, None, uw, ub, "silu", samples=400_000, seed=1)
    nodes, weights = np.polynomial.hermite_e.hermegauss(30)
    grid = np.stack(np.meshgrid(nodes, nodes, nodes, indexing="ij"), -1).reshape(-1, 3)
    w = np.prod(np.stack(np.meshgrid(weights, weights, weights, indexing="ij"), -1)
                .reshape(-1, 3), 1) / (2 * np.pi) ** 1.5
    z = m + grid * s
    a = z @ gw.T
    h = a / (1 + np.exp(-a)) * (z @ uw.T + ub)
    mean = w @ h
    cov = (h * w[:, None]).T @ h - np.outer(mean, mean)
    scale = np.sqrt(np.diag(cov)[:3]).max()
    np.testing.assert_allclose(mc.mean, mean, atol=0.01 * scale)
    np.testing.assert_allclose(mc.cov, cov, atol=0.02 * scale ** 2)
    assert mc.mean[3] == 0.0 and not np.any(mc.cov[3])
    again = gated_moments(x, gw, None, uw, ub, "silu", samples=1000, seed=[2, 3])
    np.testing.assert_array_equal(
        again.cov, gated_moments(x, gw, None, uw, ub, "silu", samples=1000, seed=[2, 3]).cov)


@pytest.mark.parametrize("act", [Activation("relu"), Activation("leaky_relu", 0.1),
                                 Activation("gelu"), Activation("identity")])
def test_pair_covariance_is_the_cross_block_of_all_pairs_and_matches_sampling(act):
    from coreprune.reconstruction.moments import pair_covariance

    rng = np.random.default_rng(3)
    m, v = rng.normal(size=6), rng.uniform(0.2, 2.0, size=6)
    v[4] = 0.0  # a constant channel
    for rho in (0.0, 0.6, -0.3):
        block = np.block([[np.diag(v), rho * np.diag(v)], [rho * np.diag(v), np.diag(v)]])
        full = activation_moments(Gaussian(np.r_[m, m], block), act, "closed")
        np.testing.assert_allclose(pair_covariance(m, v, rho, act), np.diag(full.cov[:6, 6:]),
                                   atol=1e-12)
    z = np.random.default_rng(4).standard_normal((2, 400_000))
    x1 = m[:, None] + np.sqrt(v)[:, None] * z[0]
    x2 = m[:, None] + np.sqrt(v)[:, None] * (0.6 * z[0] + 0.8 * z[1])
    a, b = act(x1), act(x2)
    sampled = (a * b).mean(1) - a.mean(1) * b.mean(1)
    np.testing.assert_allclose(pair_covariance(m, v, 0.6, act), sampled, atol=0.01)
    with pytest.raises(InvalidArgumentError, match="closed-form"):
        pair_covariance(m, v, 0.5, "silu")
