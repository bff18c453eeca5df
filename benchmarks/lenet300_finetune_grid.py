"""LeNet-300-100 on Fashion-MNIST, coreset at 90% of parameters removed: does any fine-tuning
recipe close the gap to the unpruned model to 1.0 point (issue 2)?

Each recipe fine-tunes the same pruned models (seeds 0, 1, 2; ``--method``, by default
``coreset-scaled``, the coreset default of 0.1 that the committed results were measured with;
it is deterministic, so the seed only changes the shuffling) and reports the test accuracy. For
reference, the pruned shapes are also trained from scratch with the unpruned model's recipe.

Regenerate (about 7 minutes on 2 CPU cores):

    python benchmarks/lenet300_finetune_grid.py

Writes ``benchmarks/results/lenet300_finetune_grid.json`` and prints the table. Uses the model
cached in ``runs/lenet300_fmnist.pt`` (trained as in ``benchmarks/lenet300_fmnist.py`` if
missing).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
from lenet300_fmnist import trained_model
from torch import nn

import coreprune
from coreprune.data import load_dataset
from coreprune.io import write_json
from coreprune.metrics import count_params
from coreprune.train import evaluate, finetune, train

ROOT = Path(__file__).resolve().parent
RECIPES: dict[str, dict] = {
    "default: 20 ep SGD lr 0.05": {},
    "40 ep SGD lr 0.05": {"epochs": 40},
    "20 ep SGD lr 0.02": {"lr": 0.02},
    "20 ep SGD lr 0.1": {"lr": 0.1},
    "20 ep SGD lr 0.05 wd 1e-4": {"weight_decay": 1e-4},
    "20 ep SGD lr 0.05 batch 64": {"batch_size": 64},
    "40 ep Adam lr 1e-3": {"epochs": 40, "lr": 1e-3, "optimizer": "adam"},
    "20 ep SGD lr 0.05 + distillation (T=4)": {"teacher": True},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="coreset-scaled")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--ratio", type=float, default=0.9)
    args = ap.parse_args()
    torch.set_num_threads(2)
    tr, te = load_dataset("fashion-mnist")
    model = trained_model(Path("runs/lenet300_fmnist.pt"), tr)
    acc0 = evaluate(model, te)
    rows = []
    for name, recipe in RECIPES.items():
        opts = dict(recipe)
        if opts.pop("teacher", False):
            opts["teacher"] = model
        accs = []
        for seed in range(args.seeds):
            pruned = coreprune.prune(model, method=args.method, params_removed=args.ratio,
                                     seed=seed)
            finetune(pruned, tr, seed=seed, progress=False, **opts)
            accs.append(evaluate(pruned, te))
        rows.append({"recipe": name, "accuracies": accs, "mean": statistics.mean(accs),
                     "gap": acc0 - statistics.mean(accs)})
        print(f"{name:42s} {statistics.mean(accs):6.2f}  gap {acc0 - statistics.mean(accs):5.2f}"
              f"  per seed {accs}", flush=True)
    # reference: the pruned shapes trained from scratch with the unpruned model's recipe
    # (784-33-16-10 is the widest second layer the 90% budget, 26,661 of 266,610, allows next to
    # 33 first-layer units, the most the budget allows)
    scratch = []
    for h2 in (11, 16):
        accs = []
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            net = nn.Sequential(nn.Flatten(), nn.Linear(784, 33), nn.ReLU(), nn.Linear(33, h2),
                                nn.ReLU(), nn.Linear(h2, 10))
            train(net, tr, epochs=15, lr=1e-3, optimizer="adam", seed=seed, progress=False)
            accs.append(evaluate(net, te))
        scratch.append({"shape": f"784-33-{h2}-10", "params": count_params(net),
                        "accuracies": accs, "mean": statistics.mean(accs)})
        print(f"from scratch 784-33-{h2}-10 ({count_params(net)} params), 15 ep Adam   "
              f"{statistics.mean(accs):6.2f}  per seed {accs}", flush=True)
    out = ROOT / "results" / "lenet300_finetune_grid.json"
    write_json(out, {"acc_unpruned": acc0, "params_removed": args.ratio,
                      "rows": rows, "from_scratch": scratch}, overwrite=True)
    print(f"unpruned {acc0:.2f}; written {out.relative_to(ROOT.parent)}")


if __name__ == "__main__":
    main()
