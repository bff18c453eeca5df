"""Command line: ``coreprune {demo,train,prune,eval,verify,bench,methods}``
(also ``python -m coreprune``).

The CLI parses and calls; every error coreprune raises on purpose is printed on one line and
the exit status is 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
import yaml

from . import io
from .bench import (
    load_config,
    method_options,
    plot_records,
    read_records,
    results_markdown,
    run_bench,
)
from .compensation import compensation_description, compensations
from .data import DATASETS, NORMALIZATIONS, Split, load_dataset
from .errors import CorepruneError, CorepruneWarning, InvalidArgumentError, describe
from .experiment import prune_and_evaluate, prune_model
from .importance import method_description, methods
from .metrics import count_flops, count_params, measure_latency
from .models import MODELS, build_model_for_split
from .pruning import default_example_inputs
from .pruning.heads import DEFAULT_HEAD_METHOD, HEAD_COMPENSATIONS, HEAD_METHODS
from .pruning.peers import PEERS
from .pruning.pruner import DEFAULT_METHOD, MOMENT_MODELS, UNITS
from .train import FINETUNE_EPOCHS, FINETUNE_LR, FINETUNE_OPTIMIZER, evaluate, train
from .verify import verify_checkpoint_record

__all__ = ["main", "build_parser"]


def _out_path(value: str | None, overwrite: bool) -> Path | None:
    """Refuse an existing output before any long work starts (the write checks again)."""
    if value is None:
        return None
    return io.check_output_path(value, overwrite)


def _checkpoint_and_data(args: argparse.Namespace) -> tuple[torch.nn.Module, dict, str, Split,
                                                            Split]:
    """The checkpoint's model and metadata, and the dataset it names (or ``--dataset``)."""
    model, meta = io.load_with_metadata(args.checkpoint, map_location=args.device or "cpu",
                                        trusted=args.trust_pickle)
    dataset = args.dataset or meta.get("dataset")
    if dataset is None:
        raise InvalidArgumentError("the checkpoint names no dataset: pass --dataset")
    tr, te = load_dataset(dataset, args.data_root,
                          normalization=meta.get("normalization", "standard"))
    return model, meta, dataset, tr, te


def _measure(model: torch.nn.Module, split: Split) -> dict[str, float]:
    """Parameters, FLOPs of one input, and median CPU latency of a batch of 64."""
    return {"params": count_params(model), "flops": count_flops(model, split.x[:2]),
            "latency_ms": measure_latency(model, split.x[:64])}


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for j, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        if j == 0:
            print("  ".join("-" * w for w in widths))


def _summary_rows(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = [("", "unpruned", "pruned", "change")]
    for key, fmt in (("params", "{:,.0f}"), ("flops", "{:,.0f}"), ("latency_ms", "{:.3f}"),
                     ("accuracy", "{:.2f}"), ("accuracy_finetuned", "{:.2f}")):
        if key in after:
            b = before.get(key, before.get("accuracy"))
            a = after[key]
            ch = f"{(a / b - 1) * 100:+.1f}%" if key in ("params", "flops", "latency_ms") \
                else f"{a - b:+.2f}"
            rows.append((key, fmt.format(b), fmt.format(a), ch))
    return rows


def cmd_train(args: argparse.Namespace) -> int:
    out = _out_path(args.out, args.overwrite)
    model_args = _options(args.model_arg, "--model-arg")
    tr, te = load_dataset(args.dataset, args.data_root, normalization=args.normalization)
    torch.manual_seed(args.seed)
    model = build_model_for_split(args.model, tr, **model_args)
    train(model, tr, epochs=args.epochs, lr=args.lr, optimizer=args.optimizer,
          batch_size=args.batch_size, seed=args.seed, device=args.device,
          weight_decay=args.weight_decay)
    acc = evaluate(model, te, device=args.device)
    meta = {"model": args.model, "model_args": model_args, "dataset": args.dataset,
            "normalization": args.normalization, "epochs": args.epochs, "lr": args.lr,
            "optimizer": args.optimizer, "weight_decay": args.weight_decay, "seed": args.seed,
            "accuracy": acc}
    if out is not None:
        io.save(model.cpu(), out, meta, overwrite=args.overwrite)
    result = {**meta, "params": count_params(model)}
    print(json.dumps(result))
    if args.json:
        io.write_json(args.json, result, overwrite=args.overwrite)
    return 0


def _fraction_flag(value: float, flag: str, closed_right: bool = False) -> float:
    """``value`` checked for flag ``flag``: in [0, 1), or in (0, 1] when ``closed_right``."""
    ok = 0.0 < value <= 1.0 if closed_right else 0.0 <= value < 1.0
    if not ok:
        interval = "(0, 1]" if closed_right else "[0, 1)"
        raise InvalidArgumentError(f"{flag} must lie in {interval}, got {value:g}")
    return value


def _target(args: argparse.Namespace) -> dict[str, Any]:
    """The pruning target of the flags, each checked and named (before any heavy work)."""
    given = [a for a in ("ratio", "flops_ratio", "keep_ratio", "layer_ratios")
             if getattr(args, a) is not None]
    if len(given) > 1:
        raise InvalidArgumentError("give only one of --ratio, --flops-ratio, --keep-ratio, "
                                   "--layer-ratios")
    if args.flops_ratio is not None:
        return {"flops_removed": _fraction_flag(args.flops_ratio, "--flops-ratio")}
    if args.keep_ratio is not None:
        return {"keep_ratio": _fraction_flag(args.keep_ratio, "--keep-ratio", closed_right=True)}
    if args.layer_ratios is not None:
        spec = io.read_yaml_mapping(args.layer_ratios, "layer ratio spec {layer: keep ratio}")
        return {"layer_ratios": {str(k): v for k, v in spec.items()}}
    return {"params_removed": 0.9 if args.ratio is None else _fraction_flag(args.ratio,
                                                                             "--ratio")}


def _input_shape(value: str | None) -> tuple[int, ...] | None:
    """``--input-shape 1,3,224,224`` as a tuple of positive ints."""
    if value is None:
        return None
    try:
        shape = tuple(int(v) for v in value.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) < 2 or min(shape) < 1:
        raise InvalidArgumentError(f"--input-shape takes positive sizes N,C,H,W (e.g. "
                                   f"1,3,224,224), got {value!r}")
    return shape


def _check_forward(model: torch.nn.Module, x: torch.Tensor, what: str) -> None:
    """One line naming ``what`` if ``model`` fails on ``x`` (before any heavy work)."""
    try:
        with torch.no_grad():
            model.eval()(x)
    except Exception as exc:
        raise InvalidArgumentError(f"the model fails on {what} of shape {tuple(x.shape)} "
                                   f"({describe(exc)})") from None


def _options(pairs: list[str], flag: str = "--option") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise InvalidArgumentError(f"{flag} takes KEY=VALUE, got {pair!r}")
        k, v = pair.split("=", 1)
        out[k] = yaml.safe_load(v)
    return out


def _prior(args: argparse.Namespace) -> dict[str, Any]:
    """The moment-model options given on the command line (none: the library defaults)."""
    out: dict[str, Any] = {}
    if args.input_prior is not None:
        mean, std = args.input_prior
        if not std >= 0:
            raise InvalidArgumentError(f"--input-prior STD must be >= 0, got {std}")
        out["input_prior"] = (mean, std)
    if args.moment_method is not None:
        out["moment_method"] = args.moment_method
    if args.moment_model is not None:
        out["moment_model"] = args.moment_model
    return out


def cmd_prune(args: argparse.Namespace) -> int:
    out = _out_path(args.out, args.overwrite)
    target, shape = _target(args), _input_shape(args.input_shape)
    if args.method is None:
        args.method = DEFAULT_HEAD_METHOD if args.units == "heads" else DEFAULT_METHOD
    options = {"units": args.units, "prune_coupled": args.prune_coupled,
               "allocation": args.allocation,
               "compensate": args.compensate, **_prior(args), **_options(args.option),
               "min_keep_fraction": _fraction_flag(args.min_keep_fraction,
                                                   "--min-keep-fraction")}
    if args.distill_steps < 0:
        raise InvalidArgumentError(f"--distill-steps must be >= 0, got {args.distill_steps}")
    if args.distill_steps:
        options["distill_steps"] = args.distill_steps
    if args.finetune_epochs is not None and args.finetune_epochs < 0:
        raise InvalidArgumentError(f"--finetune-epochs must be >= 0, got {args.finetune_epochs}")
    model, meta = io.load_model_file(args.checkpoint, args.model,
                                     map_location=args.device or "cpu",
                                     trusted=args.trust_pickle)
    dataset = args.dataset or meta.get("dataset")
    if dataset is None and args.finetune_epochs:
        raise InvalidArgumentError("--finetune-epochs needs --dataset (fine-tuning reads data)")
    if dataset is None:
        return _prune_without_data(args, model, meta, target, shape, options, out)
    tr, te = load_dataset(dataset, args.data_root,
                          normalization=meta.get("normalization", "standard"))
    x = te.x[:2]  # the dataset's images trace the model (--input-shape is for no dataset)
    _check_forward(model, x.to(args.device or "cpu"), f"--dataset {dataset} images")
    before = _measure(model, te)
    epochs = FINETUNE_EPOCHS if args.finetune_epochs is None else args.finetune_epochs
    record, tuned, _ = prune_and_evaluate(
        model, args.method, target, args.seed, tr, te, meta.get("model", "model"),
        dataset, finetune_epochs=epochs, finetune_lr=args.finetune_lr,
        finetune_optimizer=args.finetune_optimizer, example_inputs=x, device=args.device,
        **options)
    tuned = tuned.cpu()
    before["accuracy"] = record["acc_unpruned"]
    after = {**_measure(tuned, te), "accuracy": record["acc_pruned"],
             "accuracy_finetuned": record["acc_finetuned"]}
    return _finish_prune(args, tuned, meta, record, before, after, out)


def _prune_without_data(args: argparse.Namespace, model: torch.nn.Module, meta: dict,
                        target: dict[str, Any], shape: tuple[int, ...] | None,
                        options: dict[str, Any], out: Path | None) -> int:
    """No dataset: prune from the weights and report parameters, FLOPs and CPU latency."""
    if shape is None:
        try:
            x = default_example_inputs(model)
        except InvalidArgumentError:
            raise InvalidArgumentError("the model declares no input shape and no --dataset is "
                                       "given: pass --input-shape N,C,H,W (e.g. 1,3,224,224)"
                                       ) from None
    else:
        x = torch.randn(shape, generator=torch.Generator().manual_seed(args.seed))
    x = x.to(args.device or "cpu")
    _check_forward(model, x, "--input-shape inputs" if shape else "its declared input")
    pruned, _, stats, seconds = prune_model(model, args.method, target, args.seed, x, **options)
    (p0, p1), (f0, f1) = stats["params"], stats["flops"]
    record = {"model": meta.get("model", type(model).__name__), "dataset": None,
              "method": args.method, "seed": args.seed, "params_removed": 1.0 - p1 / p0,
              "flops_removed": 1.0 - f1 / f0 if f0 else 0.0, "prune_seconds": seconds,
              "target": target, "input_shape": list(x.shape), **stats}
    pruned = pruned.cpu()
    x = x.cpu()
    before = {"params": p0, "flops": f0, "latency_ms": measure_latency(model.cpu(), x)}
    after = {"params": p1, "flops": f1, "latency_ms": measure_latency(pruned, x)}
    return _finish_prune(args, pruned, meta, record, before, after, out)


def _finish_prune(args: argparse.Namespace, pruned: torch.nn.Module, meta: dict,
                  record: dict[str, Any], before: dict[str, Any], after: dict[str, Any],
                  out: Path | None) -> int:
    """Print the summary and layer tables; write the checkpoint and JSON asked for."""
    _print_table(_summary_rows(before, after))
    print()
    _print_table([("layer", "units", "kept", "total sensitivity")] + [
        (lr["name"], str(lr["units"]), str(lr["kept"]),
         "-" if lr["total_sensitivity"] is None else f"{lr['total_sensitivity']:.1f}")
        for lr in record["layers"]])
    record.update({"before": before, "after": after, "checkpoint": str(args.checkpoint)})
    if out is not None and meta.get("hf_folder") and out.suffix not in (".pt", ".pth"):
        io.save_hf_folder(pruned, out, {"pruned": record}, overwrite=args.overwrite)
        print(f"\npruned model written to the folder {out} (from_pretrained loads it)")
    elif out is not None:
        io.save(pruned, out, {**meta, "pruned": record}, overwrite=args.overwrite)
        print(f"\npruned model written to {out}")
    if args.json:
        io.write_json(args.json, record, overwrite=args.overwrite)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    model, _, dataset, _, te = _checkpoint_and_data(args)
    result = {"checkpoint": str(args.checkpoint), "dataset": dataset, **_measure(model, te),
              "accuracy": evaluate(model, te, device=args.device)}
    print(json.dumps(result))
    if args.json:
        io.write_json(args.json, result, overwrite=args.overwrite)
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    for name in methods():
        print(f"{name:16s} {method_description(name)}")
    for name, peer in PEERS.items():
        print(f"{name:16s} {peer.description} (`coreprune prune` and `bench` only)")
    print("\ncompensations (--compensate NAME; bench label METHOD+NAME):")
    for name in compensations():
        print(f"{name:16s} {compensation_description(name)}")
    print("\nhead methods (--units heads --method NAME; --compensate "
          f"{'|'.join(HEAD_COMPENSATIONS)}):")
    for name in HEAD_METHODS.names():
        print(f"{name:16s} {HEAD_METHODS.description(name)}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    pruned, pmeta = io.load_with_metadata(args.pruned, trusted=args.trust_pickle)
    original, ometa = io.load_with_metadata(args.original, trusted=args.trust_pickle)
    dataset = pmeta.get("dataset") or ometa.get("dataset")
    x = _example_inputs(original, dataset, args.data_root)
    checks = verify_checkpoint_record(pruned, pmeta.get("pruned"), original, x, seed=args.seed,
                                      n_random=args.queries, steps=args.steps, progress=True)
    rows = [("layer", "units", "kept", "rank", "total sens.", "err random", "err ascent",
             "bound", "eps (sampling)", "ok", "pred. err recon.", "pred. err drop")]
    for c in checks:
        rows.append((c.name, str(c.units), str(c.kept), str(c.rank),
                     f"{c.total_sensitivity:.1f}", f"{c.error_random:.4f}",
                     f"{c.error_ascent:.4f}", f"{c.bound:.4f}",
                     "-" if c.eps_sampling is None else f"{c.eps_sampling:.3f}",
                     "yes" if c.within_bound else "NO",
                     "-" if c.predicted_error is None else f"{c.predicted_error:.4f}",
                     "-" if c.predicted_error_drop is None else f"{c.predicted_error_drop:.4f}"))
    _print_table(rows)
    print("\nerr/bound: the coreset's measured error and its guaranteed bound (the selection's "
          "point set); pred. err: the model-predicted relative output error of the fold "
          "(least-squares reconstruction) and of plain dropping, under the input prior")
    if args.json:
        io.write_json(args.json, {"pruned": str(args.pruned), "original": str(args.original),
                                  "layers": [c.to_dict() for c in checks]},
                      overwrite=args.overwrite)
    return 0 if all(c.within_bound for c in checks) else 1


def cmd_bench(args: argparse.Namespace) -> int:
    md = _out_path(args.results_md, args.overwrite)
    configs = [load_config(c) for c in args.config]
    sections = []
    for cfg, path in zip(configs, args.config, strict=True):
        records = read_records(cfg.records) if args.no_run else run_bench(cfg, args.data_root)
        if not records:
            print(f"{cfg.name}: no records yet in {cfg.records}")
            sections.append((cfg.name, [], f"coreprune bench {path}"))
            continue
        png = plot_records(records, cfg.records.with_suffix(".png"), cfg.name)
        print(f"{cfg.name}: {len(records)} records, plot {png}")
        sections.append((cfg.name, records, png))
    if md is not None:
        command = " ".join(["coreprune bench", *args.config, "--no-run", "--results-md",
                            args.results_md, "--overwrite",
                            *(["--title", shlex.quote(args.title)] if args.title else [])])
        rel = [(t, r, os.path.relpath(png, md.parent) if r else png) for t, r, png in sections]
        text = results_markdown(rel, command, args.title or "Benchmark results")
        io.atomic_write_bytes(md, text.encode(), args.overwrite)
        print(f"results table written to {md}")
    return 0


def _example_inputs(model: torch.nn.Module, dataset: str | None,
                    data_root: str | None) -> torch.Tensor:
    """Two inputs for tracing: the model's declared shape, else two test images."""
    try:
        return default_example_inputs(model)
    except InvalidArgumentError:
        if dataset is None:
            raise
        return load_dataset(dataset, data_root)[1].x[:2]


def cmd_demo(args: argparse.Namespace) -> int:
    """Main job: train LeNet-300-100, prune 90% of its parameters with the default (greedy
    selection, least-squares reconstruction), the paper's coreset and the baselines; accuracy
    before (no data) and after fine-tuning."""
    tr, te = load_dataset("fashion-mnist", args.data_root, fallback=True)
    dataset = "fashion-mnist" if tr.x.shape[-1] == 28 else "digits"
    torch.manual_seed(args.seed)
    model = build_model_for_split("lenet300", tr)
    print(f"training LeNet-300-100 on {dataset} ({len(tr)} images, {args.epochs} epochs)")
    train(model, tr, epochs=args.epochs, lr=1e-3, seed=args.seed)
    acc0 = evaluate(model, te)
    rows = [("method", "params removed", "acc unpruned", "acc pruned (no data)",
             "acc fine-tuned")]
    for label in args.methods.split(","):
        method, options = method_options(label)
        rec, _, _ = prune_and_evaluate(model, method, {"params_removed": args.ratio}, args.seed,
                                       tr, te, "lenet300", dataset,
                                       finetune_epochs=args.finetune_epochs, acc_unpruned=acc0,
                                       **options)
        rows.append((label, f"{rec['params_removed']:.1%}", f"{acc0:.2f}",
                     f"{rec['acc_pruned']:.2f}", f"{rec['acc_finetuned']:.2f}"))
    print()
    _print_table(rows)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="coreprune", description=(
        "Prune trained PyTorch networks without data: choose the neurons and filters to keep "
        "from the weights, reconstruct what the removed ones contributed, return a smaller "
        "plain PyTorch model."))
    sub = ap.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-root", help="folder of the dataset files")
        p.add_argument("--trust-pickle", action="store_true",
                       help="load checkpoints with the full unpickler, which can run code from "
                            "the file: only for files you trust (by default only torch.nn, "
                            "torchvision and zoo module classes are built)")
        p.add_argument("--device", default=None, help="cpu or cuda (default: the model's)")
        p.add_argument("--json", help="also write the results as JSON to this new file")
        p.add_argument("--overwrite", action="store_true", help="replace existing outputs")

    p = sub.add_parser("demo", help="train LeNet-300-100 on Fashion-MNIST, prune 90%% of its "
                       "parameters without data, then fine-tune")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--finetune-epochs", type=int, default=FINETUNE_EPOCHS)
    p.add_argument("--ratio", type=float, default=0.9)
    p.add_argument("--methods", default="greedy,coreset,coreset+none,neuron-merging,mussay,l1,"
                   "random", help="comma-separated method labels (METHOD or "
                   "METHOD+COMPENSATION)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train a zoo model and save a checkpoint")
    p.add_argument("--model", choices=sorted(MODELS), default="lenet300")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="zoo model argument, e.g. --model-arg 'hidden=[500, 300]' "
                        "--model-arg activation=gelu (for --model mlp)")
    p.add_argument("--dataset", choices=DATASETS, default="fashion-mnist")
    p.add_argument("--normalization", choices=NORMALIZATIONS, default="standard",
                   help="inputs standardised (default), in [0, 1] (unit) or in [-1, 1] (pm1)")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="checkpoint to write (a new path)")
    common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "prune", help="prune a model file without data; evaluate and fine-tune with --dataset",
        description="Prune a model file from its weights alone. Without --dataset it reports "
        "parameters, FLOPs and CPU latency before and after; with --dataset it also evaluates "
        "and (with --finetune-epochs) fine-tunes. Examples: coreprune prune lenet.pt --ratio 0.8 "
        "--out small.pt; coreprune prune resnet18_state.pt --model resnet18 --input-shape "
        "1,3,224,224 --ratio 0.5 --out small.pt; coreprune prune my_llama/ --ratio 0.2 --out "
        "my_llama_small/")
    p.add_argument("checkpoint", help="the model file: a coreprune checkpoint, a whole module "
                   "saved by torch.save(model) (classes outside torch.nn, torchvision and the "
                   "zoo need --trust-pickle), a state_dict saved by "
                   "torch.save(model.state_dict()) with --model NAME, or a Hugging Face "
                   "save_pretrained folder (needs transformers; no code from it runs)")
    p.add_argument("--model", help="architecture of a state_dict file: a zoo name (lenet300, "
                   "mlp, vgg16, resnet20, ...), a torchvision classification model (e.g. "
                   "resnet18) or a timm model (with timm installed)")
    p.add_argument("--input-shape", help="shape of the example input used to trace the model "
                   "when no --dataset is given, e.g. 1,3,224,224 (default: the model's declared "
                   "shape)")
    p.add_argument("--method", default=None,
                   help=f"one of {', '.join(methods())} (default {DEFAULT_METHOD}: greedy "
                        "selection with least-squares reconstruction); with --units heads one "
                        f"of {', '.join(HEAD_METHODS.names())} (default {DEFAULT_HEAD_METHOD})")
    p.add_argument("--units", choices=UNITS, default="neurons",
                   help="what is pruned: neurons (default: output units of Linear/Conv layers) "
                        "or heads (whole attention heads; the rest stays whole)")
    p.add_argument("--ratio", type=float, help="fraction of parameters to remove, in [0, 1) "
                   "(default 0.9), e.g. --ratio 0.5")
    p.add_argument("--flops-ratio", type=float, help="fraction of FLOPs to remove, in [0, 1)")
    p.add_argument("--keep-ratio", type=float, help="fraction of units every layer keeps, in "
                   "(0, 1], e.g. --keep-ratio 0.5")
    p.add_argument("--layer-ratios", help="YAML/JSON file {layer name: keep ratio}, e.g. "
                   "'{fc1: 0.5, fc2: 0.25}'")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="method option, e.g. --option projection=16")
    p.add_argument("--prune-coupled", action="store_true",
                   help="also prune channels coupled across residual additions")
    p.add_argument("--min-keep-fraction", type=float, default=0.1, metavar="F",
                   help="under --ratio / --flops-ratio every layer keeps at least this fraction "
                        "of its units, in [0, 1) (default 0.1), e.g. --min-keep-fraction 0.05")
    p.add_argument("--allocation", choices=("uniform", "sensitivity", "error"),
                   default="uniform",
                   help="split a global target over layers uniformly, by total sensitivity, or "
                        "by the same predicted reconstruction error in every layer")
    p.add_argument("--compensate", choices=sorted({*compensations(), *HEAD_COMPENSATIONS}),
                   metavar="NAME", default=None,
                   help="what the next layers absorb of the removed units (weights only, no "
                        f"data): one of {', '.join(compensations())}; default: the method's "
                        "choice (reconstruct for coreset and greedy, merge for neuron-merging, "
                        "none for the other baselines); with --units heads one of "
                        f"{', '.join(HEAD_COMPENSATIONS)} (default none)")
    p.add_argument("--no-compensate", dest="compensate", action="store_const", const="none",
                   help="same as --compensate none")
    p.add_argument("--input-prior", nargs=2, type=float, metavar=("MEAN", "STD"),
                   help="the input model of the reconstruction: independent N(MEAN, STD^2) per "
                        "input element, in the model's input coordinates (default 0 1)")
    p.add_argument("--moment-model", choices=MOMENT_MODELS,
                   help="the moment model of the reconstruction (default auto: analytic where it "
                        "follows the network, inputs matched to the BatchNorm statistics behind "
                        "residual additions, or for fully connected classifiers inverted: the "
                        "prior mixed with inputs inverted from the model's class scores)")
    p.add_argument("--moment-method", choices=("auto", "closed", "quadrature", "montecarlo"),
                   help="how activation moments are computed (default auto: closed form for "
                        "ReLU, leaky ReLU and GELU, Monte Carlo otherwise)")
    p.add_argument("--distill-steps", type=int, default=0, metavar="N",
                   help="after the folds, train the pruned classifier for N Adam steps to "
                        "reproduce the unpruned model's class scores on inputs inverted from "
                        "them and samples of the input prior (no data read; default 0: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    p.add_argument("--dataset", choices=DATASETS, help="evaluate (and fine-tune) on this "
                   "dataset; default: the one a coreprune checkpoint names, else none")
    p.add_argument("--finetune-epochs", type=int, default=None,
                   help=f"epochs of fine-tuning after pruning (default {FINETUNE_EPOCHS} with a "
                        "dataset, 0 without; 0 keeps the data-free model)")
    p.add_argument("--finetune-lr", type=float, default=FINETUNE_LR)
    p.add_argument("--finetune-optimizer", choices=("sgd", "adam"), default=FINETUNE_OPTIMIZER)
    p.add_argument("--out", help="pruned checkpoint to write (a new path; loads with "
                   "coreprune.load without running code); for a Hugging Face folder, a new "
                   "folder that from_pretrained loads (a .pt path: a coreprune checkpoint)")
    common(p)
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser("eval", help="parameters, FLOPs, latency and accuracy of a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--dataset", choices=DATASETS)
    common(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("methods", help="list the registered importance methods")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("bench", help="run benchmark configs (resumable), plot, write RESULTS.md")
    p.add_argument("config", nargs="+", help="YAML configs (see benchmarks/*.yaml)")
    p.add_argument("--no-run", action="store_true", help="only plot and tabulate the records")
    p.add_argument("--results-md", help="write the Markdown results table here")
    p.add_argument("--data-root")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --results-md")
    p.add_argument("--title", help="the results page's title (default 'Benchmark results')")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("verify", help="measure each pruned layer's coreset error against its "
                       "bound (docs/method.md §1); exit 1 if a bound is exceeded")
    p.add_argument("pruned", help="checkpoint written by `coreprune prune --out`")
    p.add_argument("original", help="the checkpoint it was pruned from")
    p.add_argument("--queries", type=int, default=256, help="random queries per layer")
    p.add_argument("--steps", type=int, default=100, help="gradient-ascent steps per start")
    p.add_argument("--seed", type=int, default=0)
    common(p)
    p.set_defaults(func=cmd_verify)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", CorepruneWarning)
            warnings.showwarning = _show_warning
            return _run(args)
    except CorepruneError as exc:
        print(f"coreprune: error: {exc}", file=sys.stderr)
        return 2


def _show_warning(message, category, *_args, **_kwargs) -> None:
    """Warnings as one line on stderr (a coreprune warning without the source line)."""
    prefix = "coreprune: warning" if issubclass(category, CorepruneWarning) else category.__name__
    print(f"{prefix}: {message}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    device = getattr(args, "device", None)
    if device and str(device).startswith("cuda") and not torch.cuda.is_available():
        raise InvalidArgumentError(f"--device {device}: CUDA is not available here")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
