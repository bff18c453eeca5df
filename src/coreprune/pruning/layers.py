"""Layer types coreprune prunes by mapping them onto its own (docs/python.md, "Hugging Face
models").

Hugging Face's ``Conv1D`` (GPT-2, GPT: ``y = x @ W + b`` with ``W`` of shape (in, out)) is a
``Linear`` with its weight transposed, and its ``NewGELUActivation``, ``FastGELUActivation`` and
``AccurateGELUActivation`` compute ``GELU(approximate="tanh")`` from elementary operations (which
a trace sees as many nodes, not one activation). Tracing, the point sets, the moment model and
the surgery all work on a working copy (:func:`working_copy`) in which these layers are replaced
by their PyTorch equals; the pruned model gets its own layers back (:func:`restore_layers`),
``Conv1D`` at its pruned width, so its classes, state-dict layout and ``save_pretrained`` stay
those of the original. transformers is never imported here: a layer is recognised by its class
name and module.

``nn.MultiheadAttention`` computes its head width as ``embed_dim / num_heads`` from one
``in_proj_weight``, so its heads cannot be cut in place. When heads are the units
(``working_copy(model, split_attention=True)``) it is replaced by
:class:`SeparateQKVAttention`, the same computation with separate ``q_proj``, ``k_proj``,
``v_proj`` and ``o_proj`` Linears and a free head count; a layer that kept every head gets an
``nn.MultiheadAttention`` back, one that lost heads stays a :class:`SeparateQKVAttention` (a
plain ``nn.Module`` of coreprune, which :func:`coreprune.load` builds without ``trusted``).
torchvision's Swin window attention (``ShiftedWindowAttention``, ``ShiftedWindowAttentionV2``)
and MaxViT attention (``RelativePositionalMultiHeadAttention``) likewise become a
:class:`SeparateHeadWindowAttention` (``...V2``) and a :class:`SeparateHeadRelativeAttention`:
the same module with a forward whose head width does not follow the input width.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.maxvit import RelativePositionalMultiHeadAttention
from torchvision.models.swin_transformer import ShiftedWindowAttention, ShiftedWindowAttentionV2

__all__ = ["is_hf_conv1d", "working_copy", "restore_layers", "update_hf_config",
           "SeparateQKVAttention", "SeparateHeadWindowAttention",
           "SeparateHeadWindowAttentionV2", "SeparateHeadRelativeAttention"]

_TANH_GELUS = ("NewGELUActivation", "FastGELUActivation", "AccurateGELUActivation")


def _is_hf(module: nn.Module, names: tuple[str, ...]) -> bool:
    cls = type(module)
    return cls.__name__ in names and cls.__module__.startswith("transformers")


def is_hf_conv1d(module: nn.Module) -> bool:
    """Whether ``module`` is a Hugging Face ``transformers.pytorch_utils.Conv1D``."""
    return _is_hf(module, ("Conv1D",))


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def _as_linear(conv1d: nn.Module) -> nn.Linear:
    """The ``nn.Linear`` with ``conv1d``'s outputs (weight (in, out) transposed, same bias)."""
    n_in, n_out = conv1d.weight.shape
    new = nn.Linear(n_in, n_out, bias=conv1d.bias is not None, device=conv1d.weight.device,
                    dtype=conv1d.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(conv1d.weight.t())
        if conv1d.bias is not None:
            new.bias.copy_(conv1d.bias)
    return new


def _as_conv1d(linear: nn.Linear, cls: type) -> nn.Module:
    """A ``Conv1D`` of class ``cls`` with ``linear``'s outputs (``nf``, ``nx`` its widths)."""
    new = cls.__new__(cls)
    nn.Module.__init__(new)
    new.nf, new.nx = linear.out_features, linear.in_features
    new.weight = nn.Parameter(linear.weight.detach().t().contiguous())
    bias = linear.bias if linear.bias is not None else torch.zeros(
        linear.out_features, device=linear.weight.device, dtype=linear.weight.dtype)
    new.bias = nn.Parameter(bias.detach().clone())
    return new


def _additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean mask (True: may not attend) as the float mask added to the scores."""
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(
            mask, float("-inf"))
    return mask.to(dtype)


class SeparateQKVAttention(nn.Module):
    """``nn.MultiheadAttention`` with separate query, key, value and output projections, so
    that its head count and head width need not follow ``embed_dim``: what an
    ``nn.MultiheadAttention`` becomes when coreprune cuts its heads (module docstring).

    ``forward`` takes ``nn.MultiheadAttention``'s arguments and returns its
    ``(output, weights)``: ``query`` (L, N, E) or with ``batch_first`` (N, L, E) or unbatched
    (L, E), ``key``/``value`` likewise with S positions, ``key_padding_mask`` (N, S),
    ``attn_mask`` (L, S) or (N * num_heads, L, S) (boolean: True may not attend; float: added to
    the scores), ``is_causal`` (a causal mask when ``attn_mask`` is None). Each head is
    ``softmax(q k^T / sqrt(head_dim) + mask) v`` with dropout ``dropout`` on the weights in
    training; the output is ``o_proj`` of the heads side by side.

    Attributes:
        q_proj, k_proj, v_proj: Linears ``embed_dim | kdim | vdim -> num_heads * head_dim``.
        o_proj: Linear ``num_heads * head_dim -> embed_dim``.
        num_heads, head_dim, embed_dim, dropout, batch_first: as named.
    """

    _qkv_same_embed_dim = False  # declines nn.TransformerEncoderLayer's fused fast path
    in_proj_bias = None  # read by that path's checks

    def __init__(self, embed_dim: int, num_heads: int, head_dim: int, kdim: int | None = None,
                 vdim: int | None = None, bias: bool = True, dropout: float = 0.0,
                 batch_first: bool = False, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        width, kw = num_heads * head_dim, {"device": device, "dtype": dtype}
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, head_dim
        self.dropout, self.batch_first = float(dropout), bool(batch_first)
        self.q_proj = nn.Linear(embed_dim, width, bias=bias, **kw)
        self.k_proj = nn.Linear(kdim or embed_dim, width, bias=bias, **kw)
        self.v_proj = nn.Linear(vdim or embed_dim, width, bias=bias, **kw)
        self.o_proj = nn.Linear(width, embed_dim, bias=bias, **kw)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = True,
                attn_mask: torch.Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        batched = query.dim() == 3
        if not batched:  # (L, E): one sequence
            query, key, value = query[None], key[None], value[None]
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask[None]
        elif not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        n, length, source = query.shape[0], query.shape[1], key.shape[1]
        h, d = self.num_heads, self.head_dim
        q = self.q_proj(query).view(n, length, h, d).transpose(1, 2)
        k = self.k_proj(key).view(n, source, h, d).transpose(1, 2)
        v = self.v_proj(value).view(n, source, h, d).transpose(1, 2)
        mask = self._mask(attn_mask, key_padding_mask, is_causal, n, length, source, q.dtype,
                          q.device)
        dropout = self.dropout if self.training else 0.0
        if need_weights:
            scores = (q * (1.0 / math.sqrt(d))) @ k.transpose(-2, -1)
            weights = torch.softmax(scores if mask is None else scores + mask, dim=-1)
            if dropout:  # the weights returned are the dropped ones, as nn.MultiheadAttention's
                weights = F.dropout(weights, dropout)
            out = weights @ v
        else:
            weights = None
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        out = self.o_proj(out.transpose(1, 2).reshape(n, length, h * d))
        if weights is not None and average_attn_weights:
            weights = weights.mean(1)
        if not batched:
            return out[0], None if weights is None else weights[0]
        return (out if self.batch_first else out.transpose(0, 1)), weights

    def _mask(self, attn_mask: torch.Tensor | None, key_padding_mask: torch.Tensor | None,
              is_causal: bool, n: int, length: int, source: int, dtype: torch.dtype,
              device: torch.device) -> torch.Tensor | None:
        """The float mask added to the scores, broadcastable to (n, heads, length, source)."""
        if attn_mask is None and is_causal:
            attn_mask = torch.ones(length, source, dtype=torch.bool, device=device).triu(1)
        mask = None
        if attn_mask is not None:
            mask = _additive_mask(attn_mask, dtype)
            if mask.dim() == 3:
                if mask.shape[0] != n * self.num_heads:
                    raise ValueError(
                        f"attn_mask of shape {tuple(mask.shape)}: a 3-D mask needs batch x heads "
                        f"= {n * self.num_heads} rows (this layer has {self.num_heads} heads)")
                mask = mask.view(n, self.num_heads, length, source)
        if key_padding_mask is not None:
            padding = _additive_mask(key_padding_mask, dtype).view(n, 1, 1, source)
            mask = padding if mask is None else mask + padding
        return mask

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
                f"head_dim={self.head_dim}, batch_first={self.batch_first}")


def _shifted_window_mask(x: torch.Tensor, padded: tuple[int, int], window: list[int],
                         shift: list[int]) -> torch.Tensor:
    """(windows, positions, positions): 0 where two positions of a window came from the same
    region before the cyclic shift, -100 elsewhere (torchvision's Swin mask)."""
    (ph, pw), (wh, ww) = padded, window
    regions = x.new_zeros((ph, pw))
    count = 0
    for h in ((0, -wh), (-wh, -shift[0]), (-shift[0], None)):
        for w in ((0, -ww), (-ww, -shift[1]), (-shift[1], None)):
            regions[h[0]:h[1], w[0]:w[1]] = count
            count += 1
    regions = regions.view(ph // wh, wh, pw // ww, ww).permute(0, 2, 1, 3).reshape(-1, wh * ww)
    diff = regions.unsqueeze(1) - regions.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


def _window_attention(m: ShiftedWindowAttention, x: torch.Tensor,
                      logit_scale: torch.Tensor | None = None) -> torch.Tensor:
    """torchvision's ``shifted_window_attention`` for module ``m`` with head width
    ``m.qkv.out_features / (3 m.num_heads)`` (torchvision takes input width / heads);
    ``logit_scale`` (heads, 1, 1): Swin V2's cosine attention. ``x``: (B, H, W, C), returned in
    the same shape."""
    b, height, width, c = x.shape
    wh, ww = m.window_size
    x = F.pad(x, (0, 0, 0, (ww - width % ww) % ww, 0, (wh - height % wh) % wh))
    _, ph, pw, _ = x.shape
    shift = [0 if wh >= ph else m.shift_size[0], 0 if ww >= pw else m.shift_size[1]]
    if sum(shift) > 0:
        x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
    windows, size = (ph // wh) * (pw // ww), wh * ww
    x = x.view(b, ph // wh, wh, pw // ww, ww, c).permute(0, 1, 3, 2, 4, 5) \
        .reshape(b * windows, size, c)
    h = m.num_heads
    d = m.qkv.out_features // (3 * h)
    bias = m.qkv.bias
    if logit_scale is not None and bias is not None:  # V2: the keys take no bias
        bias = torch.cat([bias[:h * d], torch.zeros_like(bias[h * d:2 * h * d]),
                          bias[2 * h * d:]])
    q, k, v = F.linear(x, m.qkv.weight, bias).reshape(b * windows, size, 3, h, d) \
        .permute(2, 0, 3, 1, 4)
    if logit_scale is None:
        attn = (q * d ** -0.5).matmul(k.transpose(-2, -1))
    else:
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        attn = attn * torch.clamp(logit_scale, max=math.log(100.0)).exp()
    attn = attn + m.get_relative_position_bias()
    if sum(shift) > 0:
        mask = _shifted_window_mask(x, (ph, pw), m.window_size, shift)
        attn = (attn.view(b, windows, h, size, size) + mask.unsqueeze(1).unsqueeze(0)) \
            .view(-1, h, size, size)
    attn = F.dropout(F.softmax(attn, dim=-1), p=m.attention_dropout, training=m.training)
    x = m.proj(attn.matmul(v).transpose(1, 2).reshape(b * windows, size, h * d))
    x = F.dropout(x, p=m.dropout, training=m.training)
    x = x.view(b, ph // wh, pw // ww, wh, ww, c).permute(0, 1, 3, 2, 4, 5).reshape(b, ph, pw, c)
    if sum(shift) > 0:
        x = torch.roll(x, shifts=(shift[0], shift[1]), dims=(1, 2))
    return x[:, :height, :width, :].contiguous()


class SeparateHeadWindowAttention(ShiftedWindowAttention):
    """torchvision's Swin window attention (``ShiftedWindowAttention``) whose head width is
    ``qkv.out_features / (3 num_heads)`` instead of the input width / ``num_heads``, so heads can
    be cut (``qkv`` rows, ``proj`` columns, ``relative_position_bias_table`` columns). Same
    state, same outputs as the parent at full width; ``x``: (B, H, W, C), returned in the same
    shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _window_attention(self, x)


class SeparateHeadWindowAttentionV2(ShiftedWindowAttentionV2):
    """torchvision's Swin V2 window attention (``ShiftedWindowAttentionV2``) with the head width
    of :class:`SeparateHeadWindowAttention`; its heads also own ``logit_scale`` rows and rows
    of the last layer of ``cpb_mlp`` (the relative position bias network)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _window_attention(self, x, self.logit_scale)


class SeparateHeadRelativeAttention(RelativePositionalMultiHeadAttention):
    """torchvision MaxViT's attention (``RelativePositionalMultiHeadAttention``) whose output
    before ``merge`` is ``n_heads * head_dim`` wide instead of the input width, so heads can be
    cut (``to_qkv`` rows, ``merge`` columns, ``relative_position_bias_table`` columns). Same
    state, same outputs as the parent at full width; ``x``: (B, G, P, D), returned in the same
    shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, g, p, _ = x.shape
        h, d = self.n_heads, self.head_dim
        q, k, v = (t.reshape(b, g, p, h, d).permute(0, 1, 3, 2, 4)
                   for t in torch.chunk(self.to_qkv(x), 3, dim=-1))
        attn = torch.einsum("bghid,bghjd->bghij", q, k * self.scale_factor)
        attn = F.softmax(attn + self.get_relative_positional_bias(), dim=-1)
        out = torch.einsum("bghij,bghjd->bghid", attn, v)
        return self.merge(out.permute(0, 1, 3, 2, 4).reshape(b, g, p, h * d))


# torchvision attention whose head width is tied to its input width -> (its equal with a free
# head count, which working_copy swaps in; what a report calls it)
TIED_HEAD_ATTENTION: dict[type, tuple[type, str]] = {
    ShiftedWindowAttention: (SeparateHeadWindowAttention,
                             "torchvision's Swin window attention"),
    ShiftedWindowAttentionV2: (SeparateHeadWindowAttentionV2,
                               "torchvision's Swin V2 window attention"),
    RelativePositionalMultiHeadAttention: (SeparateHeadRelativeAttention,
                                           "torchvision's MaxViT attention")}


def _as_separate_qkv(mha: nn.MultiheadAttention) -> SeparateQKVAttention | None:
    """The :class:`SeparateQKVAttention` with ``mha``'s outputs; None when ``mha`` has
    ``add_bias_kv`` or ``add_zero_attn`` (not modelled: it stays whole)."""
    if mha.bias_k is not None or mha.add_zero_attn:
        return None
    e, h = mha.embed_dim, mha.num_heads
    w = mha.out_proj.weight
    new = SeparateQKVAttention(e, h, e // h, mha.kdim, mha.vdim, mha.in_proj_bias is not None,
                               mha.dropout, mha.batch_first, w.device, w.dtype)
    if mha._qkv_same_embed_dim:
        weights = mha.in_proj_weight.chunk(3)
    else:
        weights = (mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight)
    biases = (None,) * 3 if mha.in_proj_bias is None else mha.in_proj_bias.chunk(3)
    with torch.no_grad():
        for lin, wt, b in zip((new.q_proj, new.k_proj, new.v_proj), weights, biases,
                              strict=True):
            lin.weight.copy_(wt)
            if b is not None:
                lin.bias.copy_(b)
        new.o_proj.weight.copy_(w)
        if mha.out_proj.bias is not None:
            new.o_proj.bias.copy_(mha.out_proj.bias)
    return new.train(mha.training)


def _as_multihead(sep: SeparateQKVAttention) -> nn.MultiheadAttention:
    """The ``nn.MultiheadAttention`` with ``sep``'s outputs (``sep`` at ``embed_dim`` width)."""
    e, w = sep.embed_dim, sep.o_proj.weight
    kdim, vdim = sep.k_proj.in_features, sep.v_proj.in_features
    mha = nn.MultiheadAttention(e, sep.num_heads, sep.dropout, bias=sep.q_proj.bias is not None,
                                kdim=kdim, vdim=vdim, batch_first=sep.batch_first,
                                device=w.device, dtype=w.dtype)
    with torch.no_grad():
        if mha._qkv_same_embed_dim:
            mha.in_proj_weight.copy_(torch.cat([sep.q_proj.weight, sep.k_proj.weight,
                                                sep.v_proj.weight]))
        else:
            mha.q_proj_weight.copy_(sep.q_proj.weight)
            mha.k_proj_weight.copy_(sep.k_proj.weight)
            mha.v_proj_weight.copy_(sep.v_proj.weight)
        if mha.in_proj_bias is not None:
            mha.in_proj_bias.copy_(torch.cat([sep.q_proj.bias, sep.k_proj.bias,
                                              sep.v_proj.bias]))
        mha.out_proj.weight.copy_(w)
        if mha.out_proj.bias is not None:
            mha.out_proj.bias.copy_(sep.o_proj.bias)
    return mha.train(sep.training)


def working_copy(model: nn.Module, split_attention: bool = False
                 ) -> tuple[nn.Module, dict[str, nn.Module]]:
    """A deep copy of ``model`` with every Hugging Face ``Conv1D`` replaced by the equal
    ``nn.Linear``, every tanh-approximate GELU module by ``nn.GELU(approximate="tanh")``, and
    with ``split_attention`` every ``nn.MultiheadAttention`` (but those with ``add_bias_kv`` or
    ``add_zero_attn``) by the equal :class:`SeparateQKVAttention` and every torchvision Swin
    window or MaxViT attention by its equal of this module (module docstring); ``model`` is
    not modified.

    Returns:
        ``(copy, {module path: the module it replaced})``, for :func:`restore_layers`.
    """
    work = copy.deepcopy(model)
    replaced, new = {}, {}
    for name, m in work.named_modules():
        if is_hf_conv1d(m):
            new[name] = _as_linear(m)
        elif _is_hf(m, _TANH_GELUS):
            new[name] = nn.GELU(approximate="tanh")
        elif split_attention and isinstance(m, nn.MultiheadAttention):
            sep = _as_separate_qkv(m)
            if sep is not None:
                new[name] = sep
        elif split_attention and type(m) in TIED_HEAD_ATTENTION:
            new[name] = copy.deepcopy(m)
            new[name].__class__ = TIED_HEAD_ATTENTION[type(m)][0]  # same state, free width
        if name in new:
            replaced[name] = m
    for name, m in new.items():
        _replace(work, name, m)
    return work, replaced


def _heads(attention: nn.Module) -> int:
    return getattr(attention, "num_heads", None) or attention.n_heads


def restore_layers(model: nn.Module, replaced: dict[str, nn.Module]) -> None:
    """Undo :func:`working_copy`'s replacements in ``model``, in place: each ``Linear`` that
    was a ``Conv1D`` becomes a ``Conv1D`` of its current (possibly pruned) widths with the same
    outputs; each activation gets its original module back; each attention module that kept
    every head becomes the ``nn.MultiheadAttention`` or torchvision class it was, with its
    outputs (one that lost heads stays)."""
    for name, old in replaced.items():
        current = model.get_submodule(name)
        if is_hf_conv1d(old):
            _replace(model, name, _as_conv1d(current, type(old)))
        elif isinstance(old, nn.MultiheadAttention):
            if current.num_heads * current.head_dim == current.embed_dim == old.embed_dim \
                    and current.num_heads == old.num_heads:
                _replace(model, name, _as_multihead(current))
        elif type(old) in TIED_HEAD_ATTENTION:
            if _heads(current) == _heads(old):
                current.__class__ = type(old)
        else:
            _replace(model, name, old)


# module paths (suffixes) of the first FFN layer of a Hugging Face block: GPT-2, LLaMA / Qwen2 /
# Mistral (gate_proj: its unit i is also up_proj's row i), BERT / RoBERTa / ViT
_FFN_ROOTS = ("mlp.c_fc", "mlp.gate_proj", "intermediate.dense")
_FFN_FIELDS = ("intermediate_size", "n_inner")


def update_hf_config(model: nn.Module, widths: dict[str, int]) -> str | None:
    """Set the FFN width of a pruned Hugging Face model's ``config`` (``intermediate_size``, or
    GPT-2's ``n_inner``) to the width every FFN kept, so ``save_pretrained`` /
    ``from_pretrained`` rebuild it; in place.

    Args:
        model: the pruned model (its ``config`` is changed; a model without a transformers
            ``config`` is left alone).
        widths: ``{module path: units kept}`` of the pruned layers (others kept whole).

    Returns:
        None when the config was updated or has no FFN width; else a one-line message saying
        the FFN widths differ per layer, or that a bias the reconstruction added has no config
        field (:func:`_hf_mlp_bias`; LLaMA's ``mlp_bias`` is set), so the config cannot
        describe the model.
    """
    config = getattr(model, "config", None)
    if config is None or not type(config).__module__.startswith("transformers"):
        return None
    field = next((f for f in _FFN_FIELDS if f in config.to_dict()), None)
    roots = [name for name, _ in model.named_modules() if name.endswith(_FFN_ROOTS)]
    if field is None or not roots:
        return None
    width = getattr(config, field) or 4 * config.hidden_size  # GPT-2: n_inner None is 4 d
    kept = {widths.get(name, width) for name in roots}
    bias = _hf_mlp_bias(model, config)
    if len(kept) == 1:
        setattr(config, field, kept.pop())
        return bias
    return (f"the FFN widths differ per layer ({min(kept)} to {max(kept)}), so config.{field} "
            "cannot describe them and from_pretrained will not rebuild this model: save the whole "
            "model with torch.save, or prune with allocation='uniform'"
            + (f"; {bias}" if bias else ""))


_GATED_MLP = ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def _hf_mlp_bias(model: nn.Module, config: Any) -> str | None:
    """A reconstruction folds a constant into each FFN's output projection as a bias
    (docs/method.md §3). LLaMA-style models build ``gate_proj``, ``up_proj`` and ``down_proj``
    without biases unless ``config.mlp_bias``: where the config has that field it is set and
    every one of those layers without a bias gets a zero bias (the outputs do not change, and
    ``from_pretrained`` finds every tensor it builds); where it has none (Qwen2, Mistral) a
    one-line message says ``from_pretrained`` would drop the bias. None when nothing gained a
    bias the config does not describe."""
    layers = [(name, m) for name, m in model.named_modules()
              if name.endswith(_GATED_MLP) and isinstance(m, nn.Linear)]
    gained = [name for name, m in layers if name.endswith("down_proj") and m.bias is not None]
    fields = config.to_dict()
    already = "mlp_bias" not in fields and all(m.bias is not None for _, m in layers)
    if not gained or fields.get("mlp_bias") is True or already:  # biases the config builds
        return None
    if "mlp_bias" not in fields:
        return (f"the reconstruction gave {gained[0]} (and {len(gained) - 1} more) a bias that "
                f"{type(config).__name__} has no field for, so from_pretrained would drop it and "
                "change the outputs: save the whole model with torch.save or coreprune.save, or "
                "prune with compensate='none'")
    config.mlp_bias = True
    for _, m in layers:
        if m.bias is None:
            m.bias = nn.Parameter(torch.zeros(m.out_features, dtype=m.weight.dtype,
                                              device=m.weight.device))
    return None


def update_hf_head_config(model: nn.Module, heads: list[tuple[int, int, int]],
                          reads_head_dim: bool = False) -> str | None:
    """Set the head counts of a pruned Hugging Face model's ``config``
    (``num_attention_heads``, ``num_key_value_heads``, and ``head_dim``, which then no longer
    follows from ``hidden_size``) when every attention layer kept the same heads; in place.

    Args:
        model: the pruned model (a model without a transformers ``config`` is left alone).
        heads: ``(query heads, key/value heads, head width)`` of every attention layer.
        reads_head_dim: the attention layers take their head width from ``config.head_dim``
            when it is set (LLaMA, Qwen2, Mistral), so it may be added to a config without it.

    Returns:
        None when the config was updated (or there is none); else a one-line message: the
        counts differ per layer, or the config has no ``head_dim`` field (GPT-2, BERT: their
        head width is ``hidden_size / num_attention_heads``), so ``from_pretrained`` cannot
        rebuild the model.
    """
    config = getattr(model, "config", None)
    if config is None or not type(config).__module__.startswith("transformers") or not heads:
        return None
    if len(set(heads)) > 1:
        counts = sorted({h for h, _, _ in heads})
        return (f"the attention layers keep different head counts ({counts[0]} to "
                f"{counts[-1]}), so the config cannot describe them and from_pretrained will not "
                "rebuild this model: save the whole model with torch.save, or prune with "
                "keep_ratio or params_removed (the same heads in every layer)")
    (n_q, n_kv, head_dim), = set(heads)
    fields = config.to_dict()
    if "head_dim" not in fields and not reads_head_dim \
            and getattr(config, "hidden_size", None) != n_q * head_dim:
        return (f"config.{type(config).__name__} derives the head width from hidden_size, so it "
                f"cannot state {n_q} heads of width {head_dim} and from_pretrained will not "
                "rebuild this model: save the whole model with torch.save")
    config.num_attention_heads = n_q
    if "num_key_value_heads" in fields:
        config.num_key_value_heads = n_kv
    if "head_dim" in fields or reads_head_dim:
        config.head_dim = head_dim
    return None
