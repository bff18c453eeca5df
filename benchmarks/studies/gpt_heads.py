"""Which data-free head score keeps a small GPT's language modelling when whole attention heads
are pruned (``units="heads"``)? The Hugging Face GPT-2 of ``gpt_stdlib.py`` (4 layers of 4 heads
of width 32, trained the same way on the Python standard library's source), every layer keeping
3 / 2 / 1 of its 4 heads (FFN, embeddings and the residual stream stay whole), in bits per byte
on held-out stdlib files before fine-tuning, beside a data-dependent peer (a head's mean output
norm on a calibration batch of training text, marked data-dependent). Needs
``pip install coreprune[hf]``.

    python benchmarks/studies/gpt_heads.py --seeds 0 1   # ~12 minutes per seed

Writes ``benchmarks/results/studies/gpt_heads.{log,json}``.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from gpt_stdlib import gpt, pruned_bpb_study

from coreprune.pruning.heads import HeadImportance

KEEP = (0.75, 0.5, 0.25)
SETTINGS = (  # (label, method, Pruner options); activation-norm: the data-dependent peer
    ("output-moment (default)", "output-moment", {}),
    ("output-moment+mean", "output-moment", {"compensate": "mean"}),
    ("magnitude (Torch-Pruning's group L2)", "magnitude", {}),
    ("random", "random", {}),
    ("output-norm (data-dep.)", "activation-norm", {}),
)


class HeadOutputNorm(HeadImportance):
    """Data-dependent peer: the mean norm of each head's output (its columns of ``c_proj``
    times its attention output) on a calibration batch."""

    name = "output-norm"

    def __init__(self, model: torch.nn.Module, calibration: torch.Tensor) -> None:
        self.norms: list[np.ndarray] = []
        hooks = []
        for block in model.transformer.h:
            attn = block.attn

            def hook(m, inputs, out, attn=attn):  # c_proj's input: heads side by side
                z = inputs[0].reshape(*inputs[0].shape[:-1], attn.num_heads, attn.head_dim)
                w = m.weight.reshape(attn.num_heads, attn.head_dim, -1)  # Conv1D: (in, out)
                y = torch.einsum("btnd,ndo->btno", z, w)
                self.norms.append(y.norm(dim=-1).mean((0, 1)).double().numpy())

            hooks.append(attn.c_proj.register_forward_hook(hook))
        with torch.no_grad():
            model(calibration, use_cache=False)
        for h in hooks:
            h.remove()

    def scores(self, layer, arrays, rng) -> np.ndarray:
        return self.norms[int(layer.name.split(".")[2])]  # transformer.h.I.attn


def main(argv: list[str] | None = None) -> int:
    return pruned_bpb_study(
        "gpt_heads", "GPT-2 (4 x 128, 4 heads of width 32), attention heads pruned", gpt,
        SETTINGS, KEEP, "keeps {keep:.0%} of heads", HeadOutputNorm, argv, units="heads")


if __name__ == "__main__":
    sys.exit(main())
