import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coreprune.errors import GeometryError
from coreprune.geometry import exact_sensitivities, peel_sensitivities, sample_distinct
from coreprune.geometry.approximation import (
    relative_errors,
    sensitivity_error_bound,
    worst_relative_error,
)


def test_relative_errors_brute_force():
    rng = np.random.default_rng(0)
    q, w, y = rng.normal(size=(7, 3)), rng.random(7), rng.normal(size=(5, 3))
    expect = [abs(sum(w[i] * abs(q[i] @ yy) for i in range(7)) - sum(abs(q @ yy))) /
              sum(abs(q @ yy)) for yy in y]
    np.testing.assert_allclose(relative_errors(q, w, y), expect, rtol=1e-12)
    assert np.all(relative_errors(q, np.ones(7), y) == 0)
    assert relative_errors(q, w, np.zeros((1, 3)))[0] == 0  # 0/0 is reported as 0


@settings(max_examples=20, deadline=None)
@given(st.integers(3, 20), st.integers(1, 4), st.integers(0, 10_000), st.booleans())
def test_bound_holds_on_random_and_ascent_queries(n, d, seed, sample):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, d)) * rng.exponential(size=(n, 1))
    peel = peel_sensitivities(q, tol=1e-3)
    k = max(1, n // 2)
    if sample:
        sub = sample_distinct(peel.upper_bounds, k, rng)
    else:
        sub = type("S", (), {"indices": np.argsort(-peel.upper_bounds)[:k],
                             "weights": np.ones(k)})
    w = np.zeros(n)
    w[sub.indices] = sub.weights
    bound = sensitivity_error_bound(peel.upper_bounds, w)
    worst = worst_relative_error(q, w, rng, n_random=64, steps=30)
    assert worst.ascent >= worst.random
    assert worst.ascent <= bound + 1e-9
    # the same with the exact sensitivities, the tightest valid bound
    assert worst.ascent <= sensitivity_error_bound(exact_sensitivities(q), w) + 1e-7


def test_ascent_finds_the_dropped_direction():
    # two orthogonal points, one dropped: the query along it gives error 1
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    worst = worst_relative_error(q, np.array([1.0, 0.0]), np.random.default_rng(0),
                                 n_random=4, steps=50)
    assert worst.ascent == pytest.approx(1.0, abs=1e-6)
    assert sensitivity_error_bound(exact_sensitivities(q), np.array([1.0, 0.0])) == 1.0


def test_bad_weights_are_named():
    with pytest.raises(GeometryError, match="weights"):
        relative_errors(np.ones((3, 2)), [1.0, -1.0, 1.0], np.ones((1, 2)))
    with pytest.raises(GeometryError, match="dimension"):
        relative_errors(np.ones((3, 2)), np.ones(3), np.ones((1, 3)))


@pytest.mark.parametrize("points", [
    np.ones((6, 3)),                                 # duplicates
    np.outer(np.arange(1, 8), [1.0, -2.0, 0.5]),     # all on a line (rank 1)
    np.vstack([np.eye(3), np.zeros((4, 3))]),        # zero vectors
    np.random.default_rng(0).normal(size=(9, 4)) * 1e-12,
    np.random.default_rng(1).normal(size=(9, 4)) * 1e12,
    np.zeros((5, 2)),
])
def test_degenerate_sets_give_finite_sensitivities(points):
    res = peel_sensitivities(points, tol=1e-3)
    assert np.all(np.isfinite(res.upper_bounds)) and np.isfinite(res.total)
    assert np.all((res.upper_bounds >= 0) & (res.upper_bounds <= 1))
    if np.any(points):
        assert np.all(res.upper_bounds >= exact_sensitivities(points) - 1e-7)
