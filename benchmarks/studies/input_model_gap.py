"""How much of the data-free gap on MLPs is the input model, and where does greedy's fold fail?
Diagnostics that read training data (never what the library does): the same greedy selection
and least-squares fold with (a) the prior N(0, I) (the library's default), (b) a Gaussian with
the data's input mean and covariance, (c) the empirical moments of 20,000 training inputs
pushed through the network; and on the weight-decay LeNet at 80% of units removed, greedy's and
the coreset's selections folded with the prior's and with the data's moments.

    python benchmarks/studies/input_model_gap.py   # ~10 minutes on 2 CPU cores

Writes ``benchmarks/results/studies/input_model_gap.{json,log}``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from _outputs import relu_mlp, write_study

from coreprune.bench import load_bench_data, load_config, trained_model
from coreprune.importance import CoresetImportance, UnitSet
from coreprune.reconstruction import (
    Gaussian,
    activation_moments,
    greedy_selection,
    least_squares_fold,
    output_gram,
)
from coreprune.train import evaluate

ROOT = Path(__file__).resolve().parents[2]


def _linears(model: torch.nn.Module) -> list[torch.nn.Linear]:
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear)]


def _prune(model, te, x_train, keep_ratio, inputs: str, selection: str = "greedy",
           fold_with: str | None = None) -> float:
    """Prune both hidden layers of a 784-h1-h2-10 ReLU MLP keeping ``keep_ratio`` of each, the
    moments from ``inputs`` ("prior", "gaussian-data" or "empirical"); the fold from
    ``fold_with`` moments if given (else the same)."""
    lins = _linears(model)
    w = [m.weight.detach().double().numpy().copy() for m in lins]
    b = [m.bias.detach().double().numpy().copy() for m in lins]
    x = x_train.reshape(len(x_train), -1).double().numpy()
    data = Gaussian(x.mean(0), np.cov(x.T, bias=True))
    states = {"prior": Gaussian.independent(x.shape[1]), "gaussian-data": data}
    h_in = {"empirical": x}
    for layer in range(2):
        n = w[layer].shape[0]
        k = max(1, round(n * keep_ratio))
        v = w[layer + 1]
        moments = {}
        for kind in {inputs, fold_with or inputs}:
            if kind == "empirical":
                h = np.maximum(h_in["empirical"] @ w[layer].T + b[layer], 0.0)
                moments[kind] = Gaussian(h.mean(0), np.cov(h.T, bias=True))
                h_in["next"] = h
            else:
                moments[kind] = activation_moments(states[kind].affine(w[layer], b[layer]),
                                                   "relu")
        sel = moments[inputs]
        if selection == "greedy":
            keep = greedy_selection(k, output_gram(v.T), sel.cov).indices
        else:
            units = UnitSet(np.c_[w[layer], b[layer]], v.T.copy(), w[layer])
            keep = CoresetImportance().select(units, k, np.random.default_rng(0)).indices
        fm = moments[fold_with or inputs]
        fold = least_squares_fold(fm, None, fm.take(keep), keep)
        w[layer + 1] = v @ fold.mixing
        b[layer + 1] = b[layer + 1] + v @ fold.offset
        w[layer], b[layer] = w[layer][keep], b[layer][keep]
        for kind in list(states):
            if kind in moments:
                states[kind] = moments[kind].take(keep)
        if "next" in h_in:
            h_in["empirical"] = h_in.pop("next")[:, keep]
    return evaluate(relu_mlp(w, b), te)


def main() -> int:
    torch.set_num_threads(2)
    levels = (0.5, 0.4, 0.3, 0.2, 0.1)  # keep ratios: 50-90% of the hidden units removed
    result = {"input_model": {}, "selection_x_fold": {}}
    lines = ["# Input model gap (diagnostics that read training data)", "",
             "Accuracy before fine-tuning, greedy selection + least squares, 50/60/70/80/90% of "
             "each hidden layer removed; mean over 3 trained models.", "",
             "| config | moments | " + " | ".join(f"{100 * (1 - k):.0f}%" for k in levels)
             + " |", "|---" * (len(levels) + 2) + "|"]
    for name in ("lenet300_fmnist_datafree", "lenet300_fmnist_nm"):
        cfg = load_config(ROOT / "benchmarks" / f"{name}.yaml")
        tr, te, _ = load_bench_data(cfg)
        x_train = tr.subset(20_000, seed=0).x
        for inputs in ("prior", "gaussian-data", "empirical"):
            accs = []
            for seed in cfg.train_seeds:
                model = trained_model(cfg, tr, print, seed)
                accs.append([_prune(model, te, x_train, k, inputs) for k in levels])
            mean = np.mean(accs, 0)
            result["input_model"][f"{name}/{inputs}"] = accs
            lines.append(f"| {name} | {inputs} | " + " | ".join(f"{a:.2f}" for a in mean) + " |")
            print(lines[-1], flush=True)
    lines += ["", "Weight-decay LeNet (lenet300_fmnist_nm), 80% of each hidden layer removed: "
              "selection x the moments the fold uses; mean over 3 trained models.", "",
              "| selection | fold with prior | fold with data (empirical) |", "|---|---|---|"]
    cfg = load_config(ROOT / "benchmarks" / "lenet300_fmnist_nm.yaml")
    tr, te, _ = load_bench_data(cfg)
    x_train = tr.subset(20_000, seed=0).x
    for selection in ("greedy", "coreset"):
        row = []
        for fold_with in ("prior", "empirical"):
            accs = [_prune(trained_model(cfg, tr, print, s), te, x_train, 0.2, "prior",
                           selection, fold_with) for s in cfg.train_seeds]
            result["selection_x_fold"][f"{selection}/{fold_with}"] = accs
            row.append(float(np.mean(accs)))
        lines.append(f"| {selection} | {row[0]:.2f} | {row[1]:.2f} |")
        print(lines[-1], flush=True)
    write_study("input_model_gap", lines, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
