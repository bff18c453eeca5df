"""Does data-free pruning keep a small GPT's language modelling when its FFN neurons are pruned?
A Hugging Face GPT-2 (4 layers, width 128, 4 heads, FFN 512, GELU-tanh, ``Conv1D`` layers;
bytes as tokens) trained here on the Python standard library's own source, every block's FFN
keeping 70 / 50 / 30% of its neurons (attention, embeddings and the residual stream stay
whole), measured in bits per byte on held-out stdlib files before and after a short fine-tune,
beside Torch-Pruning magnitude at the same widths and a data-dependent peer (the mean absolute
FFN activation on a calibration batch of training text). Needs ``pip install coreprune[hf]``.

    python benchmarks/studies/gpt_stdlib.py --seeds 0 1 --threads 1  # ~15 minutes per seed

The corpus: the ``*.py`` files at the top of ``sysconfig.get_paths()["stdlib"]`` in sorted
order; every 10th file is held out. Which files these are depends on the Python version (the
log names it). Writes ``benchmarks/results/studies/gpt_stdlib.{log,json}``.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import sysconfig
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import transformers as tf
from _outputs import write_study

from coreprune.errors import CorepruneWarning
from coreprune.experiment import prune_model
from coreprune.importance import ImportanceMethod

CONTEXT, BATCH, STEPS, LR = 128, 32, 1000, 2e-3
FINETUNE_STEPS, FINETUNE_LR = 50, 3e-4
TRAIN_BYTES, HELD_OUT_BYTES, EVAL_WINDOWS, CALIBRATION = 3_000_000, 400_000, 96, 8
KEEP = (0.7, 0.5, 0.3)
SETTINGS = (  # (label, method, Pruner options); tp-magnitude and activation-norm: peers
    ("greedy (default)", "greedy", {}),
    ("greedy+none", "greedy", {"compensate": "none"}),
    ("coreset+reconstruct", "coreset", {"compensate": "reconstruct"}),
    ("l1", "l1", {}),
    ("l1+reconstruct", "l1", {"compensate": "reconstruct"}),
    ("random", "random", {}),
    ("tp-magnitude", "tp-magnitude", {}),
    ("activation-norm (data-dep.)", "activation-norm", {}),
)


def corpus() -> tuple[torch.Tensor, torch.Tensor, int]:
    """(training bytes, held-out bytes, number of files) of the stdlib source."""
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    parts: tuple[list[bytes], list[bytes]] = ([], [])
    for i, f in enumerate(files):
        parts[i % 10 == 0].append(f.read_bytes())
    train, held = (b"".join(p) for p in parts)
    as_tensor = lambda b: torch.tensor(np.frombuffer(b, dtype=np.uint8).astype(np.int64))  # noqa: E731
    return as_tensor(train[:TRAIN_BYTES]), as_tensor(held[:HELD_OUT_BYTES]), len(files)


def windows(data: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    starts = torch.randint(0, data.numel() - CONTEXT, (n,), generator=gen)
    return torch.stack([data[s:s + CONTEXT] for s in starts.tolist()])


def gpt(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return tf.GPT2LMHeadModel(tf.GPT2Config(
        vocab_size=256, n_positions=CONTEXT, n_embd=128, n_layer=4, n_head=4, bos_token_id=0,
        eos_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))


def fit(model: torch.nn.Module, data: torch.Tensor, steps: int, lr: float, seed: int) -> None:
    """AdamW on random windows of ``data`` (cosine decay), in place."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    model.train()
    for _ in range(steps):
        x = windows(data, BATCH, gen)
        loss = model(x, labels=x, use_cache=False).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()


@torch.no_grad()
def bits_per_byte(model: torch.nn.Module, held: torch.Tensor) -> float:
    x = windows(held, EVAL_WINDOWS, torch.Generator().manual_seed(12345))
    return float(model(x, labels=x, use_cache=False).loss) / math.log(2)


class ActivationNorm(ImportanceMethod):
    """Data-dependent peer: a unit's mean absolute output on a calibration batch."""

    name = "activation-norm"
    data_independent = False

    @staticmethod
    def taps(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module, bool]]:
        """``(group name, module, whether the units are its input)``: where each group's units
        are read (GPT-2: the FFN activation's output)."""
        return [(f"transformer.h.{b}.mlp.c_fc", block.mlp.act, False)
                for b, block in enumerate(model.transformer.h)]

    def __init__(self, model: torch.nn.Module, calibration: torch.Tensor) -> None:
        self.mean_abs: dict[str, np.ndarray] = {}

        def record(name: str, of_input: bool):
            return lambda m, i, o: self.mean_abs.__setitem__(
                name, (i[0] if of_input else o).abs().mean(dim=(0, 1)).double().numpy())

        hooks = [m.register_forward_hook(record(name, of_input))
                 for name, m, of_input in self.taps(model)]
        with torch.no_grad():
            model(calibration, use_cache=False)
        for h in hooks:
            h.remove()

    def scores(self, units) -> np.ndarray:
        return self.mean_abs[units.name]


def pruned_bpb_study(name: str, title: str, make_model, settings: tuple, keep: tuple,
                     column: str, make_peer, argv: list[str] | None, finetune: bool = False,
                     **prune_options) -> int:
    """One study on this corpus: for each seed (``--seeds``), ``make_model(seed)`` trained as
    here, then pruned with every ``(label, method, options)`` of ``settings``
    (``"activation-norm"``: the data-dependent peer ``make_peer(model, calibration)``) to each
    keep ratio of ``keep`` (``prune_options`` added), in bits per byte on the held-out text
    before fine-tuning and, with ``finetune``, after ``FINETUNE_STEPS`` steps; the table (mean
    over seeds) goes to ``results/studies/NAME.{log,json}``. ``column`` names a column
    (``{keep}``: the ratio)."""
    ap = argparse.ArgumentParser(description=title)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", CorepruneWarning)
    train, held, n_files = corpus()
    tuned = f"; fine-tune: {FINETUNE_STEPS} steps, lr {FINETUNE_LR}" if finetune else \
        " before fine-tuning"
    lines = [f"# {title} (Python {platform.python_version()} stdlib source, {n_files} files; "
             f"{train.numel():,} training bytes, {held.numel():,} held-out bytes)", "",
             f"Trained {STEPS} AdamW steps of {BATCH} x {CONTEXT} bytes (lr {LR}); bits per byte "
             f"on {EVAL_WINDOWS} held-out windows{tuned}. Seeds {args.seeds} (training and data "
             "order); mean over seeds.", ""]
    result: dict = {"seeds": args.seeds, "unpruned": [], "rows": {}}
    t0 = time.perf_counter()
    x = torch.randint(0, 256, (1, CONTEXT), generator=torch.Generator().manual_seed(0))  # shapes
    for seed in args.seeds:
        model = make_model(seed)
        fit(model, train, STEPS, LR, seed)
        result["unpruned"].append(bits_per_byte(model, held))
        print(f"seed {seed}: unpruned {result['unpruned'][-1]:.3f} bits/byte "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        calibration = windows(train, CALIBRATION, torch.Generator().manual_seed(seed + 1))
        for label, method, options in settings:
            chosen = make_peer(model, calibration) if method == "activation-norm" else method
            for k in keep:
                small = prune_model(model, chosen, {"keep_ratio": k}, 0, x, **prune_options,
                                    **options)[0]
                cell = [bits_per_byte(small, held)]
                if finetune:
                    fit(small, train, FINETUNE_STEPS, FINETUNE_LR, seed + 2)
                    cell.append(bits_per_byte(small, held))
                result["rows"].setdefault(label, {}).setdefault(str(k), []).append(
                    cell if finetune else cell[0])
                print(f"  {label:40s} {column.format(keep=k)}: "
                      f"{' -> '.join(f'{b:.3f}' for b in cell)}", flush=True)
    lines += [f"Unpruned: {float(np.mean(result['unpruned'])):.3f} bits/byte.", "",
              "| method | " + " | ".join(column.format(keep=k) for k in keep) + " |",
              "|---" * (len(keep) + 1) + "|"]
    for label, per in result["rows"].items():
        cells = [" / ".join(f"{v:.3f}" for v in np.atleast_1d(np.mean(per[str(k)], axis=0)))
                 for k in keep]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    write_study(name, lines, result)
    return 0


def main(argv: list[str] | None = None) -> int:
    return pruned_bpb_study(
        "gpt_stdlib", "GPT-2 (4 x 128, FFN 512), FFN neurons pruned", gpt, SETTINGS, KEEP,
        "FFN keeps {keep:.0%}: before / after fine-tune", ActivationNorm, argv, finetune=True)


if __name__ == "__main__":
    sys.exit(main())
