"""What does data-free distillation (``Pruner(distill_steps=N)``: the pruned model trained to
reproduce the unpruned model's class scores on inputs inverted from them and on samples of the
input prior) add to the default's folds on MLPs? The default (greedy + reconstruct, no
training) against the same prune followed by 500 and 2,000 distillation steps, on every
trained model of the eight MLP bench configs at their levels, pruning seed 0, before any
fine-tuning on data, the whole test set. The settings (rate 1e-3, temperature 4, 256 inverted
inputs and 256 prior samples per step) were chosen on the first LeNet-300-100 config, where two
variants are measured too (temperature 1; prior samples in place of the inverted inputs); the
other seven configs check them.

    python benchmarks/studies/synthetic_distillation.py   # ~30 minutes on 2 CPU cores (plus
                                                          # training the models if not cached)

Writes ``benchmarks/results/studies/synthetic_distillation.{json,log}``.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import torch
from _outputs import config_models, write_study

from coreprune.errors import CorepruneWarning
from coreprune.pruning import Pruner
from coreprune.pruning.distillation import distill_on_synthetic_inputs
from coreprune.pruning.propagation import InputPrior
from coreprune.pruning.synthesis import _prior_samples, class_inverted_inputs
from coreprune.train import evaluate

CONFIGS = ("lenet300_fmnist_datafree", "lenet300_fmnist_nm", "mlp_fmnist_gelu",
           "mlp_fmnist_silu", "mlp_fmnist_tanh", "mlp_digits_gelu", "mlp_digits_silu",
           "mlp_digits_tanh")
STEPS = (0, 500, 2000)
# the variants measured on the config the settings were chosen on: (label, inputs, temperature)
VARIANTS = {"lenet300_fmnist_datafree": (("+ 2000 steps, temperature 1", "inverted", 1.0),
                                         ("+ 2000 steps, prior samples only", "prior", 4.0))}


def _label(steps: int) -> str:
    return "default (folds only)" if steps == 0 else f"+ {steps} distillation steps"


def _variant(model: torch.nn.Module, x: torch.Tensor, level: dict, inputs: str,
             temperature: float) -> torch.nn.Module:
    """The default's folds, then 2,000 distillation steps at ``temperature`` on the library's
    inverted inputs (``inputs="inverted"``) or on as many samples of the prior in their place
    (``"prior"``): half of every batch fresh prior samples either way."""
    small = Pruner(seed=0, **level).fit_transform(model, x)
    z, _ = class_inverted_inputs(model, x, InputPrior())
    if inputs == "prior":
        z = _prior_samples(InputPrior().components()[0], x, len(z), seed=0)
    distill_on_synthetic_inputs(small, model, z, InputPrior(), 2000, temperature=temperature)
    return small


def main() -> int:
    torch.set_num_threads(2)
    warnings.simplefilter("ignore", CorepruneWarning)
    lines = ["# Data-free distillation after the default's folds (MLPs)", "",
             "Accuracy before fine-tuning on data, mean (sd) over the trained models; pruning "
             "seed 0; the whole test set. Seconds: mean time of one prune, distillation "
             "included.", ""]
    result: dict[str, dict[str, list[list[float]]]] = {}
    for name in CONFIGS:
        labels = [_label(s) for s in STEPS] + [v[0] for v in VARIANTS.get(name, ())]
        runs: dict[str, list[list[float]]] = {label: [] for label in labels}
        seconds: dict[str, list[float]] = {label: [] for label in labels}
        unpruned = []
        for cfg, _, model, test in config_models(name):
            x = test.x[:2]
            unpruned.append(evaluate(model, test))
            for steps in STEPS:
                row = []
                for level in cfg.levels:
                    t0 = time.perf_counter()
                    small = Pruner(seed=0, distill_steps=steps, **cfg.target(level)
                                   ).fit_transform(model, x)
                    seconds[_label(steps)].append(time.perf_counter() - t0)
                    row.append(evaluate(small, test))
                runs[_label(steps)].append(row)
            for label, inputs, temperature in VARIANTS.get(name, ()):
                row = []
                for level in cfg.levels:
                    t0 = time.perf_counter()
                    small = _variant(model, x, cfg.target(level), inputs, temperature)
                    seconds[label].append(time.perf_counter() - t0)
                    row.append(evaluate(small, test))
                runs[label].append(row)
        result[name] = runs
        kind = "units" if cfg.level_kind == "units_removed" else "params"
        lines += [f"## {name} (unpruned {np.mean(unpruned):.2f})", "",
                  "| setting | " + " | ".join(f"{100 * lv:.0f}% {kind}" for lv in cfg.levels)
                  + " | seconds |", "|---" * (len(cfg.levels) + 2) + "|"]
        for label in labels:
            a = np.asarray(runs[label])
            lines.append(f"| {label} | " + " | ".join(
                f"{m:.2f} ({s:.2f})" for m, s in zip(a.mean(0), a.std(0), strict=True))
                + f" | {np.mean(seconds[label]):.1f} |")
        lines.append("")
        print("\n".join(lines[-len(labels) - 5:]), flush=True)
    write_study("synthetic_distillation", lines, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
