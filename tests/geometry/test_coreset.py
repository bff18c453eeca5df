import numpy as np
import pytest
import scipy.optimize
from hypothesis import example, given, settings
from hypothesis import strategies as st

from coreprune.geometry import (
    exact_sensitivities,
    linf_coreset,
    peel_sensitivities,
    project_top_k,
)


def _worst_ratio(points, subset):
    """max over y of max_Q |q.y| / max_S |q.y|, exactly, by one LP per point of Q."""
    s = points[subset]
    worst = 1.0
    for q in points:
        a_ub = np.vstack([s, -s])
        for method in ("highs", "highs-ipm"):  # HiGHS' simplex can fail on badly scaled S
            res = scipy.optimize.linprog(-q, A_ub=a_ub, b_ub=np.ones(2 * len(s)),
                                         bounds=[(None, None)] * points.shape[1], method=method)
            if res.status in (0, 3):
                break
        if res.status == 3:  # unbounded: q leaves the span of S
            return np.inf
        assert res.status == 0, f"the reference LP failed: {res.message}"
        worst = max(worst, -res.fun)
    return worst


@settings(max_examples=25, deadline=None)
@given(st.integers(3, 40), st.integers(1, 5), st.integers(0, 10_000))
@example(16, 5, 45)  # its reference LP needs the interior-point fallback
def test_linf_inequality_random_and_adversarial(n, d, seed):
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(n, d)) * rng.exponential(size=(n, 1))
    core = linf_coreset(pts, tol=1e-3)
    r = core.ellipsoid.rank
    assert core.alpha <= r * np.sqrt(1 + 1e-3) * (1 + 1e-9)
    assert len(core.indices) <= r * (r + 1)
    ys = rng.normal(size=(200, d))
    full = np.abs(pts @ ys.T).max(axis=0)
    sub = np.abs(pts[core.indices] @ ys.T).max(axis=0)
    assert np.all(sub * core.alpha >= full * (1 - 1e-9))
    assert _worst_ratio(pts, core.indices) <= core.alpha * (1 + 1e-7)


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 25), st.integers(1, 4), st.integers(0, 10_000))
def test_peeling_bounds_dominate_exact_sensitivities(n, d, seed):
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(n, d))
    pts[rng.random(n) < 0.1] = 0.0
    res = peel_sensitivities(pts, tol=1e-3)
    exact = exact_sensitivities(pts)
    assert np.all(res.upper_bounds >= exact - 1e-7)
    assert np.all((res.upper_bounds >= 0) & (res.upper_bounds <= 1))
    assert np.all(res.upper_bounds[np.linalg.norm(pts, axis=1) == 0] == 0)


def test_peel_bound_formula_and_total_grows_slowly():
    rng = np.random.default_rng(0)
    small = peel_sensitivities(rng.normal(size=(200, 3))).total
    large = peel_sensitivities(rng.normal(size=(1600, 3))).total
    assert large < 3 * small  # grows like log n, not like n (8x more points)
    res = peel_sensitivities(rng.normal(size=(300, 3)))
    for t in range(2, res.alphas.size + 1):
        expected = 1 / (1 + np.sum(1 / res.alphas[: t - 1]))
        in_peel = res.peel_index == t
        assert np.all(res.upper_bounds[in_peel] <= expected + 1e-12)


def test_project_top_k_residual_bound():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(50, 12))
    coords, basis, resid = project_top_k(pts, 4)
    y = rng.normal(size=12)
    err = np.abs(pts @ y - coords @ (basis.T @ y))
    assert np.all(err <= resid * np.linalg.norm(y) + 1e-9)
    coords, _, _ = project_top_k(pts, "auto", energy=0.5)
    assert 1 <= coords.shape[1] < 12


@pytest.mark.parametrize("k", [0, -1, "bad"])
def test_project_top_k_rejects_bad_k(k):
    with pytest.raises(ValueError):
        project_top_k(np.ones((3, 2)), k)
