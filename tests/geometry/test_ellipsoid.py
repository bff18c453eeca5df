import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from coreprune.errors import GeometryError
from coreprune.geometry import loewner_ellipsoid

finite = st.floats(-100, 100, allow_nan=False, allow_infinity=False).filter(
    lambda v: v == 0 or abs(v) > 1e-100)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 40), st.integers(1, 6)), elements=finite),
       st.booleans(), st.sampled_from([1e-1, 1e-2, 1e-3]))
def test_certificate_contains_every_point(points, symmetric, tol):
    e = loewner_ellipsoid(points, tol=tol, symmetric=symmetric)
    assert np.all(np.isfinite(e.shape))
    assert e.max_violation <= tol * (1 + 1e-6)
    # recomputed independently: every point inside sqrt(1+tol) E, within rounding
    if e.rank:
        residual = (points - e.center) - ((points - e.center) @ e.basis) @ e.basis.T
        assert np.abs(residual).max() <= 1e-8 * max(1.0, np.abs(points).max())
        assert e.mahalanobis(points).max() ** 2 <= 1 + tol + 1e-8
    assert np.isclose(e.weights.sum(), 1.0) and np.all(e.weights >= 0)


def _log_ball(r):
    return (r / 2) * math.log(math.pi) - math.lgamma(r / 2 + 1)


@pytest.mark.parametrize("tol", [1e-2, 1e-4])
def test_cross_polytope_volume_known(tol):
    a = np.array([1.0, 2.0, 3.0, 0.5, 5.0])
    pts = np.diag(a)  # ±a_i e_i: the MVEE is the axis-aligned ellipsoid through them
    e = loewner_ellipsoid(pts, tol=tol)
    optimal = _log_ball(5) + np.log(a).sum()
    enclosing = e.log_volume() + 0.5 * 5 * math.log1p(e.max_violation)
    assert enclosing >= optimal - 1e-9  # it encloses, so it cannot beat the optimum
    assert enclosing - optimal <= 0.5 * 5 * math.log1p(tol) + 1e-9  # stated factor
    assert e.log_volume() <= optimal + 1e-9  # weak duality lower bound


def test_cube_gives_ball_of_radius_sqrt_d():
    d = 4
    cube = np.array(list(itertools.product([-1.0, 1.0], repeat=d)))
    e = loewner_ellipsoid(cube, tol=1e-6)
    lengths, _ = e.semi_axes()
    np.testing.assert_allclose(lengths, 2.0, rtol=1e-5)


def test_centred_regular_simplex_is_circumscribed_ball_and_affine_equivariant():
    ang = np.array([0, 2 * np.pi / 3, 4 * np.pi / 3])
    tri = np.c_[np.cos(ang), np.sin(ang)]
    e = loewner_ellipsoid(tri + [3.0, -1.0], tol=1e-6, symmetric=False)
    np.testing.assert_allclose(e.center, [3.0, -1.0], atol=1e-6)
    np.testing.assert_allclose(e.semi_axes()[0], 1.0, rtol=1e-5)
    t = np.array([[2.0, 1.0], [0.0, 0.5]])
    e2 = loewner_ellipsoid(tri @ t.T, tol=1e-6, symmetric=False)
    assert abs(e2.log_volume() - e.log_volume() - math.log(abs(np.linalg.det(t)))) < 1e-5


def test_rank_deficient_points_live_in_their_span():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(50, 2)) @ rng.normal(size=(2, 7))
    e = loewner_ellipsoid(pts, tol=1e-3)
    assert e.rank == 2 and e.basis.shape == (7, 2)


@pytest.mark.parametrize("scale", [1e-12, 1.0, 1e12])
def test_extreme_scales_and_duplicates(scale):
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(20, 3)) * scale
    pts = np.vstack([pts, pts[:5], np.zeros((3, 3))])
    e = loewner_ellipsoid(pts, tol=1e-3)
    assert np.all(np.isfinite(e.shape)) and e.max_violation <= 1e-3 * (1 + 1e-6)
    assert e.mahalanobis(pts).max() <= math.sqrt(1 + 1e-3) + 1e-9


def test_unrepresentable_scale_is_a_clear_error():
    with pytest.raises(GeometryError, match="not representable"):
        loewner_ellipsoid(np.array([[1e-308], [2e-308]]), symmetric=False)


def test_degenerate_inputs():
    e = loewner_ellipsoid(np.zeros((4, 3)))
    assert e.rank == 0
    line = np.outer(np.arange(1, 6), [1.0, 2.0, 2.0])
    e = loewner_ellipsoid(line)
    assert e.rank == 1
    np.testing.assert_allclose(e.semi_axes()[0], 15.0, rtol=1e-6)  # |5 * (1,2,2)| = 15


def test_bad_input_is_named():
    with pytest.raises(GeometryError, match="NaN"):
        loewner_ellipsoid(np.array([[1.0, np.nan]]))
    with pytest.raises(GeometryError, match="shape"):
        loewner_ellipsoid(np.ones(3))
    with pytest.raises(GeometryError, match="tol"):
        loewner_ellipsoid(np.ones((3, 2)), tol=2.0)
