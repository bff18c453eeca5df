"""Which units should greedy keep in channels coupled through residual additions
(``prune_coupled=True``)? Every layer that reads the residual stream reads another sum, so there
is no one moment model of the units. What coreprune does (no moments to select on: the default
coreset selects) against greedy on the moments of the reader whose output the units move most
(``"widest reader"``, as squeeze-and-excitation units are); the folds per consumer are the
same. Beside them the default, which leaves the stream whole. Greedy + reconstruct, 30 / 50 /
70% of parameters removed, before fine-tuning, the whole test set, on the CPU-trained models of
resnet20_fmnist32_cpu.yaml, tv_mobilenet_v3_small_fmnist32_cpu.yaml and
tv_efficientnet_b0_fmnist32_cpu.yaml. Answer: mixed, so the coreset stays: the widest reader
won at every level on EfficientNet-B0 (75.21 against 58.88 at 70%), lost at 30 and 50% on
ResNet-20 and at every level on MobileNet-V3-Small (50.92 against 64.39 at 50%); leaving the
stream whole did better than either in 7 of the 9 cells.

    python benchmarks/studies/coupled_selection.py   # ~25 minutes on 2 CPU cores (plus
                                                    # ~70 to train the models if not cached)

Writes ``benchmarks/results/studies/coupled_selection.{json,log}``.
"""

from __future__ import annotations

import sys

from _outputs import patched_rule_tables

import coreprune.pruning.pruner as pruner_module
from coreprune.pruning import Pruner

CONFIGS = ("resnet20_fmnist32_cpu", "tv_mobilenet_v3_small_fmnist32_cpu",
           "tv_efficientnet_b0_fmnist32_cpu")
LEVELS = (0.3, 0.5, 0.7)
_READ = pruner_module._moments_where_read


def _widest_reader(model_of, g, units, fold_per_consumer):
    """The alternative: coupled channels selected on the moments of the consumer they move
    most, as squeeze-and-excitation units are."""
    out = _READ(model_of, g, units, fold_per_consumer)
    if out is None or out[0] is not None:
        return out
    return pruner_module._widest_reader(out[2], units), out[1], out[2]


SETTINGS = (("stream whole (default)", False, _READ),
            ("stream pruned, coreset selects (coreprune)", True, _READ),
            ("stream pruned, greedy on the widest reader", True, _widest_reader))


def main() -> int:
    settings = tuple((label, lambda level, coupled=coupled: Pruner(params_removed=level,
                                                                   prune_coupled=coupled),
                      {"_moments_where_read": fn}) for label, coupled, fn in SETTINGS)
    patched_rule_tables("coupled_selection", CONFIGS, "setting", settings, LEVELS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
