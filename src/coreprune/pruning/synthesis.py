"""Synthetic inputs made from the model alone (matched to its BatchNorm statistics, or inverted
from its class scores), and moments measured on them; no data is read.

A trained BatchNorm stores the mean and variance of its input channels over the training data.
Inputs optimised so that every BatchNorm of the model sees those statistics on them (ZeroQ, Cai
et al. 2020, "distilled data") reproduce, beyond the marginals, the correlations between
channels and positions that the network's own layers create. :func:`batchnorm_matched_inputs`
starts from the input prior and minimises, with Adam,

    sum over BatchNorms of || mean_batch - running_mean ||^2
                          + || sqrt(var_batch + eps) - sqrt(running_var + eps) ||^2

(per-channel batch statistics of the BatchNorm's input). :class:`SampledMoments` then pushes
those inputs through the model as it is being pruned and measures each group's channel moments
where its consumers read them (every position counts as a sample). Models without BatchNorm get
samples of the prior itself (the same moments as the analytic propagation, up to sampling).

A classifier without BatchNorm stores no statistics of its inputs, but its class scores say
which inputs it tells apart. :func:`class_inverted_inputs` starts from the input prior and
minimises, with Adam, the cross-entropy of every input's scores against an assigned class
(classes in turn), with a penalty that keeps the inputs at the prior's scale and, for images,
a total-variation penalty that favours smooth images (model inversion: Mahendran and Vedaldi
2015; Yin et al. 2020 without their BatchNorm term).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from ..errors import InvalidArgumentError
from ..reconstruction import Gaussian
from .groups import NORMS, UnitGroup, _consumer_slices, _named_consumer_slices, layer_inputs
from .propagation import InputPrior

__all__ = ["batchnorm_matched_inputs", "class_inverted_inputs", "class_scores_width",
           "SampledMoments", "PriorAndSampledMoments", "AutoMoments", "synthesis_flops"]


def _prior_samples(prior: InputPrior, example_inputs: torch.Tensor, n: int,
                   seed: int) -> torch.Tensor:
    """``n`` seeded samples of ``prior`` (image pixels correlated as ``rho^(|dy| + |dx|)``;
    sample ``i`` of a mixture from component ``i mod K``)."""
    shape = tuple(example_inputs.shape[1:])
    mean, std = (torch.as_tensor(a).reshape(shape) for a in prior._moments(shape))
    z = torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64)
    def chol(size: int, rho: float) -> torch.Tensor:
        i = torch.arange(size, dtype=torch.float64)
        return torch.linalg.cholesky(rho ** (i[:, None] - i[None, :]).abs())

    if len(shape) == 3:
        parts = prior.components()
        for k, part in enumerate(parts):
            rho = float(part.spatial_correlation)
            if rho > 0:
                z[k::len(parts)] = chol(shape[1], rho) @ z[k::len(parts)] @ chol(shape[2], rho).T
    return (mean + std * z).to(example_inputs)


_MEMO: OrderedDict[bytes, tuple[torch.Tensor, float]] = OrderedDict()


def _fingerprint(model: nn.Module, *settings: object) -> bytes:
    h = hashlib.blake2b(repr(settings).encode(), digest_size=20)
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.digest()


def _remembered(key: bytes, make: Callable[[], tuple[torch.Tensor, float]]
                ) -> tuple[torch.Tensor, float]:
    """``make()``, or its result remembered under ``key`` (the last 8 results)."""
    if key not in _MEMO:
        _MEMO[key] = make()
        while len(_MEMO) > 8:
            _MEMO.popitem(last=False)
    _MEMO.move_to_end(key)
    x, value = _MEMO[key]
    return x.clone(), value


@contextmanager
def _frozen(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode with the gradients of its parameters off; both restored after."""
    was = model.training
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)
        model.train(was)


def _adam_on_inputs(x: torch.Tensor, loss_of: Callable[[torch.Tensor], torch.Tensor],
                    steps: int, lr: float,
                    project: Callable[[torch.Tensor], None] | None = None
                    ) -> tuple[torch.Tensor, float, float]:
    """``x`` after ``steps`` Adam steps of rate ``lr`` on ``loss_of(x)`` (``project(x)``, in
    place and without gradients, after each): ``(x, first loss, last loss)``."""
    x = x.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    first = last = 0.0
    for step in range(steps):
        loss = loss_of(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if project is not None:
            with torch.no_grad():
                project(x)
        last = float(loss.detach())
        if step == 0:
            first = last
    return x.detach(), first, last


def batchnorm_matched_inputs(model: nn.Module, example_inputs: torch.Tensor, prior: InputPrior,
                             n: int = 128, steps: int = 200, lr: float = 0.1,
                             seed: int = 0) -> tuple[torch.Tensor, float]:
    """``n`` inputs matched to the model's BatchNorm statistics (module docstring), starting
    from ``n`` seeded samples of ``prior``; ``(inputs, final loss relative to the initial)``.
    Without BatchNorm layers, the prior samples themselves (relative loss 0). The model is left
    as it was (eval mode for the optimisation, gradients of its parameters untouched). The last
    8 results are remembered (keyed by the model's tensors and the settings), so pruning one
    model at several levels synthesises once."""
    key = _fingerprint(model, tuple(example_inputs.shape[1:]), prior.config(), n, steps, lr,
                       seed)
    return _remembered(key, lambda: _synthesise(model, example_inputs, prior, n, steps, lr,
                                                seed))


def class_scores_width(model: nn.Module, example_inputs: torch.Tensor) -> int | None:
    """The number of classes when ``model`` maps a float input to class scores of shape
    ``(batch, classes)`` with at least two classes; None otherwise (a token model, a dense
    output, several outputs)."""
    if not example_inputs.is_floating_point():
        return None
    with _frozen(model), torch.no_grad():
        out = model(example_inputs[:1])
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] < 2 \
            or not out.is_floating_point():
        return None
    return int(out.shape[1])


def class_inverted_inputs(model: nn.Module, example_inputs: torch.Tensor, prior: InputPrior,
                          n: int = 2048, steps: int = 300, lr: float = 0.05,
                          scale_penalty: float = 0.1, smoothness_penalty: float = 0.1,
                          seed: int = 0) -> tuple[torch.Tensor, float]:
    """``n`` inputs that a classifier assigns to its classes in turn (input ``i`` to class
    ``i mod C``), made from the model alone; ``(inputs, share of them the model assigns to
    their class)``.

    Starts from ``n`` seeded samples of ``prior``'s first component (independent elements
    ``N(mean, std^2)``) and minimises with Adam, for ``steps`` steps of rate ``lr``,

        cross_entropy(model(x), y) + scale_penalty * mean(((x - mean) / std)^2)
            + smoothness_penalty * (mean |x[..., i+1, :] - x[..., i, :]|
                                    + mean |x[..., j+1] - x[..., j]|)

    (the last term only for image inputs ``(C, H, W)``; elements of zero prior std are held
    at the mean). The defaults were chosen on the two LeNet-300-100 configurations and
    checked on six other MLPs (``benchmarks/studies/inverted_inputs.py``). The model is left
    as it was; the last 8 results are remembered like :func:`batchnorm_matched_inputs`'s.

    Raises:
        InvalidArgumentError: the model's output is not class scores (``class_scores_width``).
    """
    classes = class_scores_width(model, example_inputs)
    if classes is None:
        raise InvalidArgumentError("moment_model='inverted' needs a classifier: a model that "
                                   "maps float inputs to scores of shape (batch, classes)")
    key = _fingerprint(model, "inverted", tuple(example_inputs.shape[1:]), prior.config(), n,
                       steps, lr, scale_penalty, smoothness_penalty, seed)
    return _remembered(key, lambda: _invert(model, example_inputs, prior.components()[0],
                                            classes, n, steps, lr, scale_penalty,
                                            smoothness_penalty, seed))


def _invert(model: nn.Module, example_inputs: torch.Tensor, start: InputPrior, classes: int,
            n: int, steps: int, lr: float, scale_penalty: float, smoothness_penalty: float,
            seed: int) -> tuple[torch.Tensor, float]:
    x = _prior_samples(start, example_inputs, n, seed)
    shape = tuple(example_inputs.shape[1:])
    mean, std = (torch.as_tensor(a).reshape(shape).to(x) for a in start._moments(shape))
    inv_std = torch.where(std > 0, 1.0 / std.clamp_min(1e-12), torch.zeros_like(std))
    y = torch.arange(n, device=x.device) % classes

    def loss_of(z: torch.Tensor) -> torch.Tensor:
        loss = nn.functional.cross_entropy(model(z), y) + \
            scale_penalty * ((z - mean) * inv_std).square().mean()
        if len(shape) == 3 and smoothness_penalty > 0:
            loss = loss + smoothness_penalty * ((z[..., 1:, :] - z[..., :-1, :]).abs().mean()
                                                + (z[..., 1:] - z[..., :-1]).abs().mean())
        return loss

    def hold_fixed_elements(z: torch.Tensor) -> None:
        z.copy_(torch.where(std > 0, z, mean))

    with _frozen(model):
        x, _, _ = _adam_on_inputs(x, loss_of, steps, lr, hold_fixed_elements)
        with torch.no_grad():
            share = float((model(x).argmax(1) == y).double().mean())
    return x, share


def _synthesise(model: nn.Module, example_inputs: torch.Tensor, prior: InputPrior, n: int,
                steps: int, lr: float, seed: int) -> tuple[torch.Tensor, float]:
    x = _prior_samples(prior, example_inputs, n, seed)
    norms = [m for m in model.modules() if isinstance(m, NORMS) and m.track_running_stats
             and m.running_mean is not None]
    if not norms:
        return x, 0.0
    seen: list[tuple[nn.Module, torch.Tensor]] = []
    def record(mod: nn.Module, args: tuple, out: torch.Tensor) -> None:
        seen.append((mod, args[0]))

    def loss_of(z: torch.Tensor) -> torch.Tensor:
        seen.clear()
        model(z)
        loss = z.new_zeros(())
        for m, a in seen:
            dims = [0] + list(range(2, a.dim()))
            mean = a.mean(dims, keepdim=True)  # two passes: 4x faster than Tensor.var
            std = ((a - mean).square().mean(dims) + m.eps).sqrt()
            loss = loss + (mean.reshape(-1) - m.running_mean).pow(2).sum() + \
                (std - (m.running_var + m.eps).sqrt()).pow(2).sum()
        return loss

    hooks = [m.register_forward_hook(record) for m in norms]
    try:
        with _frozen(model):
            x, first, last = _adam_on_inputs(x, loss_of, steps, lr)
    finally:
        for h in hooks:
            h.remove()
    return x, (last / first if first > 0 else 0.0)


def _channel_moments(x: torch.Tensor, cols: np.ndarray, n: int) -> Gaussian | None:
    """The moments of ``n`` units in a consumer's input ``x`` (columns ``cols``, (n, c)): a
    map's channels (every position a sample), or a flat input's features (a flattened map's
    positions as samples); None where they are not finite (weights so large that the synthetic
    inputs overflow)."""
    a = x.double().cpu()
    if a.dim() == 4:
        a = a[:, torch.as_tensor(cols[:, 0])].permute(0, 2, 3, 1).reshape(-1, n)
    elif cols.shape[1] == 1:
        a = a.reshape(a.shape[0], -1)[:, torch.as_tensor(cols[:, 0])]
    else:
        a = a.reshape(a.shape[0], -1)[:, torch.as_tensor(cols.reshape(-1))]
        a = a.reshape(a.shape[0], n, -1).permute(0, 2, 1).reshape(-1, n)
    h = a.numpy()
    with np.errstate(all="ignore"):
        mean = h.mean(0)
        cov = (h - mean).T @ (h - mean) / h.shape[0]
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(cov))):
        return None
    return Gaussian(mean, cov)


class SampledMoments:
    """Each group's channel moments measured on ``inputs`` pushed through ``graph``'s model as
    it is now (the same interface as :class:`~coreprune.pruning.propagation.MomentPropagator`).
    """

    def __init__(self, graph: tp.DependencyGraph, inputs: torch.Tensor, note: str) -> None:
        self.graph, self.inputs, self.note = graph, inputs, note

    def unit_moments(self, g: UnitGroup, gi: int) -> tuple[Gaussian | None, str]:
        if g.coupled:
            return None, "channels coupled through a residual addition"
        consumer, cols = next(iter(_consumer_slices(self.graph, g)))
        seen = layer_inputs(self.graph.model, self.inputs, [consumer], stop=True)
        h = _channel_moments(seen[id(consumer)], cols, g.n_units)
        return (h, self.note) if h is not None else (None, f"{self.note} are not finite")

    def consumer_moments(self, g: UnitGroup) -> dict[str, Gaussian]:
        """The units' moments as each consumer reads them (consumer name -> moments; empty
        where any of them is not finite): for channels coupled across residual additions
        every consumer reads another state."""
        slices = list(_named_consumer_slices(self.graph, g))
        seen = layer_inputs(self.graph.model, self.inputs, [m for _, m, _ in slices], stop=True)
        measured = {name: _channel_moments(seen[id(m)], cols, g.n_units)
                    for name, m, cols in slices if id(m) in seen}
        return {} if any(h is None for h in measured.values()) else measured

    def prior_preactivation(self, g: UnitGroup) -> None:
        """Not given (the guard that reads it concerns the analytic model's prior)."""
        return None

    def pruned(self, g: UnitGroup, keep: np.ndarray) -> None:
        """Nothing to forget: every group is measured on the model as it is."""


def synthesis_flops(model: nn.Module, example_inputs: torch.Tensor, n: int, steps: int) -> float:
    """The cost of :func:`batchnorm_matched_inputs`: ``3 x`` one input's forward FLOPs
    (forward and backward) ``x n x steps``."""
    from ..metrics import count_flops

    return 3.0 * count_flops(model, example_inputs[:1]) * n * steps


class PriorAndSampledMoments:
    """The equal mixture of two moment models: the analytic model's moments under the input
    prior and moments measured on synthetic inputs (:class:`SampledMoments`), per group
    (:meth:`~coreprune.reconstruction.Gaussian.mixture`: a fold fitted to them minimises the
    error averaged over the two); where one of them has no moments, the other's alone. The
    guard on the first layer reads the prior's pre-activations."""

    def __init__(self, analytic, sampled: SampledMoments) -> None:
        self.analytic, self.sampled = analytic, sampled

    def unit_moments(self, g: UnitGroup, gi: int) -> tuple[Gaussian | None, str]:
        a, why_a = self.analytic.unit_moments(g, gi)
        s, why_s = self.sampled.unit_moments(g, gi)
        if a is None or s is None:
            return (s, why_s) if a is None else (a, why_a)
        return Gaussian.mixture([a, s]), f"{why_a or 'the input prior'}, mixed with {why_s}"

    def prior_preactivation(self, g: UnitGroup) -> Gaussian | None:
        return self.analytic.prior_preactivation(g)

    def consumer_moments(self, g: UnitGroup) -> dict[str, Gaussian]:
        """Per-consumer moments on the synthetic inputs."""
        return self.sampled.consumer_moments(g)

    def pruned(self, g: UnitGroup, keep: np.ndarray) -> None:
        self.analytic.pruned(g, keep)


class AutoMoments:
    """The analytic model (:class:`~coreprune.pruning.propagation.MomentPropagator`) for every
    group it follows, and moments measured on BatchNorm-matched synthetic inputs for the groups
    it would give a local prior, when ``synthesize()`` returns them (it is called once, at the
    first such group; None: keep the local prior)."""

    def __init__(self, analytic, synthesize) -> None:
        self.analytic, self._synthesize = analytic, synthesize
        self._sampled: SampledMoments | None | bool = False

    def unit_moments(self, g: UnitGroup, gi: int) -> tuple[Gaussian | None, str]:
        h, note = self.analytic.unit_moments(g, gi)
        if h is None or not note.startswith("local prior"):
            return h, note
        if self._sampled is False:
            self._sampled = self._synthesize()
        if self._sampled is None:
            return h, note
        return self._sampled.unit_moments(g, gi)

    def prior_preactivation(self, g: UnitGroup) -> Gaussian | None:
        return self.analytic.prior_preactivation(g)

    def consumer_moments(self, g: UnitGroup) -> dict[str, Gaussian] | None:
        """Per-consumer moments on the synthetic inputs (None without them)."""
        if self._sampled is False:
            self._sampled = self._synthesize()
        return None if self._sampled is None else self._sampled.consumer_moments(g)

    def pruned(self, g: UnitGroup, keep: np.ndarray) -> None:
        self.analytic.pruned(g, keep)
