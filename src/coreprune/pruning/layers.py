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
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

__all__ = ["is_hf_conv1d", "working_copy", "restore_layers", "update_hf_config"]

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


def working_copy(model: nn.Module) -> tuple[nn.Module, dict[str, nn.Module]]:
    """A deep copy of ``model`` with every Hugging Face ``Conv1D`` replaced by the equal
    ``nn.Linear`` and every tanh-approximate GELU module by ``nn.GELU(approximate="tanh")``
    (module docstring); ``model`` is not modified.

    Returns:
        ``(copy, {module path: the module it replaced})``, for :func:`restore_layers`.
    """
    work = copy.deepcopy(model)
    replaced = {name: m for name, m in work.named_modules()
                if is_hf_conv1d(m) or _is_hf(m, _TANH_GELUS)}
    for name, m in replaced.items():
        _replace(work, name, _as_linear(m) if is_hf_conv1d(m)
                 else nn.GELU(approximate="tanh"))
    return work, replaced


def restore_layers(model: nn.Module, replaced: dict[str, nn.Module]) -> None:
    """Undo :func:`working_copy`'s replacements in ``model``, in place: each ``Linear`` that
    was a ``Conv1D`` becomes a ``Conv1D`` of its current (possibly pruned) widths with the same
    outputs; each activation gets its original module back."""
    for name, old in replaced.items():
        _replace(model, name, _as_conv1d(model.get_submodule(name), type(old))
                 if is_hf_conv1d(old) else old)


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
