"""ResNet-56 / VGG-16 on Fashion-MNIST padded to 32x32: train, then prune with every method at
several compression levels and seeds, before and after a short fine-tune.

Regenerate (each model ran on the lent GPU; on a CPU use fewer epochs and say so):

    python benchmarks/cnn_fmnist32.py --model resnet56 --epochs 15 --device cuda
    python benchmarks/cnn_fmnist32.py --model vgg16 --epochs 15 --device cuda

Writes ``benchmarks/results/<model>_fmnist32.json`` (records with the keys of
``coreprune.experiment.RECORD_KEYS``) and prints a table of means over seeds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from coreprune import io
from coreprune.data import Split, load_dataset
from coreprune.experiment import prune_and_evaluate
from coreprune.models import build_model
from coreprune.train import evaluate, train

ROOT = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("resnet20", "resnet56", "vgg16"), default="resnet56")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--ratios", default="0.5")
    ap.add_argument("--methods", default="coreset,coreset-theory,mussay,l1,l2,random")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--finetune-epochs", type=int, default=2)
    ap.add_argument("--finetune-lr", type=float, default=0.01)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--train-subset", type=int, default=0, help="use only N training images")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    tr, te = load_dataset("fashion-mnist-32", args.data_root)
    if args.train_subset:
        tr = tr.subset(args.train_subset)
    dev = torch.device(args.device)
    tr, te = Split(tr.x.to(dev), tr.y.to(dev)), Split(te.x.to(dev), te.y.to(dev))
    torch.manual_seed(0)
    model = build_model(args.model, in_channels=1).to(dev)
    t0 = time.time()
    train(model, tr, epochs=args.epochs, lr=args.lr, optimizer="sgd", weight_decay=5e-4,
          batch_size=128, seed=0, device=dev, progress=False)
    acc0 = evaluate(model, te, device=dev)
    print(f"{args.model}: {args.epochs} epochs in {time.time() - t0:.0f}s on {dev}, "
          f"test accuracy {acc0:.2f}%", flush=True)
    out = args.out or ROOT / "results" / f"{args.model}_fmnist32.json"
    records: list[dict] = []
    for ratio in [float(r) for r in args.ratios.split(",")]:
        for method in args.methods.split(","):
            for seed in range(args.seeds):
                rec, _, _ = prune_and_evaluate(
                    model, method, {"params_removed": ratio}, seed, tr, te, args.model,
                    "fashion-mnist-32", finetune_epochs=args.finetune_epochs,
                    finetune_lr=args.finetune_lr, acc_unpruned=acc0, device=dev,
                    finetune_optimizer="sgd")
                rec["train_epochs"] = args.epochs
                rec["device"] = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
                records.append(rec)
                print(f"{method:15s} ratio {ratio} seed {seed} removed "
                      f"{rec['params_removed']:.3f} pruned {rec['acc_pruned']:6.2f} "
                      f"fine-tuned {rec['acc_finetuned']:6.2f} ({rec['prune_seconds']:.1f}s)",
                      flush=True)
                io.write_json(out, records, overwrite=True)  # a cut-off run keeps its records
    print("\nmethod           ratio  pruned (mean)  fine-tuned (mean)")
    for ratio in sorted({r["target"]["params_removed"] for r in records}):
        for method in args.methods.split(","):
            rs = [r for r in records if r["method"] == method and
                  r["target"]["params_removed"] == ratio]
            print(f"{method:15s} {ratio:5.2f}  {statistics.mean(r['acc_pruned'] for r in rs):6.2f}"
                  f"         {statistics.mean(r['acc_finetuned'] for r in rs):6.2f}")


if __name__ == "__main__":
    main()
