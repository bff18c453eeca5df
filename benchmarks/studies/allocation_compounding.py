"""Why does ``allocation="error"`` collapse MobileNet-V2 at 30% of parameters removed when it
does well at 50 and 70%? Each layer it cuts, cut alone (every other layer whole), and each
restored to full width (the others cut as it cut them): greedy + reconstruct, training seed 0,
the widths that ``allocation="error"`` chose at 30%, before fine-tuning.

    python benchmarks/studies/allocation_compounding.py   # ~12 minutes on 2 CPU cores

Writes ``benchmarks/results/studies/allocation_compounding.{json,log}``; accuracy on the seeded
2,000-image test subset of ``allocation_cnn.py``.

It measured ``allocation="error"`` as it was before every layer kept at least half of its
uniform width (allocation_capped.py); ``_outputs.uncapped_error_allocation`` pins that rule.
"""

from __future__ import annotations

import sys

from _outputs import config_models, uncapped_error_allocation, write_study

from coreprune.pruning import Pruner
from coreprune.train import evaluate

LEVEL = 0.3


def main() -> int:
    uncapped_error_allocation()  # the rule measured here (module docstring)
    # the config's first trained model: training seed 0
    _, _, model, te = next(config_models("tv_mobilenet_v2_fmnist32_datafree", test_images=2000))
    fitted = Pruner("greedy", params_removed=LEVEL, allocation="error").fit(model, te.x[:2])
    ratios = {g.name: k / g.n_units for g, k in zip(fitted.groups_, fitted.keep_counts_,
                                                    strict=True)}
    cut = [name for name, r in ratios.items() if r < 0.9]

    def accuracy(layer_ratios: dict[str, float]) -> float:
        return evaluate(Pruner("greedy", layer_ratios=layer_ratios).fit_transform(
            model, te.x[:2]), te)

    unpruned = evaluate(model, te)
    every = accuracy(ratios)
    lines = [f"# allocation='error' at {LEVEL:.0%} of parameters, MobileNet-V2 (training seed 0): "
             "its cuts alone and together (greedy + reconstruct, 2,000 test images)", "",
             f"unpruned {unpruned:.2f}; every cut together {every:.2f}", "",
             "| layer | kept fraction | this cut alone | every cut but this one |",
             "|---|---|---|---|"]
    result = {"unpruned": unpruned, "together": every, "layers": {}}
    for name in cut:
        alone = accuracy({m: (r if m == name else 1.0) for m, r in ratios.items()})
        restored = accuracy({**ratios, name: 1.0})
        result["layers"][name] = {"kept": ratios[name], "alone": alone, "restored": restored}
        lines.append(f"| {name} | {ratios[name]:.2f} | {alone:.2f} | {restored:.2f} |")
        print(lines[-1], flush=True)
    write_study("allocation_compounding", lines, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
