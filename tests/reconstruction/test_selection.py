import itertools

import numpy as np
import pytest

from coreprune.errors import InvalidArgumentError
from coreprune.reconstruction import (
    Gaussian,
    activation_moments,
    fold_error,
    greedy_selection,
    least_squares_fold,
    output_gram,
)


def _setup(seed=0, n=9, d=6):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, d))
    h = activation_moments(Gaussian(rng.normal(size=n) * 0.3, p @ p.T), "relu")
    v = rng.normal(size=(4, n))
    return h, output_gram(v.T)


def _error(h, gram, keep):
    keep = np.sort(np.asarray(keep))
    centred = Gaussian(np.zeros(h.dim), h.cov)
    return fold_error(centred, gram, least_squares_fold(centred, None, centred.take(keep), keep,
                                                        ridge=0.0)) * np.sum(gram * h.cov)


def test_reported_errors_are_those_of_least_squares_on_the_chosen_units():
    h, gram = _setup()
    res = greedy_selection(5, gram, h.cov)
    assert np.all(np.diff(res.errors) <= 1e-9)
    assert res.errors[0] == pytest.approx(np.sum(gram * h.cov))
    for j in range(1, 6):
        assert res.errors[j] == pytest.approx(_error(h, gram, res.order[:j]), rel=1e-6, abs=1e-9)
    np.testing.assert_array_equal(res.indices, np.sort(res.order))


def test_first_step_is_the_best_single_unit_and_greedy_is_near_the_best_subset():
    for seed in range(4):
        h, gram = _setup(seed)
        res = greedy_selection(3, gram, h.cov)
        singles = [_error(h, gram, [j]) for j in range(h.dim)]
        assert res.order[0] == int(np.argmin(singles))
        np.testing.assert_allclose(res.errors[0] - res.alone, singles, rtol=1e-6, atol=1e-9)
        best = min(_error(h, gram, c) for c in itertools.combinations(range(h.dim), 3))
        assert res.errors[-1] <= 1.5 * best + 1e-9


def test_explained_units_are_not_chosen_while_others_are_left():
    h, gram = _setup(n=6)
    cov = np.zeros((8, 8))
    cov[:6, :6] = h.cov
    cov[6] = cov[:, 6] = np.r_[h.cov[0], h.cov[0, 0], 0.0]  # unit 6 duplicates unit 0
    cov[6, 6] = h.cov[0, 0]
    g = np.eye(8)
    res = greedy_selection(7, g, cov)
    # unit 7 has no variance and unit 6 is explained once unit 0 is chosen (or the reverse)
    assert not {0, 6} <= set(res.order[:6].tolist())
    assert 7 not in res.order[:6]
    with pytest.raises(InvalidArgumentError, match="k must be an integer in"):
        greedy_selection(0, g, cov)
