"""LeNet-300-100 on Fashion-MNIST at 90% of parameters removed, before fine-tuning: in which
hidden layer does the default coreset lose to Torch-Pruning's group magnitude (issue 4)?

Each row keeps, per hidden layer, the units one method chooses (the widths are the same for
every row: 784-33-11-10) and evaluates the pruned model on the test set. Torch-Pruning's kept
units are read back from its pruned model (each kept unit's bias is matched exactly to the
original's). Then the second layer alone is re-chosen by other settings, the first layer kept
as the default coreset chooses it.

Regenerate (about a minute on 2 CPU cores):

    python benchmarks/lenet300_layer_swap.py

Writes ``benchmarks/results/lenet300_layer_swap.json`` and prints the table. Uses the model
cached in ``runs/lenet300_fmnist.pt`` (trained as in ``benchmarks/lenet300_fmnist.py`` if
missing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from lenet300_fmnist import trained_model
from torch import nn

from coreprune.data import load_dataset
from coreprune.experiment import _peer_prune
from coreprune.importance import (
    CoresetImportance,
    ImportanceMethod,
    Selection,
    UnitSet,
    get_method,
)
from coreprune.io import write_json
from coreprune.pruning import Pruner
from coreprune.train import evaluate

ROOT = Path(__file__).resolve().parent
RATIO = 0.9


class Fixed(ImportanceMethod):
    """Keeps given indices: a stand-in for a method whose choices were read back."""

    name = "fixed"

    def __init__(self, indices: np.ndarray) -> None:
        self.indices = np.sort(indices)

    def scores(self, units: UnitSet) -> np.ndarray:
        s = np.zeros(units.n)
        s[self.indices] = 1.0
        return s

    def select(self, units: UnitSet, k: int, rng: np.random.Generator) -> Selection:
        if self.indices.size != k:
            raise ValueError(f"{self.indices.size} indices for a budget of {k}")
        return Selection(self.indices, np.ones(k), self.scores(units), {})


class PerLayer(ImportanceMethod):
    """One method per hidden layer (in the order the pruner visits them)."""

    name = "per-layer"

    def __init__(self, methods: list[ImportanceMethod]) -> None:
        self.methods, self.calls = methods, 0

    def scores(self, units: UnitSet) -> np.ndarray:
        raise NotImplementedError

    def select(self, units: UnitSet, k: int, rng: np.random.Generator) -> Selection:
        method = self.methods[self.calls]
        self.calls += 1
        return method.select(units, k, rng)


def torch_pruning_choice(model: nn.Module, train_split) -> list[np.ndarray]:
    """Indices of the hidden units Torch-Pruning's group magnitude keeps."""
    pruned, _, _ = _peer_prune(model, "tp-magnitude", {"params_removed": RATIO}, 0, train_split,
                               None)
    orig = [m for m in model.modules() if isinstance(m, nn.Linear)][:-1]
    kept = [m for m in pruned.modules() if isinstance(m, nn.Linear)][:-1]
    out = []
    for a, b in zip(orig, kept, strict=True):
        idx = [int(torch.nonzero(a.bias == v).flatten()[0]) for v in b.bias]
        if len(set(idx)) != len(idx) or not torch.equal(a.bias[idx], b.bias):
            raise RuntimeError("could not match Torch-Pruning's kept units by bias")
        out.append(np.asarray(idx))
    return out


def main() -> None:
    torch.set_num_threads(2)
    tr, te = load_dataset("fashion-mnist")
    model = trained_model(Path("runs/lenet300_fmnist.pt"), tr)
    ours = Pruner("coreset", params_removed=RATIO).fit(model)
    coreset = [Fixed(s.indices) for s in ours.selections_]
    tpm = [Fixed(i) for i in torch_pruning_choice(model, tr)]
    rows: list[dict[str, Any]] = []

    def run(layer1: str, layer2: str, methods: list[ImportanceMethod]) -> None:
        pruned = Pruner(PerLayer(methods), params_removed=RATIO).fit_transform(model)
        acc = evaluate(pruned, te)
        rows.append({"layer1": layer1, "layer2": layer2, "acc_pruned": acc})
        print(f"layer 1: {layer1:22s} layer 2: {layer2:28s} {acc:6.2f}", flush=True)

    for i, (a, b) in enumerate(zip(coreset, tpm, strict=True)):
        common = np.intersect1d(a.indices, b.indices).size
        print(f"hidden layer {i + 1}: {a.indices.size} kept, {common} the same in both")
    run("coreset", "coreset", coreset)
    run("tp-magnitude", "tp-magnitude", tpm)
    run("coreset", "tp-magnitude", [coreset[0], tpm[1]])
    run("tp-magnitude", "coreset", [tpm[0], coreset[1]])
    for name, method in [("coreset, whole span", CoresetImportance(projection=None)),
                         ("coreset, v only", CoresetImportance(scaling="outgoing")),
                         ("coreset, ||v|| p", CoresetImportance(
                             scaling="incoming_x_outgoing_norm")),
                         ("l1", get_method("l1")), ("l2", get_method("l2"))]:
        run("coreset", name, [coreset[0], method])
    write_json(ROOT / "results" / "lenet300_layer_swap.json",
               {"params_removed": RATIO, "acc_unpruned": evaluate(model, te), "rows": rows},
               overwrite=True)


if __name__ == "__main__":
    main()
