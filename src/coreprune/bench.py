"""The benchmark harness behind ``coreprune bench CONFIG``: every method x compression level x
seed on one trained model, one JSON record per run, resumable; plots and a Markdown table.

A config is a YAML file (see ``benchmarks/*.yaml``)::

    name: lenet300_fmnist
    model: lenet300                 # a zoo name (coreprune.models.MODELS)
    model_args: {}                  # optional: e.g. {hidden: [500, 300], activation: gelu}
    dataset: fashion-mnist
    normalization: standard         # optional: standard | unit ([0, 1]) | pm1 ([-1, 1])
    input_prior: [0, 1, 0]          # optional: Pruner(input_prior=...) for coreprune's methods
    checkpoint: runs/lenet300_fmnist.pt   # the trained model; trained here if missing
    train: {epochs: 15, lr: 0.001, optimizer: adam, seed: 0}
    train_seeds: [0, 1, 2]          # optional: one trained model per seed (checkpoint-s0.pt, ...)
    methods: [coreset, coreset-theory, mussay, l1, l2, random, tp-magnitude, tp-taylor]
    params_removed: [0.7, 0.8, 0.9] # or units_removed: [0.5, 0.9] (that fraction of every layer)
    seeds: [0, 1, 2]
    finetune: {epochs: 20, lr: 0.05, optimizer: sgd}
    records: benchmarks/results/lenet300_fmnist_bench.jsonl

A method label ``METHOD+COMPENSATION`` runs ``METHOD`` with that compensation
(``Pruner(compensate=COMPENSATION)``: ``none``, ``bn-mean``, ``merge``, ``reconstruct``; see
:mod:`coreprune.compensation`), plain ``METHOD`` with the method's default; coreprune's own
methods only. The labels of coreprune 0.3, ``+bn`` and ``+nobn``, still mean ``+bn-mean`` and
``+none``. Records keep the label as written and the resolved name in ``settings.compensate``.

Two optional keys make a run fit a small CPU: ``test_images: N`` evaluates every model (the
unpruned one included) on one seeded random subset of N test images, and
``finetune: {train_images: N, ...}`` fine-tunes on one seeded subset of N training images (the
same subset for every run; the data-dependent peer draws its calibration batch from it too).
Both are written into each record (``test_images``, ``finetune.train_images``).

Records are appended to ``records`` (JSON Lines) one at a time, flushed and fsynced; a run
killed half-way leaves complete lines (a torn last line is dropped on the next start) and the
next start skips every (method, level, seed, training seed) already recorded.
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
from .compensation import compensations
from .data import DATASETS, NORMALIZATIONS, Split, load_dataset
from .errors import CheckpointError, DataFileError, InvalidArgumentError
from .experiment import RECORD_KEYS, prune_and_evaluate
from .importance import methods as registered_methods
from .models import MODELS, build_model_for_split
from .pruning.peers import PEERS
from .pruning.propagation import InputPrior
from .pruning.pruner import DEFAULT_METHOD
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
    levels: list[float]
    seeds: list[int]
    train: dict[str, Any] = field(default_factory=dict)
    finetune: dict[str, Any] = field(default_factory=dict)
    device: str | None = None
    test_images: int | None = None
    source: Path | None = None
    level_kind: str = "params_removed"
    normalization: str = "standard"
    model_args: dict[str, Any] = field(default_factory=dict)
    train_seeds: list[int] | None = None
    input_prior: tuple | None = None

    def target(self, level: float) -> dict[str, float]:
        """The pruner's target at ``level``: ``{"params_removed": level}`` or, for
        ``units_removed``, ``{"keep_ratio": 1 - level}`` (every layer keeps that fraction)."""
        if self.level_kind == "units_removed":
            return {"keep_ratio": round(1.0 - level, 9)}
        return {"params_removed": level}

    def checkpoint_for(self, train_seed: int | None) -> Path:
        """The checkpoint of the model trained with ``train_seed`` (``checkpoint`` itself
        without ``train_seeds``; ``NAME-s{seed}.pt`` with them)."""
        if self.train_seeds is None:
            return self.checkpoint
        return self.checkpoint.with_name(f"{self.checkpoint.stem}-s{train_seed}"
                                         f"{self.checkpoint.suffix}")


_TRAIN_KEYS = {"epochs", "lr", "optimizer", "weight_decay", "seed", "batch_size"}
_FINETUNE_KEYS = {"epochs", "lr", "optimizer", "train_images"}
_KEYS = {"name", "model", "dataset", "checkpoint", "records", "methods", "params_removed",
         "units_removed", "seeds", "train", "finetune", "device", "test_images",
         "normalization", "model_args", "train_seeds", "input_prior"}
SUBSET_SEED = 0  # the seed of the test and fine-tuning subsets (one subset for every run)
# coreprune's own methods (drawn solid in plots, "other settings of ours" in verdicts)
OWN_METHODS = ("coreset", "coreset-scaled", "coreset-theory", "greedy")
# the label suffixes of coreprune 0.3 and the compensations they meant
LEGACY_SUFFIXES = {"bn": "bn-mean", "nobn": "none"}


def method_options(label: str) -> tuple[str, dict[str, Any]]:
    """``(method, options)`` of a config's method label: ``"coreset+reconstruct"`` is
    ``("coreset", {"compensate": "reconstruct"})``, ``"l1+bn"`` is ``("l1", {"compensate":
    "bn-mean"})``, a label without ``+`` is itself with no options.

    Raises:
        InvalidArgumentError: an unknown method or compensation, or a compensation on a
            Torch-Pruning peer.
    """
    method, options = label, {}
    if "+" in label:
        method, suffix = label.rsplit("+", 1)
        name = LEGACY_SUFFIXES.get(suffix, suffix)
        if name not in compensations():
            raise InvalidArgumentError(f"unknown compensation {suffix!r} in {label!r}; known: "
                                       f"{compensations()}")
        if method in PEERS:
            raise InvalidArgumentError(f"{label!r}: compensations apply to coreprune's own "
                                       f"methods, not to the Torch-Pruning peer {method!r}")
        options = {"compensate": name}
    known = set(registered_methods()) | set(PEERS)
    if method not in known:
        raise InvalidArgumentError(f"unknown method {label!r}; known: {sorted(known)} (each of "
                                   f"coreprune's own also as METHOD+COMPENSATION, with one of "
                                   f"{compensations()})")
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
               "seeds"} - set(raw)
    if missing:
        raise InvalidArgumentError(f"{p}: missing keys {sorted(missing)}")
    kinds = [k for k in ("params_removed", "units_removed") if k in raw]
    if len(kinds) != 1:
        raise InvalidArgumentError(f"{p}: give exactly one of params_removed, units_removed")
    if raw.get("normalization", "standard") not in NORMALIZATIONS:
        raise InvalidArgumentError(f"{p}: normalization must be one of {NORMALIZATIONS}, got "
                                   f"{raw['normalization']!r}")
    if not isinstance(raw.get("model_args", {}), dict):
        raise InvalidArgumentError(f"{p}: model_args must be a mapping")
    train_seeds = raw.get("train_seeds")
    if train_seeds is not None and (not isinstance(train_seeds, list) or not train_seeds or not
                                    all(isinstance(x, int) and not isinstance(x, bool)
                                        for x in train_seeds)):
        raise InvalidArgumentError(f"{p}: train_seeds must be a list of integers, got "
                                   f"{train_seeds!r}")
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
    ratios = [check_fraction(r, f"{p}: {kinds[0]}") for r in raw[kinds[0]]]
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
    prior = raw.get("input_prior")
    if prior is not None:
        if not isinstance(prior, list) or len(prior) not in (2, 3):
            raise InvalidArgumentError(f"{p}: input_prior must be [mean, std] or "
                                       f"[mean, std, spatial_correlation], got {prior!r}")
        try:
            prior = InputPrior.from_value(tuple(tuple(v) if isinstance(v, list) else v
                                                for v in prior))
        except InvalidArgumentError as e:
            raise InvalidArgumentError(f"{p}: {e}") from None
    return BenchConfig(str(raw["name"]), raw["model"], raw["dataset"], Path(raw["checkpoint"]),
                       Path(raw["records"]), list(raw["methods"]), ratios, list(seeds),
                       dict(raw.get("train", {})), dict(raw.get("finetune", {})),
                       raw.get("device"),
                       _check_count(raw.get("test_images"), f"{p}: test_images"), p,
                       kinds[0], raw.get("normalization", "standard"),
                       dict(raw.get("model_args", {})), train_seeds, prior)


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
    """The level a record was asked for: its target's ``params_removed``, or ``1 - keep_ratio``
    (units removed); the achieved fraction of parameters if it has no target."""
    target = record.get("target", {})
    if "keep_ratio" in target:
        return _level(1.0 - target["keep_ratio"])
    return _level(target.get("params_removed", record["params_removed"]))


def run_key(method: str, level: float, seed: int, train_seed: int | None = None
            ) -> tuple[str, float, int, int | None]:
    """The key of one run (method label, compression level, seed, training seed): a records
    file holds at most one record per key, and a resumed bench skips the keys it holds."""
    return method, _level(level), seed, train_seed


def record_key(record: dict[str, Any]) -> tuple[str, float, int, int | None]:
    """:func:`run_key` of the run that made ``record``."""
    return record["method"], _record_level(record), record["seed"], record.get("train_seed")


def load_bench_data(cfg: BenchConfig, data_root: str | None = None) -> tuple[Split, Split, Split]:
    """``(train, test, finetune)`` splits of ``cfg``: the test split cut to ``test_images`` and
    the fine-tuning split to ``finetune.train_images`` (seeded subsets) where the config says so.
    """
    tr, te = load_dataset(cfg.dataset, data_root, normalization=cfg.normalization)
    if cfg.test_images is not None:
        te = te.subset(cfg.test_images, seed=SUBSET_SEED)
    n = cfg.finetune.get("train_images")
    return tr, te, (tr if n is None else tr.subset(n, seed=SUBSET_SEED))


def trained_model(cfg: BenchConfig, train_split: Split,
                  log: Callable[[str], None] = print,
                  train_seed: int | None = None) -> torch.nn.Module:
    """The model of ``cfg.checkpoint_for(train_seed)``; trained on ``train_split`` with
    ``cfg.train`` (its seed replaced by ``train_seed`` when given) and saved there first if the
    file is missing.

    Raises:
        CheckpointError: the checkpoint holds another zoo model than ``cfg.model``.
    """
    path = cfg.checkpoint_for(train_seed)
    if path.exists():
        model, meta = io.load_with_metadata(path)
        if meta.get("model", cfg.model) != cfg.model:
            raise CheckpointError(f"{path} holds a {meta.get('model')!r}, the config "
                                  f"asks for {cfg.model!r}")
        return model
    t = {"epochs": 15, "lr": 1e-3, "optimizer": "adam", "seed": 0, **cfg.train}
    if train_seed is not None:
        t["seed"] = train_seed
    log(f"training {cfg.model} on {cfg.dataset} ({t}); cached in {path}")
    torch.manual_seed(t["seed"])
    model = build_model_for_split(cfg.model, train_split, **cfg.model_args)
    train(model, train_split, device=cfg.device, progress=False, **t)
    path.parent.mkdir(parents=True, exist_ok=True)
    io.save(model.cpu(), path, {"model": cfg.model, "dataset": cfg.dataset,
                                "normalization": cfg.normalization,
                                "model_args": cfg.model_args, "torch_threads":
                                    torch.get_num_threads(), **t})
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
    """Run every (method, level, seed) of ``cfg``, for every training seed, not yet in
    ``cfg.records``.

    Returns every record of the file (old and new).
    """
    tr, te, tune_split = load_bench_data(cfg, data_root)
    cfg.records.parent.mkdir(parents=True, exist_ok=True)
    old = read_records(cfg.records)
    done = {record_key(r) for r in old}
    ft = {"finetune_epochs": cfg.finetune.get("epochs", 20),
          "finetune_lr": cfg.finetune.get("lr", 0.05),
          "finetune_optimizer": cfg.finetune.get("optimizer", "sgd")}
    for train_seed in (cfg.train_seeds or [None]):
        todo = [(m, r, s) for r in cfg.levels for m in cfg.methods for s in cfg.seeds
                if run_key(m, r, s, train_seed) not in done]
        tag = "" if train_seed is None else f" (training seed {train_seed})"
        log(f"{cfg.name}{tag}: {len(done)} records found, {len(todo)} to run -> {cfg.records}")
        if not todo:
            continue
        model = trained_model(cfg, tr, log, train_seed)
        if cfg.device:
            model.to(cfg.device)
        acc0 = evaluate(model, te)
        _check_same_model([r for r in old if r.get("train_seed") == train_seed], acc0, len(te),
                          cfg)
        log(f"unpruned accuracy {acc0:.2f} on {len(te)} test images; fine-tuning on "
            f"{len(tune_split)} training images")
        x = te.x[:2].to(next(model.parameters()).device)
        for i, (label, level, seed) in enumerate(todo):
            method, options = method_options(label)
            if cfg.input_prior is not None and method not in PEERS:
                options["input_prior"] = cfg.input_prior
            rec, _, _ = prune_and_evaluate(model, method, cfg.target(level), seed, tune_split,
                                           te, cfg.model, cfg.dataset, acc_unpruned=acc0,
                                           example_inputs=x, device=cfg.device, **ft,
                                           **options)
            rec["method"] = label
            rec["data_independent"] = (PEERS[method].data_independent if method in PEERS
                                       else True)
            if train_seed is not None:
                rec["train_seed"] = train_seed
            if cfg.normalization != "standard":
                rec["normalization"] = cfg.normalization
            if cfg.test_images is not None:
                rec["test_images"] = len(te)
            if "train_images" in cfg.finetune:
                rec["finetune"]["train_images"] = len(tune_split)
            append_record(cfg.records, rec)
            log(f"[{i + 1}/{len(todo)}] {label:22s} level {level:.2f} removed "
                f"{rec['params_removed']:.3f} seed {seed}  pruned {rec['acc_pruned']:6.2f}  "
                f"fine-tuned {rec['acc_finetuned']:6.2f}  ({rec['prune_seconds']:.1f} s)")
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
    """One row per (method, target): mean, population sd, min and max over runs (seeds and
    training seeds) of the accuracy before (``pruned_*``) and after (``finetuned_*``)
    fine-tuning, and of the drop before fine-tuning (``drop_*``: unpruned minus pruned, per
    trained model). ``kind`` is ``"units"`` for per-layer unit targets, else ``"params"``."""
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in records:
        missing = [k for k in RECORD_KEYS if k not in r]
        if missing:
            raise DataFileError(f"a record lacks keys {missing}")
        groups.setdefault((r["method"], _record_level(r)), []).append(r)
    rows = []
    for (method, target), rs in groups.items():
        row = {"method": method, "target": target,
               "kind": "units" if "keep_ratio" in rs[0].get("target", {}) else "params",
               "params_removed": statistics.mean(r["params_removed"] for r in rs),
               "seeds": len(rs),
               "train_seeds": len({r.get("train_seed") for r in rs})}
        for name, vals in (("pruned", [r["acc_pruned"] for r in rs]),
                           ("finetuned", [r["acc_finetuned"] for r in rs]),
                           ("drop", [r["acc_unpruned"] - r["acc_pruned"] for r in rs]),
                           ("unpruned", [r["acc_unpruned"] for r in rs])):
            row.update({f"{name}_mean": statistics.mean(vals),
                        f"{name}_sd": statistics.pstdev(vals),
                        f"{name}_min": min(vals), f"{name}_max": max(vals)})
        rows.append({**row,
                     "data_independent": all(r.get("data_independent", True) for r in rs),
                     "acc_unpruned": row["unpruned_mean"],
                     "finetuned": any(r.get("finetune", {}).get("epochs", 0) for r in rs),
                     "prune_seconds": statistics.mean(r.get("prune_seconds", 0.0) for r in rs)})
    rows.sort(key=lambda row: (row["target"], row["method"]))
    return rows


def _level_label(row: dict[str, Any]) -> str:
    return f"{100 * row['target']:.0f}% {'units' if row['kind'] == 'units' else 'params'}"


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
    panels = [("pruned", "before fine-tuning (no data)")]
    if any(r["finetuned"] for r in rows):
        panels.append(("finetuned", "after fine-tuning"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels) + 1, 4.4),
                             sharex=True, squeeze=False)
    axes = axes[0]
    for ax, (key, label) in zip(axes, panels, strict=True):
        for method in names:
            pts = [r for r in rows if r["method"] == method]  # sorted by target
            xs = [100 * r["target"] for r in pts]
            mean, lo, hi = ([r[f"{key}_{s}"] for r in pts] for s in ("mean", "min", "max"))
            style = "-" if method.split("+")[0] in OWN_METHODS else "--"
            (line,) = ax.plot(xs, mean, style, marker="o", label=method, color=colours[method],
                              linewidth=2.2 if method == DEFAULT_METHOD else 1.2)
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15)
        ax.axhline(rows[0]["acc_unpruned"], color="k", linewidth=0.8, linestyle=":",
                   label="unpruned")
        ax.set_title(f"{title}: {label}", fontsize=10)
        ax.set_xlabel("units removed per layer (%)" if rows[0]["kind"] == "units"
                      else "parameters removed (%)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    png = BytesIO()
    fig.savefig(png, format="png", dpi=110)
    plt.close(fig)
    return io.atomic_write_bytes(path, png.getvalue(), overwrite=True)


def _verdict(rows: list[dict[str, Any]], target: float) -> str:
    """How the default method (:data:`DEFAULT_METHOD`) compares at ``target``: before
    fine-tuning with every other data-independent method (its own other settings named apart),
    after fine-tuning with the best of all."""
    at = [r for r in rows if r["target"] == target]
    ours = next((r for r in at if r["method"] == DEFAULT_METHOD), None)
    if ours is None:
        return ""
    free = [r for r in at if r["data_independent"] and r["method"] != DEFAULT_METHOD]
    above = [r["method"] for r in free if r["pruned_mean"] > ours["pruned_mean"] + 1e-9]
    beaten = [m for m in above if m.split("+")[0] not in OWN_METHODS]
    variants = [m for m in above if m.split("+")[0] in OWN_METHODS]
    a = (f"before fine-tuning: {DEFAULT_METHOD} ≥ every data-independent baseline"
         if not beaten else f"before fine-tuning: {DEFAULT_METHOD} BELOW {', '.join(beaten)}")
    if variants:
        a += f" (other settings of ours above it: {', '.join(variants)})"
    if not ours["finetuned"]:
        return a
    best = max(at, key=lambda r: r["finetuned_mean"])
    gap = best["finetuned_mean"] - ours["finetuned_mean"]
    b = (f"after fine-tuning: {gap:.2f} below the best ({best['method']})" if gap > 0 else
         f"after fine-tuning: {DEFAULT_METHOD} is the best")
    flag = " — within 0.5: yes" if gap <= 0.5 else " — within 0.5: NO"
    return f"{a}; {b}{flag}"


def results_markdown(sections: list[tuple[str, list[dict[str, Any]], str]],
                     command: str, title: str = "Benchmark results") -> str:
    """The Markdown of the results page: per section (title, records, PNG name) a table of
    mean ± sd over runs per method and level (accuracy before fine-tuning, its drop from the
    unpruned model, accuracy after fine-tuning) and a verdict line per level; a section
    without records says so (its third item is then the command to run)."""
    lines = [f"# {title}", "",
             "Generated from the JSON records by", "", f"    {command}", "",
             "Accuracies are test top-1 in percent, mean ± population sd over runs (pruning "
             "seeds × trained models); `drop` is the unpruned model's accuracy minus the pruned "
             "one's before fine-tuning, per trained model. *Before fine-tuning* no method reads "
             "data, except those marked `data-dep.`. Torch-Pruning peers prune to the same "
             "per-layer widths as coreprune's methods.", ""]
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
        trained = sorted({r.get("train_seed") for r in records}, key=str)
        unpruned = {r.get("train_seed"): r["acc_unpruned"] for r in records}
        acc = statistics.mean(unpruned.values())
        models = (f"{len(trained)} trained models (training seeds "
                  f"{', '.join(map(str, trained))}), unpruned "
                  f"{acc:.2f} ± {statistics.pstdev(unpruned.values()):.2f}"
                  if len(trained) > 1 else f"unpruned accuracy {acc:.2f}")
        tuning = (f"fine-tuning {ft.get('epochs')} epoch{'' if ft.get('epochs') == 1 else 's'} "
                  f"{ft.get('optimizer')} lr {ft.get('lr')}{tuned}" if ft.get("epochs")
                  else "no fine-tuning")
        lines += [f"## {title}", "", f"{models}{tested}; {tuning}; {len(records)} records.", "",
                  f"![{title}]({png})", "",
                  "| level | params removed | method | runs | before fine-tuning | drop | "
                  "after fine-tuning | prune time (s) |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            name = r["method"] + ("" if r["data_independent"] else " (data-dep.)")
            after = (f"{r['finetuned_mean']:.2f} ± {r['finetuned_sd']:.2f}" if r["finetuned"]
                     else "-")
            lines.append(f"| {_level_label(r)} | {100 * r['params_removed']:.1f}% | {name} | "
                         f"{r['seeds']} | {r['pruned_mean']:.2f} ± {r['pruned_sd']:.2f} | "
                         f"{r['drop_mean']:.2f} ± {r['drop_sd']:.2f} | {after} | "
                         f"{r['prune_seconds']:.2f} |")
        lines.append("")
        for t in sorted({r["target"] for r in rows}):
            v = _verdict(rows, t)
            if v:
                label = _level_label(next(r for r in rows if r["target"] == t))
                lines.append(f"- {label}: {v}")
        lines.append("")
    return "\n".join(lines)
