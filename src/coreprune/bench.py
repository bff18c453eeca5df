"""The benchmark harness behind ``coreprune bench CONFIG``: every method x compression level x
seed on one trained model, one JSON record per run, resumable; plots and a Markdown table.

A config is a YAML file (see ``benchmarks/*.yaml``)::

    name: lenet300_fmnist
    model: lenet300                 # a zoo name (coreprune.models.MODELS)
    dataset: fashion-mnist
    checkpoint: runs/lenet300_fmnist.pt   # the trained model; trained here if missing
    train: {epochs: 15, lr: 0.001, optimizer: adam, seed: 0}
    methods: [coreset, coreset-theory, mussay, l1, l2, random, tp-magnitude, tp-taylor]
    params_removed: [0.7, 0.8, 0.9]
    seeds: [0, 1, 2]
    finetune: {epochs: 20, lr: 0.05, optimizer: sgd}
    records: benchmarks/results/lenet300_fmnist_bench.jsonl

A method named ``NAME+bn`` is ``NAME`` with BatchNorm moment compensation
(``Pruner(compensate=True)``), ``NAME+nobn`` without it (``compensate=False``), plain ``NAME``
with the method's default (on for the top-k coreset methods, off for the others); coreprune's
own methods only. Records keep the label as written and the resolved value in
``settings.compensate``.

Two optional keys make a run fit a small CPU: ``test_images: N`` evaluates every model (the
unpruned one included) on one seeded random subset of N test images, and
``finetune: {train_images: N, ...}`` fine-tunes on one seeded subset of N training images (the
same subset for every run; the data-dependent peer draws its calibration batch from it too).
Both are written into each record (``test_images``, ``finetune.train_images``).

Records are appended to ``records`` (JSON Lines) one at a time, flushed and fsynced; a run
killed half-way leaves complete lines (a torn last line is dropped on the next start) and the
next start skips every (method, params_removed, seed) already recorded.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import torch

from . import io
from .data import DATASETS, Split, load_dataset
from .errors import CheckpointError, DataFileError, InvalidArgumentError
from .experiment import RECORD_KEYS, prune_and_evaluate
from .importance import methods as registered_methods
from .models import MODELS, build_model_for_images
from .pruning.peers import PEERS
from .train import evaluate, train
from .validation import check_fraction

__all__ = ["BenchConfig", "method_options", "load_config", "load_bench_data", "trained_model",
           "unpruned_models", "read_records", "append_record", "run_key", "record_key",
           "run_bench", "summarize",
           "plot_records", "results_markdown"]


@dataclass
class BenchConfig:
    """A validated benchmark configuration (fields as in the module docstring)."""

    name: str
    model: str
    dataset: str
    checkpoint: Path
    records: Path
    methods: list[str]
    params_removed: list[float]
    seeds: list[int]
    train: dict[str, Any] = field(default_factory=dict)
    finetune: dict[str, Any] = field(default_factory=dict)
    device: str | None = None
    test_images: int | None = None
    source: Path | None = None


_TRAIN_KEYS = {"epochs", "lr", "optimizer", "weight_decay", "seed", "batch_size"}
_FINETUNE_KEYS = {"epochs", "lr", "optimizer", "train_images"}
_KEYS = {"name", "model", "dataset", "checkpoint", "records", "methods", "params_removed",
         "seeds", "train", "finetune", "device", "test_images"}
SUBSET_SEED = 0  # the seed of the test and fine-tuning subsets (one subset for every run)
# label suffixes: the method with / without BatchNorm moment compensation
COMPENSATION_SUFFIXES = {"+bn": True, "+nobn": False}


def method_options(label: str) -> tuple[str, dict[str, Any]]:
    """``(method, options)`` of a config's method label: ``"coreset+bn"`` is
    ``("coreset", {"compensate": True})``, ``"coreset+nobn"`` is
    ``("coreset", {"compensate": False})``, any other label is itself with no options.

    Raises:
        InvalidArgumentError: an unknown method, or a suffix on a Torch-Pruning peer.
    """
    method, options = label, {}
    for suffix, on in COMPENSATION_SUFFIXES.items():
        if label.endswith(suffix):
            method, options = label[: -len(suffix)], {"compensate": on}
            if method in PEERS:
                raise InvalidArgumentError(f"{label!r}: {suffix} (BatchNorm compensation) "
                                           "applies to coreprune's own methods, not to the "
                                           f"Torch-Pruning peer {method!r}")
    known = set(registered_methods()) | set(PEERS)
    if method not in known:
        raise InvalidArgumentError(f"unknown method {label!r}; known: {sorted(known)} (each of "
                                   f"coreprune's own also with a suffix of "
                                   f"{sorted(COMPENSATION_SUFFIXES)})")
    return method, options


def _check_count(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{what} must be a positive integer, got {value!r}")
    return value


def load_config(path: str | os.PathLike) -> BenchConfig:
    """Read and check a benchmark config; relative paths are relative to the working folder.

    Raises:
        DataFileError: missing file, not YAML, or not a mapping.
        InvalidArgumentError: an unknown key, model, dataset or method, or a bad value (named).
    """
    p = Path(path)
    raw = io.read_yaml_mapping(p, "benchmark config")
    unknown = set(raw) - _KEYS
    if unknown:
        raise InvalidArgumentError(f"{p}: unknown keys {sorted(unknown)}; known: {sorted(_KEYS)}")
    missing = {"name", "model", "dataset", "checkpoint", "records", "methods",
               "params_removed", "seeds"} - set(raw)
    if missing:
        raise InvalidArgumentError(f"{p}: missing keys {sorted(missing)}")
    if raw["model"] not in MODELS:
        raise InvalidArgumentError(f"{p}: model {raw['model']!r} is not in the zoo "
                                   f"({', '.join(sorted(MODELS))})")
    if raw["dataset"] not in DATASETS:
        raise InvalidArgumentError(f"{p}: dataset {raw['dataset']!r} is not one of {DATASETS}")
    for m in raw["methods"]:
        try:
            method_options(m)
        except InvalidArgumentError as e:
            raise InvalidArgumentError(f"{p}: {e}") from None
    ratios = [check_fraction(r, f"{p}: params_removed") for r in raw["params_removed"]]
    seeds = raw["seeds"]
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise InvalidArgumentError(f"{p}: seeds must be a list of integers, got {seeds!r}")
    for key, allowed in (("train", _TRAIN_KEYS), ("finetune", _FINETUNE_KEYS)):
        sub = raw.get(key, {})
        if not isinstance(sub, dict):
            raise InvalidArgumentError(f"{p}: {key} must be a mapping")
        if set(sub) - allowed:
            raise InvalidArgumentError(f"{p}: unknown {key} keys {sorted(set(sub) - allowed)}; "
                                       f"known: {sorted(allowed)}")
    _check_count(raw.get("finetune", {}).get("train_images"), f"{p}: finetune.train_images")
    return BenchConfig(str(raw["name"]), raw["model"], raw["dataset"], Path(raw["checkpoint"]),
                       Path(raw["records"]), list(raw["methods"]), ratios, list(seeds),
                       dict(raw.get("train", {})), dict(raw.get("finetune", {})),
                       raw.get("device"),
                       _check_count(raw.get("test_images"), f"{p}: test_images"), p)


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Records of a JSON Lines file (or a JSON list); a torn last line is ignored.

    Raises:
        DataFileError: a line other than the last is not valid JSON.
    """
    p = Path(path)
    if not p.exists():
        return []
    text = p.read_text()
    if p.suffix == ".json":
        return list(json.loads(text))
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1 and not text.endswith("\n"):
                break  # torn by an interrupted write: redone on this start
            raise DataFileError(f"{p}: line {i + 1} is not a JSON record") from None
    return out


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one record as one line; drop a torn last line first."""
    if path.exists():
        text = path.read_text()
        if text and not text.endswith("\n"):
            path.write_text(text[: text.rfind("\n") + 1])
    with open(path, "a") as f:
        f.write(json.dumps(record, default=float) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _level(ratio: float) -> float:
    """A compression level as a dictionary key (configs and records agree to 6 digits)."""
    return round(float(ratio), 6)


def _record_level(record: dict[str, Any]) -> float:
    """The level a record was asked for (its target; the achieved fraction if it has none)."""
    return _level(record.get("target", {}).get("params_removed", record["params_removed"]))


def run_key(method: str, params_removed: float, seed: int) -> tuple[str, float, int]:
    """The key of one run (method label, compression level, seed): a records file holds at
    most one record per key, and a resumed bench skips the keys it holds."""
    return method, _level(params_removed), seed


def record_key(record: dict[str, Any]) -> tuple[str, float, int]:
    """:func:`run_key` of the run that made ``record``."""
    return record["method"], _record_level(record), record["seed"]


def load_bench_data(cfg: BenchConfig, data_root: str | None = None) -> tuple[Split, Split, Split]:
    """``(train, test, finetune)`` splits of ``cfg``: the test split cut to ``test_images`` and
    the fine-tuning split to ``finetune.train_images`` (seeded subsets) where the config says so.
    """
    tr, te = load_dataset(cfg.dataset, data_root)
    if cfg.test_images is not None:
        te = te.subset(cfg.test_images, seed=SUBSET_SEED)
    n = cfg.finetune.get("train_images")
    return tr, te, (tr if n is None else tr.subset(n, seed=SUBSET_SEED))


def trained_model(cfg: BenchConfig, train_split: Split,
                  log: Callable[[str], None] = print) -> torch.nn.Module:
    """The model of ``cfg.checkpoint``; trained on ``train_split`` with ``cfg.train`` and saved
    there first if the file is missing.

    Raises:
        CheckpointError: the checkpoint holds another zoo model than ``cfg.model``.
    """
    if cfg.checkpoint.exists():
        model, meta = io.load_with_metadata(cfg.checkpoint)
        if meta.get("model", cfg.model) != cfg.model:
            raise CheckpointError(f"{cfg.checkpoint} holds a {meta.get('model')!r}, the config "
                                  f"asks for {cfg.model!r}")
        return model
    t = {"epochs": 15, "lr": 1e-3, "optimizer": "adam", "seed": 0, **cfg.train}
    log(f"training {cfg.model} on {cfg.dataset} ({t}); cached in {cfg.checkpoint}")
    torch.manual_seed(t["seed"])
    model = build_model_for_images(cfg.model, int(train_split.x.shape[1]),
                                   int(train_split.x.shape[2]))
    train(model, train_split, device=cfg.device, progress=False, **t)
    cfg.checkpoint.parent.mkdir(parents=True, exist_ok=True)
    io.save(model.cpu(), cfg.checkpoint, {"model": cfg.model, "dataset": cfg.dataset, **t})
    return model


def unpruned_models(paths: list[str | os.PathLike], data_root: str | None = None,
                    log: Callable[[str], None] = print
                    ) -> Iterator[tuple[BenchConfig, torch.nn.Module, Split, float]]:
    """For each config path: ``(config, trained model, test split, unpruned accuracy on it)``,
    the model trained and cached as :func:`trained_model` does and the test split cut as
    :func:`load_bench_data` does; logs the unpruned accuracy. For scripts that prune the bench
    configs' models outside the harness."""
    for path in paths:
        cfg = load_config(path)
        tr, te, _ = load_bench_data(cfg, data_root)
        model = trained_model(cfg, tr, log)
        acc0 = evaluate(model, te)
        log(f"{cfg.name}: unpruned {acc0:.2f} on {len(te)} test images")
        yield cfg, model, te, acc0


def run_bench(cfg: BenchConfig, data_root: str | None = None,
              log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run every (method, params_removed, seed) of ``cfg`` not yet in ``cfg.records``.

    Returns every record of the file (old and new).
    """
    tr, te, tune_split = load_bench_data(cfg, data_root)
    model = trained_model(cfg, tr, log)
    if cfg.device:
        model.to(cfg.device)
    cfg.records.parent.mkdir(parents=True, exist_ok=True)
    old = read_records(cfg.records)
    done = {record_key(r) for r in old}
    todo = [(m, r, s) for r in cfg.params_removed for m in cfg.methods for s in cfg.seeds
            if run_key(m, r, s) not in done]
    log(f"{cfg.name}: {len(done)} records found, {len(todo)} to run -> {cfg.records}")
    acc0 = evaluate(model, te) if todo else None
    if todo:
        _check_same_model(old, acc0, len(te), cfg)
        log(f"unpruned accuracy {acc0:.2f} on {len(te)} test images; fine-tuning on "
            f"{len(tune_split)} training images")
    ft = {"finetune_epochs": cfg.finetune.get("epochs", 20),
          "finetune_lr": cfg.finetune.get("lr", 0.05),
          "finetune_optimizer": cfg.finetune.get("optimizer", "sgd")}
    x = te.x[:2].to(next(model.parameters()).device)
    for i, (label, ratio, seed) in enumerate(todo):
        method, options = method_options(label)
        rec, _, _ = prune_and_evaluate(model, method, {"params_removed": ratio}, seed,
                                       tune_split, te, cfg.model, cfg.dataset, acc_unpruned=acc0,
                                       example_inputs=x, device=cfg.device, **ft, **options)
        rec["method"] = label
        rec["data_independent"] = PEERS[method].data_independent if method in PEERS else True
        if cfg.test_images is not None:
            rec["test_images"] = len(te)
        if "train_images" in cfg.finetune:
            rec["finetune"]["train_images"] = len(tune_split)
        append_record(cfg.records, rec)
        log(f"[{i + 1}/{len(todo)}] {label:15s} removed {rec['params_removed']:.3f} seed {seed}"
            f"  pruned {rec['acc_pruned']:6.2f}  fine-tuned {rec['acc_finetuned']:6.2f}  "
            f"({rec['prune_seconds']:.1f} s)")
    return read_records(cfg.records)


def _check_same_model(records: list[dict[str, Any]], acc0: float, n_test: int,
                      cfg: BenchConfig) -> None:
    """Refuse to append to records made from another model: a checkpoint that was retrained
    differently (or replaced) gives another unpruned accuracy on the same test images."""
    stale = [r for r in records if abs(r["acc_unpruned"] - acc0) > 50.0 / n_test]
    if stale:
        raise CheckpointError(
            f"{cfg.records} holds {len(stale)} records of a model with unpruned accuracy "
            f"{stale[0]['acc_unpruned']:.2f}, but {cfg.checkpoint} scores {acc0:.2f} on the same "
            "test images: the records come from another model (or another test subset). Move "
            "the records file away (or point `records:` at a new path) to start over, or "
            "restore the checkpoint.")


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (method, target): mean, population sd, min and max over seeds of the
    accuracy before (``pruned_*``) and after (``finetuned_*``) fine-tuning."""
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in records:
        missing = [k for k in RECORD_KEYS if k not in r]
        if missing:
            raise DataFileError(f"a record lacks keys {missing}")
        groups.setdefault((r["method"], _record_level(r)), []).append(r)
    rows = []
    for (method, target), rs in groups.items():
        row = {"method": method, "target": target,
               "params_removed": statistics.mean(r["params_removed"] for r in rs),
               "seeds": len(rs)}
        for name, key in (("pruned", "acc_pruned"), ("finetuned", "acc_finetuned")):
            vals = [r[key] for r in rs]
            row.update({f"{name}_mean": statistics.mean(vals),
                        f"{name}_sd": statistics.pstdev(vals),
                        f"{name}_min": min(vals), f"{name}_max": max(vals)})
        rows.append({**row,
                     "data_independent": all(r.get("data_independent", True) for r in rs),
                     "acc_unpruned": rs[0]["acc_unpruned"],
                     "prune_seconds": statistics.mean(r.get("prune_seconds", 0.0) for r in rs)})
    rows.sort(key=lambda row: (row["target"], row["method"]))
    return rows


def plot_records(records: list[dict[str, Any]], path: str | os.PathLike, title: str) -> Path:
    """Accuracy vs parameters removed, one line per method (mean, band: min..max over seeds),
    before and after fine-tuning side by side; written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summarize(records)
    names = sorted({r["method"] for r in rows})
    # one colour per method (tab20 has 20; the default cycle repeats after 10)
    colours = {m: plt.get_cmap("tab20")(i % 20) for i, m in enumerate(names)}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for ax, key, label in ((axes[0], "pruned", "before fine-tuning"),
                           (axes[1], "finetuned", "after fine-tuning")):
        for method in names:
            pts = [r for r in rows if r["method"] == method]  # sorted by target
            xs = [100 * r["target"] for r in pts]
            mean, lo, hi = ([r[f"{key}_{s}"] for r in pts] for s in ("mean", "min", "max"))
            style = "-" if method.startswith("coreset") else "--"
            (line,) = ax.plot(xs, mean, style, marker="o", label=method, color=colours[method],
                              linewidth=2.2 if method == "coreset" else 1.2)
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15)
        ax.axhline(rows[0]["acc_unpruned"], color="k", linewidth=0.8, linestyle=":",
                   label="unpruned")
        ax.set_title(f"{title}: {label}")
        ax.set_xlabel("parameters removed (%)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    png = BytesIO()
    fig.savefig(png, format="png", dpi=110)
    plt.close(fig)
    return io.atomic_write_bytes(path, png.getvalue(), overwrite=True)


def _verdict(rows: list[dict[str, Any]], target: float) -> str:
    at = [r for r in rows if r["target"] == target]
    ours = next((r for r in at if r["method"] == "coreset"), None)
    if ours is None:
        return ""
    free = [r for r in at if r["data_independent"] and r["method"] != "coreset"]
    above = [r["method"] for r in free if r["pruned_mean"] > ours["pruned_mean"] + 1e-9]
    beaten = [m for m in above if not m.startswith("coreset")]
    variants = [m for m in above if m.startswith("coreset")]
    best = max(at, key=lambda r: r["finetuned_mean"])
    gap = best["finetuned_mean"] - ours["finetuned_mean"]
    a = ("before fine-tuning: coreset ≥ every data-independent baseline" if not beaten else
         f"before fine-tuning: coreset BELOW {', '.join(beaten)}")
    if variants:
        a += f" (other settings of ours above it: {', '.join(variants)})"
    b = (f"after fine-tuning: {gap:.2f} below the best ({best['method']})" if gap > 0 else
         "after fine-tuning: coreset is the best")
    flag = " — within 0.5: yes" if gap <= 0.5 else " — within 0.5: NO"
    return f"{a}; {b}{flag}"


def results_markdown(sections: list[tuple[str, list[dict[str, Any]], str]],
                     command: str) -> str:
    """The Markdown of ``benchmarks/RESULTS.md``: per section (title, records, PNG name) a
    table of mean ± sd over seeds per method and compression level, and a verdict line per
    level; a section without records says so (its third item is then the command to run)."""
    lines = ["# Benchmark results", "",
             "Generated from the JSON records by", "", f"    {command}", "",
             "Accuracies are test top-1 in percent, mean ± population sd over seeds; "
             "`data-dep.` marks a method that reads training data (the rest read weights only). "
             "Torch-Pruning peers prune to the same per-layer widths as coreprune's methods.", ""]
    for title, records, png in sections:
        if not records:
            lines += [f"## {title}", "", f"No records yet. Run `{png}` (resumable), then "
                      "regenerate this file.", ""]
            continue
        rows = summarize(records)
        ft = records[0].get("finetune", {})
        tested = (f" on {records[0]['test_images']} test images (a seeded subset)"
                  if "test_images" in records[0] else "")
        tuned = (f" on {ft['train_images']} training images (a seeded subset)"
                 if "train_images" in ft else "")
        lines += [f"## {title}", "",
                  f"Unpruned accuracy {rows[0]['acc_unpruned']:.2f}{tested}; fine-tuning "
                  f"{ft.get('epochs')} epoch{'' if ft.get('epochs') == 1 else 's'} "
                  f"{ft.get('optimizer')} lr {ft.get('lr')}{tuned}; "
                  f"{len(records)} records.", "", f"![{title}]({png})", "",
                  "| params removed | method | seeds | pruned | fine-tuned | prune time (s) |",
                  "|---|---|---|---|---|---|"]
        for r in rows:
            name = r["method"] + ("" if r["data_independent"] else " (data-dep.)")
            lines.append(f"| {100 * r['params_removed']:.1f}% | {name} | {r['seeds']} | "
                         f"{r['pruned_mean']:.2f} ± {r['pruned_sd']:.2f} | "
                         f"{r['finetuned_mean']:.2f} ± {r['finetuned_sd']:.2f} | "
                         f"{r['prune_seconds']:.2f} |")
        lines.append("")
        for t in sorted({r["target"] for r in rows}):
            v = _verdict(rows, t)
            if v:
                lines.append(f"- {100 * t:.0f}% target: {v}")
        lines.append("")
    return "\n".join(lines)
