"""LeNet-300-100 on Fashion-MNIST: every method at 90% of parameters removed, 5 seeds
(fine-tuning: 20 epochs of SGD, lr 0.05, cosine, gradients clipped to norm 5), the coreset also
under the sensitivity allocation rule, plus the METHOD §4 ablation of the coreset's settings
(before fine-tuning).

Regenerate (about 5 minutes on 2 CPU cores):

    python benchmarks/lenet300_fmnist.py

Writes ``benchmarks/results/lenet300_fmnist.json`` (one record per run) and
``benchmarks/results/lenet300_fmnist_ablation.json``, and prints both tables. The trained
model is cached in ``runs/lenet300_fmnist.pt`` (trained here if missing: 15 epochs of Adam,
seed 0).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from coreprune import io
from coreprune.data import load_dataset
from coreprune.experiment import prune_and_evaluate
from coreprune.models import build_model
from coreprune.pruning import Pruner
from coreprune.train import evaluate, train

ROOT = Path(__file__).resolve().parent
METHODS = ["coreset", "coreset-scaled", "coreset-theory", "mussay", "l1", "l2", "random"]
# (label, method, Pruner options): every method, plus the coreset under the sensitivity rule
VARIANTS = [(m, m, {}) for m in METHODS] + [
    ("coreset, sensitivity allocation", "coreset", {"allocation": "sensitivity"})]
PV = dict(scaling="outgoing_x_incoming_norm")  # ||p_i|| v_i
ABLATION = {
    "theory (span, ||p||v, sample)": dict(projection=None, selection="sample", **PV),
    "span, ||p||v, topk": dict(projection=None, **PV),
    "span, v, topk": dict(projection=None),
    "k=8, v, topk (default)": dict(),
    "k=8, ||p||v, topk (coreset-scaled)": dict(PV),
    "k=8, ||p||v, sample": dict(selection="sample", **PV),
    "k=8, v, sample": dict(selection="sample"),
    "k=8, v, sample, no fold": dict(selection="sample", fold=False),
    "auto 0.9, v, topk": dict(projection="auto"),
    "k=4, v, topk": dict(projection=4),
    "k=16, v, topk": dict(projection=16),
    "k=8, ||v||p, topk": dict(scaling="incoming_x_outgoing_norm"),
}


def trained_model(path: Path, train_split) -> torch.nn.Module:
    if path.exists():
        return io.load(path)
    torch.manual_seed(0)
    model = build_model("lenet300")
    train(model, train_split, epochs=15, lr=1e-3, seed=0, progress=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    io.save(model, path, {"dataset": "fashion-mnist", "epochs": 15, "seed": 0})
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--ratio", type=float, default=0.9)
    ap.add_argument("--finetune-epochs", type=int, default=20)
    ap.add_argument("--checkpoint", type=Path, default=Path("runs/lenet300_fmnist.pt"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    tr, te = load_dataset("fashion-mnist")
    model = trained_model(args.checkpoint, tr)
    acc0 = evaluate(model, te)
    print(f"unpruned test accuracy {acc0:.2f}%")
    records = []
    for label, method, opts in VARIANTS:
        for seed in range(args.seeds):
            rec, _, _ = prune_and_evaluate(model, method, {"params_removed": args.ratio}, seed,
                                           tr, te, "lenet300", "fashion-mnist",
                                           finetune_epochs=args.finetune_epochs,
                                           acc_unpruned=acc0, **opts)
            rec["label"] = label
            records.append(rec)
            print(f"{label:15s} seed {seed}  removed {rec['params_removed']:.3f}  pruned "
                  f"{rec['acc_pruned']:6.2f}  fine-tuned {rec['acc_finetuned']:6.2f}", flush=True)
    io.write_json(ROOT / "results" / "lenet300_fmnist.json", records, overwrite=True)
    print("\nmethod                           pruned (mean ± sd)   fine-tuned (mean ± sd)")
    for label, _, _ in VARIANTS:
        a = [r["acc_pruned"] for r in records if r["label"] == label]
        b = [r["acc_finetuned"] for r in records if r["label"] == label]
        print(f"{label:32s} {statistics.mean(a):6.2f} ± {statistics.pstdev(a):4.2f}     "
              f"{statistics.mean(b):6.2f} ± {statistics.pstdev(b):4.2f}")
    ablation = []
    for name, opts in ABLATION.items():
        accs = []
        for seed in range(args.seeds if "sample" in str(opts) else 1):
            pruner = Pruner("coreset", params_removed=args.ratio, seed=seed, **opts)
            pm = pruner.fit_transform(model)
            accs.append(evaluate(pm, te))
        ablation.append({"setting": name, "options": opts, "acc_pruned": accs,
                         "mean": statistics.mean(accs)})
        print(f"ablation {name:34s} {statistics.mean(accs):6.2f}  {accs}", flush=True)
    io.write_json(ROOT / "results" / "lenet300_fmnist_ablation.json", ablation, overwrite=True)
    print(json.dumps({"acc_unpruned": acc0}))


if __name__ == "__main__":
    main()
