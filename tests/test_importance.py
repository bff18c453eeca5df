import numpy as np
import pytest

import coreprune
from coreprune.importance import UnitSet, get_method


def units(n=30, d=5, D=7, seed=0):
    rng = np.random.default_rng(seed)
    inc = rng.normal(size=(n, d))
    return UnitSet(inc, rng.normal(size=(n, D)), inc[:, :-1], "layer")


def test_registry_lists_all_methods():
    assert {"coreset", "coreset-scaled", "coreset-theory", "mussay", "l1", "l2",
            "random"} <= set(coreprune.methods())


@pytest.mark.parametrize("name", ["coreset", "coreset-scaled", "coreset-theory", "mussay",
                                  "l1", "l2", "random"])
def test_every_method_selects_k_distinct_units(name):
    sel = get_method(name).select(units(), 9, np.random.default_rng(0))
    assert len(sel.indices) == 9 == len(np.unique(sel.indices))
    assert np.all(sel.weights > 0) and sel.scores.shape == (30,)


def test_coreset_scaled_is_the_coreset_on_incoming_norm_scaled_points():
    u = units()
    assert get_method("coreset").config()["scaling"] == "outgoing"
    named = get_method("coreset-scaled")
    assert named.config() == {**get_method("coreset", scaling="outgoing_x_incoming_norm").config(),
                              "method": "coreset-scaled"}
    # equal incoming norms: ||p_i|| v_i is v_i times one constant, which no bound depends on
    same_norms = UnitSet(np.ones_like(u.incoming), u.outgoing, u.filters, "layer")
    np.testing.assert_allclose(named.scores(same_norms), get_method("coreset").scores(u),
                               rtol=1e-9)
    assert not np.allclose(named.scores(u), get_method("coreset").scores(u))


def test_norm_baselines_rank_by_filters():
    u = units()
    sel = get_method("l2").select(u, 3, np.random.default_rng(0))
    top = np.argsort(-np.linalg.norm(u.filters, axis=1))[:3]
    assert set(sel.indices) == set(top)


def test_mussay_sensitivity_matches_formula():
    u = units()
    s = get_method("mussay").scores(u)
    np.testing.assert_allclose(s, np.abs(u.outgoing).max(1) * np.linalg.norm(u.incoming, axis=1))


def test_coreset_geometry_runs_with_one_blas_thread_whatever_the_callers_setting(monkeypatch):
    # peeling's discrete choices can flip with the summation order, which multithreaded BLAS
    # ties to the thread count; the coreset pins BLAS to one thread while it computes
    from threadpoolctl import threadpool_info, threadpool_limits

    import coreprune.importance as imp

    seen = []
    real = imp.peel_sensitivities

    def spy(*args, **kwargs):
        seen.extend(d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas")
        return real(*args, **kwargs)

    monkeypatch.setattr(imp, "peel_sensitivities", spy)
    with threadpool_limits(2, user_api="blas"):
        method = get_method("coreset")
        method.select(units(), 9, np.random.default_rng(0))
        get_method("coreset").scores(units(seed=1))
        outside = [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]
    assert seen and set(seen) == {1}
    assert set(outside) == {2}  # the caller's setting is restored


def test_unit_set_computes_deferred_arrays_on_first_read_only():
    calls = []

    def unread():
        raise AssertionError("a norm method read the outgoing weights")

    def filters():
        calls.append(1)
        return np.arange(12.0).reshape(4, 3)

    u = UnitSet(unread, unread, filters, "layer", n=4)
    assert u.n == 4 and not calls
    sel = get_method("l1").select(u, 2, np.random.default_rng(0))
    np.testing.assert_array_equal(sel.indices, [2, 3])
    again = u.replace(name="other")  # a copy keeps what is computed, defers the rest
    assert again.filters is u.filters and len(calls) == 1 and again.name == "other"
    with pytest.raises(AttributeError, match="immutable"):
        u.name = "x"
    with pytest.raises(TypeError, match="no attribute"):
        u.replace(weights=1)


def test_row_norms_match_numpy_in_blocks():
    from coreprune.importance import row_norms

    a = np.random.default_rng(0).normal(size=(37, 5000))
    for p in (1, 2):
        np.testing.assert_allclose(row_norms(a, p), np.linalg.norm(a, ord=p, axis=1),
                                   rtol=1e-12)
