"""Should BatchNorm CNNs take their moments from the synthetic inputs at every layer
(``moment_model="synthetic"``) rather than only where the analytic model cannot follow
(``"auto"``, the default)? Greedy + reconstruct and L1 + reconstruct under both, 30 / 50 / 70%
of parameters removed, before fine-tuning, the whole test set, on the CPU-trained models of
resnet20_fmnist32_cpu.yaml, tv_mobilenet_v3_small_fmnist32_cpu.yaml,
tv_efficientnet_b0_fmnist32_cpu.yaml and tv_shufflenet_v2_x0_5_fmnist32_cpu.yaml (the earlier
evidence, one GPU-trained ResNet-20 and ResNet-56, is in cnn_moment_models.log).

    python benchmarks/studies/synthetic_everywhere.py   # ~30 minutes on 2 CPU cores (plus
                                                       # ~80 to train the models if not cached)

Writes ``benchmarks/results/studies/synthetic_everywhere.{json,log}``.
"""

from __future__ import annotations

import sys

from _outputs import patched_rule_tables

from coreprune.pruning import Pruner

CONFIGS = ("resnet20_fmnist32_cpu", "tv_mobilenet_v3_small_fmnist32_cpu",
           "tv_efficientnet_b0_fmnist32_cpu", "tv_shufflenet_v2_x0_5_fmnist32_cpu")
LEVELS = (0.3, 0.5, 0.7)
SETTINGS = tuple((f"{label} | {model_of}",
                  lambda level, method=method, options=options, model_of=model_of: Pruner(
                      method, params_removed=level, moment_model=model_of, **options), {})
                 for label, method, options in (("greedy (default)", "greedy", {}),
                                                ("l1 + reconstruct", "l1",
                                                 {"compensate": "reconstruct"}))
                 for model_of in ("auto", "synthetic"))


def main() -> int:
    patched_rule_tables("synthetic_everywhere", CONFIGS, "method | moment model", SETTINGS,
                        LEVELS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
