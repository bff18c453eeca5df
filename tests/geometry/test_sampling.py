import numpy as np
import pytest

from coreprune.geometry import sample_distinct, top_k_subset


def test_sample_distinct_k_units_and_seeded():
    p = np.random.default_rng(0).random(100)
    a = sample_distinct(p, 30, np.random.default_rng(5))
    b = sample_distinct(p, 30, np.random.default_rng(5))
    assert len(a.indices) == 30 and len(np.unique(a.indices)) == 30
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert a.draws >= 30


def test_importance_weights_are_unbiased():
    rng = np.random.default_rng(0)
    p = rng.random(50) + 0.1
    f = rng.random(50)
    est = []
    for s in range(400):
        sub = sample_distinct(p, 10, np.random.default_rng(s))
        est.append(sub.weights @ f[sub.indices])
    assert abs(np.mean(est) - f.sum()) < 0.05 * f.sum()


def test_zero_probabilities_and_full_budget():
    p = np.array([0.0, 1.0, 0.0, 2.0])
    sub = sample_distinct(p, 3, np.random.default_rng(0))
    assert {1, 3} <= set(sub.indices.tolist()) and len(sub.indices) == 3
    sub = sample_distinct(p, 4, np.random.default_rng(0))
    np.testing.assert_array_equal(sub.weights, 1.0)


def test_top_k_and_bad_k():
    sub = top_k_subset(np.array([3.0, 1.0, 3.0, 2.0]), 2)
    np.testing.assert_array_equal(sub.indices, [0, 2])
    with pytest.raises(ValueError, match="k must"):
        top_k_subset(np.ones(3), 4)
