"""Attention heads as units (``Pruner(units="heads")``).

A unit is one key/value head with the query heads that read it: one head in multi-head
attention, a group of ``n_heads / n_kv_heads`` query heads in grouped-query attention (so the
grouping stays valid and whole groups go). Cutting unit ``u`` removes its rows of the query,
key and value projections and its columns of the output projection, and the attention module's
head count (and width attributes) drop with it.

Attention layers are recognised by the shape of their modules (:data:`ATTENTION_KINDS`, one
entry per layout), never by importing timm or transformers:

* ``fused-qkv``: a ``qkv`` Linear (queries, keys, values stacked) and a ``proj`` Linear, with
  ``num_heads`` or ``heads`` (timm's ViT, DeiT, coreprune's zoo ``vit``);
* ``gpt2``: ``c_attn`` (queries, keys, values, as a Linear in the working copy) and ``c_proj``,
  with ``num_heads``, ``head_dim`` and ``split_size`` (Hugging Face GPT-2);
* ``separate-qkv``: ``q_proj``, ``k_proj``, ``v_proj`` and ``o_proj`` with ``head_dim``
  (LLaMA, Qwen2, Mistral: grouped-query attention; ``nn.MultiheadAttention`` in the working
  copy);
* ``bert``: a module whose child (``self`` or ``attention``) holds ``query``, ``key``, ``value``
  and ``num_attention_heads``, and whose ``output.dense`` is the output projection (BERT,
  RoBERTa, Hugging Face ViT);
* ``maxvit``: ``to_qkv`` and ``merge`` with ``n_heads``, ``head_dim`` and a relative position
  bias table per head (torchvision's MaxViT, as
  :class:`~coreprune.pruning.layers.SeparateHeadRelativeAttention` in the working copy).

``nn.MultiheadAttention`` (torchvision's ViT, ``nn.Transformer*Layer``) and torchvision's Swin
window attention compute their head width as input width / heads: the pruner's working copy
holds them as the equal :class:`~coreprune.pruning.layers.SeparateQKVAttention`
(``separate-qkv``) and :class:`~coreprune.pruning.layers.SeparateHeadWindowAttention`
(``fused-qkv``; V2: ``SeparateHeadWindowAttentionV2``), and a layer that lost heads is handed
back as one. An ``nn.MultiheadAttention`` with ``add_bias_kv`` or ``add_zero_attn`` is left whole
and named in the report. Swin window attention is ``fused-qkv`` with a relative position bias
table per head (V1) or, in torchvision's V2, a logit scale per head and a bias network whose last
layer has one row per head: cut with the heads. timm's Swin V2 (separate query and value
biases) is left whole.

Importance (:data:`HEAD_METHODS`): ``output-moment`` (default) scores a unit by the second
moment of its heads' output values under the moment model of the attention input (the
LayerNorm or RMSNorm before it: ``N(beta, gamma^2)``, :mod:`coreprune.reconstruction.heads`);
``magnitude`` by the L2 norm of all its parameters (Torch-Pruning's group magnitude);
``random``. Compensation (``compensate``): ``"none"`` (default) drops; ``"mean"`` adds each
removed head's mean output under the moment model, ``W_O,h (W_V,h m + b_V,h)``, to the output
projection's bias (the value-bias term is exact whatever the attention pattern, the other
one is the model's); ``"value-bias"`` adds the exact term ``W_O,h b_V,h`` alone. Measured on
three trained ViTs, both lost to dropping at almost every level
(``benchmarks/results/studies/vit_heads.log``): the real tokens' mean after the LayerNorm is not
``beta``, and the value bias offsets the values' mean rather than standing alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..reconstruction import head_output_moments
from ..registry import Registry
from .budget import CostModel, _Term
from .groups import _linear_input, rms_norm_weight
from .layers import TIED_HEAD_ATTENTION

__all__ = ["AttentionLayer", "ATTENTION_KINDS", "HEAD_METHODS", "HEAD_COMPENSATIONS",
           "HeadImportance", "find_attention_layers", "head_arrays", "apply_head_selection",
           "head_cost_model"]

HEAD_COMPENSATIONS = ("none", "mean", "value-bias")


@dataclass
class AttentionLayer:
    """One multi-head attention layer.

    Attributes:
        name: module path of the attention module.
        kind: its :data:`ATTENTION_KINDS` entry.
        q, k, v: ``(Linear, first row)`` of the queries, keys and values (one Linear, three
            offsets, when they are fused).
        o: the output projection (reads ``n_heads * head_dim`` inputs).
        n_heads, n_kv_heads, head_dim: query heads, key/value heads, width of a head.
        counts: ``(module, attribute, factor)``: attributes that hold ``factor x`` the number of
            query heads (a head count: 1; a width: ``head_dim``), updated after a cut.
        per_head: ``(module, parameter name, dim)``: parameters with one slice per query head
            along ``dim`` (a Swin window attention's relative position bias table), cut with
            the heads.
    """

    name: str
    kind: str
    q: tuple[nn.Linear, int]
    k: tuple[nn.Linear, int]
    v: tuple[nn.Linear, int]
    o: nn.Linear
    n_heads: int
    n_kv_heads: int
    head_dim: int
    counts: list[tuple[nn.Module, str, int]] = field(default_factory=list)
    per_head: list[tuple[nn.Module, str, int]] = field(default_factory=list)

    @property
    def n_units(self) -> int:
        """Key/value heads: the units (each with :attr:`group` query heads)."""
        return self.n_kv_heads

    @property
    def group(self) -> int:
        """Query heads per key/value head."""
        return self.n_heads // self.n_kv_heads

    def query_heads(self, units: np.ndarray) -> np.ndarray:
        """The query heads of ``units`` (sorted)."""
        units = np.asarray(units, dtype=np.int64)
        return (units[:, None] * self.group + np.arange(self.group)).reshape(-1)

    def rows(self, units: np.ndarray) -> dict[str, np.ndarray]:
        """The rows of the q, k and v projections (in their Linear's numbering, offsets added)
        and the columns of ``o`` that ``units`` own: ``{"q", "k", "v", "o"}``."""
        hd = np.arange(self.head_dim)
        qh = self.query_heads(units)
        q_cols = (qh[:, None] * self.head_dim + hd).reshape(-1)
        kv = (np.asarray(units, dtype=np.int64)[:, None] * self.head_dim + hd).reshape(-1)
        return {"q": q_cols + self.q[1], "k": kv + self.k[1], "v": kv + self.v[1], "o": q_cols}


def _linear(m: Any) -> bool:
    return isinstance(m, nn.Linear)


def _fused_qkv(name: str, m: nn.Module) -> AttentionLayer | str | None:
    heads_attr = "num_heads" if hasattr(m, "num_heads") else "heads"
    h = getattr(m, heads_attr, None)
    qkv, proj = getattr(m, "qkv", None), getattr(m, "proj", None)
    if not (_linear(qkv) and _linear(proj) and isinstance(h, int) and h > 0):
        return None
    width = qkv.out_features // 3
    if qkv.out_features != 3 * width or width % h or proj.in_features != width:
        return None
    hd = width // h
    norm, gate = getattr(m, "norm", None), getattr(m, "gate", None)
    if getattr(m, "head_dim", hd) != hd or gate is not None or (
            isinstance(norm, nn.Module) and any(True for _ in norm.parameters())):
        return None  # a norm or a gate over all heads' outputs (timm options) would need cutting
    counts = [(m, heads_attr, 1)] + [(m, a, hd) for a in ("attn_dim",) if hasattr(m, a)]
    per_head = []
    for pname, p in m.named_parameters(recurse=False):
        if pname == "relative_position_bias_table" and p.dim() == 2 and p.shape[1] == h:
            per_head.append((m, pname, 1))  # Swin: (positions, heads)
        elif pname == "logit_scale" and p.shape == (h, 1, 1):
            per_head.append((m, pname, 0))  # Swin V2's cosine attention: (heads, 1, 1)
        else:  # e.g. timm's Swin V2 q_bias: a parameter this layout does not cut
            return (f"an attention layer with a parameter {pname!r} {tuple(p.shape)} beside "
                    "its projections that coreprune does not know how to cut")
    cpb = getattr(m, "cpb_mlp", None)  # Swin V2: its last layer writes one bias per head
    if isinstance(cpb, nn.Sequential) and _linear(cpb[-1]) and cpb[-1].out_features == h:
        per_head += [(cpb[-1], pname, 0) for pname, _ in cpb[-1].named_parameters()]
        counts.append((cpb[-1], "out_features", 1))
    return AttentionLayer(name, "fused-qkv", (qkv, 0), (qkv, width), (qkv, 2 * width), proj,
                          h, h, hd, counts, per_head)


def _maxvit(name: str, m: nn.Module) -> AttentionLayer | None:
    to_qkv, merge = getattr(m, "to_qkv", None), getattr(m, "merge", None)
    h, hd = getattr(m, "n_heads", None), getattr(m, "head_dim", None)
    table = getattr(m, "relative_position_bias_table", None)
    if not (_linear(to_qkv) and _linear(merge) and isinstance(h, int) and isinstance(hd, int)
            and isinstance(table, nn.Parameter) and table.dim() == 2 and table.shape[1] == h):
        return None
    width = h * hd
    if to_qkv.out_features != 3 * width or merge.in_features != width:
        return None
    return AttentionLayer(name, "maxvit", (to_qkv, 0), (to_qkv, width), (to_qkv, 2 * width),
                          merge, h, h, hd, [(m, "n_heads", 1)],
                          [(m, "relative_position_bias_table", 1)])


def _gpt2(name: str, m: nn.Module) -> AttentionLayer | None:
    c_attn, c_proj = getattr(m, "c_attn", None), getattr(m, "c_proj", None)
    h, hd = getattr(m, "num_heads", None), getattr(m, "head_dim", None)
    if not (_linear(c_attn) and _linear(c_proj) and isinstance(h, int) and isinstance(hd, int)
            and hasattr(m, "split_size") and not getattr(m, "is_cross_attention", False)):
        return None
    width = h * hd
    if c_attn.out_features != 3 * width or c_proj.in_features != width:
        return None
    return AttentionLayer(name, "gpt2", (c_attn, 0), (c_attn, width), (c_attn, 2 * width), c_proj,
                          h, h, hd, [(m, "num_heads", 1), (m, "split_size", hd)])


def _separate_qkv(name: str, m: nn.Module) -> AttentionLayer | None:
    q, k, v, o = (getattr(m, a, None) for a in ("q_proj", "k_proj", "v_proj", "o_proj"))
    hd = getattr(m, "head_dim", None)
    if not (all(map(_linear, (q, k, v, o))) and isinstance(hd, int) and hd > 0):
        return None
    if q.out_features % hd or k.out_features % hd or k.out_features != v.out_features \
            or o.in_features != q.out_features:
        return None
    h, kv = q.out_features // hd, k.out_features // hd
    if h % kv:
        return None
    counts = [(m, a, 1) for a in ("num_heads", "num_attention_heads") if hasattr(m, a)]
    return AttentionLayer(name, "separate-qkv", (q, 0), (k, 0), (v, 0), o, h, kv, hd, counts)


def _bert(name: str, m: nn.Module) -> AttentionLayer | None:
    inner = next((c for c in (getattr(m, "self", None), getattr(m, "attention", None))
                  if c is not None and hasattr(c, "num_attention_heads")), None)
    dense = getattr(getattr(m, "output", None), "dense", None)
    if inner is None or not _linear(dense):
        return None
    q, k, v = (getattr(inner, a, None) for a in ("query", "key", "value"))
    h, hd = inner.num_attention_heads, getattr(inner, "attention_head_size", None)
    if not (all(map(_linear, (q, k, v))) and isinstance(h, int) and isinstance(hd, int)):
        return None
    if not q.out_features == k.out_features == v.out_features == dense.in_features == h * hd:
        return None
    counts = [(inner, "num_attention_heads", 1)]
    if hasattr(inner, "all_head_size"):
        counts.append((inner, "all_head_size", hd))
    return AttentionLayer(name, "bert", (q, 0), (k, 0), (v, 0), dense, h, h, hd, counts)


# recognisers of attention layouts, tried in order on every module (module docstring): the
# layer, None (not this layout), or why a layer of this layout cannot be cut
ATTENTION_KINDS: dict[str, Callable[[str, nn.Module], AttentionLayer | str | None]] = {
    "fused-qkv": _fused_qkv, "gpt2": _gpt2, "separate-qkv": _separate_qkv, "bert": _bert,
    "maxvit": _maxvit}


def _tied_head_width() -> dict[type, str]:
    """Attention modules whose forward computes the head width as input width / heads, so
    cutting a head would break them: class -> what the report calls it (``nn.MultiheadAttention``:
    :func:`_recognise`). The pruner's working copy holds them as their
    :data:`~coreprune.pruning.layers.TIED_HEAD_ATTENTION` equals."""
    return {cls: f"{label} (Pruner(units='heads') cuts it as a {equal.__name__})"
            for cls, (equal, label) in TIED_HEAD_ATTENTION.items()}


def _recognise(name: str, m: nn.Module, tied: dict[type, str]) -> AttentionLayer | str | None:
    """``m`` as an attention layer (the first layout of :data:`ATTENTION_KINDS` it fits), why
    it is one whose heads cannot be cut, or None."""
    label = tied.get(type(m))
    if isinstance(m, nn.MultiheadAttention):
        label = ("nn.MultiheadAttention with add_bias_kv or add_zero_attn"
                 if m.bias_k is not None or m.add_zero_attn else
                 "nn.MultiheadAttention (Pruner(units='heads') cuts it as a SeparateQKVAttention)")
    if label is not None:
        return f"{label}: its head width is tied to its input width, so its heads cannot be " \
               "cut in place"
    for recognise in ATTENTION_KINDS.values():
        layer = recognise(name, m)
        if layer is not None:
            return layer
    return None


def find_attention_layers(model: nn.Module, ignored: tuple[nn.Module, ...] = (),
                          skipped: dict[str, str] | None = None) -> list[AttentionLayer]:
    """Every attention layer of ``model`` whose heads can be cut, in module order (those of an
    ignored module or holding an ignored layer left out). ``skipped`` receives
    ``{module path: why}`` for attention modules whose heads cannot be cut: a head width tied
    to the input width (torchvision's Swin attention; an ``nn.MultiheadAttention``, which the
    pruner's working copy replaces where it can, :func:`~coreprune.pruning.layers.working_copy`)
    or a parameter over the heads that the layout does not know."""
    ignored_ids = set(map(id, ignored))
    tied = _tied_head_width()
    out, taken = [], set()
    for name, m in model.named_modules():
        if id(m) in taken:
            continue
        layer = _recognise(name, m, tied)
        if layer is None:
            continue
        taken.update(id(s) for s in m.modules())
        if isinstance(layer, str):  # an attention layer that cannot be cut: say why
            if skipped is not None:
                skipped[name] = layer
        elif not {id(x) for x in (m, layer.q[0], layer.k[0], layer.v[0], layer.o)} & ignored_ids:
            out.append(layer)
    return out


# -- the arrays of a layer -------------------------------------------------------------------
@dataclass
class HeadArrays:
    """A layer's units as arrays (float64).

    Attributes:
        params: (n_units, p) every parameter a unit owns (its q, k, v rows with biases, its o
            columns), for magnitude scores.
        value_weight: (n_heads, head_dim, D_in) and ``value_bias`` (n_heads, head_dim) or None:
            the value rows each query head reads (repeated within a key/value group).
        output_weight: (n_heads, D_out, head_dim): each query head's columns of ``o``.
        input_mean, input_std: (D_in,) the moment model of the attention input.
    """

    params: np.ndarray
    value_weight: np.ndarray
    value_bias: np.ndarray | None
    output_weight: np.ndarray
    input_mean: np.ndarray
    input_std: np.ndarray


def _rows(linear: nn.Linear, rows: np.ndarray) -> torch.Tensor:
    w = linear.weight.detach().cpu().double()[torch.as_tensor(rows)]
    b = linear.bias
    return torch.cat([w, b.detach().cpu().double()[torch.as_tensor(rows)][:, None]], 1) \
        if b is not None else w


def head_arrays(layer: AttentionLayer, input_norm: tuple[np.ndarray, np.ndarray] | None
                ) -> HeadArrays:
    """:class:`HeadArrays` of ``layer``; ``input_norm`` is ``(mean, std)`` of its input (the
    norm before it), None for ``N(0, I)``."""
    per_unit = []
    for u in range(layer.n_units):
        r = layer.rows(np.array([u]))
        parts = [_rows(layer.q[0], r["q"]), _rows(layer.k[0], r["k"]), _rows(layer.v[0], r["v"])]
        o_cols = layer.o.weight.detach().cpu().double()[:, torch.as_tensor(r["o"])]
        per_unit.append(torch.cat([p.reshape(-1) for p in parts] + [o_cols.reshape(-1)]))
    heads = np.arange(layer.n_heads)
    kv_of = heads // layer.group
    hd = np.arange(layer.head_dim)
    v_rows = (kv_of[:, None] * layer.head_dim + hd) + layer.v[1]  # (n_heads, head_dim)
    vl = layer.v[0]
    wv = vl.weight.detach().cpu().double().numpy()[v_rows]
    bv = None if vl.bias is None else vl.bias.detach().cpu().double().numpy()[v_rows]
    wo = layer.o.weight.detach().cpu().double().numpy()
    wo = wo.reshape(wo.shape[0], layer.n_heads, layer.head_dim).transpose(1, 0, 2)
    d_in = vl.in_features
    mean, std = (np.zeros(d_in), np.ones(d_in)) if input_norm is None else input_norm
    return HeadArrays(torch.stack(per_unit).numpy(), wv, bv, wo, np.broadcast_to(mean, (d_in,)),
                      np.broadcast_to(std, (d_in,)))


def input_norm_of(graph, layer: AttentionLayer) -> tuple[tuple[np.ndarray, np.ndarray] | None,
                                                          str]:
    """The moment model of ``layer``'s input from the norm its value projection reads in
    ``graph``: a LayerNorm gives ``N(beta, gamma^2)``, an RMSNorm
    (:func:`~coreprune.pruning.groups.rms_norm_weight`) ``N(0, gamma^2)``, independent
    features; anything else ``(None, why)`` (then ``N(0, I)``)."""
    d_in = layer.v[0].in_features
    node = _linear_input(graph, layer.v[0]) if layer.v[0] in graph.module2node else None
    m = None if node is None else node.module
    if isinstance(m, nn.LayerNorm) and m.weight is not None and m.weight.numel() == d_in:
        w = m.weight.detach().cpu().double().numpy()
        b = np.zeros(d_in) if m.bias is None else m.bias.detach().cpu().double().numpy()
        return (b, np.abs(w)), "LayerNorm output as N(beta, gamma^2)"
    weight = None if node is None else rms_norm_weight(node)
    if weight is not None and weight.numel() == d_in:
        return ((np.zeros(d_in), np.abs(weight.detach().cpu().double().numpy())),
                "RMSNorm output as N(0, gamma^2)")
    return None, "no norm before the attention: its input taken as N(0, I)"


# -- importance ------------------------------------------------------------------------------
class HeadImportance(ABC):
    """Scores of a layer's units (higher: more important)."""

    name = "?"

    @abstractmethod
    def scores(self, layer: AttentionLayer, arrays: HeadArrays,
               rng: np.random.Generator) -> np.ndarray:
        """(n_units,) scores."""

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "units": "heads"}

    def select(self, layer: AttentionLayer, arrays: HeadArrays, k: int,
               rng: np.random.Generator) -> np.ndarray:
        """The ``k`` units of highest score, sorted (ties: the lower index)."""
        s = self.scores(layer, arrays, rng)
        return np.sort(np.argsort(-s, kind="stable")[:k])


class OutputMomentImportance(HeadImportance):
    name = "output-moment"

    def scores(self, layer, arrays, rng):
        _, second = head_output_moments(arrays.value_weight, arrays.value_bias,
                                        arrays.output_weight, arrays.input_mean,
                                        arrays.input_std)
        return second.reshape(layer.n_units, layer.group).sum(1)


class MagnitudeImportance(HeadImportance):
    name = "magnitude"

    def scores(self, layer, arrays, rng):
        return np.linalg.norm(arrays.params, axis=1)


class RandomHeadImportance(HeadImportance):
    name = "random"

    def scores(self, layer, arrays, rng):
        return rng.random(layer.n_units)


HEAD_METHODS: Registry[HeadImportance] = Registry("head method", HeadImportance)
HEAD_METHODS.register("output-moment", "second moment of the heads' output values under the "
                      "moment model of the attention input (default)")(OutputMomentImportance)
HEAD_METHODS.register("magnitude", "L2 norm of every parameter of the head (Torch-Pruning's "
                      "group magnitude)")(MagnitudeImportance)
HEAD_METHODS.register("random", "uniformly random heads")(RandomHeadImportance)
DEFAULT_HEAD_METHOD = "output-moment"


# -- surgery ---------------------------------------------------------------------------------
def _cut(linear: nn.Linear, rows: np.ndarray | None = None, cols: np.ndarray | None = None,
         bias_add: torch.Tensor | None = None) -> None:
    with torch.no_grad():
        w = linear.weight
        if rows is not None:
            w = w[torch.as_tensor(rows, device=w.device)]
            if linear.bias is not None:
                linear.bias = nn.Parameter(linear.bias[torch.as_tensor(rows, device=w.device)]
                                           .clone(), requires_grad=linear.bias.requires_grad)
            linear.out_features = int(len(rows))
        if cols is not None:
            w = w[:, torch.as_tensor(cols, device=w.device)]
            linear.in_features = int(len(cols))
        linear.weight = nn.Parameter(w.clone(), requires_grad=linear.weight.requires_grad)
        if bias_add is not None:
            linear.bias.add_(bias_add.to(linear.bias))


def apply_head_selection(layer: AttentionLayer, keep: np.ndarray, compensate: str = "none",
                         arrays: HeadArrays | None = None) -> dict[str, Any]:
    """Keep only units ``keep`` of ``layer`` in place; with ``compensate="mean"`` the removed
    heads' mean output under the moment model, with ``"value-bias"`` their value bias through
    ``W_O`` (exact for that term), goes into the output projection's bias (``arrays`` needed
    for both). Returns the record's info (the compensation used)."""
    keep = np.sort(np.asarray(keep, dtype=np.int64))
    removed = np.setdiff1d(np.arange(layer.n_units), keep)
    info: dict[str, Any] = {"unit": "head" if layer.group == 1 else
                            f"key/value head with {layer.group} query heads",
                            "compensation": compensate}
    bias_add = None
    if compensate != "none" and removed.size:
        if layer.o.bias is None:
            info["compensation"] = "none (the output projection has no bias)"
        else:
            input_mean = arrays.input_mean if compensate == "mean" else 0.0
            mean, _ = head_output_moments(arrays.value_weight, arrays.value_bias,
                                          arrays.output_weight, input_mean, arrays.input_std)
            bias_add = torch.as_tensor(mean[layer.query_heads(removed)].sum(0))
    r = layer.rows(keep)
    by_linear: dict[int, tuple[nn.Linear, list[np.ndarray]]] = {}
    for part in ("q", "k", "v"):
        lin = getattr(layer, part)[0]
        by_linear.setdefault(id(lin), (lin, []))[1].append(r[part])
    for lin, parts in by_linear.values():
        _cut(lin, rows=np.concatenate(parts))
    _cut(layer.o, cols=r["o"], bias_add=bias_add)
    for module, pname, dim in layer.per_head:
        p = getattr(module, pname)
        with torch.no_grad():
            kept = p.index_select(dim, torch.as_tensor(layer.query_heads(keep), device=p.device))
        setattr(module, pname, nn.Parameter(kept.clone(), requires_grad=p.requires_grad))
    n_q, n_kv = layer.group * keep.size, keep.size
    for module, attr, factor in layer.counts:
        setattr(module, attr, factor * n_q)
    layer.n_heads, layer.n_kv_heads = n_q, n_kv
    if layer.q[0] is layer.k[0]:  # fused: keys and values start after the kept queries
        width = n_q * layer.head_dim
        layer.k, layer.v = (layer.k[0], width), (layer.v[0], 2 * width)
    return info


def head_cost_model(model: nn.Module, layers: list[AttentionLayer]) -> CostModel:
    """Parameters of ``model`` as a function of the units each layer keeps (FLOPs: not
    modelled, zero)."""
    terms, counted, seen = [], 0, set()
    for i, layer in enumerate(layers):
        for part in ("q", "k", "v"):
            lin = getattr(layer, part)[0]
            if id(lin) in seen:
                continue
            seen.add(id(lin))
            b = lin.bias.numel() if lin.bias is not None else 0
            terms.append(_Term(float(lin.weight.numel()), float(b), i, None))
            counted += lin.weight.numel() + b
        terms.append(_Term(float(layer.o.weight.numel()), 0.0, None, i))
        counted += layer.o.weight.numel()
        for module, pname, _ in layer.per_head:
            numel = getattr(module, pname).numel()
            terms.append(_Term(float(numel), 0.0, i, None))
            counted += numel
    fixed = sum(p.numel() for p in model.parameters()) - counted
    return CostModel(terms, [], float(fixed), [la.n_units for la in layers])
