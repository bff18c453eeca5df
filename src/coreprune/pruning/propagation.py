"""Gaussian moments of every prunable layer's outputs, propagated from an input prior through
the model as it is being pruned; no data is read.

The model input is modelled as independent Gaussians ``x ~ N(mean, diag(std^2))`` in the model's
input coordinates (:class:`InputPrior`; ``N(0, I)`` by default: inputs normalised the usual
way). Layer by layer, in the order the pruner processes them, the moments are pushed through the
*current* model, i.e. through the layers already pruned and reconstructed:

* ``Linear``: ``N(m, S) -> N(W m + b, W S W^T)`` (exact);
* ``BatchNorm1d`` (eval): the same with its per-feature affine map (exact);
* an elementwise activation: :func:`coreprune.reconstruction.activation_moments`, the output
  moment-matched as a Gaussian for the next layer;
* views and flattening: unchanged.

The moment model covers chains of these ops (multi-layer perceptrons, with or without
BatchNorm1d and dropout). A layer reached through anything else (a convolution, a residual
addition, pooling, an op on the input before the first layer) has no moment model here: the
propagator says why, and the compensations fall back (:mod:`coreprune.compensation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from ..errors import InvalidArgumentError
from ..reconstruction import Activation, Gaussian, activation_moments
from .groups import UnitGroup, _batchnorm_after, _consumer_slices, activation_of

__all__ = ["InputPrior", "MomentPropagator"]

_VIEWS = ("ViewBackward", "UnsafeViewBackward", "ReshapeAliasBackward", "FlattenBackward",
          "CloneBackward")


@dataclass(frozen=True)
class InputPrior:
    """Independent Gaussian inputs ``N(mean, std^2)`` per input element.

    ``mean`` and ``std`` are scalars, arrays of the per-sample input shape, or 1-D arrays with
    one value per channel (the first per-sample dimension, e.g. ``(0.485, 0.456, 0.406)`` for
    ``(3, H, W)`` images). The default ``N(0, 1)`` suits inputs standardised the usual way.
    """

    mean: float | Sequence[float] | np.ndarray = 0.0
    std: float | Sequence[float] | np.ndarray = 1.0

    @staticmethod
    def from_value(value: InputPrior | tuple | None) -> InputPrior:
        """An :class:`InputPrior` from ``None`` (the default), a ``(mean, std)`` pair or one."""
        if value is None:
            return InputPrior()
        if isinstance(value, InputPrior):
            return value
        if isinstance(value, tuple | list) and len(value) == 2:
            return InputPrior(value[0], value[1])
        raise InvalidArgumentError(f"input_prior must be (mean, std), got {value!r}")

    def _broadcast(self, value, shape: tuple[int, ...], what: str) -> np.ndarray:
        a = np.asarray(value, dtype=np.float64)
        size = int(np.prod(shape))
        if a.ndim == 0:
            out = np.full(size, float(a))
        elif a.ndim == 1 and len(shape) > 1 and a.size == shape[0]:
            out = np.repeat(a, size // shape[0])
        elif a.shape == shape or (a.ndim == 1 and a.size == size):
            out = a.reshape(-1)
        else:
            raise InvalidArgumentError(
                f"input_prior {what} of shape {a.shape} does not fit inputs of shape {shape} "
                "(give a scalar, one value per channel, or the input's shape)")
        if not np.all(np.isfinite(out)):
            raise InvalidArgumentError(f"input_prior {what} must be finite")
        return out

    def gaussian(self, shape: tuple[int, ...]) -> Gaussian:
        """The prior over the flattened input of per-sample ``shape``."""
        m = self._broadcast(self.mean, shape, "mean")
        s = self._broadcast(self.std, shape, "std")
        if np.any(s < 0):
            raise InvalidArgumentError("input_prior std must be non-negative")
        return Gaussian.independent(m.size, m, s)

    def config(self) -> dict[str, object]:
        def plain(v):
            a = np.asarray(v, dtype=np.float64)
            return float(a) if a.ndim == 0 else a.tolist()

        return {"mean": plain(self.mean), "std": plain(self.std)}


class _NoModelError(Exception):
    """Internal: a layer's input is not covered by the moment model (the message says why)."""


def _data_inputs(node: tp.Node) -> list[tp.Node]:
    """A node's inputs that carry data (not a parameter's transpose)."""
    return [i for i in node.inputs
            if not (i.inputs == [] and type(i.grad_fn).__name__.startswith(
                ("TBackward", "PermuteBackward")))]


class MomentPropagator:
    """Gaussian moments of the model's layers under :class:`InputPrior`, computed on demand on
    the current weights of ``graph``'s model and kept until :meth:`pruned` says a group changed.

    Args:
        graph: the traced model (the working copy the pruner modifies).
        example_inputs: the tracing batch (its per-sample shape is the prior's).
        prior: the input prior.
        method, order, samples: as :func:`~coreprune.reconstruction.activation_moments`.
        seed: Monte Carlo seed; group ``gi`` uses ``[seed, gi]``.
    """

    def __init__(self, graph: tp.DependencyGraph, example_inputs: torch.Tensor,
                 prior: InputPrior, method: str = "auto", order: int = 24,
                 samples: int = 20_000, seed: int = 0) -> None:
        self.graph, self.prior = graph, prior
        self.sample_shape = tuple(int(d) for d in example_inputs.shape[1:])
        self.method, self.order, self.samples, self.seed = method, order, samples, seed
        self._x = example_inputs
        self._cache: dict[int, Gaussian] = {}
        self._first_checked: dict[int, bool] = {}
        self._gi = 0

    # -- what a layer reads --------------------------------------------------------------
    def _reads_model_input(self, module: nn.Linear) -> bool:
        """Whether ``module`` reads the model input flattened, unchanged (checked by running
        the model once with a hook)."""
        if id(module) not in self._first_checked:
            seen = {}

            def hook(_m, args):
                seen["x"] = args[0].detach()

            h = module.register_forward_pre_hook(hook)
            model = self.graph.model
            was = model.training
            model.eval()
            try:
                with torch.no_grad():
                    model(self._x)
            finally:
                h.remove()
                model.train(was)
            x = self._x.reshape(self._x.shape[0], -1)
            got = seen.get("x")
            self._first_checked[id(module)] = (got is not None and got.shape == x.shape
                                               and torch.equal(got.to(x), x))
        return self._first_checked[id(module)]

    def _state(self, node: tp.Node) -> Gaussian:
        """The Gaussian model of ``node``'s output (per sample, flattened)."""
        key = id(node)
        if key in self._cache:
            return self._cache[key]
        m = node.module
        inputs = _data_inputs(node)
        if isinstance(m, nn.Linear):
            if not inputs:
                if not self._reads_model_input(m):
                    raise _NoModelError(f"the model changes its input before {type(m).__name__}"
                                        " (the prior is in the model's input coordinates)")
                x = self.prior.gaussian(self.sample_shape)
            else:
                x = self._input_state(inputs)
            if x.dim != m.in_features:
                raise _NoModelError(f"a Linear reads {m.in_features} features of a "
                                    f"{x.dim}-feature input (not a flat chain)")
            b = None if m.bias is None else m.bias.detach().cpu().double().numpy()
            out = x.affine(m.weight.detach().cpu().double().numpy(), b)
        elif isinstance(m, nn.BatchNorm1d):
            x = self._input_state(inputs)
            scale = (m.weight.detach().cpu().double() /
                     torch.sqrt(m.running_var.cpu().double() + m.eps)).numpy()
            shift = m.bias.detach().cpu().double().numpy() - scale * \
                m.running_mean.cpu().double().numpy()
            out = Gaussian(scale * x.mean + shift, x.cov * np.outer(scale, scale))
        elif activation_of(node) is not None:
            out = self._activate(self._input_state(inputs), activation_of(node))
        elif type(node.grad_fn).__name__.startswith(_VIEWS):
            out = self._input_state(inputs)
        else:
            raise _NoModelError(f"the input passes through {type(node.grad_fn).__name__}, "
                                "which the moment model does not cover")
        self._cache[key] = out
        return out

    def _input_state(self, inputs: list[tp.Node]) -> Gaussian:
        if len(inputs) != 1:
            raise _NoModelError(f"an op with {len(inputs)} data inputs (e.g. a residual "
                                "addition) is not covered")
        return self._state(inputs[0])

    def _activate(self, pre: Gaussian, act: Activation) -> Gaussian:
        return activation_moments(pre, act, self.method, order=self.order,
                                  samples=self.samples, seed=[self.seed, self._gi])

    # -- per group -----------------------------------------------------------------------
    def _output_node(self, g: UnitGroup) -> tp.Node:
        """The node whose output is the units' ``h`` as the consumers read it: the activation
        after the producer (and its BatchNorm), or the producer / BatchNorm itself."""
        if g.coupled:
            raise _NoModelError("channels coupled through a residual addition")
        if not isinstance(g.root, nn.Linear):
            raise _NoModelError(f"{type(g.root).__name__} units (the moment model covers "
                                "Linear layers)")
        if any(cols.shape[1] != 1 for _, cols in _consumer_slices(self.graph, g)):
            raise _NoModelError("a consumer reads several inputs per unit")
        start = self.graph.module2node[_batchnorm_after(self.graph, g.root) or g.root]
        out, node = start, start
        consumers = {id(m) for m, _ in _consumer_slices(self.graph, g)}
        while True:
            if len(node.outputs) != 1:
                if all(id(o.module) in consumers for o in node.outputs):
                    return out
                raise _NoModelError("the units' output branches")
            node = node.outputs[0]
            if id(node.module) in consumers:
                return out
            if activation_of(node) is not None and out is start:
                out = node
            elif not type(node.grad_fn).__name__.startswith(_VIEWS):
                raise _NoModelError(f"{type(node.grad_fn).__name__} between the layer and "
                                    "its consumer")

    def unit_moments(self, g: UnitGroup, gi: int) -> tuple[Gaussian | None, str]:
        """``(moments of h, "")`` for group ``g`` (its index ``gi`` seeds Monte Carlo), or
        ``(None, why)`` where the moment model does not cover it."""
        self._gi = gi
        try:
            return self._state(self._output_node(g)), ""
        except _NoModelError as exc:
            return None, str(exc)

    def pruned(self, g: UnitGroup, keep: np.ndarray) -> None:
        """Group ``g`` now keeps ``keep``: restrict its cached moments to those units and forget
        everything downstream of its consumers (their weights changed)."""
        chain = [self.graph.module2node[g.root]]
        node = chain[0]
        consumers = {id(m) for m, _ in _consumer_slices(self.graph, g)}
        while len(node.outputs) == 1 and id(node.outputs[0].module) not in consumers:
            node = node.outputs[0]
            chain.append(node)
        for n in chain:
            if id(n) in self._cache:
                self._cache[id(n)] = self._cache[id(n)].take(keep)
        stack = [self.graph.module2node[m] for m, _ in _consumer_slices(self.graph, g)]
        seen: set[int] = set()
        while stack:
            n = stack.pop()
            if id(n) in seen:
                continue
            seen.add(id(n))
            self._cache.pop(id(n), None)
            stack.extend(n.outputs)
