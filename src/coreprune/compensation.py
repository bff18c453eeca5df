"""Compensations: what the consumers of a pruned layer absorb of the removed units, from the
weights alone (no data).

A compensation turns a :class:`~coreprune.importance.Selection` of a layer's units into a
:class:`ConsumerChange`: a :class:`~coreprune.reconstruction.Fold` ``(M, o)`` (every consumer's
input slice of kept unit j becomes ``sum_i V[:, i] M[i, j]`` and its output gains ``V o``) and,
for ``bn-mean``, the unit variances by which the BatchNorm after a consumer is renormalised.
Every compensation is registered by name, like the importance methods, so that any method can
be combined with any compensation (``Pruner(method, compensate=NAME)``, bench label
``METHOD+NAME``):

* ``none``: drop the removed units (a reweighting selection's weights are still folded);
* ``bn-mean``: for units followed by BatchNorm and ReLU, restore the removed units' expected
  output (and, for plain dropping, rescale the next BatchNorm's variance) from the BatchNorm's
  own parameters;
* ``merge``: Neuron Merging (Kim, Kim, Lee, NeurIPS 2020): add each removed unit's outgoing
  weights, scaled, to the kept unit most similar to it;
* ``reconstruct``: the least-squares affine reconstruction of the removed units from the kept
  ones under the Gaussian moment model (:mod:`coreprune.reconstruction`).

Compensations see plain arrays only (:class:`~coreprune.importance.UnitSet`); applying the change
to modules is :func:`coreprune.pruning.groups.apply_change`'s job.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from .errors import InvalidArgumentError
from .importance import Selection, UnitSet
from .reconstruction import Gaussian, activation_moments
from .reconstruction.affine import Fold, drop_fold, fold_error, least_squares_fold, output_gram
from .registry import Registry

__all__ = ["ConsumerChange", "Compensation", "NoCompensation", "BatchNormMeanCompensation",
           "MergeCompensation", "LeastSquaresCompensation", "register_compensation",
           "get_compensation", "compensations", "compensation_description", "resolve_compensate"]


@dataclass(frozen=True)
class ConsumerChange:
    """How a pruned layer's consumers change.

    Attributes:
        fold: the fold ``(M, o)`` over the layer's n units.
        renormalize: (n,) unit output variances, or None. When given, the BatchNorm right after
            each consumer has its running variance multiplied, per output channel, by
            ``sum_i e_i var_i s_i^2 / sum_i e_i var_i`` (``e_i``: the squared weights of unit
            i's input slice, ``s_i``: row i's total weight in ``M``): the variance the removed
            units took away, units and kernel taps taken as independent.
        info: numbers for the report (the compensation applied, predicted errors, ...).
        per_consumer: consumer name -> its own fold (same kept units), for consumers that read
            different states of the units (channels coupled across residual additions); the
            others use ``fold``.
    """

    fold: Fold
    renormalize: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    per_consumer: dict[str, Fold] | None = None


class Compensation(ABC):
    """Base class: ``change(units, selection, reweight)`` returns a :class:`ConsumerChange`."""

    name: ClassVar[str] = ""
    needs_moments: ClassVar[bool] = False

    @abstractmethod
    def change(self, units: UnitSet, selection: Selection, reweight: bool) -> ConsumerChange:
        """The change for keeping ``selection.indices`` of ``units``; ``reweight``: fold the
        selection's weights (False where the pruner does not fold or cannot)."""

    def config(self) -> dict[str, Any]:
        """The settings that determine this compensation's output (recorded in metadata)."""
        return {"compensation": self.name}


def _kept(units: UnitSet, selection: Selection, reweight: bool) -> Fold:
    return drop_fold(units.n, selection.indices, selection.weights if reweight else None)


class NoCompensation(Compensation):
    """Drop the removed units; fold a reweighting selection's weights (docs/method.md §1,
    folding)."""

    name = "none"

    def change(self, units: UnitSet, selection: Selection, reweight: bool) -> ConsumerChange:
        return ConsumerChange(_kept(units, selection, reweight), None, {"compensation": "none"})


def _relu_after_batchnorm(units: UnitSet) -> str | None:
    """Why BatchNorm mean compensation does not apply to ``units`` (None: it applies)."""
    if units.batchnorm is None:
        return "no BatchNorm after the layer"
    if units.activation is None or units.activation.name != "relu":
        return f"activation {units.activation or 'unknown'} (needs ReLU)"
    return None


def _batchnorm_unit_moments(units: UnitSet) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of ``relu(y)``, ``y ~ N(beta, gamma^2)`` per unit (independent)."""
    bn = units.batchnorm
    g = activation_moments(Gaussian(bn.bias, np.diag(bn.weight**2)), "relu", method="closed")
    return g.mean, np.diag(g.cov).copy()


class BatchNormMeanCompensation(Compensation):
    """For units followed by BatchNorm and ReLU: BatchNorm makes a unit's pre-activation, on the
    data the model was trained on, have mean ``beta`` and sd ``|gamma|``; under a Gaussian model
    its output ``relu`` has the mean and variance of the closed form. A unit kept with weight s
    (0: removed) loses ``(1 - s) E[h]``, which the consumer's bias (or the running mean of the
    BatchNorm after it) takes back. For plain dropping the BatchNorm after a consumer is also
    renormalised by the variance the removed units took away (units and taps independent); for
    reweighted selections only the mean is corrected: ``count / (N p)`` weights make the kept
    units an estimate of the whole sum, whose variance is the original one (measured on the
    trained CNNs: the variance factor takes Mussay from 19.25 to 10.15, ResNet-56 at 30%, the
    mean alone to 38.20). Exact for constant units; zero padding, max pooling and correlated
    units make it approximate. No change where the pattern does not hold."""

    name = "bn-mean"

    def change(self, units: UnitSet, selection: Selection, reweight: bool) -> ConsumerChange:
        kept = _kept(units, selection, reweight)
        why = _relu_after_batchnorm(units)
        if why is not None:
            return ConsumerChange(kept, None, {"compensation": "none", "skipped": why})
        mean, var = _batchnorm_unit_moments(units)
        scale = kept.mixing.sum(axis=1)
        reweighted = reweight and not np.allclose(selection.weights, 1.0, rtol=0, atol=0)
        return ConsumerChange(replace(kept, offset=(1.0 - scale) * mean),
                              None if reweighted else var, {"compensation": "bn-mean"})


class MergeCompensation(Compensation):
    """Neuron Merging (Kim, Kim, Lee, NeurIPS 2020), as their code states.

    Without BatchNorm: each removed unit i is matched to the kept unit j whose raw incoming
    ``[W | b]`` has the highest cosine similarity; if it is at least ``threshold``, ``v_j +=
    (||p_i|| / ||p_j||) v_i``. With BatchNorm after the layer (their conv variant): the match
    minimises ``lam * cosine distance + (1 - lam) * bias distance`` (min-max normalised over the
    kept units) and the scale is ``s (gamma_j / gamma_i)(sigma_i / sigma_j)`` with ``s =
    ||w_i|| / ||w_j||`` and sigma the running *variance* (``form="code"``, their code), or the
    scale that reproduces a positive multiple exactly, ``s (gamma_i / gamma_j)(sigma_j /
    sigma_i)`` with sigma the standard deviation (``form="exact"``).

    Args:
        threshold: minimum cosine similarity to merge; ``None``: their scripts' values, 0.45
            without BatchNorm (LeNet-300-100) and 0.1 with it (VGG-16).
        lam: weight of the cosine distance against the bias distance (BatchNorm variant).
        form: ``"code"`` or ``"exact"`` (BatchNorm variant).
    """

    name = "merge"

    def __init__(self, threshold: float | None = None, lam: float = 0.85,
                 form: str = "code") -> None:
        if threshold is not None and not -1.0 <= float(threshold) <= 1.0:
            raise InvalidArgumentError(f"threshold must lie in [-1, 1], got {threshold!r}")
        if not 0.0 <= float(lam) <= 1.0:
            raise InvalidArgumentError(f"lam must lie in [0, 1], got {lam!r}")
        if form not in ("code", "exact"):
            raise InvalidArgumentError(f"form must be 'code' or 'exact', got {form!r}")
        self.threshold, self.lam, self.form = threshold, float(lam), form

    def config(self) -> dict[str, Any]:
        return {"compensation": self.name, "threshold": self.threshold, "lam": self.lam,
                "form": self.form}

    def change(self, units: UnitSet, selection: Selection, reweight: bool) -> ConsumerChange:
        fold = _kept(units, selection, reweight)
        keep = selection.indices
        removed = np.setdiff1d(np.arange(units.n), keep)
        bn = units.batchnorm
        t = self.threshold if self.threshold is not None else (0.45 if bn is None else 0.1)
        points = units.filters if bn is not None else np.concatenate(
            [units.filters, (np.zeros(units.n) if units.bias is None else units.bias)[:, None]],
            axis=1)
        norms = np.linalg.norm(points, axis=1)
        unit = points / np.where(norms > 0, norms, 1.0)[:, None]
        cos = unit[removed] @ unit[keep].T  # (r, k)
        s = norms[removed, None] / np.where(norms[keep] > 0, norms[keep], 1.0)[None, :]
        if bn is None:
            match = np.argmax(cos, axis=1)
            scale = s[np.arange(removed.size), match]
        else:
            match, scale = self._match_batchnorm(bn, removed, keep, cos, s)
        best = cos[np.arange(removed.size), match]
        merge = best >= t
        mixing = fold.mixing.copy()
        mixing[removed[merge], match[merge]] = scale[merge]
        return ConsumerChange(replace(fold, mixing=mixing), None,
                              {"compensation": "merge", "merged": int(merge.sum()),
                               "threshold": t})

    def _match_batchnorm(self, bn, removed, keep, cos, s):
        g, b, mu = bn.weight, bn.bias, bn.running_mean
        if self.form == "code":
            sig = bn.running_var
            gi, gj = g[removed, None], g[None, keep]
            si, sj = sig[removed, None], sig[None, keep]
            scale = s * (gj / _nz(gi)) * (si / _nz(sj))
            bias = np.abs((gj / _nz(sj)) * (s * (-(si * b[removed, None] / _nz(gi))
                                                 + mu[removed, None]) - mu[None, keep])
                          + b[None, keep]) / _nz(scale)
        else:
            sig = np.sqrt(bn.running_var + bn.eps)
            gi, gj = g[removed, None], g[None, keep]
            si, sj = sig[removed, None], sig[None, keep]
            scale = s * (gi / _nz(gj)) * (sj / _nz(si))
            # the constant that the exact multiple leaves: (beta_i - gamma_i mu_i / sigma_i)
            # - c (beta_j - gamma_j mu_j / sigma_j), relative to the scale
            bias = np.abs((b[removed, None] - gi * mu[removed, None] / si)
                          - scale * (b[None, keep] - gj * mu[None, keep] / sj)) / _nz(scale)
        lo, hi = bias.min(axis=1, keepdims=True), bias.max(axis=1, keepdims=True)
        bias = (bias - lo) / np.where(hi > lo, hi - lo, 1.0)
        score = self.lam * (1.0 - cos) + (1.0 - self.lam) * bias
        match = np.argmin(score, axis=1)
        return match, scale[np.arange(removed.size), match]


def _nz(x: np.ndarray) -> np.ndarray:
    return np.where(x != 0, x, 1e-300)


class LeastSquaresCompensation(Compensation):
    """The best affine reconstruction of the removed units from the kept ones under the
    Gaussian moment model, folded into every consumer (:func:`~coreprune.reconstruction.affine.
    least_squares_fold`): ``V_K <- V_K + V_R A``, ``bias <- bias + V_R c`` with ``A = Cov_RK
    (Cov_KK + lambda I)^-1`` and ``c = E[h_R] - A E[h_K]``. A reweighting selection's weights are
    not used (least squares chooses the kept units' weights).

    Guard, two rules, both reported in ``info``:

    * a fold moves the removed units' outgoing weights ``V_R`` onto the kept units as
      ``V_R A``. When ``||V_R A||_F > max_growth ||V_R||_F`` (the kept units explain the removed
      ones by large cancelling coefficients), ``A`` and ``c`` are shrunk by the factor
      ``max_growth ||V_R||_F / ||V_R A||_F`` toward plain dropping (``info["guard"]``, the
      factor). Exact duplicates and positive multiples up to ``max_growth`` times a kept unit
      pass unchanged.
    * at a layer that reads the model input, when the units' pre-activations are mostly their
      means under the input prior, i.e. the variance share ``sum_i g_i Var(a_i) / sum_i g_i
      E[a_i^2]`` (``g_i = ||v_i||^2``) is below ``min_variance_share``, the constant ``c``,
      which then rests on the prior's mean, is dropped and the linear part kept
      (``info["guard_offset_dropped"]``, the share; the share is in
      ``info["variance_share"]`` for every such layer). Deeper layers are left alone: their
      pre-activation means are the network's own (a sigmoid's outputs average 0.5). Measured
      on the README's MLPs: under the default prior the share was 0.99-1.0 at the first layer,
      under priors with a wrong non-zero mean ("grey pixels") 0.06-0.23; with this rule,
      reconstruction under those priors lost 22.6 and 25.8 points on average against 31.2 and
      33.7 for plain dropping (``benchmarks/results/studies/datafree_settings.log``; it still
      loses to dropping on the [0, 1]-pixel GELU and SiLU MLPs, docs/method.md §3).

    Where a layer has no moment model (``units.moments is None``: an activation path the
    propagation does not cover), it falls back to ``bn-mean`` where that applies, else to
    ``none``, and says which in ``info["compensation"]``.

    Args:
        ridge: relative ridge ``lambda / (mean variance of the kept units)``.
        max_growth: the first rule's bound (> 0; ``inf`` turns it off).
        min_variance_share: the second rule's bound, in [0, 1] (0 turns it off).
    """

    name = "reconstruct"
    needs_moments = True

    def __init__(self, ridge: float = 1e-6, max_growth: float = 4.0,
                 min_variance_share: float = 0.25) -> None:
        if not float(ridge) >= 0:
            raise InvalidArgumentError(f"ridge must be >= 0, got {ridge!r}")
        if not float(max_growth) > 0:
            raise InvalidArgumentError(f"max_growth must be > 0, got {max_growth!r}")
        if not 0.0 <= float(min_variance_share) <= 1.0:
            raise InvalidArgumentError(f"min_variance_share must lie in [0, 1], got "
                                       f"{min_variance_share!r}")
        self.ridge, self.max_growth = float(ridge), float(max_growth)
        self.min_variance_share = float(min_variance_share)

    def config(self) -> dict[str, Any]:
        return {"compensation": self.name, "ridge": self.ridge, "max_growth": self.max_growth,
                "min_variance_share": self.min_variance_share}

    def change(self, units: UnitSet, selection: Selection, reweight: bool) -> ConsumerChange:
        if units.consumer_moments:
            return self._per_consumer(units, selection)
        h = units.moments
        if h is None:
            fallback = BatchNormMeanCompensation().change(units, selection, reweight)
            return replace(fallback, info={
                **fallback.info, "compensation": f"{fallback.info['compensation']} (fallback: "
                "no moment model for this layer)"})
        fold, info = self._fold(h, units.outgoing, selection.indices)
        gram = output_gram(units.outgoing)
        pre = units.prior_preactivation
        if pre is not None:
            weight = np.diag(gram)
            second = float(weight @ (np.diag(pre.cov) + pre.mean**2))
            share = float(weight @ np.diag(pre.cov)) / second if second > 0 else 1.0
            info["variance_share"] = share
            if share < self.min_variance_share and np.any(fold.offset):
                fold = replace(fold, offset=np.zeros(units.n))
                info["guard_offset_dropped"] = share
        info["predicted_error"] = fold_error(h, gram, fold)
        info["predicted_error_drop"] = fold_error(h, gram, drop_fold(units.n, selection.indices))
        return ConsumerChange(fold, None, info)

    def _fold(self, h: Gaussian, outgoing: np.ndarray, keep: np.ndarray
              ) -> tuple[Fold, dict[str, Any]]:
        """The least-squares fold of moments ``h`` and the first guard rule."""
        fold = least_squares_fold(h, None, h.take(keep), keep, ridge=self.ridge)
        removed = np.setdiff1d(np.arange(h.dim), keep)
        v_r = outgoing[removed]
        base = float(np.linalg.norm(v_r))
        growth = float(np.linalg.norm(fold.mixing[removed].T @ v_r)) / base if base > 0 else 0.0
        info: dict[str, Any] = {"compensation": "reconstruct", "fold_growth": growth}
        if growth > self.max_growth:
            shrink = self.max_growth / growth
            mixing, offset = fold.mixing.copy(), fold.offset.copy()
            mixing[removed] *= shrink
            offset[removed] *= shrink
            fold = replace(fold, mixing=mixing, offset=offset)
            info["guard"] = shrink
        return fold, info

    def _per_consumer(self, units: UnitSet, selection: Selection) -> ConsumerChange:
        """One fold per consumer from the moments of what it reads (coupled channels); the
        report gives the folds' largest growth and the mean predicted errors."""
        keep = selection.indices
        folds, growth, errors, drops = {}, [], [], []
        for name, h in units.consumer_moments.items():
            v = units.outgoing[:, units.consumer_columns[name]]
            fold, info = self._fold(h, v, keep)
            folds[name] = fold
            growth.append(info["fold_growth"])
            gram = output_gram(v)
            errors.append(fold_error(h, gram, fold))
            drops.append(fold_error(h, gram, drop_fold(units.n, keep)))
        info = {"compensation": "reconstruct (per consumer)", "fold_growth": max(growth),
                "predicted_error": float(np.mean(errors)),
                "predicted_error_drop": float(np.mean(drops))}
        return ConsumerChange(drop_fold(units.n, keep), None, info, folds)


_COMPENSATIONS: Registry[Compensation] = Registry("compensation", Compensation)
register_compensation = _COMPENSATIONS.register
compensations = _COMPENSATIONS.names
compensation_description = _COMPENSATIONS.description


def get_compensation(name: str | Compensation, **options: Any) -> Compensation:
    """Instantiate the compensation registered as ``name`` with ``options`` (an instance:
    itself)."""
    return _COMPENSATIONS.get(name, **options)


def resolve_compensate(compensate: str | bool | Compensation | None, default: str
                       ) -> Compensation:
    """The compensation ``compensate`` names: a registered name or instance; ``None``: the
    method's ``default``; ``True`` / ``False``: ``"bn-mean"`` / ``"none"`` (the flag of
    coreprune 0.3, still accepted)."""
    if compensate is None:
        compensate = default
    elif isinstance(compensate, bool | np.bool_):
        compensate = "bn-mean" if compensate else "none"
    elif not isinstance(compensate, str | Compensation):
        raise InvalidArgumentError(f"compensate must be one of {compensations()}, None, True "
                                   f"or False, got {compensate!r}")
    return get_compensation(compensate)


register_compensation("none", "drop the removed units (a reweighting selection's weights are "
                      "folded)")(NoCompensation)
register_compensation("bn-mean", "units followed by BatchNorm and ReLU: restore the removed "
                      "units' expected output from the BatchNorm's parameters")(
    BatchNormMeanCompensation)
register_compensation("merge", "Neuron Merging (Kim et al. 2020): add each removed unit's "
                      "outgoing weights, scaled, to its most similar kept unit")(
    MergeCompensation)
register_compensation("reconstruct", "least-squares affine reconstruction of the removed units "
                      "from the kept ones under the Gaussian moment model (no data)")(
    LeastSquaresCompensation)
