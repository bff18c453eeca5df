"""Importance methods: given one layer's units as point sets and a budget k, choose the units
to keep and the factor to fold into each one's outgoing weights.

Every method is registered under a name, so benchmarks loop over :func:`methods` and users
pick one by name (``prune(model, method="l1")``). Methods see plain arrays only
(:class:`UnitSet`), never an ``nn.Module``; mapping modules to point sets is
:mod:`coreprune.pruning`'s job.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from threadpoolctl import threadpool_limits

from .errors import InvalidArgumentError
from .geometry import peel_sensitivities, project_top_k, sample_distinct, top_k_subset
from .reconstruction import Activation, Gaussian, greedy_selection, output_gram
from .registry import Registry

__all__ = [
    "UnitSet",
    "BatchNormParams",
    "Selection",
    "ImportanceMethod",
    "CoresetImportance",
    "MussayImportance",
    "NormImportance",
    "GreedyImportance",
    "NeuronMergingImportance",
    "RandomImportance",
    "register_method",
    "get_method",
    "methods",
    "method_description",
]


@dataclass(frozen=True)
class BatchNormParams:
    """The BatchNorm right after a producer, per unit (all (n,)): ``y = weight (a - running_mean)
    / sqrt(running_var + eps) + bias``. On the data the model was trained on, ``y`` has mean
    ``bias`` and standard deviation ``|weight|``."""

    weight: np.ndarray
    bias: np.ndarray
    running_mean: np.ndarray
    running_var: np.ndarray
    eps: float


class _Deferred:
    """A :class:`UnitSet` attribute that may be given as a function of no arguments: it is
    called on first access and its result kept."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = "_" + name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__[self.slot]
        if callable(value):
            value = value()
            obj.__dict__[self.slot] = value
        return value


class UnitSet:
    """A layer's n prunable units as point sets (docs/method.md, notation), with what is known
    of their outputs.

    ``incoming``, ``outgoing``, ``filters`` and ``consumer_columns`` may each be given as a
    function of no arguments that returns the value: it is called the first time a method or
    compensation reads it (a traced layer's arrays are float64 copies of its weights, which
    e.g. a norm method never reads). Instances are immutable: :meth:`replace` returns a copy.

    Attributes:
        incoming: (n, d) effective incoming weights p_i (BatchNorm folded in, bias appended).
        outgoing: (n, D) outgoing weights v_i: every weight of every consumer reading unit i.
        filters: (n, d0) the producer's raw weight rows (what norm baselines rank by).
        name: the layer's module path, for messages and reports.
        bias: (n,) the producer's raw bias (zeros when it has none); None if unknown.
        batchnorm: the BatchNorm right after the producer, if any.
        activation: the elementwise activation between the units and every consumer (identity
            when there is none), or None when the path is not one activation and views.
        moments: the Gaussian model of the unit outputs ``h`` (what the consumers read) under
            the input prior, or None where none was computed (see
            :mod:`coreprune.pruning.propagation`).
        prior_preactivation: the same for the units' pre-activations (after their BatchNorm)
            when the layer reads the model input, so that they come straight from the input
            prior (analytic model); None elsewhere.
        consumer_columns: consumer name -> the columns of ``outgoing`` that hold its weights.
        consumer_moments: consumer name -> the units' moments as that consumer reads them,
            where consumers read different states of the units (channels coupled across
            residual additions); None elsewhere.
        n: the number of units (given, or the rows of ``filters``).
    """

    incoming = _Deferred()
    outgoing = _Deferred()
    filters = _Deferred()
    consumer_columns = _Deferred()
    _FIELDS = ("incoming", "outgoing", "filters", "name", "bias", "batchnorm", "activation",
               "moments", "prior_preactivation", "consumer_columns", "consumer_moments")

    def __init__(
        self,
        incoming: np.ndarray | Callable[[], np.ndarray],
        outgoing: np.ndarray | Callable[[], np.ndarray],
        filters: np.ndarray | Callable[[], np.ndarray],
        name: str = "",
        bias: np.ndarray | None = None,
        batchnorm: BatchNormParams | None = None,
        activation: Activation | None = None,
        moments: Gaussian | None = None,
        prior_preactivation: Gaussian | None = None,
        consumer_columns: dict[str, slice] | Callable[[], dict[str, slice]] | None = None,
        consumer_moments: dict[str, Gaussian] | None = None,
        n: int | None = None,
    ) -> None:
        values = dict(zip(self._FIELDS, (incoming, outgoing, filters, name, bias, batchnorm,
                                         activation, moments, prior_preactivation,
                                         consumer_columns, consumer_moments), strict=True))
        for key, value in values.items():
            self.__dict__["_" + key if key in _DEFERRED else key] = value
        self.__dict__["_n"] = n

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"UnitSet is immutable: use replace({key}=...)")

    def __repr__(self) -> str:
        return f"UnitSet(name={self.name!r}, n={self.n})"

    @property
    def n(self) -> int:
        if self._n is None:
            self.__dict__["_n"] = int(self.filters.shape[0])
        return int(self._n)

    def replace(self, **changes: Any) -> UnitSet:
        """A copy with ``changes`` (keyword: attribute name); values not yet computed stay
        deferred."""
        unknown = set(changes) - set(self._FIELDS)
        if unknown:
            raise TypeError(f"UnitSet has no attribute(s) {sorted(unknown)}")
        values = {key: self.__dict__["_" + key if key in _DEFERRED else key]
                  for key in self._FIELDS}
        return UnitSet(**{**values, **changes}, n=self._n)


_DEFERRED = ("incoming", "outgoing", "filters", "consumer_columns")


@dataclass(frozen=True)
class Selection:
    """Which units to keep and how to fold.

    Attributes:
        indices: (k,) sorted indices of kept units.
        weights: (k,) factor for each kept unit's outgoing weights (1.0: no reweighting).
        scores: (n,) the importance (sensitivity bound, norm, ...) of every unit.
        info: method-specific numbers for reports (total sensitivity, draws, rank, ...).
    """

    indices: np.ndarray
    weights: np.ndarray
    scores: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


class ImportanceMethod(ABC):
    """Base class: ``select(units, k, rng)`` returns a :class:`Selection` of k units."""

    name: ClassVar[str] = ""
    data_independent: ClassVar[bool] = True

    @abstractmethod
    def scores(self, units: UnitSet) -> np.ndarray:
        """(n,) non-negative importance of each unit (larger: more important)."""

    def select(self, units: UnitSet, k: int, rng: np.random.Generator) -> Selection:
        """Keep the k highest-scoring units, each with weight 1."""
        s = self.scores(units)
        sub = top_k_subset(s, k)
        return Selection(sub.indices, sub.weights, s)

    def config(self) -> dict[str, Any]:
        """The settings that determine this method's output (recorded in metadata)."""
        return {"method": self.name}

    @property
    def needs_moments(self) -> bool:
        """Whether :meth:`select` reads ``units.moments`` (the pruner then computes them)."""
        return False

    def default_compensation(self) -> str:
        """The compensation (:mod:`coreprune.compensation`) the pruner applies when the caller
        does not name one (``Pruner(compensate=None)``): ``"none"``, so the baselines run as
        published."""
        return "none"


_METHODS: Registry[ImportanceMethod] = Registry("method", ImportanceMethod)
register_method = _METHODS.register
methods = _METHODS.names
method_description = _METHODS.description


def get_method(name: str | ImportanceMethod, **options: Any) -> ImportanceMethod:
    """Instantiate the method registered as ``name`` with ``options`` (an instance: itself)."""
    return _METHODS.get(name, **options)


SCALINGS = ("outgoing", "outgoing_x_incoming_norm", "incoming_x_outgoing_norm", "residual")
SELECTIONS = ("sample", "topk")


class CoresetImportance(ImportanceMethod):
    """Tukan et al. 2022: sensitivity bounds by peeling ℓ∞-coresets (METHOD §3).

    Args:
        scaling: the point set q_i of each unit: ``"outgoing"`` (v_i, docs/method.md §1; the
            default: more accurate than ||p_i|| v_i before and after fine-tuning on our trained
            LeNet-300-100 and ResNet-56, mixed on VGG-16; see the README's Results),
            ``"outgoing_x_incoming_norm"`` (||p_i|| v_i; ||p_i|| bounds |phi(p_i.x)| per unit
            input norm, docs/method.md §1, a layer), ``"incoming_x_outgoing_norm"`` (||v_i|| p_i) or
            ``"residual"`` (``sd(h_i | h_others) v_i``: each unit's contribution scaled by the
            part of its output the other units cannot reconstruct, under the moment model;
            ``v_i`` where the layer has none).
        projection: ``None`` (the whole span: theory-faithful), a positive int k, or ``"auto"``
            (fewest top singular directions holding ``energy`` of the points' energy),
            docs/method.md §1, a layer.
        energy: energy fraction for ``projection="auto"``.
        selection: ``"sample"`` (i.i.d. by sensitivity until k distinct, weights
            ``count / (N p)``, docs/method.md §1) or ``"topk"`` (the k largest bounds, weight 1).
        tol: Löwner ellipsoid tolerance.
        max_peels: cap on peels (the rest get the valid bound of the next peel).
    """

    name = "coreset"

    def __init__(self, scaling: str = "outgoing",
                 projection: int | str | None = 8, energy: float = 0.9,
                 selection: str = "topk", tol: float = 1e-2, max_peels: int | None = None,
                 name: str = "coreset") -> None:
        if scaling not in SCALINGS:
            raise InvalidArgumentError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
        if selection not in SELECTIONS:
            raise InvalidArgumentError(f"selection must be one of {SELECTIONS}, got {selection!r}")
        if not (projection is None or projection == "auto"
                or (isinstance(projection, int) and projection >= 1)):
            raise InvalidArgumentError(
                f"projection must be None, 'auto' or a positive int, got {projection!r}")
        if not 0.0 < energy <= 1.0:
            raise InvalidArgumentError(f"energy must lie in (0, 1], got {energy!r}")
        if not 0.0 < tol < 1.0:
            raise InvalidArgumentError(f"tol must lie in (0, 1), got {tol!r}")
        self.scaling, self.projection, self.energy = scaling, projection, energy
        self.selection, self.tol, self.max_peels = selection, tol, max_peels
        self.name = name  # type: ignore[misc]
        self._peeled: dict[bytes, tuple[np.ndarray, dict[str, Any]]] = {}

    @property
    def needs_moments(self) -> bool:
        return self.scaling == "residual"

    def points(self, units: UnitSet) -> np.ndarray:
        """The (n, r) point set the sensitivities are computed on."""
        in_norm = np.linalg.norm(units.incoming, axis=1)
        out_norm = np.linalg.norm(units.outgoing, axis=1)
        if self.scaling == "outgoing" or (self.scaling == "residual" and units.moments is None):
            q = units.outgoing
        elif self.scaling == "residual":
            q = units.outgoing * _residual_sd(units.moments.cov)[:, None]
        elif self.scaling == "outgoing_x_incoming_norm":
            q = units.outgoing * in_norm[:, None]
        else:
            q = units.incoming * out_norm[:, None]
        if self.projection is not None and np.any(q):
            q, _, _ = project_top_k(q, self.projection, self.energy)
        return q

    def _peel(self, q: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """Peeling bounds of ``q`` and their summary; the last 256 point sets are remembered
        (keyed by their bytes and the settings), so scoring and then selecting the same layer,
        as the sensitivity allocation does, peels it once."""
        if not np.any(q):
            return np.zeros(q.shape[0]), {"rank": 0, "total_sensitivity": 0.0, "peels": 0}
        key = hashlib.blake2b(repr((q.shape, q.dtype.str, self.tol, self.max_peels)).encode()
                              + np.ascontiguousarray(q).tobytes(), digest_size=20).digest()
        if key not in self._peeled:
            res = peel_sensitivities(q, tol=self.tol, max_peels=self.max_peels)
            if len(self._peeled) >= 256:
                self._peeled.pop(next(iter(self._peeled)))
            self._peeled[key] = (res.upper_bounds, {
                "rank": int(q.shape[1]), "total_sensitivity": res.total,
                "peels": int(res.alphas.size),
                "alpha_first": float(res.alphas[0]) if res.alphas.size else 1.0})
        bounds, info = self._peeled[key]
        return bounds.copy(), dict(info)

    # The geometry runs with one BLAS thread: peeling makes discrete choices (which points
    # enter an l-inf coreset) that a last-bit change can flip, and multithreaded BLAS sums in
    # an order that depends on the thread count; measured on a trained VGG-16, 1 and 2 threads
    # kept different units in one of 13 layers. One thread gives the same units for any thread
    # setting (another numpy build or CPU can still differ; see the README).
    def _points_and_bounds(self, units: UnitSet
                           ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        with threadpool_limits(1, user_api="blas"):
            q = self.points(units)
            return (q, *self._peel(q))

    def scores(self, units: UnitSet) -> np.ndarray:
        return self._points_and_bounds(units)[1]

    def select(self, units: UnitSet, k: int, rng: np.random.Generator) -> Selection:
        q, s, info = self._points_and_bounds(units)
        if self.selection == "sample":
            sub = sample_distinct(s, k, rng)
            info["draws"] = sub.draws
        else:
            # ties between units of one peel are broken by the size of their point
            q_norm = np.linalg.norm(q, axis=1)
            key = s + 1e-9 * q_norm / max(q_norm.max(), 1e-300)
            sub = top_k_subset(key, k)
        return Selection(sub.indices, sub.weights, s, info)

    def config(self) -> dict[str, Any]:
        return {"method": self.name, "scaling": self.scaling, "projection": self.projection,
                "energy": self.energy, "selection": self.selection, "tol": self.tol,
                "max_peels": self.max_peels}

    def default_compensation(self) -> str:
        """``"reconstruct"`` for ``selection="topk"``: its kept units carry weight 1, so what the
        removed units contributed is lost unless it is folded into what follows (least squares
        under the moment model where the pruner has one, else BatchNorm mean compensation).
        ``"none"`` for sampling, whose ``count / (N p)`` weights restore that mass in
        expectation already (and which stays the paper's construction)."""
        return "reconstruct" if self.selection == "topk" else "none"


def _residual_sd(cov: np.ndarray, ridge: float = 1e-6) -> np.ndarray:
    """(n,) ``sd(h_i | h_j, j != i)`` under covariance ``cov``: ``1 / sqrt((C + lambda I)^-1_ii)``
    with ``lambda = ridge * mean variance``."""
    n = cov.shape[0]
    scale = max(float(np.trace(cov)) / max(n, 1), 1e-300)
    prec = np.linalg.inv(cov + ridge * scale * np.eye(n))
    return 1.0 / np.sqrt(np.clip(np.diag(prec), 1e-300, None))


class GreedyImportance(ImportanceMethod):
    """Keep the units whose outputs best explain, by least squares under the moment model, the
    removed units' contribution to the next layer: greedy forward selection minimising the
    model-predicted output error ``tr(V^T V Cov(h | h_K))``
    (:func:`coreprune.reconstruction.greedy_selection`), to be followed by the ``reconstruct``
    compensation (its default). Where a layer has no moment model, the default coreset chooses
    (``info["fallback"]``).

    ``scores``: the output error each unit explains alone (the first greedy step's gains).
    """

    name = "greedy"

    @property
    def needs_moments(self) -> bool:
        return True

    def default_compensation(self) -> str:
        return "reconstruct"

    def scores(self, units: UnitSet) -> np.ndarray:
        if units.moments is None:
            return CoresetImportance().scores(units)
        return greedy_selection(1, output_gram(units.outgoing), units.moments.cov).alone

    def select(self, units: UnitSet, k: int, rng: np.random.Generator) -> Selection:
        if units.moments is None:
            sel = CoresetImportance().select(units, k, rng)
            return Selection(sel.indices, sel.weights, sel.scores,
                             {**sel.info, "fallback": "coreset (no moment model)"})
        res = greedy_selection(k, output_gram(units.outgoing), units.moments.cov)
        total = res.errors[0]
        return Selection(res.indices, np.ones(k), res.alone,
                         {"explained": float(1.0 - res.errors[-1] / total) if total > 0 else 1.0})


class MussayImportance(ImportanceMethod):
    """Mussay et al., ICLR 2020 (docs/method.md §2): ``s_i ∝ max_j |v_ij| * ||p_i||`` (ReLU,
    phi(t)=t),
    sampled i.i.d. until k distinct units are drawn, outgoing weights times
    ``count / (draws * prob)``."""

    name = "mussay"

    def scores(self, units: UnitSet) -> np.ndarray:
        return np.abs(units.outgoing).max(axis=1) * np.linalg.norm(units.incoming, axis=1)

    def select(self, units: UnitSet, k: int, rng: np.random.Generator) -> Selection:
        s = self.scores(units)
        sub = sample_distinct(s, k, rng)
        return Selection(sub.indices, sub.weights, s,
                         {"total_sensitivity": float(s.sum() / max(s.max(), 1e-300)),
                          "draws": sub.draws})


def row_norms(a: np.ndarray, p: float) -> np.ndarray:
    """``np.linalg.norm(a, ord=p, axis=1)`` of a 2-D array, a block of rows at a time (no
    temporary the size of ``a``: on a large layer that costs more than the norms)."""
    step = max(1, (1 << 15) // max(1, a.shape[1]))
    return np.concatenate([np.linalg.norm(a[i:i + step], ord=p, axis=1)
                           for i in range(0, a.shape[0], step)] or [np.zeros(0)])


class NormImportance(ImportanceMethod):
    """Keep the units whose raw incoming weights (filters) have the largest ℓp norm
    (Li et al. 2017 for p = 1)."""

    def __init__(self, p: int = 1) -> None:
        self.p = p
        self.name = f"l{p}"  # type: ignore[misc]

    def scores(self, units: UnitSet) -> np.ndarray:
        return row_norms(units.filters, self.p)


class NeuronMergingImportance(ImportanceMethod):
    """Neuron Merging's selection (Kim, Kim, Lee, NeurIPS 2020, their code's ``l1-norm``
    criterion): the largest L1 norm of the raw incoming ``[W | b]`` (bias appended where the
    layer has one), followed by their merge (the ``merge`` compensation, its default)."""

    name = "neuron-merging"

    def scores(self, units: UnitSet) -> np.ndarray:
        bias = np.zeros(units.n) if units.bias is None else units.bias
        return np.abs(units.filters).sum(axis=1) + np.abs(bias)

    def default_compensation(self) -> str:
        return "merge"


class RandomImportance(ImportanceMethod):
    """Keep k units chosen uniformly at random (seeded)."""

    name = "random"

    def scores(self, units: UnitSet) -> np.ndarray:
        return np.ones(units.n)

    def select(self, units: UnitSet, k: int, rng: np.random.Generator) -> Selection:
        keep = np.sort(rng.choice(units.n, size=k, replace=False))
        return Selection(keep, np.ones(k), self.scores(units))


register_method("coreset", "ours, default setting: peeling sensitivities of the outgoing "
                "vectors v_i projected to the top 8 singular directions, deterministic top-k, "
                "BatchNorm compensation")(
    CoresetImportance)
register_method("coreset-scaled", "ours: the default with the points scaled by the incoming "
                "norm, ||p_i|| v_i (the default before 0.2)")(
    lambda **kw: CoresetImportance(**{"scaling": "outgoing_x_incoming_norm",
                                      "name": "coreset-scaled", **kw}))
register_method("coreset-theory", "ours, theory-faithful: whole span, ||p_i|| v_i, i.i.d. "
                "sampling with count/(N p) reweighting")(
    lambda **kw: CoresetImportance(**{"scaling": "outgoing_x_incoming_norm", "projection": None,
                                      "selection": "sample", "name": "coreset-theory", **kw}))
register_method("mussay", "Mussay et al. 2020: max_j|v_ij| ||p_i||, sampling with reweighting")(
    MussayImportance)
register_method("l1", "L1 norm of the incoming filter (Li et al. 2017)")(
    lambda: NormImportance(1))
register_method("l2", "L2 norm of the incoming filter")(lambda: NormImportance(2))
register_method("random", "uniformly random units")(RandomImportance)
register_method("neuron-merging", "Neuron Merging (Kim et al. 2020): L1 norm of the raw "
                "incoming [W|b], then merge each removed unit into its most similar kept unit")(
    NeuronMergingImportance)
register_method("greedy", "the units that best explain the others' contribution to the next "
                "layer (greedy least squares under the moment model); reconstruct")(
    GreedyImportance)
