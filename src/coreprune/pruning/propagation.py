"""Gaussian moments of every prunable layer's outputs, propagated from an input prior through
the model as it is being pruned; no data is read.

The model input is modelled as independent Gaussians ``x ~ N(mean, diag(std^2))`` per input
element, in the model's input coordinates (:class:`InputPrior`; ``N(0, I)`` by default: inputs
normalised the usual way); images may also be given a neighbour correlation between pixels.
Layer by layer, in the order the pruner processes them, the moments are pushed through the
*current* model, i.e. through the layers already pruned and reconstructed:

* ``Linear``: ``N(m, S) -> N(W m + b, W S W^T)`` (exact);
* ``Conv2d``, pooling, flattening: channel-level Gaussian fields
  (:mod:`coreprune.reconstruction.spatial`; a grouped convolution as its block-diagonal dense
  equivalent, the same map);
* ``BatchNorm1d/2d``: each channel's output mean and variance are the BatchNorm's own ``beta``
  and ``gamma^2`` (exact on the training data, read from the weights); correlations propagated;
* an elementwise activation: :func:`coreprune.reconstruction.activation_moments`, the output
  moment-matched as a Gaussian for the next layer;
* views and dropout: unchanged.

Where the input of a convolution cannot be followed (a residual addition, a concatenation, an
op on the input before the first layer) and a BatchNorm follows the convolution, its input is
modelled by a *local prior*: independent unit-variance channels with neighbour correlation
``local_rho``; the BatchNorm then fixes the marginals, and only the correlations between the
convolution's channels come from its weights and that prior. Any other layer reached through an
op the model does not cover has no moment model: the propagator says why, and the compensations
fall back (:mod:`coreprune.compensation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from ..errors import InvalidArgumentError
from ..reconstruction import Activation, Gaussian, activation_moments, gated_moments, spatial
from ..reconstruction.spatial import Field
from .groups import (
    NORMS,
    UnitGroup,
    _batchnorm_after,
    _consumer_slices,
    _linear_input,
    activation_of,
    grad_name,
    is_depthwise,
    is_gated_mlp,
    layer_inputs,
    module_of,
    rms_norm_weight,
)

__all__ = ["InputPrior", "MomentPropagator", "MixtureMoments", "analytic_moments", "FLATTEN_LIMIT",
           "SPATIAL_CORRELATIONS"]

_VIEWS = ("ViewBackward", "UnsafeViewBackward", "ReshapeAliasBackward", "FlattenBackward",
          "CloneBackward")
FLATTEN_LIMIT = 4096  # most features a flattened feature map may have in the moment model
# the default prior of image inputs: an equal mixture of independent pixels and pixels whose
# neighbours correlate 0.5 and 0.9 (benchmarks/results/studies/datafree_settings.log)
SPATIAL_CORRELATIONS = (0.0, 0.5, 0.9)


@dataclass(frozen=True)
class InputPrior:
    """Independent Gaussian inputs ``N(mean, std^2)`` per input element.

    ``mean`` and ``std`` are scalars, arrays of the per-sample input shape, or 1-D arrays with
    one value per channel (the first per-sample dimension, e.g. ``(0.485, 0.456, 0.406)`` for
    ``(3, H, W)`` images). The default ``N(0, 1)`` suits inputs standardised the usual way.
    ``spatial_correlation``: for image inputs, the correlation ``rho`` of neighbouring pixels
    of one channel, decaying as ``rho^(|dy| + |dx|)`` (0: independent pixels). A sequence of
    values makes the prior an equal-weight mixture of one such prior per value
    (:meth:`components`): the moment model follows each through the network and mixes the
    moments of every layer (:meth:`~coreprune.reconstruction.Gaussian.mixture`), so a fold
    minimises its error averaged over the correlations. Default :data:`SPATIAL_CORRELATIONS`,
    ``(0, 0.5, 0.9)``: how strongly a model's pixels correlate is not in its weights, and a
    fold fitted to one value is brittle when the images have another. Inputs that are not
    images (not ``(C, H, W)``) ignore it.
    """

    mean: float | Sequence[float] | np.ndarray = 0.0
    std: float | Sequence[float] | np.ndarray = 1.0
    spatial_correlation: float | Sequence[float] = SPATIAL_CORRELATIONS

    def __post_init__(self) -> None:
        rho = self.spatial_correlation
        values = [rho] if np.ndim(rho) == 0 else list(np.asarray(rho).reshape(-1))
        try:
            values = [float(v) for v in values]
        except (TypeError, ValueError):
            values = []
        if not values or not all(0.0 <= v < 1.0 for v in values):
            raise InvalidArgumentError(f"input_prior spatial_correlation must be a value in "
                                       f"[0, 1) or a sequence of them, got {rho!r}")
        object.__setattr__(self, "spatial_correlation",
                           values[0] if np.ndim(rho) == 0 else tuple(values))

    def components(self) -> list[InputPrior]:
        """The mixture's components, one prior per spatial correlation (itself when
        ``spatial_correlation`` is one value)."""
        if not isinstance(self.spatial_correlation, tuple):
            return [self]
        return [InputPrior(self.mean, self.std, rho) for rho in self.spatial_correlation]

    @staticmethod
    def from_value(value: InputPrior | tuple | None) -> InputPrior:
        """An :class:`InputPrior` from ``None`` (the default), ``(mean, std)``,
        ``(mean, std, spatial_correlation)`` or one."""
        if value is None:
            return InputPrior()
        if isinstance(value, InputPrior):
            return value
        if isinstance(value, tuple | list) and len(value) in (2, 3):
            return InputPrior(*value)
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

    def _moments(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        m = self._broadcast(self.mean, shape, "mean")
        s = self._broadcast(self.std, shape, "std")
        if np.any(s < 0):
            raise InvalidArgumentError("input_prior std must be non-negative")
        return m, s

    def gaussian(self, shape: tuple[int, ...]) -> Gaussian:
        """The prior over the flattened input of per-sample ``shape`` (pixels of an image
        correlated by ``spatial_correlation``; a mixture's moments)."""
        if isinstance(self.spatial_correlation, tuple):
            return Gaussian.mixture([c.gaussian(shape) for c in self.components()])
        m, s = self._moments(shape)
        g = Gaussian.independent(m.size, m, s)
        if self.spatial_correlation > 0 and len(shape) == 3:
            field = self.field(shape)
            if field is not None:
                return spatial.flatten(field)
        return g

    def field(self, shape: tuple[int, ...]) -> Field | None:
        """The prior as a channel-level field for ``(C, H, W)`` inputs, or None when its mean
        or std varies within a channel. One component only (:meth:`components`)."""
        if isinstance(self.spatial_correlation, tuple):
            raise InvalidArgumentError("a mixture prior has one field per component; call "
                                       "field() on each of components()")
        m, s = self._moments(shape)
        c = shape[0]
        m, s = m.reshape(c, -1), s.reshape(c, -1)
        if np.ptp(m, axis=1).max() > 0 or np.ptp(s, axis=1).max() > 0:
            return None
        return Field(Gaussian.independent(c, m[:, 0], s[:, 0]), float(self.spatial_correlation),
                     (int(shape[1]), int(shape[2])))

    def config(self) -> dict[str, object]:
        def plain(v):
            a = np.asarray(v, dtype=np.float64)
            return float(a) if a.ndim == 0 else a.tolist()

        return {"mean": plain(self.mean), "std": plain(self.std),
                "spatial_correlation": plain(self.spatial_correlation)}


class _NoModelError(Exception):
    """Internal: a layer's input is not covered by the moment model (the message says why)."""


def _data_inputs(node: tp.Node) -> list[tp.Node]:
    """A node's inputs that carry data (not a parameter's transpose)."""
    return [i for i in node.inputs
            if not (i.inputs == [] and type(i.grad_fn).__name__.startswith(
                ("TBackward", "PermuteBackward")))]


def _past_views(node: tp.Node) -> tp.Node:
    """The first node at or before ``node`` that is not a view."""
    while grad_name(node).startswith(_VIEWS) and len(node.inputs) == 1 \
            and not isinstance(node.module, nn.Linear):
        node = node.inputs[0]
    return node


def _weights(linear: nn.Linear) -> tuple[np.ndarray, np.ndarray | None]:
    """A ``Linear``'s weight and bias as float64 arrays."""
    b = None if linear.bias is None else linear.bias.detach().cpu().double().numpy()
    return linear.weight.detach().cpu().double().numpy(), b


def _block_diagonal(weight: np.ndarray, groups: int) -> np.ndarray:
    """The dense weight (out, groups * in_per_group, kh, kw) of a grouped convolution's
    ``weight`` (out, in_per_group, kh, kw): output group t reads input group t only."""
    out, per = weight.shape[:2]
    dense = np.zeros((out, groups * per, *weight.shape[2:]))
    rows = out // groups
    for t in range(groups):
        dense[t * rows:(t + 1) * rows, t * per:(t + 1) * per] = weight[t * rows:(t + 1) * rows]
    return dense


def _pair(v) -> tuple[int, int]:
    v = tuple(int(x) for x in (v if isinstance(v, list | tuple) else (v, v)))
    return (v[0], v[0]) if len(v) == 1 else (v[0], v[1])


def _add_independent(a: Gaussian | Field, b: Gaussian | Field) -> Gaussian | Field:
    """The sum of two inputs taken as independent (a residual addition, approximately)."""
    if isinstance(a, Field) and isinstance(b, Field) and a.size == b.size:
        ta, tb = np.trace(a.channels.cov), np.trace(b.channels.cov)
        rho = (a.rho * ta + b.rho * tb) / (ta + tb) if ta + tb > 0 else 0.0
        return Field(Gaussian(a.channels.mean + b.channels.mean,
                              a.channels.cov + b.channels.cov), float(rho), a.size)
    if isinstance(a, Gaussian) and isinstance(b, Gaussian) and a.dim == b.dim:
        return Gaussian(a.mean + b.mean, a.cov + b.cov)
    raise _NoModelError("an addition of differently shaped inputs")


class MomentPropagator:
    """Gaussian moments of the model's layers under :class:`InputPrior`, computed on demand on
    the current weights of ``graph``'s model and kept until :meth:`pruned` says a group changed.

    Args:
        graph: the traced model (the working copy the pruner modifies).
        example_inputs: the tracing batch (its per-sample shape is the prior's).
        prior: the input prior.
        method, order, samples: as :func:`~coreprune.reconstruction.activation_moments`.
        seed: Monte Carlo seed; group ``gi`` uses ``[seed, gi]``.
        local_rho: the neighbour correlation of the local prior (module docstring).
        consumers: a dict (id of a group's root -> the layers reading its units) to fill and
            read, shared by propagators of the same graph (a mixture's components); None: its
            own.
    """

    def __init__(self, graph: tp.DependencyGraph, example_inputs: torch.Tensor,
                 prior: InputPrior, method: str = "auto", order: int = 24,
                 samples: int = 20_000, seed: int = 0, local_rho: float = 0.5,
                 residual: str = "local", local: str = "unit",
                 consumers: dict[int, list[nn.Module]] | None = None) -> None:
        self.graph, self.prior = graph, prior
        self.sample_shape = tuple(int(d) for d in example_inputs.shape[1:])
        self.method, self.order, self.samples, self.seed = method, order, samples, seed
        self.local_rho, self.residual, self.local = local_rho, residual, local
        self._x = example_inputs
        self._cache: dict[int, Gaussian | Field] = {}
        # id(root) -> the layers reading its units (shareable by propagators of one graph)
        self._consumers: dict[int, list[nn.Module]] = {} if consumers is None else consumers
        self._inputs: dict[int, torch.Tensor] | None = None
        self._notes: list[str] = []
        self._gi = 0
        # prior reads: _prior_for calls and cache hits on states that depend on the prior
        self._reads = 0
        self._depends: dict[int, bool] = {}
        self.read_prior = False  # whether the last unit_moments depended on the input prior

    # -- what a layer reads --------------------------------------------------------------
    def _layer_input(self, module: nn.Module) -> torch.Tensor:
        """The input ``module`` sees on the example batch (one forward pass with hooks, once:
        shapes do not change when channels are pruned)."""
        if self._inputs is None:
            model = self.graph.model
            layers = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
            self._inputs = layer_inputs(model, self._x, layers)
        if id(module) not in self._inputs:
            raise _NoModelError(f"{type(module).__name__} is not called on the example inputs")
        return self._inputs[id(module)]

    def _prior_for(self, module: nn.Module) -> Gaussian | Field:
        """The prior as ``module`` (the first layer) reads it, if it reads the input
        unchanged."""
        self._reads += 1
        seen = self._layer_input(module)
        x = self._x.to(seen)
        if isinstance(module, nn.Conv2d):
            if seen.shape == x.shape and torch.equal(seen, x) and len(self.sample_shape) == 3:
                field = self.prior.field(self.sample_shape)
                if field is None:
                    raise _NoModelError("the input prior varies within a channel (the "
                                        "convolution's moment model needs one per channel)")
                return field
        elif seen.shape[1:] == x.reshape(x.shape[0], -1).shape[1:] and torch.equal(
                seen, x.reshape(x.shape[0], -1)):
            return self.prior.gaussian(self.sample_shape)
        raise _NoModelError(f"the model changes its input before {type(module).__name__} (the "
                            "prior is in the model's input coordinates)")

    def _local_prior(self, module: nn.Conv2d, why: str) -> Field:
        """Independent unit-variance channels with neighbour correlation ``local_rho``, for a
        convolution followed by BatchNorm whose input is not covered."""
        bn = _batchnorm_after(self.graph, module)
        if bn is None:
            raise _NoModelError(why)
        size = tuple(int(s) for s in self._layer_input(module).shape[2:])
        if self.local == "bn-fit":
            b = None if module.bias is None else module.bias.detach().cpu().double().numpy()
            field, rel = spatial.fit_input_field(
                module.weight.detach().cpu().double().numpy(), b,
                bn.running_mean.cpu().double().numpy(), bn.running_var.cpu().double().numpy(),
                size)
            self._notes.append(f"input fitted to the BatchNorm statistics (input: {why})")
            return field
        self._notes.append(f"local prior (input: {why})")
        return Field(Gaussian.independent(module.in_channels), self.local_rho, size)

    def _state(self, node: tp.Node) -> Gaussian | Field:
        """The moment model of ``node``'s output: a flat :class:`Gaussian` or a :class:`Field`."""
        key = id(node)
        if key in self._cache:
            self._reads += self._depends.get(key, True)
            return self._cache[key]
        reads = self._reads
        m = node.module
        name = grad_name(node)
        inputs = _data_inputs(node)
        if isinstance(m, nn.Linear):
            if len(inputs) == 1 and module_of(inputs[0]) is m:  # its own matrix product
                inputs = _data_inputs(inputs[0])
            x = self._prior_for(m) if not inputs else self._input_state(inputs)
            if isinstance(x, Field):
                x = self._flat(x)
            if x.dim != m.in_features:
                raise _NoModelError(f"a Linear reads {m.in_features} features of a "
                                    f"{x.dim}-feature input (not a flat chain)")
            b = None if m.bias is None else m.bias.detach().cpu().double().numpy()
            out = x.affine(m.weight.detach().cpu().double().numpy(), b)
        elif isinstance(m, nn.Conv2d):
            depthwise = is_depthwise(m)
            if isinstance(m.padding, str):
                raise _NoModelError(f"Conv2d with padding={m.padding!r}")
            try:
                x = self._prior_for(m) if not inputs else self._input_state(inputs)
                if not isinstance(x, Field):
                    raise _NoModelError("a convolution reads a flat input")
            except _NoModelError as exc:
                x = self._local_prior(m, str(exc))
            b = None if m.bias is None else m.bias.detach().cpu().double().numpy()
            conv = spatial.depthwise_conv2d if depthwise else spatial.conv2d
            w = m.weight.detach().cpu().double().numpy()
            if m.groups > 1 and not depthwise:  # the same map as its block-diagonal dense conv
                w = _block_diagonal(w, m.groups)
            out = conv(x, w, b, _pair(m.stride), _pair(m.padding), _pair(m.dilation))
        elif isinstance(m, nn.LayerNorm) and m.elementwise_affine and m.weight is not None \
                and len(m.normalized_shape) == 1:
            # each token normalised over its features: mean 0, variance 1 before the affine;
            # the features are taken as independent, N(beta, gamma^2) (their correlations are
            # not in the weights)
            g = m.weight.detach().cpu().double().numpy()
            beta = (np.zeros_like(g) if m.bias is None
                    else m.bias.detach().cpu().double().numpy())
            self._notes.append("LayerNorm output as independent N(beta, gamma^2)")
            out = Gaussian(beta, np.diag(g * g))
        elif (rms_weight := rms_norm_weight(node)) is not None:
            # each token scaled to unit root mean square: like the LayerNorm, N(0, gamma^2)
            # with independent features
            g = rms_weight.detach().cpu().double().numpy()
            self._notes.append("RMSNorm output as independent N(0, gamma^2)")
            out = Gaussian(np.zeros_like(g), np.diag(g * g))
        elif name.startswith("MulBackward") and (gated := self._gated(node)) is not None:
            act, gate, up, source = gated
            x = self._state(source)
            if isinstance(x, Field):
                x = self._flat(x)
            self._notes.append("gated MLP: act(gate) * up by Monte Carlo from the model")
            out = gated_moments(x, *_weights(gate), *_weights(up), act, self.samples,
                                [self.seed, self._gi])
        elif isinstance(m, NORMS):
            x = self._input_state(inputs)
            g = m.weight.detach().cpu().double().numpy()
            beta = m.bias.detach().cpu().double().numpy()
            rv = m.running_var.cpu().double().numpy()
            field = x if isinstance(x, Field) else Field(x, 0.0, (1, 1))
            out = spatial.batchnorm(field, g, beta, rv, m.eps)
            out = out if isinstance(x, Field) else out.channels
        elif activation_of(node) is not None:
            x = self._input_state(inputs)
            act = activation_of(node)
            out = (spatial.activate(x, act, self.method, self.order, self.samples,
                                    [self.seed, self._gi]) if isinstance(x, Field)
                   else self._activate(x, act))
        elif name.startswith(("MaxPool2DWithIndicesBackward", "AvgPool2DBackward",
                              "MeanBackward")):
            out = self._pool(node, self._input_state(inputs))
        elif name.startswith(_VIEWS):
            out = self._input_state(inputs)
        elif name.startswith("AddBackward") and self.residual == "independent" \
                and len(inputs) == 2:
            out = _add_independent(self._state(inputs[0]), self._state(inputs[1]))
        else:
            raise _NoModelError(f"the input passes through {name or type(m).__name__}, which "
                                "the moment model does not cover")
        self._cache[key] = out
        self._depends[key] = self._reads > reads
        return out

    def _gated(self, node: tp.Node) -> tuple[Activation, nn.Linear, nn.Linear, tp.Node] | None:
        """``(phi, gate Linear, up Linear, their common input node)`` if ``node`` is a gated
        MLP's product ``phi(gate(x)) * up(x)`` (:func:`~.groups.is_gated_mlp`), else None."""
        inputs = _data_inputs(node)
        if len(inputs) != 2:
            return None
        for a, b in (inputs, inputs[::-1]):
            act = activation_of(a)
            gate, up = module_of(_past_views(a.inputs[0])) if len(a.inputs) == 1 else None, \
                module_of(_past_views(b))
            if act is not None and isinstance(gate, nn.Linear) and isinstance(up, nn.Linear) \
                    and is_gated_mlp(self.graph, gate, [up]):
                return act, gate, up, _linear_input(self.graph, gate)
        return None

    def _flat(self, field: Field) -> Gaussian:
        if field.size == (1, 1):
            return field.channels
        n = field.channels.dim * field.size[0] * field.size[1]
        if n > FLATTEN_LIMIT:
            raise _NoModelError(f"a flattened {field.channels.dim}x{field.size[0]}x"
                                f"{field.size[1]} map ({n} features > {FLATTEN_LIMIT})")
        return spatial.flatten(field)

    def _pool(self, node: tp.Node, x: Gaussian | Field) -> Field:
        if not isinstance(x, Field):
            raise _NoModelError("pooling of a flat input")
        fn, name = node.grad_fn, grad_name(node)
        if name.startswith("MaxPool2DWithIndicesBackward"):
            if _pair(fn._saved_dilation) != (1, 1) or fn._saved_ceil_mode:
                raise _NoModelError("max pooling with dilation or ceil_mode")
            act, source = None, node.inputs[0] if len(node.inputs) == 1 else None
            if source is not None and activation_of(source) is not None:
                pre = self._input_state(_data_inputs(source))  # pool the activation exactly
                if isinstance(pre, Field):
                    x, act = pre, activation_of(source)
            return spatial.max_pool(x, _pair(fn._saved_kernel_size), _pair(fn._saved_stride),
                                    _pair(fn._saved_padding), self.samples,
                                    [self.seed, self._gi], activation=act)
        if name.startswith("AvgPool2DBackward"):
            return spatial.avg_pool(x, _pair(fn._saved_kernel_size), _pair(fn._saved_stride),
                                    _pair(fn._saved_padding))
        # dims are saved unsigned: -1 as 2^64 - 1; a 4-D map averaged over (H, W) is global
        dims = sorted((int(d) - (1 << 64) if int(d) >= 1 << 63 else int(d)) % 4
                      for d in fn._saved_dim)
        if name.startswith("MeanBackward") and dims == [2, 3]:
            return spatial.global_avg_pool(x)
        raise _NoModelError(f"{name} (of average pooling, only the global one is covered)")

    def _input_state(self, inputs: list[tp.Node]) -> Gaussian | Field:
        if len(inputs) != 1:
            raise _NoModelError(f"an op with {len(inputs)} data inputs (e.g. a residual "
                                "addition)")
        return self._state(inputs[0])

    def _activate(self, pre: Gaussian, act: Activation) -> Gaussian:
        return activation_moments(pre, act, self.method, order=self.order,
                                  samples=self.samples, seed=[self.seed, self._gi])

    # -- per group -----------------------------------------------------------------------
    def _output_node(self, g: UnitGroup) -> tp.Node:
        """The node whose output is the units' ``h`` as the consumers read it: the last node
        before the consumers that is not a view (an activation or pooling after the producer
        and its BatchNorm, or the producer / BatchNorm itself)."""
        if g.coupled:
            raise _NoModelError("channels coupled through a residual addition")
        if not isinstance(g.root, nn.Linear | nn.Conv2d):
            raise _NoModelError(f"{type(g.root).__name__} units")
        start = self.graph.module2node[_batchnorm_after(self.graph, g.root) or g.root]
        out, node = start, start
        consumers = {id(m) for m in self._consumer_modules(g)}
        while True:
            if len(node.outputs) != 1:
                if all(id(module_of(o)) in consumers for o in node.outputs):
                    return out
                raise _NoModelError("the units' output branches")
            node = node.outputs[0]
            if id(module_of(node)) in consumers:
                return out
            if not grad_name(node).startswith(_VIEWS):
                out = node

    def unit_moments(self, g: UnitGroup, gi: int) -> tuple[Gaussian | None, str]:
        """``(moments of h, note)`` for group ``g`` (its index ``gi`` seeds Monte Carlo): the
        channel-level moments for convolutional units; the note names a local prior if one was
        used. ``(None, why)`` where the moment model does not cover the group."""
        self._gi = gi
        self._notes = []
        reads = self._reads
        try:
            return self._unit_moments(g)
        finally:
            self.read_prior = self._reads > reads

    def _unit_moments(self, g: UnitGroup) -> tuple[Gaussian | None, str]:
        try:
            state = self._state(self._output_node(g))
        except _NoModelError as exc:
            return None, str(exc)
        if isinstance(state, Field):
            state = state.channels
        elif state.dim != g.n_units:  # a flattened map read by a Linear: its channels
            raise AssertionError("unexpected flat state")  # pragma: no cover
        return state, "; ".join(dict.fromkeys(self._notes))

    def consumer_moments(self, g: UnitGroup) -> None:
        """Not given: the analytic model does not follow residual additions."""
        return None

    def prior_preactivation(self, g: UnitGroup) -> Gaussian | None:
        """The moments of group ``g``'s pre-activations (after its BatchNorm, if any; channel
        level for convolutional units) when its producer reads the model input, so that they
        come straight from the input prior; None for every other group. Call after
        :meth:`unit_moments` (it reads the same cache). None too for units carried through
        depthwise convolutions (their pre-activations are not the producer's)."""
        if g.carriers or _data_inputs(self.graph.module2node[g.root]):
            return None
        start = self.graph.module2node[_batchnorm_after(self.graph, g.root) or g.root]
        state = self._cache.get(id(start))
        return state.channels if isinstance(state, Field) else state

    def _consumer_modules(self, g: UnitGroup) -> list[nn.Module]:
        """The layers that read ``g``'s units (which layers they are does not change as the
        model is pruned; Torch-Pruning rebuilds the group to find them)."""
        if id(g.root) not in self._consumers:
            self._consumers[id(g.root)] = [m for m, _ in _consumer_slices(self.graph, g)]
        return self._consumers[id(g.root)]

    def pruned(self, g: UnitGroup, keep: np.ndarray) -> None:
        """Group ``g`` now keeps ``keep``: restrict its cached moments to those units and forget
        everything downstream of its consumers (their weights changed)."""
        keep = g.channels(keep)
        chain = [self.graph.module2node[g.root]]
        node = chain[0]
        consumers = {id(m) for m in self._consumer_modules(g)}
        while len(node.outputs) == 1 and id(node.outputs[0].module) not in consumers:
            node = node.outputs[0]
            chain.append(node)
        for n in chain:
            state = self._cache.get(id(n))
            if isinstance(state, Field):
                self._cache[id(n)] = Field(state.channels.take(keep), state.rho, state.size)
            elif isinstance(state, Gaussian):
                per = state.dim // (g.n_units * g.channel_groups)  # flattened maps: every
                # position of a kept channel
                idx = (keep[:, None] * per + np.arange(per)[None, :]).reshape(-1)
                self._cache[id(n)] = state.take(idx)
        stack = [self.graph.module2node[m] for m in self._consumer_modules(g)]
        seen: set[int] = set()
        while stack:
            n = stack.pop()
            if id(n) in seen:
                continue
            seen.add(id(n))
            self._cache.pop(id(n), None)
            stack.extend(n.outputs)


class MixtureMoments:
    """The analytic moment model of a mixture prior (:meth:`InputPrior.components`): one
    :class:`MomentPropagator` per component, their moments mixed per group with equal weights
    (:meth:`~coreprune.reconstruction.Gaussian.mixture`). Same interface as
    :class:`MomentPropagator`; a group the model does not cover under one component is not
    covered."""

    def __init__(self, propagators: list[MomentPropagator]) -> None:
        self.propagators = propagators
        self._shared: set[int] = set()  # groups whose moments do not depend on the prior

    def unit_moments(self, g: UnitGroup, gi: int) -> tuple[Gaussian | None, str]:
        """The mixed moments; the first component's alone where they do not depend on the
        input prior (e.g. units behind a LayerNorm, a source of the moment model)."""
        first = self.propagators[0].unit_moments(g, gi)
        if first[0] is None or not self.propagators[0].read_prior:
            self._shared.add(id(g))
            return first
        self._shared.discard(id(g))
        parts = [first] + [p.unit_moments(g, gi) for p in self.propagators[1:]]
        for h, why in parts:
            if h is None:
                return None, why
        notes = "; ".join(dict.fromkeys(why for _, why in parts if why))
        return Gaussian.mixture([h for h, _ in parts]), notes

    def consumer_moments(self, g: UnitGroup) -> None:
        """Not given: the analytic model does not follow residual additions."""
        return None

    def prior_preactivation(self, g: UnitGroup) -> Gaussian | None:
        if id(g) in self._shared:
            return self.propagators[0].prior_preactivation(g)
        parts = [p.prior_preactivation(g) for p in self.propagators]
        return None if any(p is None for p in parts) else Gaussian.mixture(parts)

    def pruned(self, g: UnitGroup, keep: np.ndarray) -> None:
        for p in self.propagators:
            p.pruned(g, keep)


def analytic_moments(graph: tp.DependencyGraph, example_inputs: torch.Tensor,
                     prior: InputPrior, method: str = "auto", seed: int = 0,
                     **options: Any) -> MomentPropagator | MixtureMoments:
    """The analytic moment model of ``graph``'s model under ``prior``: a
    :class:`MomentPropagator` (``options``: its further arguments), or a
    :class:`MixtureMoments` of one per component when the prior
    is a mixture of image priors (inputs that are not ``(C, H, W)`` ignore the correlation:
    one propagator serves every component)."""
    components = prior.components() if example_inputs.dim() == 4 else prior.components()[:1]
    consumers: dict[int, list[nn.Module]] = {}  # found once for every component
    parts = [MomentPropagator(graph, example_inputs, c, method, seed=seed, consumers=consumers,
                              **options) for c in components]
    return parts[0] if len(parts) == 1 else MixtureMoments(parts)
