"""What an attention head contributes: closed-form moments against Monte Carlo, and the bound
for any attention pattern."""

import numpy as np
import pytest

from coreprune.errors import InvalidArgumentError
from coreprune.reconstruction import head_output_moments


def _head_weights(rng, heads=3, d=4, d_in=6, d_out=5):
    return (rng.normal(size=(heads, d, d_in)), rng.normal(size=(heads, d)),
            rng.normal(size=(heads, d_out, d)), rng.normal(size=d_in),
            rng.uniform(0.2, 2.0, size=d_in))


def test_moments_match_monte_carlo():
    rng = np.random.default_rng(0)
    wv, bv, wo, m, s = _head_weights(rng)
    mean, second = head_output_moments(wv, bv, wo, m, s)
    x = m + s * rng.normal(size=(200_000, m.size))
    u = np.einsum("hod,hnd->hno", wo, np.einsum("hdi,ni->hnd", wv, x) + bv[:, None])
    np.testing.assert_allclose(mean, u.mean(1), atol=0.05 * np.abs(u).std())
    np.testing.assert_allclose(second, (u ** 2).sum(2).mean(1), rtol=0.02)


def test_second_moment_bounds_a_head_whose_attention_does_not_depend_on_the_values():
    """Attention weights drawn independently of the tokens (any rows on the simplex): the
    head's mean output is the closed-form mean, its second moment at most the bound."""
    rng = np.random.default_rng(1)
    wv, bv, wo, m, s = _head_weights(rng, heads=2)
    mean, second = head_output_moments(wv, bv, wo, m, s)
    tokens, n = 8, 40_000
    x = m + s * rng.normal(size=(n, tokens, m.size))
    a = rng.dirichlet(np.full(tokens, 0.3), size=n)  # (n, tokens)
    for h in range(2):
        u = (x @ wv[h].T + bv[h]) @ wo[h].T  # (n, tokens, d_out)
        y = np.einsum("nt,nto->no", a, u)
        np.testing.assert_allclose(y.mean(0), mean[h], atol=0.05 * np.abs(y).std())
        assert (y ** 2).sum(1).mean() <= second[h] * 1.01
        # pointwise: inside the convex hull of the tokens' outputs
        assert np.all(np.linalg.norm(y, axis=1) <= np.linalg.norm(u, axis=2).max(1) + 1e-9)


def test_value_bias_alone_gives_a_constant_output():
    rng = np.random.default_rng(2)
    wv, bv, wo, m, s = _head_weights(rng)
    mean, second = head_output_moments(np.zeros_like(wv), bv, wo, m, s)
    expected = np.einsum("hod,hd->ho", wo, bv)
    np.testing.assert_allclose(mean, expected)
    np.testing.assert_allclose(second, (expected ** 2).sum(1))


def test_bad_shapes_and_negative_std_are_refused():
    rng = np.random.default_rng(3)
    wv, bv, wo, m, s = _head_weights(rng)
    with pytest.raises(InvalidArgumentError, match="do not match"):
        head_output_moments(wv, bv, wo[:, :, :2], m, s)
    with pytest.raises(InvalidArgumentError, match="input_std"):
        head_output_moments(wv, bv, wo, m, -s)
