"""Which data-free head score and compensation keep a trained vision transformer's accuracy
when whole attention heads are pruned (``units="heads"``)? coreprune's zoo ViT (7x7 patches,
16 tokens of width 64, 4 pre-LayerNorm blocks of 4 heads of width 16, FFN 256) trained on
Fashion-MNIST (Adam, 4 epochs, lr 1e-3) from 3 seeds; every block keeps 3 / 2 / 1 of its 4
heads (the FFN and the residual stream stay whole); accuracy before fine-tuning on a seeded
2,000-image test subset, mean over the trained models, beside Torch-Pruning's own head pruning
(``MetaPruner(prune_num_heads=True)``, L2 magnitude). No data is read by any pruning step.

``--model torchvision`` asks the same of torchvision's ``VisionTransformer`` at the same sizes
(a one-channel patch embedding): its attention is ``nn.MultiheadAttention``, which coreprune
cuts as a ``SeparateQKVAttention`` (``coreprune.pruning.layers``).

    python benchmarks/studies/vit_heads.py                      # ~15 minutes on 2 CPU cores
    python benchmarks/studies/vit_heads.py --model torchvision  # about as long

Writes ``benchmarks/results/studies/vit_heads.{log,json}`` (``vit_heads_torchvision`` for
torchvision's).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import torch
import torch_pruning as tp
import torchvision
from _outputs import write_study
from torch import nn

from coreprune.data import load_dataset
from coreprune.errors import CorepruneWarning
from coreprune.experiment import prune_model
from coreprune.metrics import count_params
from coreprune.models import ViT
from coreprune.train import evaluate, train

SEEDS = (0, 1, 2)
KEEP = (0.75, 0.5, 0.25)
SETTINGS = (  # (label, method, Pruner options); tp-heads: Torch-Pruning's head pruning
    ("output-moment (default)", "output-moment", {}),
    ("output-moment+mean", "output-moment", {"compensate": "mean"}),
    ("output-moment+value-bias", "output-moment", {"compensate": "value-bias"}),
    ("magnitude", "magnitude", {}),
    ("magnitude+mean", "magnitude", {"compensate": "mean"}),
    ("random", "random", {}),
    ("random+mean", "random", {"compensate": "mean"}),
    ("tp-heads (Torch-Pruning, L2 magnitude)", "tp-heads", {}),
)


def torchvision_vit() -> torchvision.models.VisionTransformer:
    """torchvision's ViT at the zoo ViT's sizes (7x7 patches of a 28x28 image, width 64, 4
    blocks of 4 heads, FFN 256), its patch embedding reading one channel."""
    model = torchvision.models.VisionTransformer(28, 7, num_layers=4, num_heads=4, hidden_dim=64,
                                                 mlp_dim=256, num_classes=10)
    model.conv_proj = nn.Conv2d(1, 64, kernel_size=7, stride=7)
    return model


def torch_pruning_heads(model: nn.Module, keep: float, x: torch.Tensor) -> nn.Module:
    """Torch-Pruning 1.6's head pruning of ``model``'s attention layers (its recipe for timm
    ViTs: the zoo ViT's fused ``qkv`` Linears; torchvision's ``nn.MultiheadAttention`` modules):
    ``1 - keep`` of every layer's heads. A channel ratio of 0 prunes nothing at all, so it is
    1e-6 with the patch, FFN and classifier layers ignored: only whole heads go (the parameter
    counts equal coreprune's)."""
    import copy

    model = copy.deepcopy(model)
    if isinstance(model, ViT):
        attn = {b.attn.qkv: b.attn for b in model.blocks}
        heads = {qkv: a.heads for qkv, a in attn.items()}
        ignored = [model.head, model.patch, *(m for b in model.blocks for m in (b.fc1, b.fc2))]
    else:
        attn = {b.self_attention: b.self_attention for b in model.encoder.layers}
        heads = {m: m.num_heads for m in attn}
        ignored = [model.heads, model.conv_proj,
                   *(m for b in model.encoder.layers for m in b.mlp if isinstance(m, nn.Linear))]
    pruner = tp.pruner.MetaPruner(
        model, x, importance=tp.importance.GroupMagnitudeImportance(p=2), pruning_ratio=1e-6,
        num_heads=heads, prune_num_heads=True, prune_head_dims=False,
        head_pruning_ratio=1.0 - keep, ignored_layers=ignored)
    pruner.step()
    for key, a in attn.items():
        if isinstance(a, nn.MultiheadAttention):
            a.num_heads = pruner.num_heads[key]
            a.head_dim = a.embed_dim // a.num_heads
        else:
            a.heads = pruner.num_heads[key]
    return model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("zoo", "torchvision"), default="zoo")
    args = ap.parse_args(argv)
    build = ViT if args.model == "zoo" else torchvision_vit
    warnings.simplefilter("ignore", CorepruneWarning)
    torch.set_num_threads(2)
    tr, te = load_dataset("fashion-mnist")
    te = te.subset(2000, seed=0)
    x = te.x[:2]
    result: dict = {"seeds": list(SEEDS), "unpruned": [], "rows": {}, "failed": {}}
    failed = result["failed"]  # setting -> why it could not prune
    t0 = time.perf_counter()
    for seed in SEEDS:
        torch.manual_seed(seed)
        model = build()
        train(model, tr, seed=seed, progress=False, epochs=4, lr=1e-3, optimizer="adam")
        model.eval()
        result["unpruned"].append(evaluate(model, te))
        print(f"seed {seed}: {result['unpruned'][-1]:.2f} ({time.perf_counter() - t0:.0f} s)",
              flush=True)
        for label, method, options in SETTINGS:
            for keep in KEEP:
                if method != "tp-heads":
                    small = prune_model(model, method, {"keep_ratio": keep}, 0, x,
                                        units="heads", **options)[0]
                    acc = evaluate(small.eval(), te)
                else:
                    try:
                        small = torch_pruning_heads(model, keep, x)
                        if count_params(small) == count_params(model):
                            raise RuntimeError("Torch-Pruning removed no parameter")
                        acc = evaluate(small.eval(), te)
                    except Exception as exc:  # the peer's failure is a result of the table
                        failed[label] = f"{type(exc).__name__}: {exc}"[:200]
                        print(f"  {label}: {failed[label]}", flush=True)
                        small, acc = model, float("nan")
                removed = 1 - count_params(small) / count_params(model)
                result["rows"].setdefault(label, {}).setdefault(str(keep), []).append(
                    [acc, removed])
                print(f"  {label:40s} keeps {keep:.0%} of heads: {acc:.2f} ({removed:.1%})",
                      flush=True)
    base = np.mean(result["unpruned"])
    what = ("Zoo ViT" if args.model == "zoo" else
            "torchvision VisionTransformer (nn.MultiheadAttention)")
    lines = [f"{what} (4 blocks of 4 heads, width 64), Fashion-MNIST, 4 epochs, seeds "
             f"{list(SEEDS)}: {base:.2f} unpruned (mean; "
             + ", ".join(f"{a:.2f}" for a in result["unpruned"]) + f") on {len(te)} test "
             f"images, {count_params(model)} parameters; {time.perf_counter() - t0:.0f} s",
             "Accuracy before fine-tuning, mean (sd) over the trained models (parameters "
             "removed).", "",
             "| setting | " + " | ".join(f"keeps {k:.0%} of heads" for k in KEEP) + " |",
             "|---" * (len(KEEP) + 1) + "|"]
    for label, per in result["rows"].items():
        if label in failed:
            lines.append(f"| {label} | " + " | ".join([f"failed: {failed[label]}"] * len(KEEP))
                         + " |")
            continue
        cells = []
        for k in KEEP:
            accs = [r[0] for r in per[str(k)]]
            cells.append(f"{np.mean(accs):.2f} ({np.std(accs):.2f}; {per[str(k)][0][1]:.1%})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    write_study("vit_heads" if args.model == "zoo" else "vit_heads_torchvision", lines, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
