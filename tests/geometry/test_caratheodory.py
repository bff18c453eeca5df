import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coreprune.geometry import caratheodory_reduce, fast_caratheodory_reduce


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 80), st.integers(1, 8), st.integers(0, 10_000),
       st.sampled_from([caratheodory_reduce, fast_caratheodory_reduce]))
def test_at_most_d_plus_one_points_same_weighted_mean(n, d, seed, reduce):
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(n, d))
    w = rng.random(n)
    w /= w.sum()
    idx, nw = reduce(pts, w)
    assert len(idx) <= d + 1
    assert len(set(idx.tolist())) == len(idx)
    assert np.all(nw >= 0)
    assert np.isclose(nw.sum(), 1.0)
    np.testing.assert_allclose(nw @ pts[idx], w @ pts, atol=1e-9)


def test_degenerate_points_reduce_to_rank_plus_one():
    rng = np.random.default_rng(0)
    pts = np.outer(rng.normal(size=40), [1.0, -2.0, 0.5])  # all on a line
    w = np.full(40, 1 / 40)
    idx, nw = caratheodory_reduce(pts, w)
    assert len(idx) <= 2
    np.testing.assert_allclose(nw @ pts[idx], w @ pts, atol=1e-12)


def test_large_set_fast():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(5000, 10))
    w = rng.random(5000)
    idx, nw = fast_caratheodory_reduce(pts, w)
    assert len(idx) <= 11
    np.testing.assert_allclose(nw @ pts[idx], w @ pts, rtol=1e-8, atol=1e-8)


def test_rejects_negative_weights():
    with pytest.raises(ValueError, match="non-negative"):
        caratheodory_reduce(np.ones((3, 2)), np.array([1.0, -1.0, 1.0]))
