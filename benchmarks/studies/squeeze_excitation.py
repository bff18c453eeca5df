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

from _outputs import patched_rule_tables

import coreprune.pruning.pruner as pruner_module
from coreprune.pruning import Pruner

CONFIGS = ("tv_efficientnet_b0_fmnist32_cpu", "tv_mobilenet_v3_small_fmnist32_cpu")
LEVELS = (0.3, 0.5, 0.7)
METHODS = (("greedy (default)", "greedy", {}),
           ("l1 + reconstruct", "l1", {"compensate": "reconstruct"}),
           ("greedy, allocation='error'", "greedy", {"allocation": "error"}))
_EXCITED = pruner_module._moments_where_read


def _projection_only(model_of, g, units, fold_per_consumer):
    """The moments of the consumer selected on alone: the squeeze layer gets no fold."""
    out = _EXCITED(model_of, g, units, fold_per_consumer)
    if out is None:
        return None
    main, note, measured = out
    return main, note, {n: h for n, h in measured.items() if h is main}


RULES = (("per consumer", _EXCITED), ("projection only", _projection_only),
         ("no moments (before)", lambda *args: None))


def main() -> int:
    settings = tuple((f"{label} | {rule}",
                      lambda level, method=method, options=options: Pruner(
                          method, params_removed=level, **options),
                      {"_moments_where_read": fn})
                     for label, method, options in METHODS for rule, fn in RULES)
    patched_rule_tables("squeeze_excitation", CONFIGS, "method | squeeze-and-excitation units",
                        settings, LEVELS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
