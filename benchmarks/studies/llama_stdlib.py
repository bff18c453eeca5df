"""Does data-free reconstruction keep a LLaMA-style model's language modelling when the neurons
of its gated MLPs are pruned? A Hugging Face ``LlamaForCausalLM`` (4 layers, width 128, 4 query
heads over 2 key/value heads, RMSNorm, gated SiLU MLP of 384; bytes as tokens) trained on the
Python standard library's source as in ``gpt_stdlib.py``; every block's MLP keeps 70 / 50 / 30%
of its neurons (one neuron: a row of ``gate_proj`` and ``up_proj``, a column of ``down_proj``;
attention, embeddings and the residual stream stay whole), in bits per byte on held-out stdlib
files before fine-tuning, beside Torch-Pruning magnitude at the same widths and a
data-dependent peer (the mean absolute hidden unit ``act(gate) * up`` on a calibration batch of
training text). The default reconstructs the removed neurons under the RMSNorm moment model
with the gated product's moments drawn from the model (``coreprune.reconstruction.
gated_moments``). Needs ``pip install coreprune[hf]``.

    python benchmarks/studies/llama_stdlib.py --seeds 0 1   # ~12 minutes per seed

Writes ``benchmarks/results/studies/llama_stdlib.{log,json}``.
"""

from __future__ import annotations

import sys

import torch
import transformers as tf
from gpt_stdlib import CONTEXT, SETTINGS, ActivationNorm, pruned_bpb_study

KEEP = (0.7, 0.5, 0.3)


def llama(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return tf.LlamaForCausalLM(tf.LlamaConfig(
        vocab_size=256, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=CONTEXT,
        bos_token_id=0, eos_token_id=0, pad_token_id=0, tie_word_embeddings=False))


class HiddenNorm(ActivationNorm):
    """Data-dependent peer: a hidden unit's mean absolute value ``|act(gate) * up|`` (the input
    of ``down_proj``) on a calibration batch."""

    @staticmethod
    def taps(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module, bool]]:
        return [(f"model.layers.{b}.mlp.gate_proj", layer.mlp.down_proj, True)
                for b, layer in enumerate(model.model.layers)]


def main(argv: list[str] | None = None) -> int:
    return pruned_bpb_study(
        "llama_stdlib", "LLaMA-style (4 x 128, gated MLP 384, RMSNorm, 4 heads over 2 key/value "
        "heads), MLP neurons pruned", llama, SETTINGS, KEEP, "MLP keeps {keep:.0%}", HiddenNorm,
        argv)


if __name__ == "__main__":
    sys.exit(main())
