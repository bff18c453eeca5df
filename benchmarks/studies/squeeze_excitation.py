"""Does reconstructing units gated by squeeze-and-excitation pay? EfficientNet-B0's expansions
(the units of 16 of its groups) reach the projection as ``g * h`` and the gate's squeeze layer
as the average of ``h``: each consumer takes its own least-squares fold from moments measured
on the synthetic inputs where it reads (``"per consumer"``, what coreprune does), against the
projection alone folded (the squeeze layer's input dropped), and against the rule before it (no
moments for these groups: the default coreset selects, the removed units are dropped). Greedy
+ reconstruct (the default), L1 + reconstruct and greedy with ``allocation="error"``, 30 / 50 /
70% of parameters removed, before fine-tuning, the whole test set, on the EfficientNet-B0 of
tv_efficientnet_b0_fmnist32_cpu.yaml and the MobileNet-V3-Small of
tv_mobilenet_v3_small_fmnist32_cpu.yaml (hard-sigmoid gates).

    python benchmarks/studies/squeeze_excitation.py   # ~20 minutes on 2 CPU cores (plus
                                                     # 35 to train the models if not cached)

Writes ``benchmarks/results/studies/squeeze_excitation.{json,log}``.
"""

from __future__ import annotations

import sys
import time
import warnings
from unittest import mock

import torch
from _outputs import config_models, write_study

import coreprune.pruning.pruner as pruner_module
from coreprune.errors import CorepruneWarning
from coreprune.metrics import count_params
from coreprune.pruning import Pruner
from coreprune.train import evaluate

CONFIGS = ("tv_efficientnet_b0_fmnist32_cpu", "tv_mobilenet_v3_small_fmnist32_cpu")
LEVELS = (0.3, 0.5, 0.7)
METHODS = (("greedy (default)", "greedy", {}),
           ("l1 + reconstruct", "l1", {"compensate": "reconstruct"}),
           ("greedy, allocation='error'", "greedy", {"allocation": "error"}))
_EXCITED = pruner_module._excited_moments


def _projection_only(model_of, g, units):
    """The moments of the consumer selected on alone: the squeeze layer gets no fold."""
    out = _EXCITED(model_of, g, units)
    if out is None:
        return None
    main, note, measured = out
    return main, note, {n: h for n, h in measured.items() if h is main}


RULES = (("per consumer", _EXCITED), ("projection only", _projection_only),
         ("no moments (before)", lambda *args: None))


def main() -> int:
    warnings.simplefilter("ignore", CorepruneWarning)
    torch.set_num_threads(2)
    result: dict = {}
    lines: list[str] = []
    for cfg, seed, model, te in (run for name in CONFIGS for run in config_models(name)):
        model.eval()
        base = evaluate(model, te)
        lines += [""] * bool(lines) + [
            f"# {cfg.name} (training seed {seed}): {base:.2f} on {len(te)} test images, "
            f"{count_params(model)} parameters; before fine-tuning", "",
            "| method | squeeze-and-excitation units | 30% | 50% | 70% | seconds |",
            "|---|---|---|---|---|---|"]
        result[f"{cfg.name}-s{seed}"] = {"unpruned": base, "rows": {}}
        for label, method, options in METHODS:
            for rule, fn in RULES:
                t0 = time.perf_counter()
                with mock.patch.object(pruner_module, "_excited_moments", fn):
                    accs = [evaluate(Pruner(method, params_removed=level, **options)
                                     .fit_transform(model, te.x[:2]), te) for level in LEVELS]
                result[f"{cfg.name}-s{seed}"]["rows"][f"{label} | {rule}"] = accs
                lines.append(f"| {label} | {rule} | " + " | ".join(f"{a:.2f}" for a in accs)
                             + f" | {time.perf_counter() - t0:.0f} |")
                print(lines[-1], flush=True)
                write_study("squeeze_excitation", lines, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
