"""Map a model's prunable units to point sets and apply selections back (docs/method.md §1).

Structure comes from the model itself through Torch-Pruning's ``DependencyGraph``: each
``Conv``/``Linear`` output dimension defines a *group* of coupled pruning operations (its
BatchNorm, every consumer's input slice, and, across residual additions, the other producers of
the same channels). A unit's incoming point is its producers' weight rows with BatchNorm folded
in and bias appended; its outgoing vector concatenates its input slices in every consumer.

A depthwise convolution (``groups`` = input channels = output channels) that reads the units
*carries* them: channel i of its output depends on channel i of its input only, so its filter
and BatchNorm belong to unit i (appended to the incoming point), and the units' output is what
the layers after the depthwise path read (MobileNet's expansion, depthwise and projection
convolutions: the expansion's output channels are the units, the projection reads them).
A layer whose outputs, through a sigmoid-like activation, multiply the units channel by channel
(a squeeze-and-excitation *gate*) belongs to them too: its output row i gates unit i.

A grouped convolution (``1 < groups < channels``: RegNet, ResNeXt) needs every one of its
``groups`` channel groups to keep the same width, so where one reads or writes a group's
channels the units are *slots*: with ``n`` channels in ``k`` groups of ``s = n / k``, unit j is
the channels ``j, j + s, ..., j + (k - 1) s`` (the same position in every channel group, as
Torch-Pruning prunes grouped convolutions), its incoming point is their rows side by side and
its outgoing vector their columns side by side. A grouped convolution that reads the units
reads slot j through its weight column j alone (``weight[:, j]``: channel ``j + t s`` reaches
the outputs of group t only).

A layer whose outputs enter a product with another activation before reaching another
``Linear``/``Conv`` (attention's ``q k^T``, ``softmax(.) v``, a fused scaled-dot-product
attention) is an attention projection: it is never a root (:func:`reaches_attention`). A gated
MLP (``down(act(gate(x)) * up(x))``) is a group whose root is ``gate`` and whose gate is ``up``
(:func:`is_gated_mlp`): it folds like any group. Other gated groups (squeeze-and-excitation)
take no single fold: their consumers read different states of the units (the gated product
``g * h``, and the gate's own squeeze layer the units' average over positions), so each consumer
can only take a fold of its own, from moments measured where it reads
(:attr:`UnitGroup.squeeze_excited`).

A reshape whose channel mapping Torch-Pruning cannot infer (a channel shuffle: torchvision's
ShuffleNet-V2, where it divides by zero) is recorded instead of failing the trace
(:func:`opaque_reshapes`); in such a graph only groups whose channels pass through no reshape,
concatenation or split are pruned (the inside of each branch), since any other group's channel
indices may be permuted on the way. The rest are named in the report.
"""

from __future__ import annotations

import contextlib
import inspect
import weakref
from dataclasses import dataclass, field

import numpy as np
import torch
import torch_pruning as tp
from torch import nn
from torch_pruning.dependency import constants as tp_constants
from torch_pruning.dependency import index_mapping as tp_index_mapping

from ..compensation import Compensation, ConsumerChange, get_compensation
from ..errors import UnsupportedModelError
from ..importance import BatchNormParams, Selection, UnitSet
from ..metrics import count_flops
from ..reconstruction import Activation

__all__ = ["UnitGroup", "build_graph", "run_model", "traced_outputs", "reaches_attention",
           "grad_name", "is_depthwise", "channel_groups", "module_of", "unit_output",
           "find_unit_groups", "unit_set", "apply_change", "apply_selection", "activation_of",
           "unit_activation", "tap_coverage", "input_sizes", "layer_inputs"]

PRODUCERS = (nn.Linear, nn.Conv1d, nn.Conv2d)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass
class UnitGroup:
    """One prunable group of n units.

    Attributes:
        name: module path of the root producer.
        root: the root ``Conv``/``Linear`` module (its output channels are the units).
        n_units: number of units.
        producers: module paths of every layer whose outputs are these units (> 1: coupled).
        consumers: module paths of every layer that reads these units.
        carriers: module paths of the depthwise convolutions the units pass through on their way
            to the consumers, in order (module docstring).
        gates: module paths of the layers whose outputs gate the units (module docstring).
        channel_groups: k > 1 when a grouped convolution reads or writes the channels: each unit
            is then a slot of k channels (module docstring; :meth:`channels`), ``n_units`` the
            number of slots.
        foldable: whether coreset weights can be folded into the consumers (all readers are
            plain ``Conv``/``Linear`` and the units are not coupled through identity paths).
        note: why the group is not foldable, if it is not.
        squeeze_excited: the units are gated by a squeeze-and-excitation layer (a gate that is
            not a gated MLP's, module docstring): not foldable as one, each consumer takes its
            own fold where moments of what it reads are measured.
    """

    name: str
    root: nn.Module
    n_units: int
    producers: list[str] = field(default_factory=list)
    consumers: list[str] = field(default_factory=list)
    foldable: bool = True
    note: str = ""
    carriers: list[str] = field(default_factory=list)
    gates: list[str] = field(default_factory=list)
    channel_groups: int = 1
    squeeze_excited: bool = False

    @property
    def coupled(self) -> bool:
        return len(self.producers) > 1

    def channels(self, units: np.ndarray) -> np.ndarray:
        """The channel indices of ``units`` (sorted): unit j is channels ``j + t * n_units``,
        ``t = 0 .. channel_groups - 1`` (the units themselves when ``channel_groups`` is 1)."""
        units = np.asarray(units, dtype=np.int64)
        steps = np.arange(self.channel_groups, dtype=np.int64) * self.n_units
        return np.sort((units[None, :] + steps[:, None]).reshape(-1))


def _slots(rows: torch.Tensor, k: int) -> torch.Tensor:
    """``rows`` (n, d), one per channel, as (n / k, k d): slot j's channels ``j + t n / k`` side
    by side (:meth:`UnitGroup.channels`)."""
    return rows.reshape(k, rows.shape[0] // k, -1).transpose(0, 1).reshape(rows.shape[0] // k, -1)


def channel_groups(module: nn.Module) -> int:
    """The number of channel groups of a grouped convolution (``groups``), 1 for every other
    layer, depthwise convolutions included (they carry units, module docstring)."""
    return (module.groups if isinstance(module, nn.Conv1d | nn.Conv2d) and not is_depthwise(module)
            else 1)


def grad_name(node: tp.Node) -> str:
    """The class name of a traced node's autograd function (``""`` for none)."""
    return type(node.grad_fn).__name__ if node.grad_fn is not None else ""


def _is_gate(graph: tp.DependencyGraph, module: nn.Module) -> bool:
    """Whether ``module``'s output, through activations and views only, is multiplied
    elementwise into another activation (a squeeze-and-excitation gate). A product with a
    parameter (a layer scale, as in ConvNeXt and CaiT) is no gate: it scales each channel by a
    constant."""
    node = graph.module2node[module]
    for _ in range(4):
        if len(node.outputs) != 1:
            return False
        prev, node = node, node.outputs[0]
        name = grad_name(node)
        if name.startswith("MulBackward"):
            return any(not _is_parameter(other) for other in node.inputs if other is not prev)
        if activation_of(node) is None and not name.startswith(_PASS_THROUGH):
            return False
    return False


def is_gated_mlp(graph: tp.DependencyGraph, root: nn.Module, gates: list[nn.Module]) -> bool:
    """Whether ``root``'s units are a gated MLP's hidden units ``phi(root(x)) * gate(x)``
    (LLaMA's ``act(gate_proj(x)) * up_proj(x)``): one ``Linear`` gate reading the same tensor
    as the ``Linear`` root. Its consumers read the product linearly, so a fold applies once the
    product's moments are known (:func:`coreprune.reconstruction.gated_moments`)."""
    if len(gates) != 1 or not isinstance(root, nn.Linear) or not isinstance(gates[0], nn.Linear):
        return False
    return _linear_input(graph, root) is _linear_input(graph, gates[0]) is not None


def _linear_input(graph: tp.DependencyGraph, linear: nn.Linear) -> tp.Node | None:
    """The node whose output a ``Linear`` reads (past the views and matrix product of its own
    node on a 3-D input); None if it reads the model input."""
    node = graph.module2node[linear]
    for _ in range(4):
        inputs = [i for i in node.inputs if not grad_name(i).startswith(("TBackward",
                                                                          "PermuteBackward"))]
        if len(inputs) != 1:
            return None
        node = inputs[0]
        if module_of(node) is not linear and not grad_name(node).startswith(
                ("ViewBackward", "UnsafeViewBackward", "ReshapeAliasBackward", "AddmmBackward",
                 "MmBackward")):
            return node
    return None


def parameter_of(node: tp.Node) -> nn.Parameter | None:
    """The parameter ``node`` is, or is a view of (a reshaped layer scale); else None."""
    for _ in range(4):
        if isinstance(node.module, nn.Parameter):
            return node.module
        views = _PASS_THROUGH + ("UnsqueezeBackward", "ExpandBackward")
        if len(node.inputs) != 1 or not grad_name(node).startswith(views):
            return None
        node = node.inputs[0]
    return None


def _is_parameter(node: tp.Node) -> bool:
    """Whether ``node`` is a parameter, or views of one (a reshaped layer scale)."""
    return parameter_of(node) is not None


def rms_norm_weight(node: tp.Node) -> nn.Parameter | None:
    """The weight ``w`` if ``node`` is the output of an RMSNorm, ``w * x / sqrt(mean(x^2) + eps)``
    (an ``nn.RMSNorm``, or its ops as Hugging Face's LLaMA-style ``RMSNorm`` modules leave them:
    a product with a weight vector of a tensor scaled by a reciprocal square root); else None."""
    m = node.module
    if isinstance(m, getattr(nn, "RMSNorm", ())) and m.weight is not None:
        return m.weight
    if not grad_name(node).startswith("MulBackward") or len(node.inputs) != 2:
        return None
    params = [parameter_of(i) for i in node.inputs]
    if sum(p is not None for p in params) != 1:
        return None
    weight = next(p for p in params if p is not None)
    stack = [(i, 0) for i, p in zip(node.inputs, params, strict=True) if p is None]
    while stack:
        n, depth = stack.pop()
        if grad_name(n).startswith("RsqrtBackward"):
            return weight if weight.dim() == 1 else None
        if depth < 3:
            stack.extend((i, depth + 1) for i in n.inputs)
    return None


_REDUCTIONS = ("MeanBackward", "SumBackward", "VarBackward", "StdBackward", "NormBackward",
               "LinalgVectorNormBackward", "AmaxBackward", "MaxBackward")


def _adds_untraced(node: tp.Node) -> bool:
    """Whether ``node`` adds (or subtracts) a tensor with no autograd history: the model input
    or a buffer, e.g. ``b(x + a(x))`` on the input ``x``. Its channels are coupled to that
    tensor's, which no surgery can narrow."""
    fn = node.grad_fn
    return (fn is not None and grad_name(node).startswith(("AddBackward", "SubBackward"))
            and any(nxt is None for nxt, _ in fn.next_functions)
            # a statistic plus a constant (RMSNorm's mean(x^2) + eps) carries no channels
            and not any(grad_name(i).startswith(_REDUCTIONS) for i in node.inputs))


def is_depthwise(module: nn.Module) -> bool:
    """Whether ``module`` is a depthwise convolution: each output channel reads its own input
    channel only (``groups == in_channels == out_channels > 1``)."""
    return (isinstance(module, nn.Conv1d | nn.Conv2d)
            and 1 < module.groups == module.in_channels == module.out_channels)


def traced_outputs(outputs: object) -> list[torch.Tensor]:
    """Every tensor with an autograd history in a model's ``outputs``: a tensor, or tensors in
    (nested) tuples, lists and dicts (Hugging Face ``ModelOutput`` included); anything else, e.g.
    a key/value cache object, is left out."""
    if isinstance(outputs, torch.Tensor):
        return [outputs] if outputs.grad_fn is not None else []
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    if isinstance(outputs, list | tuple):
        return [t for o in outputs for t in traced_outputs(o)]
    return []


def run_model(model: nn.Module, example_inputs: torch.Tensor) -> object:
    """``model(example_inputs)``, with ``use_cache=False`` where ``forward`` takes ``use_cache``
    (Hugging Face decoders: no key/value cache is built while tracing)."""
    try:
        takes_cache = "use_cache" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        takes_cache = False
    return model(example_inputs, use_cache=False) if takes_cache else model(example_inputs)


# steps Torch-Pruning's channel inference may take (its own limit, 500, gives up inside the deep
# stages of torchvision's Swin-S/B, whose tracing then fails on a concatenation)
CHANNEL_SEARCH_STEPS = 5000


# graph -> its reshape nodes whose channel mapping Torch-Pruning could not infer
_OPAQUE_RESHAPES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_TP_RESHAPE_MAPPING = tp_index_mapping.update_reshape_index_mapping  # Torch-Pruning's own


def _tolerant_reshape_mapping(graph: tp.DependencyGraph, node: tp.Node) -> None:
    """Torch-Pruning's reshape index mapping, except that a reshape whose channel counts it
    infers as zero (it then divides by zero, e.g. at torchvision ShuffleNet-V2's channel
    shuffle) is recorded as opaque (:func:`opaque_reshapes`) instead of failing the trace."""
    try:
        _TP_RESHAPE_MAPPING(graph, node)
    except ZeroDivisionError:
        _OPAQUE_RESHAPES.setdefault(graph, set()).add(node)


def opaque_reshapes(graph: tp.DependencyGraph) -> set:
    """The reshape nodes of ``graph`` whose channel mapping could not be inferred: a group of
    a graph with any is pruned only if its channels pass through no reshape, concatenation or
    split (:func:`find_unit_groups`)."""
    return _OPAQUE_RESHAPES.get(graph, set())


@contextlib.contextmanager
def tolerant_reshapes():
    """Within the block, a reshape whose channels Torch-Pruning cannot map is recorded instead
    of failing (:func:`opaque_reshapes`; its module-level function, restored after)."""
    saved = tp_index_mapping.update_reshape_index_mapping
    tp_index_mapping.update_reshape_index_mapping = _tolerant_reshape_mapping
    try:
        yield
    finally:
        tp_index_mapping.update_reshape_index_mapping = saved


@contextlib.contextmanager
def deeper_channel_search():
    """Within the block, Torch-Pruning infers channel counts through up to
    :data:`CHANNEL_SEARCH_STEPS` nodes (its module-level limit, restored after), and
    :func:`tolerant_reshapes`."""
    saved = tp_constants.MAX_RECURSION_DEPTH
    tp_constants.MAX_RECURSION_DEPTH = max(saved, CHANNEL_SEARCH_STEPS)
    try:
        with tolerant_reshapes():
            yield
    finally:
        tp_constants.MAX_RECURSION_DEPTH = saved


@contextlib.contextmanager
def fixed_index_mapping(graph: tp.DependencyGraph, current: bool = False):
    """Within the block ``graph``'s model does not change, so Torch-Pruning's index mappings
    (how channel indices pass through concatenations, splits and reshapes) are computed once
    instead of at every group it builds (it recomputes them for the whole graph each time: 97
    groups of torchvision's Swin-S took 171 s); ``current``: they are already up to date (the
    graph was just built). Other graphs are unaffected."""
    original = tp_index_mapping.update_index_mapping
    if not current:
        with deeper_channel_search():
            original(graph)

    def update(g: tp.DependencyGraph) -> None:
        if g is not graph:
            with tolerant_reshapes():
                original(g)

    outermost = graph not in _FIXED_GROUPS
    if outermost:
        _FIXED_GROUPS[graph] = {}
    tp_index_mapping.update_index_mapping = update
    try:
        yield
    finally:
        tp_index_mapping.update_index_mapping = original
        if outermost:
            del _FIXED_GROUPS[graph]


# graph -> {id(root): its full group}, for graphs inside fixed_index_mapping (nothing changes)
_FIXED_GROUPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def build_graph(model: nn.Module, example_inputs: torch.Tensor) -> tp.DependencyGraph:
    """Trace ``model`` (in eval mode, so BatchNorm statistics are untouched) into a graph: the
    model runs once on ``example_inputs`` (:func:`run_model`) and every tensor of its output
    (:func:`traced_outputs`) is traced back (:func:`deeper_channel_search`)."""
    was_training = model.training
    model.eval()
    try:  # tracing needs autograd on
        with torch.enable_grad(), deeper_channel_search():
            graph = tp.DependencyGraph().build_dependency(
                model, example_inputs=example_inputs, forward_fn=run_model,
                output_transform=traced_outputs, verbose=False)
    finally:
        model.train(was_training)
    return graph


# autograd nodes of a product of two activations (an attention product), when they have more than
# one traced input (the product inside a Linear has one: its weight is not traced)
_ACTIVATION_PRODUCTS = ("BmmBackward", "MmBackward", "BaddbmmBackward",
                        "ScaledDotProduct", "EinsumBackward")


def reaches_attention(graph: tp.DependencyGraph, root: nn.Module) -> bool:
    """Whether ``root``'s outputs enter a product with another activation (attention's
    ``q k^T``, ``softmax(.) v`` or a fused scaled-dot-product attention) before they reach
    another ``Linear``/``Conv`` layer: then its output channels are attention features (query,
    key or value, split into heads), not units that can be pruned one by one."""
    stack, seen = [graph.module2node[root]], set()
    while stack:
        node = stack.pop()
        for nxt in node.outputs:
            if id(nxt) in seen:
                continue
            seen.add(id(nxt))
            if isinstance(module_of(nxt), PRODUCERS):
                continue
            if grad_name(nxt).startswith(_ACTIVATION_PRODUCTS) and len(nxt.inputs) > 1:
                return True
            stack.append(nxt)
    return False


def added_to_another_branch(graph: tp.DependencyGraph, root: nn.Module) -> bool:
    """Whether ``root``'s outputs, before they reach another ``Linear``/``Conv``, are added to
    (or subtracted from) a tensor that does not come from ``root`` itself nor from a parameter:
    a residual addition, whose channels another layer writes too (a coupled group)."""
    start = graph.module2node[root]
    stack, seen = [start], {id(start)}
    while stack:
        node = stack.pop()
        for nxt in node.outputs:
            if id(nxt) in seen or isinstance(module_of(nxt), PRODUCERS):
                continue
            seen.add(id(nxt))
            if grad_name(nxt).startswith(("AddBackward", "SubBackward")) and any(
                    not _is_parameter(i) and not _descends_from(i, start) for i in nxt.inputs):
                return True
            stack.append(nxt)
    return False


def _descends_from(node: tp.Node, source: tp.Node, limit: int = 64) -> bool:
    """Whether ``node`` is ``source`` or computed from it without another ``Linear``/``Conv``
    (at most ``limit`` nodes visited: beyond, taken as no)."""
    stack, seen = [node], set()
    while stack and len(seen) < limit:
        n = stack.pop()
        if n is source:
            return True
        if id(n) in seen or isinstance(module_of(n), PRODUCERS):
            continue
        seen.add(id(n))
        stack.extend(n.inputs)
    return False


def _full_group(graph: tp.DependencyGraph, root: nn.Module):
    """``(Torch-Pruning's group of every output channel of root, their number)``; built once
    per root while ``graph`` is inside :func:`fixed_index_mapping`."""
    memo = _FIXED_GROUPS.get(graph)
    if memo is not None and id(root) in memo:
        return memo[id(root)]
    pruner = graph.get_pruner_of_module(root)
    n = pruner.get_out_channels(root)
    with tolerant_reshapes():  # outside fixed_index_mapping, the mappings are redone
        out = graph.get_pruning_group(root, pruner.prune_out_channels, list(range(n))), n
    if memo is not None:
        memo[id(root)] = out
    return out


def find_unit_groups(
    graph: tp.DependencyGraph,
    prune_coupled: bool = False,
    ignored_layers: tuple[nn.Module, ...] = (),
    skipped: dict[str, str] | None = None,
) -> list[UnitGroup]:
    """Every prunable group of ``graph``'s model, in module order.

    Skipped: attention projections (:func:`reaches_attention`), groups with no consumer (their
    units are model outputs), groups touching an ignored layer, groups whose channels are added
    to the model input or a buffer (:func:`_adds_untraced`), and, unless ``prune_coupled``,
    groups whose channels are shared by several producers (the residual stream), and groups of
    which a consumer reads only some units (an output split between layers). Depthwise
    convolutions are never roots: they carry the units of the layer they read (module
    docstring). ``skipped``, when given, receives ``{module path: why}`` for every attention
    projection and every producer of a coupled, input-bound or partly read group left whole.

    Raises:
        UnsupportedModelError: a group holds a module with parameters that coreprune cannot
            prune or fold (named, with its type), e.g. a grouped convolution or LayerNorm.
    """
    with fixed_index_mapping(graph):  # nothing changes the model here
        return _find_unit_groups(graph, prune_coupled, ignored_layers, skipped)


# Torch-Pruning node types that rearrange channels (trusted only where every reshape is mapped)
_REARRANGING = (tp.ops.OPTYPE.RESHAPE, tp.ops.OPTYPE.CONCAT, tp.ops.OPTYPE.SPLIT,
                tp.ops.OPTYPE.UNBIND, tp.ops.OPTYPE.EXPAND, tp.ops.OPTYPE.SLICE)


def _rearranges(graph: tp.DependencyGraph, root: nn.Module) -> bool:
    """Whether ``root``'s output channels pass through a node that rearranges channels
    (:data:`_REARRANGING`), or Torch-Pruning fails to follow them; probed with one channel (the
    group of all of them can be costly to build through a mapped reshape)."""
    pruner = graph.get_pruner_of_module(root)
    try:
        with tolerant_reshapes():
            probe = graph.get_pruning_group(root, pruner.prune_out_channels, [0])
    except (IndexError, ValueError, ZeroDivisionError):
        return True
    return any(item.dep.target.type in _REARRANGING for item in probe.items)


def _find_unit_groups(graph: tp.DependencyGraph, prune_coupled: bool,
                      ignored_layers: tuple[nn.Module, ...], skipped: dict[str, str] | None
                      ) -> list[UnitGroup]:
    names = {m: n for n, m in graph.model.named_modules()}
    names_to = dict(graph.model.named_modules())
    ignored = set(map(id, ignored_layers))
    opaque = bool(opaque_reshapes(graph))
    seen: set[int] = set()
    out: list[UnitGroup] = []
    for root in graph.model.modules():
        if (not isinstance(root, PRODUCERS) or id(root) in seen or is_depthwise(root)
                or root not in graph.module2node):
            continue
        if reaches_attention(graph, root):
            if skipped is not None:
                skipped[names[root]] = ("an attention projection (query, key or value): its "
                                        "outputs are split into heads")
            continue
        if not prune_coupled and added_to_another_branch(graph, root):
            # coupled: skipped before Torch-Pruning's group, which can blow up on a residual
            # stream through window reshapes (torchvision's Swin: > 10 GB)
            if skipped is not None:
                skipped[names[root]] = ("channels coupled through residual additions; "
                                        "prune_coupled=True prunes them")
            continue
        if opaque and _rearranges(graph, root):
            if skipped is not None:
                skipped[names[root]] = ("its channels pass through a reshape, concatenation or "
                                        "split in a model with a reshape coreprune cannot follow "
                                        "(e.g. a channel shuffle)")
            seen.add(id(root))
            continue
        group, n = _full_group(graph, root)
        producers, consumers, carriers, gates, partial, others = [], [], [], [], [], []
        fixed = False  # the channels are added to a tensor no layer produces
        for item in group.items:
            m = item.dep.target.module
            if not isinstance(m, nn.Module) or not any(True for _ in m.parameters(recurse=False)):
                if isinstance(m, nn.Parameter):
                    others.append((m, "a bare nn.Parameter"))
                fixed = fixed or _adds_untraced(item.dep.target)
                continue
            if graph.is_out_channel_pruning_fn(item.dep.handler) and isinstance(m, PRODUCERS):
                if is_depthwise(m):  # never the root (skipped above)
                    carriers.append(m)
                elif m is not root and _is_gate(graph, m):
                    gates.append(m)
                else:
                    producers.append(m)
            elif graph.is_in_channel_pruning_fn(item.dep.handler) and isinstance(m, PRODUCERS):
                consumers.append(m)
                if set(np.asarray(item.root_idxs).tolist()) != set(range(n)):
                    partial.append(m)
            elif not isinstance(m, NORMS):
                others.append((m, type(m).__name__))
        seen.update(id(m) for m in producers + carriers + gates)
        if not consumers or any(id(m) in ignored
                                for m in producers + consumers + carriers + gates):
            continue
        if partial:  # an output split between layers (attention was caught above)
            if skipped is not None:
                skipped[names[root]] = ("a layer reads only some of the units (the output "
                                        "is split between layers)")
            continue
        if len(producers) > 1 and not prune_coupled:
            if skipped is not None:
                skipped.update((names[m], "channels coupled through residual additions; "
                                "prune_coupled=True prunes them") for m in producers)
            continue
        if fixed:
            if skipped is not None:
                skipped.update((names[m], "channels added to the model input or a buffer, whose "
                                "width cannot change") for m in producers)
            continue
        k = max(channel_groups(m) for m in producers + consumers + gates)
        for m in producers + consumers + gates:
            if channel_groups(m) not in (1, k):
                others.append((m, f"{type(m).__name__} with groups={m.groups} beside one with "
                               f"groups={k}"))
        if others:
            m, why = others[0]
            raise UnsupportedModelError(
                f"module {names.get(m, '?')!r} ({why}) reads or writes the channels of "
                f"{names[root]!r}; coreprune prunes Linear/Conv1d/Conv2d (grouped ones where "
                "every grouped layer of the channels has the same groups) and BatchNorm only. "
                "Pass it in ignored_layers to leave this group unpruned.")
        g = UnitGroup(names[root], root, n // k, [names[m] for m in producers],
                      [names[m] for m in consumers], carriers=[names[m] for m in carriers],
                      gates=[names[m] for m in gates], channel_groups=k)
        if g.coupled:
            g.foldable, g.note = False, "channels coupled through a residual addition"
        elif gates and not is_gated_mlp(graph, root, [names_to[n] for n in g.gates]):
            g.foldable, g.note = False, ("the units are gated (squeeze-and-excitation): another "
                                         "layer's outputs multiply them")
            g.squeeze_excited = True
        elif carriers and (len(carriers) > 1 or any(
                _path_activation(graph, _batchnorm_after(graph, carriers[0]) or carriers[0], m)
                is None for m in consumers)):
            g.foldable, g.note = False, ("the units reach their readers by paths other than "
                                         "one chain through a depthwise convolution")
        out.append(g)
    return out


def _batchnorm_after(graph: tp.DependencyGraph, producer: nn.Module) -> nn.Module | None:
    for node in graph.module2node[producer].outputs:
        if isinstance(node.module, NORMS):
            return node.module
    return None


def _consumer_slices(graph: tp.DependencyGraph, g: UnitGroup):
    """Yield ``(module, index matrix (n_units, c))``: the indices into each consumer's weight
    dimension 1 that every unit reaches (a grouped consumer: its weight column, module
    docstring)."""
    group, _ = _full_group(graph, g.root)
    for item in group.items:
        m = item.dep.target.module
        if (isinstance(m, PRODUCERS) and graph.is_in_channel_pruning_fn(item.dep.handler)
                and not is_depthwise(m)):  # a depthwise conv carries the units, reads none
            idxs, roots = np.asarray(item.idxs), np.asarray(item.root_idxs)
            if channel_groups(m) > 1:  # slot j's channels all enter through column j
                yield m, np.arange(g.n_units)[:, None]
                continue
            order = np.lexsort((idxs, roots, roots % g.n_units))  # channel r: slot r mod n_units
            yield m, idxs[order].reshape(g.n_units, -1)


def _named_consumer_slices(graph: tp.DependencyGraph, g: UnitGroup):
    """:func:`_consumer_slices` with each consumer's module name first: ``(name, module,
    index matrix)`` (per-consumer folds and moments are keyed by name)."""
    names = {id(m): n for n, m in graph.model.named_modules()}
    for m, cols in _consumer_slices(graph, g):
        yield names[id(m)], m, cols


def _float64(t: torch.Tensor) -> torch.Tensor:
    """A float64 copy of ``t`` on the CPU (never a view of a parameter)."""
    return t.detach().to("cpu", torch.float64, copy=True)


def _side_by_side(parts: list[torch.Tensor]) -> np.ndarray:
    """``parts`` (fresh tensors, n rows each) joined along dimension 1 as one array."""
    return (parts[0] if len(parts) == 1 else torch.cat(parts, 1)).numpy()


def unit_set(graph: tp.DependencyGraph, g: UnitGroup) -> UnitSet:
    """The :class:`UnitSet` of group ``g`` (float64 arrays, weights of the current model).

    Its ``incoming``, ``filters``, ``outgoing`` and ``consumer_columns`` are computed when a
    method or compensation first reads them, from the model as it is then: call this while
    the model stays unchanged (the pruner reads each group's units before it prunes the next).
    """
    named = dict(graph.model.named_modules())
    k = g.channel_groups
    modules = [named[name] for name in g.producers + g.carriers + g.gates]
    first = modules[0]
    raw_bias = (None if k > 1 else first.bias.detach().cpu().double().numpy().copy()
                if first.bias is not None else np.zeros(first.weight.shape[0]))

    def raw(m: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        w = _float64(m.weight).reshape(m.weight.shape[0], -1)
        b = _float64(m.bias) if m.bias is not None else torch.zeros(w.shape[0],
                                                                      dtype=w.dtype)
        return w, b

    def filters() -> np.ndarray:
        parts = []
        for m in modules:
            if k > 1:  # slots: a raw bias goes into the filter rows (L1 of [W | b] unchanged)
                w, b = raw(m)
                parts.append(_slots(torch.cat([w, b[:, None]], dim=1), k))
            else:
                parts.append(_float64(m.weight).reshape(m.weight.shape[0], -1))
        return _side_by_side(parts)

    def incoming() -> np.ndarray:
        parts = []
        for m in modules:
            w, b = raw(m)
            bn = _batchnorm_after(graph, m)
            if bn is not None:
                bn_w, bn_b = bn.weight.detach().cpu().double(), bn.bias.detach().cpu().double()
                var, mean = bn.running_var.cpu().double(), bn.running_mean.cpu().double()
                scale = bn_w / torch.sqrt(var + bn.eps)
                b = (b - mean) * scale + bn_b
                w = w * scale[:, None]
            parts.append(_slots(torch.cat([w, b[:, None]], dim=1), k))
        return _side_by_side(parts)

    consumers: list = []  # (outgoing, columns), computed once for both

    def outgoing_and_columns() -> tuple[np.ndarray, dict[str, slice]]:
        if not consumers:
            parts, columns, start = [], {}, 0
            for name, m, cols in _named_consumer_slices(graph, g):
                sl = m.weight.detach().cpu()[:, torch.as_tensor(cols)]  # (out, n, c, *kernel)
                parts.append(sl.transpose(0, 1).reshape(g.n_units, -1).double())
                columns[name] = slice(start, start + parts[-1].shape[1])
                start += parts[-1].shape[1]
            consumers.append((_side_by_side(parts), columns))
        return consumers[0]

    bn = _batchnorm_after(graph, unit_output(graph, g))
    norm = None if bn is None or g.coupled or g.channel_groups > 1 else BatchNormParams(
        *(t.detach().cpu().double().numpy()
          for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var)), float(bn.eps))
    return UnitSet(incoming, lambda: outgoing_and_columns()[0], filters, g.name,
                   bias=raw_bias, batchnorm=norm,
                   activation=None if g.coupled else unit_activation(graph, g),
                   consumer_columns=lambda: outgoing_and_columns()[1], n=g.n_units)


# autograd nodes a unit's activation may pass between its producer and a consumer: views, and
# pooling (which keeps a channel's mean, or for max pooling raises it: a documented bias)
_PASS_THROUGH = ("ViewBackward", "UnsafeViewBackward", "ReshapeAliasBackward", "FlattenBackward",
                 "CloneBackward", "AvgPool2DBackward", "AdaptiveAvgPool2DBackward", "MeanBackward",
                 "MaxPool2DWithIndicesBackward")


def activation_of(node: tp.Node) -> Activation | None:
    """The elementwise activation an autograd node applies (from its ``grad_fn`` and saved
    parameters), or None if it is not one coreprune models."""
    fn, name = node.grad_fn, grad_name(node)
    if name.startswith("ReluBackward") or isinstance(node.module, nn.ReLU):
        return Activation("relu")
    if name.startswith("LeakyReluBackward"):
        return Activation("leaky_relu", float(fn._saved_negative_slope))
    if name.startswith("GeluBackward"):
        return Activation("gelu_tanh" if fn._saved_approximate == "tanh" else "gelu")
    if name.startswith("EluBackward"):
        alpha, scale = float(fn._saved_alpha), float(fn._saved_scale)
        if scale == 1.0 and float(fn._saved_input_scale) == 1.0:
            return Activation("elu", alpha)
        return Activation("selu") if abs(scale - 1.0507009873554805) < 1e-6 else None
    if name.startswith("HardtanhBackward"):
        lo, hi = float(fn._saved_min_val), float(fn._saved_max_val)
        return {(0.0, 6.0): Activation("relu6"), (-1.0, 1.0): Activation("hardtanh")}.get(
            (lo, hi))
    if name.startswith("SoftplusBackward"):
        ok = float(fn._saved_beta) == 1.0
        return Activation("softplus") if ok else None
    simple = {"SiluBackward": "silu", "TanhBackward": "tanh", "SigmoidBackward": "sigmoid",
              "MishBackward": "mish", "HardswishBackward": "hardswish",
              "HardsigmoidBackward": "hardsigmoid"}
    for prefix, act in simple.items():
        if name.startswith(prefix):
            return Activation(act)
    return None


_MATMULS = ("AddmmBackward", "MmBackward", "BmmBackward")


def module_of(node: tp.Node) -> object:
    """The module a traced node computes: its own, or, for the matrix product inside a
    ``Linear`` applied to a batch of sequences (traced as a node of its own before the
    ``Linear``'s reshape), that ``Linear``."""
    if not isinstance(node.module, PRODUCERS) and grad_name(node).startswith(_MATMULS) \
            and len(node.outputs) == 1 and isinstance(node.outputs[0].module, nn.Linear):
        return node.outputs[0].module
    return node.module


def _path_activation(graph: tp.DependencyGraph, start: nn.Module, consumer: nn.Module
                     ) -> Activation | None:
    """The one activation on the path from ``start``'s output to ``consumer`` (identity when
    there is none), through views and pooling only, with no branching (no residual addition,
    no other reader); None when the path is anything else."""
    node, found = graph.module2node[start], None
    while True:
        if len(node.outputs) != 1:
            return None
        node = node.outputs[0]
        if module_of(node) is consumer:
            return found or Activation("identity")
        act = activation_of(node)
        if act is not None and found is None:
            found = act
        elif act is not None or not grad_name(node).startswith(_PASS_THROUGH):
            return None


def unit_output(graph: tp.DependencyGraph, g: UnitGroup) -> nn.Module:
    """The module whose output channels are group ``g``'s units before their BatchNorm and
    activation: the last depthwise convolution that carries them, else the root."""
    return dict(graph.model.named_modules())[g.carriers[-1]] if g.carriers else g.root


def unit_activation(graph: tp.DependencyGraph, g: UnitGroup) -> Activation | None:
    """The activation between group ``g``'s units (after their BatchNorm, if any; after the
    depthwise convolutions that carry them) and every consumer, if it is the same one on every
    path (:func:`_path_activation`), else None."""
    out = unit_output(graph, g)
    start = _batchnorm_after(graph, out) or out
    acts = {_path_activation(graph, start, m) for m, _ in _consumer_slices(graph, g)}
    return acts.pop() if len(acts) == 1 else None


def tap_coverage(conv: nn.Conv2d, input_size: tuple[int, int]) -> torch.Tensor:
    """(kh, kw) fraction of ``conv``'s output positions at which each kernel tap reads inside
    an input of ``input_size`` (the rest read zero padding): a constant added to the input
    reaches the output through tap t only at that fraction of positions."""
    fractions = []
    for n, k, s, p, d in zip(input_size, conv.kernel_size, conv.stride, conv.padding,
                             conv.dilation, strict=True):
        out = (n + 2 * p - d * (k - 1) - 1) // s + 1
        pos = torch.arange(out)[:, None] * s - p + torch.arange(k)[None, :] * d  # (out, k)
        fractions.append(((pos >= 0) & (pos < n)).double().mean(0))
    return fractions[0][:, None] * fractions[1][None, :]


def _add_shift(consumer: nn.Module, norm: nn.Module | None, shift: torch.Tensor) -> None:
    """Add ``shift`` (out,) to ``consumer``'s output: into its bias, else into the running mean
    of the BatchNorm right after it, else into a new bias."""
    with torch.no_grad():
        if consumer.bias is not None:
            consumer.bias += shift.to(consumer.bias)
        elif norm is not None:
            norm.running_mean -= shift.to(norm.running_mean)
        else:
            consumer.bias = nn.Parameter(shift.to(consumer.weight))


def apply_change(graph: tp.DependencyGraph, g: UnitGroup, change: ConsumerChange,
                 input_sizes: dict[str, tuple[int, int]] | None = None) -> None:
    """Fold ``change`` into every consumer of ``g`` and remove every unit not in
    ``change.fold.keep`` from the producers, norms and consumers, in place.

    A consumer with weights ``W`` (unit i's input slice: every tap of its input columns) gets
    ``W[:, kept j] = sum_i W[:, i] M[i, j]`` and its output ``+ sum_i sum_t W[:, i, t] f_t o_i``
    (into its bias, the running mean of a BatchNorm right after it, or a new bias), with
    ``f_t`` the :func:`tap_coverage` of a zero-padded ``Conv2d`` whose input size
    ``input_sizes`` gives (by module name; 1 for every tap otherwise): the constant is right on
    average over the output positions. A consumer named in ``change.per_consumer`` gets its
    own fold. With ``change.renormalize`` the BatchNorm after it is renormalised as
    :class:`~coreprune.compensation.ConsumerChange` states.
    """
    folds = change.per_consumer or {}
    if (change.renormalize is not None or not change.fold.is_drop()
            or not all(f.is_drop() for f in folds.values())):
        with torch.no_grad():
            for name, m, cols in _named_consumer_slices(graph, g):
                fold = folds.get(name, change.fold)
                if change.renormalize is None and fold.is_drop():
                    continue
                mixing = torch.as_tensor(fold.mixing)
                offset = torch.as_tensor(fold.offset)
                scale = mixing.sum(dim=1)
                w = m.weight.detach().double()
                c = cols.shape[1]
                taps = w[:, torch.as_tensor(cols.reshape(-1))].reshape(
                    w.shape[0], g.n_units, c, *w.shape[2:]).cpu()
                norm = _batchnorm_after(graph, m)
                if change.renormalize is not None and norm is not None:
                    energy = (taps**2).reshape(w.shape[0], g.n_units, -1).sum(-1)
                    var = torch.as_tensor(change.renormalize)
                    full, kept = energy @ var, energy @ (var * scale**2)
                    ratio = torch.where(full > 0, kept / torch.where(full > 0, full, 1.0), 1.0)
                    norm.running_var *= ratio.to(norm.running_var)
                if torch.any(offset != 0):
                    weighted = taps
                    size = (input_sizes or {}).get(name)
                    if isinstance(m, nn.Conv2d) and size is not None:
                        weighted = taps * tap_coverage(m, size)  # (out, n, c, kh, kw)
                    shift = torch.einsum("on...,n->o", weighted, offset)
                    _add_shift(m, norm, shift)
                new = torch.einsum("on...,nk->ok...", taps, mixing)
                flat = torch.as_tensor(cols[fold.keep].reshape(-1), device=m.weight.device)
                m.weight[:, flat] = new.reshape(w.shape[0], -1, *w.shape[2:]).to(m.weight)
    remove = np.setdiff1d(np.arange(g.n_units), change.fold.keep)
    if remove.size:
        pruner = graph.get_pruner_of_module(g.root)
        with tolerant_reshapes():  # Torch-Pruning maps the changed model's channels anew
            graph.get_pruning_group(g.root, pruner.prune_out_channels,
                                    g.channels(remove).tolist()).prune()


def apply_selection(graph: tp.DependencyGraph, g: UnitGroup, selection: Selection,
                    fold: bool = True, compensation: str | Compensation = "none") -> None:
    """Keep ``selection.indices`` of group ``g`` in place: the ``compensation``'s change
    (:mod:`coreprune.compensation`) computed from the current weights, then
    :func:`apply_change`. ``fold``: fold the selection's weights into the consumers (METHOD
    §3(e)); only foldable groups can. Compensations that need moments see none here (use
    :class:`coreprune.pruning.Pruner`)."""
    units = unit_set(graph, g)
    reweight = fold and g.foldable and not np.allclose(selection.weights, 1.0, rtol=0, atol=0)
    apply_change(graph, g, get_compensation(compensation).change(units, selection, reweight))


class _ReachedError(Exception):
    """Internal: every layer asked for has been reached; the forward pass stops."""


def layer_inputs(model: nn.Module, example_inputs: torch.Tensor, modules: list[nn.Module],
                 stop: bool = False) -> dict[int, torch.Tensor]:
    """The (first) input each of ``modules`` reads when ``model`` runs on ``example_inputs``,
    by ``id(module)``; eval mode and no gradients, the model's mode restored. With ``stop``,
    the forward pass ends as soon as every one of ``modules`` has been reached."""
    seen: dict[int, torch.Tensor] = {}
    wanted = {id(m) for m in modules}

    def record(mod: nn.Module, args: tuple) -> None:
        seen.setdefault(id(mod), args[0].detach())
        if stop and wanted <= seen.keys():
            raise _ReachedError

    hooks = [m.register_forward_pre_hook(record) for m in modules]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example_inputs)
    except _ReachedError:
        pass
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return seen


@dataclass(frozen=True)
class LayerShapes:
    """What one forward pass on a batch of one (eval mode, no gradients) shows of a model's
    Linear/Conv layers (:func:`layer_shapes`).

    Attributes:
        inputs: ``id(layer)`` -> the shape of the first input it read (its first call).
        outputs: ``id(layer)`` -> the shape of its output (its last call).
        flops: the pass's FLOPs, as :func:`coreprune.metrics.count_flops` counts them.
    """

    inputs: dict[int, torch.Size]
    outputs: dict[int, torch.Size]
    flops: int


def layer_shapes(model: nn.Module, example_inputs: torch.Tensor) -> LayerShapes:
    """:class:`LayerShapes` of ``model`` on ``example_inputs[:1]``: one forward pass serves the
    layers' input sizes, the cost model and the FLOP count."""
    inputs: dict[int, torch.Size] = {}
    outputs: dict[int, torch.Size] = {}

    def record(mod: nn.Module, args: tuple, out: torch.Tensor) -> None:
        inputs.setdefault(id(mod), args[0].shape)
        outputs[id(mod)] = out.shape

    hooks = [m.register_forward_hook(record) for m in model.modules()
             if isinstance(m, PRODUCERS)]
    try:
        flops = count_flops(model, example_inputs)  # the pass the hooks record
    finally:
        for h in hooks:
            h.remove()
    return LayerShapes(inputs, outputs, flops)


def input_sizes(model: nn.Module, example_inputs: torch.Tensor,
                shapes: LayerShapes | None = None) -> dict[str, tuple[int, int]]:
    """The spatial input size of every ``Conv2d`` of ``model`` on ``example_inputs`` (the sizes
    do not change when channels are pruned), from its :func:`layer_shapes` (``shapes``, if
    already known)."""
    shapes = layer_shapes(model, example_inputs) if shapes is None else shapes
    return {name: tuple(shapes.inputs[id(m)][-2:]) for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d) and id(m) in shapes.inputs}
