"""Can the default's folds on the ReLU LeNet-300-100 be improved without any training? Greedy +
least squares on arrays under the library's moments (the prior mixture with 2,048 inputs
inverted from the class scores), against three changes: each folded hidden pre-activation
rescaled to the variance it had before the fold (REPAIR-style), the inputs inverted to soft
targets (an input's class mixed with a random second class, the share of the first uniform in
[0, 1]), and 8,192 inverted inputs instead of 2,048. None was kept (docs/method.md §4).

    python benchmarks/studies/fold_refinements.py   # ~6 minutes on 2 CPU cores

Writes ``benchmarks/results/studies/fold_refinements.{json,log}``.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import torch
from _outputs import config_models, prune_relu_mlp, write_study
from torch import nn

from coreprune.errors import CorepruneWarning
from coreprune.pruning.propagation import InputPrior
from coreprune.pruning.synthesis import (
    _adam_on_inputs,
    _frozen,
    _prior_samples,
    class_inverted_inputs,
)

KEEP = (0.5, 0.4, 0.3, 0.2, 0.1)  # 50-90% of each hidden layer removed


def _soft_inverted(model: nn.Module, x: torch.Tensor, n: int = 2048, seed: int = 0
                   ) -> torch.Tensor:
    """The library's inversion (``class_inverted_inputs`` defaults: 300 Adam steps of rate
    0.05, scale and smoothness penalties 0.1) with the one-hot target of input ``i`` (class
    ``i mod C``) replaced by ``lam * onehot(i mod C) + (1 - lam) * onehot(c2)``, ``lam``
    uniform in [0, 1] and ``c2`` a uniform class, both seeded."""
    z = _prior_samples(InputPrior().components()[0], x, n, seed)
    with torch.no_grad():
        classes = model(x).shape[1]
    draws = torch.Generator().manual_seed(seed + 1)
    first = nn.functional.one_hot(torch.arange(n) % classes, classes).to(z)
    second = nn.functional.one_hot(torch.randint(0, classes, (n,), generator=draws),
                                   classes).to(z)
    lam = torch.rand(n, 1, generator=draws).to(z)
    target = lam * first + (1 - lam) * second

    def loss_of(v: torch.Tensor) -> torch.Tensor:
        log_p = nn.functional.log_softmax(model(v), 1)
        return -(target * log_p).sum(1).mean() + 0.1 * v.square().mean() + 0.1 * (
            (v[..., 1:, :] - v[..., :-1, :]).abs().mean()
            + (v[..., 1:] - v[..., :-1]).abs().mean())

    with _frozen(model):
        z, _, _ = _adam_on_inputs(z, loss_of, 300, 0.05)
    return z


def main() -> int:
    torch.set_num_threads(2)
    warnings.simplefilter("ignore", CorepruneWarning)
    settings = ("the default's moments and folds", "+ variance rescaled after each fold",
                "soft inversion targets", "8,192 inverted inputs")
    rows: dict[str, list[list[float]]] = {s: [] for s in settings}
    for _, _, model, test in config_models("lenet300_fmnist_datafree"):
        model.eval()
        x = test.x[:2]
        spatial = [InputPrior(0.0, 1.0, rho).gaussian(tuple(x.shape[1:]))
                   for rho in (0.0, 0.5, 0.9)]

        def flat(z: torch.Tensor) -> np.ndarray:
            return z.reshape(len(z), -1).double().numpy()

        z = flat(class_inverted_inputs(model, x, InputPrior())[0])
        samples = {settings[0]: (z, False), settings[1]: (z, True),
                   settings[2]: (flat(_soft_inverted(model, x)), False),
                   settings[3]: (flat(class_inverted_inputs(model, x, InputPrior(),
                                                            n=8192)[0]), False)}
        for label, (inputs, rescale) in samples.items():
            rows[label].append([prune_relu_mlp(model, test, k, list(spatial), inputs, rescale)
                                for k in KEEP])
    lines = ["# Fold refinements without training (ReLU LeNet-300-100)", "",
             "Greedy + least squares on arrays (no guard), accuracy before fine-tuning, mean "
             "(sd) over 3 trained models; 50/60/70/80/90% of each hidden layer removed; "
             "inversion seed 0.", "",
             "| setting | " + " | ".join(f"{100 * (1 - k):.0f}%" for k in KEEP) + " |",
             "|---" * (len(KEEP) + 1) + "|"]
    for label, accs in rows.items():
        a = np.asarray(accs)
        lines.append(f"| {label} | " + " | ".join(
            f"{m:.2f} ({s:.2f})" for m, s in zip(a.mean(0), a.std(0), strict=True)) + " |")
    write_study("fold_refinements", lines, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
