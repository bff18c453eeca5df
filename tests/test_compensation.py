import numpy as np
import pytest

from coreprune.compensation import (
    LeastSquaresCompensation,
    compensations,
    get_compensation,
    resolve_compensate,
)
from coreprune.errors import InvalidArgumentError
from coreprune.importance import BatchNormParams, Selection, UnitSet
from coreprune.reconstruction import Activation, Gaussian, activation_moments


def _units(seed=0, n=6, d=4, with_bn=False, moments=True):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n, d))
    b = rng.normal(size=n) * 0.2
    w[4], b[4] = 2.0 * w[1], 2.0 * b[1]  # unit 4 = 2 x unit 1 (cosine 1)
    v = rng.normal(size=(n, 3))
    bn = None
    if with_bn:
        bn = BatchNormParams(rng.uniform(0.5, 1.5, n), rng.normal(size=n) * 0.3,
                             rng.normal(size=n) * 0.1, rng.uniform(0.5, 2.0, n), 1e-5)
    h = activation_moments(Gaussian(b, w @ w.T), "relu") if moments else None
    return UnitSet(np.c_[w, b], v, w, "layer", bias=b, batchnorm=bn,
                   activation=Activation("relu"), moments=h)


def _sel(keep, n=6):
    keep = np.asarray(keep)
    return Selection(keep, np.ones(keep.size), np.ones(n))


def test_registry_names_and_legacy_flags():
    assert compensations() == ["bn-mean", "merge", "none", "reconstruct"]
    assert resolve_compensate(None, "merge").name == "merge"
    assert resolve_compensate(True, "none").name == "bn-mean"
    assert resolve_compensate(False, "reconstruct").name == "none"
    with pytest.raises(InvalidArgumentError, match="unknown compensation 'x'"):
        get_compensation("x")
    with pytest.raises(InvalidArgumentError, match="bad options for compensation 'merge'"):
        get_compensation("merge", lambda_=1)
    with pytest.raises(InvalidArgumentError, match="max_growth must be > 0"):
        LeastSquaresCompensation(max_growth=0)


def test_none_drops_and_folds_reweighting():
    u = _units()
    sel = Selection(np.array([0, 2]), np.array([2.0, 0.5]), np.ones(6))
    c = get_compensation("none").change(u, sel, reweight=True)
    assert c.fold.mixing[0, 0] == 2.0 and c.fold.mixing[2, 1] == 0.5
    assert c.fold.mixing.sum() == 2.5 and not np.any(c.fold.offset)
    assert get_compensation("none").change(u, sel, reweight=False).fold.is_drop()


def test_merge_moves_a_positive_multiple_onto_its_match_with_the_norm_ratio():
    u = _units()
    c = get_compensation("merge").change(u, _sel([0, 1, 2, 3, 5]), reweight=False)
    row = c.fold.mixing[4]
    assert row[1] == pytest.approx(2.0) and np.count_nonzero(row) == 1
    assert c.info["merged"] >= 1 and c.info["threshold"] == 0.45
    # a threshold above every similarity merges nothing
    none = get_compensation("merge", threshold=1.0 + 0.0).change(u, _sel([0, 2, 3, 5]), False)
    assert none.info["merged"] <= 1


def test_merge_batchnorm_exact_form_reproduces_a_scaled_copy_and_the_code_form_does_not():
    u = _units(with_bn=True)
    bn = u.batchnorm
    # make unit 4's BatchNorm output exactly c x unit 1's: gamma_4 = 0.7 gamma_1, same sigma
    g, beta = bn.weight.copy(), bn.bias.copy()
    var, mu = bn.running_var.copy(), bn.running_mean.copy()
    var[4], mu[4] = var[1], 2.0 * mu[1]
    g[4] = 0.7 * g[1]
    sd = np.sqrt(var + bn.eps)
    c_true = 2.0 * g[4] * sd[1] / (g[1] * sd[4])
    beta[4] = c_true * (beta[1] - g[1] * mu[1] / sd[1]) + g[4] * mu[4] / sd[4]
    u = UnitSet(u.incoming, u.outgoing, u.filters, "layer", bias=u.bias,
                batchnorm=BatchNormParams(g, beta, mu, var, bn.eps), activation=u.activation)
    exact = get_compensation("merge", form="exact").change(u, _sel([0, 1, 2, 3, 5]), False)
    assert exact.fold.mixing[4, 1] == pytest.approx(c_true)
    code = get_compensation("merge").change(u, _sel([0, 1, 2, 3, 5]), False)
    assert code.fold.mixing[4, 1] != pytest.approx(c_true)


def test_bn_mean_needs_batchnorm_and_relu():
    u = _units(with_bn=True)
    c = get_compensation("bn-mean").change(u, _sel([0, 1, 2]), reweight=False)
    assert np.all(c.fold.offset[[3, 4, 5]] > 0) and not np.any(c.fold.offset[[0, 1, 2]])
    assert c.renormalize is not None
    plain = get_compensation("bn-mean").change(_units(), _sel([0, 1, 2]), reweight=False)
    assert plain.fold.is_drop() and "no BatchNorm" in plain.info["skipped"]


def test_reconstruct_is_exact_for_a_removed_multiple_and_reports_errors():
    u = _units()
    c = get_compensation("reconstruct").change(u, _sel([0, 1, 2, 3, 5]), reweight=False)
    assert c.fold.mixing[4, 1] == pytest.approx(2.0, rel=1e-5)
    assert c.info["predicted_error"] < 1e-6 < c.info["predicted_error_drop"]
    assert "guard" not in c.info


def test_reconstruct_guard_shrinks_exploding_folds_toward_dropping():
    # kept units nearly collinear under the model: least squares explains the removed unit
    # by huge cancelling coefficients
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 4))
    w[1] = w[0] + 1e-4 * rng.normal(size=4)
    h = activation_moments(Gaussian(np.zeros(3), w @ w.T), "identity")
    v = rng.normal(size=(3, 5))
    u = UnitSet(np.c_[w, np.zeros(3)], v, w, "layer", moments=h, activation=Activation("identity"))
    free = LeastSquaresCompensation(max_growth=np.inf).change(u, _sel([0, 1], 3), False)
    # the weight moved onto kept unit j is A[2, j] v_2: its norm over v_2's
    moved = lambda fold: np.linalg.norm(np.outer(fold.mixing[2], v[2])) / np.linalg.norm(v[2])  # noqa: E731
    grown = moved(free.fold)
    assert grown > 100
    guarded = LeastSquaresCompensation(max_growth=4.0).change(u, _sel([0, 1], 3), False)
    assert guarded.info["guard"] == pytest.approx(4.0 / grown)
    assert moved(guarded.fold) == pytest.approx(4.0)
    np.testing.assert_allclose(guarded.fold.offset, free.fold.offset * 4.0 / grown)


def test_reconstruct_falls_back_without_a_moment_model():
    c = get_compensation("reconstruct").change(_units(moments=False), _sel([0, 1]), False)
    assert c.fold.is_drop() and c.info["compensation"].startswith("none (fallback")
    bn = get_compensation("reconstruct").change(_units(with_bn=True, moments=False),
                                                _sel([0, 1]), False)
    assert bn.info["compensation"].startswith("bn-mean (fallback") and np.any(bn.fold.offset)


def test_reconstruct_drops_the_constant_when_the_pre_activations_are_mostly_their_means():
    # pre-activations with means far beyond their spread (as a prior with a wrong mean makes)
    rng = np.random.default_rng(1)
    w = rng.normal(size=(6, 4)) * 0.05
    b = np.full(6, 3.0)
    pre = Gaussian(b, w @ w.T)
    h = activation_moments(pre, "tanh", method="montecarlo", seed=0)
    u = UnitSet(np.c_[w, b], rng.normal(size=(6, 3)), w, "layer", bias=b, moments=h,
                prior_preactivation=pre, activation=Activation("tanh"))
    c = get_compensation("reconstruct").change(u, _sel([0, 1, 2]), False)
    assert c.info["variance_share"] < 0.25
    assert c.info["guard_offset_dropped"] == c.info["variance_share"]
    assert not np.any(c.fold.offset)
    kept = LeastSquaresCompensation(min_variance_share=0.0).change(u, _sel([0, 1, 2]), False)
    assert np.any(kept.fold.offset) and "guard_offset_dropped" not in kept.info
    np.testing.assert_array_equal(kept.fold.mixing, c.fold.mixing)
    # centred pre-activations keep their constant (a sigmoid's outputs have a large mean by
    # nature; that is no reason to drop it)
    centred = Gaussian(np.zeros(6), w @ w.T)
    u2 = UnitSet(u.incoming, u.outgoing, w, "layer", moments=activation_moments(
        centred, "sigmoid", method="montecarlo", seed=0), prior_preactivation=centred,
        activation=Activation("sigmoid"))
    c2 = get_compensation("reconstruct").change(u2, _sel([0, 1, 2]), False)
    assert c2.info["variance_share"] > 0.99 and np.any(c2.fold.offset)
