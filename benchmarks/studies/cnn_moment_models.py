"""Which moment model for CNNs, and do padding-aware constants help? Greedy selection +
reconstruction on the data-free CNN configs' models with the analytic model (its local prior
behind residual additions), BatchNorm-matched synthetic inputs, and two diagnostics that read
500 training images (never what the library does): moments measured on them, and their
correlations with BatchNorm's marginals; then the folded constants padding-aware or not.
Sized for 2 CPU cores (about 40 minutes): ResNet-20 (seed 0) every setting; ResNet-56 the two
moment models at 50%; VGG-16 padding-aware or not (the default's other numbers are in the
bench records).

    python benchmarks/studies/cnn_moment_models.py

Writes ``benchmarks/results/studies/cnn_moment_models.{json,log}``; accuracy on a seeded
2,000-image test subset, before fine-tuning.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from _outputs import INDEPENDENT_PIXELS, write_study

import coreprune.pruning.groups as groups
import coreprune.pruning.pruner as pruner_module
from coreprune.bench import load_bench_data, load_config, trained_model
from coreprune.pruning import Pruner
from coreprune.pruning.groups import _consumer_slices, layer_inputs
from coreprune.pruning.propagation import MomentPropagator
from coreprune.reconstruction import Gaussian
from coreprune.train import evaluate

ROOT = Path(__file__).resolve().parents[2]
LEVELS = (0.3, 0.5, 0.7)


class _Measured(MomentPropagator):
    """Diagnostic: each group's channel moments measured on training images pushed through
    the model as it is being pruned; ``marginals="batchnorm"`` keeps the analytic model's
    marginals (BatchNorm's) and takes only the measured correlations."""

    images: torch.Tensor
    marginals = "measured"

    def unit_moments(self, g, gi):
        model_moments, note = super().unit_moments(g, gi)
        consumer, cols = next(iter(_consumer_slices(self.graph, g)))
        a = layer_inputs(self.graph.model, self.images, [consumer], stop=True)[id(consumer)]
        a = a.double()[:, torch.as_tensor(cols[:, 0])]
        a = (a.permute(0, 2, 3, 1) if a.dim() == 4 else a).reshape(-1, g.n_units).numpy()
        data = Gaussian(a.mean(0), np.cov(a.T, bias=True))
        if self.marginals == "measured" or model_moments is None:
            return data, "measured on training images"
        sd_d, sd_m = data.std, model_moments.std
        corr = data.cov / np.outer(np.where(sd_d > 0, sd_d, 1), np.where(sd_d > 0, sd_d, 1))
        return Gaussian(model_moments.mean, corr * np.outer(sd_m, sd_m)), "measured correlations"


def _run(model, te, x, levels, **options) -> list[float]:
    options = {"input_prior": INDEPENDENT_PIXELS, **options}
    return [evaluate(Pruner("greedy", params_removed=r, **options).fit_transform(model, x), te)
            for r in levels]


def main() -> int:
    result, lines = {}, ["# CNN moment models (greedy + reconstruct, before fine-tuning, "
                         "2,000 test images)", "",
                         "| model | setting | " + " | ".join(f"{100 * r:.0f}%" for r in LEVELS)
                         + " |", "|---" * (len(LEVELS) + 2) + "|"]
    original = pruner_module.MomentPropagator
    plan = {"resnet20_fmnist32_datafree": (LEVELS, None),
            "resnet56_fmnist32_datafree": ((0.5,), ("analytic (local prior)", "synthetic inputs")),
            "vgg16_fmnist32_datafree": (LEVELS, ("auto (default)",
                                                 "auto, constants not padding-aware"))}
    for name, (levels, chosen) in plan.items():
        seeds = [0]
        cfg = load_config(ROOT / "benchmarks" / f"{name}.yaml")
        tr, te, _ = load_bench_data(cfg)
        te = te.subset(2000, seed=0)
        _Measured.images = tr.subset(500, seed=1).x
        settings = [("analytic (local prior)", {"moment_model": "analytic"}, None),
                    ("synthetic inputs", {"moment_model": "synthetic"}, None),
                    ("auto (default)", {}, None),
                    ("measured moments (data)", {"moment_model": "analytic"}, "measured"),
                    ("BatchNorm marginals, measured correlations (data)",
                     {"moment_model": "analytic"}, "batchnorm"),
                    ("auto, constants not padding-aware", {}, "plain-padding")]
        for label, options, diagnostic in settings:
            if chosen is not None and label not in chosen:
                continue
            accs = []
            for seed in seeds:
                model = trained_model(cfg, tr, print, seed)
                pruner_module.MomentPropagator = original
                coverage = groups.tap_coverage
                if diagnostic in ("measured", "batchnorm"):
                    _Measured.marginals = diagnostic
                    pruner_module.MomentPropagator = _Measured
                elif diagnostic == "plain-padding":
                    groups.tap_coverage = lambda conv, size: torch.ones(
                        conv.kernel_size, dtype=torch.float64)
                try:
                    accs.append(_run(model, te, te.x[:2], levels, **options))
                finally:
                    pruner_module.MomentPropagator = original
                    groups.tap_coverage = coverage
            result[f"{name}/{label}"] = accs
            cells = dict(zip(levels, np.mean(accs, 0), strict=True))
            lines.append(f"| {name.split('_')[0]} | {label} | "
                         + " | ".join(f"{cells[r]:.2f}" if r in cells else "-" for r in LEVELS)
                         + " |")
            print(lines[-1], flush=True)
    write_study("cnn_moment_models", lines, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
