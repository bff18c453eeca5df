"""Where the studies write (``benchmarks/results/studies/NAME.{json,log}``), the table of
accuracies after pruning one model with several settings that two of them print, the tables of
a library rule replaced by its alternatives that two others print, and the ReLU MLP that the
studies pruning on plain arrays build and prune (greedy + least squares)."""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
from torch import nn

from coreprune.bench import BenchConfig, load_bench_data, load_config, trained_model
from coreprune.data import Split, load_dataset
from coreprune.errors import CorepruneWarning
from coreprune.experiment import prune_model
from coreprune.io import atomic_write_bytes
from coreprune.metrics import count_params
from coreprune.reconstruction import (
    Gaussian,
    activation_moments,
    greedy_selection,
    least_squares_fold,
    output_gram,
)
from coreprune.train import evaluate, train

BENCHMARKS = Path(__file__).resolve().parents[1]
OUT = BENCHMARKS / "results" / "studies"
# the default input prior before the mixture over pixel correlations: the studies that ran under
# it pin it, so that they regenerate their logs
INDEPENDENT_PIXELS = (0.0, 1.0, 0.0)


def config_models(name: str, test_images: int | None = None
                  ) -> Iterator[tuple[BenchConfig, int | None, nn.Module, Split]]:
    """Every trained model of ``benchmarks/NAME.yaml``, trained and cached as the bench does:
    ``(config, training seed, model, test split)`` per training seed, the test split the
    config's (a seeded subset of ``test_images`` images when given, the same for every model)."""
    cfg = load_config(BENCHMARKS / f"{name}.yaml")
    tr, te, _ = load_bench_data(cfg)
    if test_images is not None:
        te = te.subset(test_images, seed=0)
    for seed in cfg.train_seeds or [None]:
        yield cfg, seed, trained_model(cfg, tr, print, seed), te


def relu_mlp(weights: list[Any], biases: list[Any]) -> nn.Sequential:
    """``Flatten`` then ``Linear`` layers with these (out, in) weights and biases (arrays),
    a ReLU between each two."""
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        lin = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(w))
            lin.bias.copy_(torch.as_tensor(b))
        layers += [lin] + ([nn.ReLU()] if i < len(weights) - 1 else [])
    return nn.Sequential(*layers)


def prune_relu_mlp(model: nn.Module, test: Split, keep_ratio: float, priors: list[Gaussian],
                   samples: np.ndarray | None, rescale: bool = False) -> float:
    """Test accuracy of a 784-h1-h2-10 ReLU MLP after greedy selection and the least-squares
    fold (no guard) on both hidden layers, keeping ``keep_ratio`` of each: the moments the
    equal mixture of those propagated from ``priors`` (a mixture itself) and those measured on
    ``samples`` (flattened inputs), whichever are given. ``rescale``: then give each folded
    hidden pre-activation of the next layer the variance it had before the fold under the same
    moments, its mean kept (REPAIR-style; not on the class scores)."""
    lins = [m for m in model.modules() if isinstance(m, nn.Linear)]
    w = [m.weight.detach().double().numpy().copy() for m in lins]
    b = [m.bias.detach().double().numpy().copy() for m in lins]
    for layer in range(2):
        parts = []
        if priors:
            outs = [activation_moments(p.affine(w[layer], b[layer]), "relu") for p in priors]
            parts.append(Gaussian.mixture(outs))
        if samples is not None:
            h = np.maximum(samples @ w[layer].T + b[layer], 0.0)
            parts.append(Gaussian(h.mean(0), np.cov(h.T, bias=True)))
        moments = Gaussian.mixture(parts)
        k = max(1, round(w[layer].shape[0] * keep_ratio))
        v = w[layer + 1]
        keep = greedy_selection(k, output_gram(v.T), moments.cov).indices
        fold = least_squares_fold(moments, None, moments.take(keep), keep)
        w[layer + 1], b[layer + 1] = v @ fold.mixing, b[layer + 1] + v @ fold.offset
        if rescale and layer + 1 < len(w) - 1:
            kept = moments.take(keep)
            before = np.einsum("ij,jk,ik->i", v, moments.cov, v)
            after = np.einsum("ij,jk,ik->i", w[layer + 1], kept.cov, w[layer + 1])
            mean = w[layer + 1] @ kept.mean + b[layer + 1]
            w[layer + 1] = w[layer + 1] * np.sqrt(before / np.maximum(after, 1e-12))[:, None]
            b[layer + 1] = mean - w[layer + 1] @ kept.mean
        w[layer], b[layer] = w[layer][keep], b[layer][keep]
        if priors:
            priors = [o.take(keep) for o in outs]
        if samples is not None:
            samples = h[:, keep]
    return evaluate(relu_mlp(w, b), test)


def uncapped_error_allocation() -> None:
    """Make ``allocation="error"`` the rule the allocation studies measured before every layer
    kept at least half of its uniform width (``ERROR_ALLOCATION_MIN_SHARE = 0``), so that they
    regenerate their logs."""
    import coreprune.pruning.pruner as pruner_module

    pruner_module.ERROR_ALLOCATION_MIN_SHARE = 0.0


def write_study(name: str, lines: list[str], result: Any = None) -> None:
    """Write the study's table ``lines`` to ``NAME.log`` and its numbers ``result`` (when given)
    to ``NAME.json``, each atomically (replacing the previous run's), and print the table."""
    OUT.mkdir(parents=True, exist_ok=True)
    if result is not None:
        atomic_write_bytes(OUT / f"{name}.json", (json.dumps(result, indent=2) + "\n").encode(),
                           overwrite=True)
    atomic_write_bytes(OUT / f"{name}.log", ("\n".join(lines) + "\n").encode(), overwrite=True)
    print("\n".join(lines))


def accuracy_rows(model: Any, settings: tuple, targets: list[dict[str, Any]], test: Any,
                  lines: list[str], timed: bool = False) -> dict[str, list[float]]:
    """For each ``(label, method, Pruner options)`` of ``settings``, ``model`` pruned (seed 0)
    to each target of ``targets`` and evaluated on ``test``; one row per setting appended to
    ``lines`` and printed: accuracy (parameters removed[, seconds]) per target. Returns
    ``{label: accuracies}``."""
    rows = {}
    for label, method, options in settings:
        cells, accs = [], []
        for target in targets:
            t = time.perf_counter()
            pruned = prune_model(model, method, target, seed=0, example_inputs=test.x[:2],
                                 **options)[0]
            accs.append(evaluate(pruned.eval(), test))
            removed = 1 - count_params(pruned) / count_params(model)
            cells.append(f"{accs[-1]:.2f} ({removed:.1%}"
                         + (f", {time.perf_counter() - t:.0f} s)" if timed else ")"))
        rows[label] = accs
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return rows


def trained_model_and_table(model: Any, dataset: str, title: str, columns: list[str],
                            **train_options: Any) -> tuple[Any, Any, list[str], float]:
    """``model`` trained in place on ``dataset`` (:func:`coreprune.train.train` with
    ``train_options``, seed 0, 2 threads) and evaluated on a seeded 2,000-image test subset:
    ``(model in eval mode, test subset, table lines so far (printed), accuracy)``; the table's
    first line names ``title``, the training time, the accuracy and the parameters, then a
    header with ``columns``. Coreprune's warnings are silenced (the studies name what they
    prune)."""
    warnings.simplefilter("ignore", CorepruneWarning)
    torch.set_num_threads(2)
    tr, te = load_dataset(dataset)
    te = te.subset(2000, seed=0)
    t0 = time.perf_counter()
    train(model, tr, seed=0, progress=False, **train_options)
    model.eval()
    base = evaluate(model, te)
    lines = [f"{title} ({time.perf_counter() - t0:.0f} s): {base:.2f} on {len(te)} test "
             f"images, {count_params(model)} parameters",
             "| setting | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    print("\n".join(lines), flush=True)
    return model, te, lines, base


def patched_rule_tables(study: str, configs: tuple[str, ...], header: str,
                        settings: tuple[tuple[str, Callable[[float], Any], dict[str, Any]], ...],
                        levels: tuple[float, ...]) -> None:
    """One table per trained model of each config (the whole test set): for each setting
    ``(label, pruner(level) -> Pruner, {name: replacement})``, the model pruned by that pruner
    at each level with those names of :mod:`coreprune.pruning.pruner` replaced (the rule under
    study; ``{}``: none), accuracy before fine-tuning and seconds; ``header`` names the
    label's columns. Written to ``STUDY.{json,log}`` after every row."""
    import coreprune.pruning.pruner as pruner_module

    warnings.simplefilter("ignore", CorepruneWarning)
    torch.set_num_threads(2)
    result: dict = {}
    lines: list[str] = []
    for cfg, seed, model, te in (run for name in configs for run in config_models(name)):
        model.eval()
        base = evaluate(model, te)
        lines += [""] * bool(lines) + [
            f"# {cfg.name} (training seed {seed}): {base:.2f} on {len(te)} test images, "
            f"{count_params(model)} parameters; before fine-tuning", "",
            f"| {header} | " + " | ".join(f"{100 * r:.0f}%" for r in levels) + " | seconds |",
            "|---" * (header.count("|") + len(levels) + 2) + "|"]
        result[f"{cfg.name}-s{seed}"] = {"unpruned": base, "rows": {}}
        for label, pruner, patches in settings:
            t0 = time.perf_counter()
            with (mock.patch.multiple(pruner_module, **patches) if patches
                  else contextlib.nullcontext()):
                accs = [evaluate(pruner(level).fit_transform(model, te.x[:2]), te)
                        for level in levels]
            result[f"{cfg.name}-s{seed}"]["rows"][label] = accs
            lines.append(f"| {label} | " + " | ".join(f"{a:.2f}" for a in accs)
                         + f" | {time.perf_counter() - t0:.0f} |")
            print(lines[-1], flush=True)
            write_study(study, lines, result)
