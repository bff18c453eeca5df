import dataclasses

import numpy as np
import pytest

from coreprune.errors import InvalidArgumentError
from coreprune.reconstruction import (
    Gaussian,
    activation_moments,
    drop_fold,
    fold_error,
    least_squares_fold,
    output_gram,
)


def _layer(seed=0, n=8, d=5):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, d))
    b = rng.normal(size=n) * 0.3
    p[5], b[5] = 3.0 * p[1], 3.0 * b[1]   # a positive multiple of unit 1
    p[6], b[6] = p[2], b[2]               # a duplicate of unit 2
    p[7], b[7] = 0.0, 0.0                 # a zero unit
    return p, b


def _relu_moments(p, b):
    return activation_moments(Gaussian(b, p @ p.T), "relu")


def test_removed_multiples_duplicates_and_zero_units_are_reconstructed_exactly():
    p, b = _layer()
    h = _relu_moments(p, b)
    keep = np.array([0, 1, 2, 3, 4])
    fold = least_squares_fold(h, None, h.take(keep), keep, ridge=1e-9)
    np.testing.assert_allclose(fold.mixing[keep], np.eye(5), atol=0)
    row = np.zeros(5)
    np.testing.assert_allclose(fold.mixing[5], row + 3.0 * (np.arange(5) == 1), atol=1e-7)
    np.testing.assert_allclose(fold.mixing[6], row + 1.0 * (np.arange(5) == 2), atol=1e-7)
    np.testing.assert_allclose(fold.mixing[7], row, atol=1e-12)
    np.testing.assert_allclose(fold.offset, 0.0, atol=1e-7)
    gram = output_gram(np.random.default_rng(1).normal(size=(8, 6)))
    assert fold_error(h, gram, fold) < 1e-7  # the ridge (1e-9 relative) is all that is lost
    # and on samples: the folded consumer reproduces the original one
    x = np.random.default_rng(2).normal(size=(1000, 5))
    hs = np.maximum(x @ p.T + b, 0)
    v = np.random.default_rng(3).normal(size=(4, 8))
    new_w, new_b = fold.apply(v, np.zeros(4))
    np.testing.assert_allclose(hs[:, keep] @ new_w.T + new_b, hs @ v.T, atol=1e-6)


def test_least_squares_is_optimal_under_the_model():
    p, b = _layer(seed=4)
    h = _relu_moments(p, b)
    keep = np.array([0, 2, 4])
    gram = output_gram(np.random.default_rng(5).normal(size=(8, 7)))
    best = least_squares_fold(h, None, h.take(keep), keep, ridge=0.0)
    e = fold_error(h, gram, best)
    rng = np.random.default_rng(6)
    for _ in range(20):
        m = best.mixing + 0.05 * rng.normal(size=best.mixing.shape) * (
            np.arange(8)[:, None] != keep[None, :]).all(1)[:, None]
        o = best.offset + 0.05 * rng.normal(size=8)
        o[keep] = 0.0
        assert fold_error(h, gram, type(best)(keep, m, o)) >= e - 1e-12
    assert e < fold_error(h, gram, drop_fold(8, keep))


def test_fold_error_of_dropping_is_the_removed_share_of_the_output():
    p, b = _layer(seed=7)
    h = _relu_moments(p, b)
    v = np.random.default_rng(8).normal(size=(3, 8))
    keep = np.array([1, 3, 6])
    removed = np.setdiff1d(np.arange(8), keep)
    second = h.second_moment()
    expected = np.sum((v[:, removed].T @ v[:, removed]) * second[np.ix_(removed, removed)]) / \
        np.sum((v.T @ v) * second)
    assert fold_error(h, output_gram(v.T), drop_fold(8, keep)) == pytest.approx(expected)
    assert fold_error(h, output_gram(v.T), drop_fold(8, np.arange(8))) == 0.0


def test_fold_error_of_one_network_equals_the_dense_two_network_form():
    p, b = _layer(seed=9)
    h = _relu_moments(p, b)
    gram = output_gram(np.random.default_rng(10).normal(size=(4, 8)).T)
    keep = np.array([0, 2, 3, 5])
    fitted = least_squares_fold(h, None, h.take(keep), keep)
    shifted = dataclasses.replace(fitted, offset=fitted.offset + 0.1)  # kept rows shifted too
    mixed = fitted.mixing.copy()
    mixed[2, 1] = 0.5  # a kept unit's row that is not its own unit vector
    for fold in (fitted, shifted, dataclasses.replace(fitted, mixing=mixed),
                 drop_fold(8, keep), drop_fold(8, keep, np.array([1.0, 2.0, 0.5, 1.0]))):
        dense = fold_error(h, gram, fold, kept=h.take(keep), cross=h.cov[:, keep])
        assert fold_error(h, gram, fold) == pytest.approx(dense, rel=1e-10, abs=1e-15)


def test_folds_validate_their_indices():
    h = Gaussian.independent(3)
    for bad in ([2, 1], [0, 0], [5], []):
        with pytest.raises(InvalidArgumentError, match="keep must be sorted distinct"):
            drop_fold(3, np.array(bad, dtype=int))
    with pytest.raises(InvalidArgumentError, match="ridge must be >= 0"):
        least_squares_fold(h, None, h.take([0]), np.array([0]), ridge=-1.0)


def test_an_indefinite_kept_covariance_is_solved_with_its_negative_part_clipped():
    cov = np.array([[1.0, 0.9, 0.5], [0.9, 0.8, 0.4], [0.5, 0.4, 1.0]])  # [:2, :2] indefinite
    assert np.linalg.eigvalsh(cov[:2, :2]).min() < 0
    h = Gaussian(np.zeros(3), cov)
    fold = least_squares_fold(h, None, h.take([0, 1]), np.array([0, 1]), ridge=1e-9)
    assert np.all(np.isfinite(fold.mixing)) and np.all(np.isfinite(fold.offset))


def test_drop_fold_builds_its_mixing_on_first_read():
    keep = np.array([1, 4])
    fold = drop_fold(6, keep, np.array([1.0, 2.5]))
    assert fold.n == 6 and not fold.is_drop()  # a reweighting is no plain drop
    expected = np.zeros((6, 2))
    expected[1, 0], expected[4, 1] = 1.0, 2.5
    np.testing.assert_array_equal(fold.mixing, expected)
    plain = drop_fold(6, keep)
    assert plain.is_drop()
    np.testing.assert_array_equal(plain.mixing, np.eye(6)[:, keep])
    assert plain.is_drop()  # also once built
    shifted = dataclasses.replace(plain, offset=np.ones(6))
    assert not shifted.is_drop() and shifted.mixing.shape == (6, 2)
