"""Which input model, made from the weights alone, should replace or join the prior on the ReLU
LeNet-300-100s (the two configs the inversion's settings were chosen on)? Greedy selection and the
least-squares fold on arrays (both hidden layers, no guard), moments from: the prior (independent
pixels, or the default mixture over neighbour correlations 0 / 0.5 / 0.9), a covariance made from
the first layer's weights (``W1^T W1`` scaled to unit mean variance; alone or half-and-half with
the identity), inputs inverted from the class scores (``class_inverted_inputs``, one seed) with
several scale and smoothness penalties (their moments measured; or their mean and covariance
propagated as a Gaussian), and the prior mixed with the inverted inputs (what the library does).

    python benchmarks/studies/inversion_settings.py   # ~8 minutes on 2 CPU cores

Writes ``benchmarks/results/studies/inversion_settings.{json,log}``.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import torch
from _outputs import config_models, prune_relu_mlp, write_study

from coreprune.errors import CorepruneWarning
from coreprune.pruning.propagation import InputPrior
from coreprune.pruning.synthesis import class_inverted_inputs
from coreprune.reconstruction import Gaussian

KEEP = (0.5, 0.4, 0.3, 0.2, 0.1)  # 50-90% of each hidden layer removed


def _settings(model: torch.nn.Module, x: torch.Tensor):
    """(label, priors, samples) of every input model compared."""
    d = x[0].numel()
    spatial = [InputPrior(0.0, 1.0, rho).gaussian(tuple(x.shape[1:])) for rho in (0.0, 0.5, 0.9)]
    w1 = next(m for m in model.modules() if isinstance(m, torch.nn.Linear)).weight
    g = w1.detach().double().numpy().T @ w1.detach().double().numpy()
    g *= d / np.trace(g)

    def inverted(scale: float, smooth: float) -> np.ndarray:
        z, _ = class_inverted_inputs(model, x, InputPrior(), scale_penalty=scale,
                                     smoothness_penalty=smooth, seed=0)
        return z.reshape(len(z), -1).double().numpy()

    def fitted(z: np.ndarray) -> Gaussian:
        return Gaussian(z.mean(0), np.cov(z.T, bias=True) + 1e-6 * np.eye(d))

    yield "prior: independent pixels", spatial[:1], None
    yield "prior: mixture rho 0/0.5/0.9 (the default prior)", spatial, None
    yield "weight covariance W1^T W1", [Gaussian(np.zeros(d), g)], None
    yield ("half identity, half weight covariance",
           [Gaussian(np.zeros(d), 0.5 * (np.eye(d) + g))], None)
    for scale, smooth in ((1.0, 0.0), (0.1, 0.0), (0.01, 0.0), (0.1, 0.03), (0.1, 0.1),
                          (0.1, 0.3)):
        yield f"inverted, scale {scale:g}, smoothness {smooth:g}", [], inverted(scale, smooth)
    z = inverted(0.1, 0.1)
    yield "Gaussian of the inverted inputs (0.1, 0.1), propagated", [fitted(z)], None
    yield "prior mixture + inverted (0.1, 0.1) (the library's default)", spatial, z


def main() -> int:
    torch.set_num_threads(2)
    warnings.simplefilter("ignore", CorepruneWarning)
    lines = ["# Input models made from the weights (ReLU LeNet-300-100s)", "",
             "Greedy + least squares on arrays (no guard), accuracy before fine-tuning, mean "
             "over 3 trained models; 50/60/70/80/90% of each hidden layer removed; one "
             "inversion seed.", ""]
    result: dict[str, dict[str, list[list[float]]]] = {}
    for name in ("lenet300_fmnist_datafree", "lenet300_fmnist_nm"):
        rows: dict[str, list[list[float]]] = {}
        for _, _, model, test in config_models(name):
            x = test.x[:2]
            for label, priors, samples in _settings(model.eval(), x):
                rows.setdefault(label, []).append(
                    [prune_relu_mlp(model, test, k, list(priors), samples) for k in KEEP])
        result[name] = rows
        lines += [f"## {name}", "", "| input model | " + " | ".join(
            f"{100 * (1 - k):.0f}%" for k in KEEP) + " |", "|---" * (len(KEEP) + 1) + "|"]
        lines += [f"| {label} | " + " | ".join(f"{a:.2f}" for a in np.mean(accs, 0)) + " |"
                  for label, accs in rows.items()]
        lines.append("")
        print("\n".join(lines[-len(rows) - 1:]), flush=True)
    write_study("inversion_settings", lines, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
