"""Which models coreprune prunes, beside Torch-Pruning: every classification model torchvision
lists, a timm set and Hugging Face models built from small configs, all with random weights
(seeded; nothing is downloaded), at one parameter target.

For each model, in a fresh subprocess with a time limit:

* coreprune: ``Pruner(method, params_removed=target)`` (default method ``l1``: the structure and
  the surgery; ``--method greedy`` adds the default's moment model and its time). Recorded: ok or
  the one-line error (its type), parameters removed, whether the output keeps its shape and is
  finite, the smallest kept fraction of any pruned layer, seconds and the subprocess's peak
  resident memory.
* Torch-Pruning magnitude on coreprune's widths (the same structure, so the same parameters):
  seconds, and coreprune's time over it. Where both took under ``REPEAT_UNDER`` seconds each
  runs once more and the faster run of each counts (the first run of a process pays for lazy
  imports and warm-up); if the peer times out, coreprune's row stays.
* Torch-Pruning alone: its ``MetaPruner`` with L2 magnitude at the channel ratio
  ``1 - sqrt(1 - target)`` on every layer but the classifier: does it prune, and how much.

With ``--units heads`` the units are attention heads (``Pruner(units="heads")``, default head
method ``output-moment``): ``--target`` is then the fraction of heads removed in every attention
layer (``keep_ratio = 1 - target``), and the Torch-Pruning columns are not run (its head pruning
needs each model's attention modules and head counts named by hand).

Each subprocess runs under an address-space limit (``--memory-gb``, default 12): a model that
needs more is recorded as failed (out of memory) instead of taking the machine down.

    python benchmarks/coverage.py                      # every torchvision model, timm, HF
    python benchmarks/coverage.py --models resnet18 regnet_y_400mf --method greedy
    python benchmarks/coverage.py --max-params 30      # skip models over 30 M parameters
    python benchmarks/coverage.py --units heads --models tv:vit_b_16 timm:deit_tiny_patch16_224

Writes ``benchmarks/results/coverage.{json,md}`` (``--out`` to change) after every model, the
table ending with one line on speed (how many models are within 3x of Torch-Pruning);
``--resume`` keeps the models a previous run recorded there and runs the rest, otherwise an
existing file is replaced only with ``--overwrite``. Timings are on this machine's CPU cores,
one model at a time, ``torch.set_num_threads(--threads)``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE = 64  # input side for image models (larger where a model needs it: SIZES)
SIZES = {"inception_v3": 96, "maxvit_t": 224, "vit_h_14": 70, "swin_t": 224, "swin_s": 224,
         "swin_b": 224, "swin_v2_t": 256, "swin_v2_s": 256, "swin_v2_b": 256}
TIMM = {  # name: create_model options
    "resnet50": {}, "efficientnet_b0": {}, "mobilenetv3_large_100": {}, "regnety_004": {},
    "convnext_atto": {}, "vit_tiny_patch16_224": {"img_size": 64},
    "deit_tiny_patch16_224": {"img_size": 64}, "swin_tiny_patch4_window7_224": {},
}
REPEAT_UNDER = 20.0  # seconds: both tools run twice on a model pruned faster than this
HF = ("bert", "gpt2", "llama", "qwen2", "mistral", "vit")


def _hf_model(name: str):
    import transformers as tf

    small = {"num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 64,
             "intermediate_size": 128, "vocab_size": 1000}
    if name == "bert":
        return tf.BertForSequenceClassification(tf.BertConfig(**small, num_labels=3))
    if name == "gpt2":
        return tf.GPT2LMHeadModel(tf.GPT2Config(n_layer=2, n_head=4, n_embd=64, vocab_size=1000))
    if name == "vit":
        return tf.ViTForImageClassification(tf.ViTConfig(
            **{k: v for k, v in small.items() if k != "vocab_size"}, image_size=32,
            patch_size=8, num_labels=3))
    config = {"llama": tf.LlamaConfig, "qwen2": tf.Qwen2Config, "mistral": tf.MistralConfig}
    model = {"llama": tf.LlamaForCausalLM, "qwen2": tf.Qwen2ForCausalLM,
             "mistral": tf.MistralForCausalLM}
    return model[name](config[name](**small, num_key_value_heads=2))


def build(spec: str):
    """``(model, example inputs)`` of ``spec``: ``tv:NAME``, ``timm:NAME`` or ``hf:NAME``."""
    import torch

    kind, name = spec.split(":", 1)
    torch.manual_seed(0)
    if kind == "tv":
        import torchvision

        kwargs = {"image_size": SIZES.get(name, IMAGE)} if name.startswith("vit_") else {}
        if name in ("googlenet", "inception_v3"):
            kwargs = {"aux_logits": False, "init_weights": True}
        model = torchvision.models.get_model(name, weights=None, **kwargs)
        side = SIZES.get(name, IMAGE)
        return model.eval(), torch.randn(1, 3, side, side)
    if kind == "timm":
        import timm

        model = timm.create_model(name, pretrained=False, **TIMM[name])
        side = TIMM[name].get("img_size", 224 if "swin" in name else IMAGE)
        return model.eval(), torch.randn(1, 3, side, side)
    model = _hf_model(name).eval()
    if name == "vit":
        return model, torch.randn(1, 3, 32, 32)
    return model, torch.randint(0, 1000, (1, 16))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _output_ok(model, x, shape) -> bool:
    import torch

    with torch.no_grad():
        y = model(x)
    y = y if isinstance(y, torch.Tensor) else y[0]
    return tuple(y.shape) == shape and bool(torch.isfinite(y).all())


def run_one(spec: str, tool: str, method: str, target: float, threads: int,
            units: str = "neurons") -> dict:
    """One model through one tool (``coreprune`` with Torch-Pruning on its widths, or
    ``tp-alone``), in this process; with ``units="heads"`` coreprune alone, removing a
    ``target`` fraction of every attention layer's heads."""
    import warnings

    import torch

    from coreprune.metrics import count_params

    torch.set_num_threads(threads)
    warnings.simplefilter("ignore")
    model, x = build(spec)
    with torch.no_grad():
        y = model(x)
    shape = tuple((y if isinstance(y, torch.Tensor) else y[0]).shape)
    out: dict = {"params": count_params(model)}
    if tool == "tp-alone":
        import torch_pruning as tp

        head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1:]
        t0 = time.perf_counter()
        try:
            pruner = tp.pruner.MetaPruner(model, x, importance=tp.importance.MagnitudeImportance(
                p=2), pruning_ratio=1 - math.sqrt(1 - target), ignored_layers=head)
            pruner.step()
        except Exception as exc:  # a peer's failure is a result of the table
            return {**out, "status": _one_line(exc)}
        return {**out, "status": "ok", "seconds": time.perf_counter() - t0,
                "params_removed": 1 - count_params(model) / out["params"],
                "output_ok": _output_ok(model, x, shape), "peak_mb": _peak_mb()}
    from coreprune.errors import CorepruneError
    from coreprune.pruning import Pruner
    from coreprune.pruning.peers import prune_with_torch_pruning

    def ours() -> tuple[float, Pruner, torch.nn.Module]:
        t0 = time.perf_counter()
        pruner = (Pruner(method, params_removed=target, seed=0) if units == "neurons" else
                  Pruner(method, units="heads", keep_ratio=1 - target, seed=0))
        small = pruner.fit_transform(model, x)
        return time.perf_counter() - t0, pruner, small

    def peer() -> float:
        t0 = time.perf_counter()
        prune_with_torch_pruning(model, "tp-magnitude", pruner.groups_, pruner.keep_counts_,
                                 pruner.example_inputs_)
        return time.perf_counter() - t0

    try:
        seconds, pruner, small = ours()
    except CorepruneError as exc:
        return {**out, "status": _one_line(exc), "peak_mb": _peak_mb()}
    except Exception as exc:  # a raw exception is a bug of ours: the table shows it as one
        return {**out, "status": "RAW " + _one_line(exc), "peak_mb": _peak_mb()}
    rep = pruner.report_
    pruned = [lr.kept / lr.n_units for lr in rep.layers if lr.kept < lr.n_units]
    out.update({"status": "ok", "seconds": seconds, "params_removed": rep.params_removed,
                "params_match": rep.params_after == count_params(small),
                "output_ok": _output_ok(small, x, shape), "peak_mb": _peak_mb(),
                "groups": len(rep.layers), "pruned_groups": len(pruned),
                "min_kept_fraction": min(pruned, default=1.0),
                "unpruned_share": rep.unpruned_share, "runs": 1})
    print(json.dumps(out), flush=True)  # what the parent keeps if the peer times out
    if units == "heads":
        return out
    try:
        peer_seconds = peer()
    except Exception as exc:
        out["tp_same_widths"] = _one_line(exc)
        return out
    if max(seconds, peer_seconds) < REPEAT_UNDER:  # a second run of each, the faster counts
        seconds = min(seconds, ours()[0])
        peer_seconds = min(peer_seconds, peer())
        out["runs"] = 2
    out.update(seconds=seconds, tp_same_widths_seconds=peer_seconds)
    return out


def target_of(spec: str, args) -> float:
    """The parameter target of ``spec``: ``--hf-target`` for Hugging Face models (only their
    FFNs are pruned: embeddings, attention and the residual stream hold most of a small
    config's parameters), ``--target`` for the rest."""
    return args.hf_target if spec.startswith("hf:") and args.units == "neurons" else args.target


def _subprocess(spec: str, tool: str, args) -> dict:
    import resource

    cmd = [sys.executable, __file__, "--child", spec, tool, "--method", args.method,
           "--target", str(target_of(spec, args)), "--threads", str(args.threads),
           "--units", args.units]
    limit = int(args.memory_gb * 2**30)

    def cap() -> None:  # address space: a model that needs more fails alone, not the machine
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                              preexec_fn=cap)
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        lines = [ln for ln in partial.splitlines() if ln.startswith("{")]
        timeout = f"timeout after {args.timeout} s"
        return ({**json.loads(lines[-1]), "tp_same_widths": timeout} if lines
                else {"status": timeout})
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = " ".join(done.stderr.strip().splitlines()[-1:])[:300]
        return {"status": f"crashed (exit {done.returncode}): {tail}"}
    return json.loads(lines[-1])


def specs(args) -> list[str]:
    if args.models:
        return [m if ":" in m else f"tv:{m}" for m in args.models]
    import torchvision

    return ([f"tv:{n}" for n in torchvision.models.list_models(module=torchvision.models)]
            + [f"timm:{n}" for n in TIMM] + [f"hf:{n}" for n in HF])


def _n_params(spec: str) -> int:
    """Parameters of ``spec``'s model, built on the meta device where its builder allows."""
    import torch

    try:
        with torch.device("meta"):
            model = build(spec)[0]
    except Exception:  # builders that compute on tensors (RegNet's widths): build it
        model = build(spec)[0]
    return sum(p.numel() for p in model.parameters())


def _fmt(row: dict) -> str:
    cp, tpa = row["coreprune"], row["tp_alone"]
    if cp.get("status") == "ok":
        ratio = (f"{cp['seconds'] / cp['tp_same_widths_seconds']:.1f}"
                 if cp.get("tp_same_widths_seconds") else cp.get("tp_same_widths", "-"))
        got = (f"ok | {cp['params_removed']:.1%} | {'yes' if cp['output_ok'] else 'NO'} | "
               f"{cp['min_kept_fraction']:.2f} | {cp['pruned_groups']}/{cp['groups']} | "
               f"{cp['seconds']:.2f} | {ratio} | {cp['peak_mb']:.0f}")
    else:
        got = f"{cp.get('status')} |  |  |  |  |  |  | "
    peer = (f"ok, {tpa['params_removed']:.1%}" if tpa.get("status") == "ok"
            else tpa.get("status", "-"))
    size = cp.get("params") or tpa.get("params")
    return (f"| {row['model']} | {size / 1e6:.1f} | {got} | {peer} |" if size
            else f"| {row['model']} | - | {got} | {peer} |")


def speed_summary(rows: list[dict]) -> str:
    """One line: how many of the models both tools pruned have coreprune's time within 3x of
    Torch-Pruning's on the same widths, and the largest ratios."""
    ratios = sorted(((r["coreprune"]["seconds"] / r["coreprune"]["tp_same_widths_seconds"],
                      r["model"]) for r in rows
                     if r["coreprune"].get("tp_same_widths_seconds")), reverse=True)
    if not ratios:
        return "Speed: no model was pruned by both tools."
    within = sum(ratio <= 3.0 for ratio, _ in ratios)
    top = ", ".join(f"{m} {ratio:.2f}" for ratio, m in ratios[:3])
    slow_peer = [f"{r['model']} ({r['coreprune']['seconds']:.1f} s)" for r in rows
                 if r["coreprune"].get("status") == "ok"
                 and str(r["coreprune"].get("tp_same_widths", "")).startswith("timeout")]
    return (f"Speed (x TP, same widths; the faster of two runs of each tool where both took "
            f"under {REPEAT_UNDER:.0f} s): within 3x on {within} of {len(ratios)} models; "
            f"median {ratios[len(ratios) // 2][0]:.2f}; largest: {top}."
            + (f" Torch-Pruning on coreprune's widths did not finish within the limit on "
               f"{', '.join(slow_peer)} (coreprune's time in brackets)." if slow_peer else ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="*", help="tv:NAME, timm:NAME or hf:NAME (bare: tv)")
    ap.add_argument("--method", default=None,
                    help="coreprune's method (default: l1; with --units heads, output-moment)")
    ap.add_argument("--units", choices=("neurons", "heads"), default="neurons")
    ap.add_argument("--target", type=float, default=0.5, help="fraction of params removed")
    ap.add_argument("--hf-target", type=float, default=0.15,
                    help="fraction of params removed from Hugging Face models")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=600, help="seconds per model and tool")
    ap.add_argument("--max-params", type=float, default=None, help="skip models over this (M)")
    ap.add_argument("--memory-gb", type=float, default=12.0,
                    help="address-space limit of each model's subprocess")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "coverage"))
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.method = args.method or ("l1" if args.units == "neurons" else "output-moment")
    if args.child:
        print(json.dumps(run_one(*args.child, args.method, args.target, args.threads,
                                 args.units)))
        return 0
    from coreprune import io

    out = Path(args.out)
    done: dict[str, dict] = {}
    if args.resume and out.with_suffix(".json").exists():
        done = {r["model"]: r for r in json.loads(out.with_suffix(".json").read_text())["rows"]}
    elif not args.overwrite and (out.with_suffix(".json").exists()
                                 or out.with_suffix(".md").exists()):
        ap.error(f"{out}.json/.md exist: pass --resume or --overwrite")
    header = ["model", "M params", "coreprune", "params removed", "output ok",
              "min kept fraction", "groups pruned", "seconds", "x TP (same widths)",
              "peak MB", "Torch-Pruning alone"]
    command = (f"Command: `python benchmarks/coverage.py {' '.join(argv or sys.argv[1:])}`. "
               f"Random weights; image inputs {IMAGE}x{IMAGE} unless the model needs more; "
               f"{args.threads} threads.")
    if args.units == "heads":
        head = [f"# Coverage: attention heads (`{args.method}`), {args.target:.0%} of every "
                "attention layer's heads removed", "", command + " Only attention heads are "
                "units (FFN, embeddings and the residual stream stay whole), so the parameters "
                "removed are the attention's share; a model whose attention coreprune cannot cut "
                "fails in one line.", ""]
    else:
        head = [f"# Coverage: `{args.method}`, {args.target:.0%} of parameters removed", "",
                command + f" Hugging Face models (`hf:`): {args.hf_target:.0%} of parameters "
                "removed, by both tools (coreprune prunes their FFN neurons only; embeddings, "
                "attention and the residual stream hold most of these small configs' "
                "parameters).", ""]
    head += ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    todo = specs(args)

    def summary(rows: list[dict]) -> str:
        return (speed_summary(rows) if args.units == "neurons" else
                "Speed: not compared (Torch-Pruning not run on heads).")

    def write() -> list[dict]:
        rows = [done[s] for s in todo if s in done] + [r for s, r in done.items()
                                                       if s not in todo]
        io.write_json(out.with_suffix(".json"), {"args": {k: v for k, v in vars(args).items()
                                                          if k != "child"}, "rows": rows},
                      overwrite=True)
        io.atomic_write_bytes(out.with_suffix(".md"), ("\n".join(
            head + [_fmt(r) for r in rows] + ["", summary(rows)]) + "\n").encode(), True)
        return rows

    for spec in todo:
        if spec in done:
            continue
        row = {"model": spec}
        n = _n_params(spec) if args.max_params is not None else 0
        if n > (args.max_params or 0) * 1e6:
            row.update(coreprune={"status": f"skipped ({n / 1e6:.0f} M params)", "params": n},
                       tp_alone={"status": "skipped"})
        else:
            row["coreprune"] = _subprocess(spec, "coreprune", args)
            row["tp_alone"] = (_subprocess(spec, "tp-alone", args) if args.units == "neurons"
                               else {"status": "not run (heads)"})
        done[spec] = row
        print(_fmt(row), flush=True)
        write()
    print(summary(write()))  # also rewrites the table of a finished run (--resume)
    return 0


if __name__ == "__main__":
    sys.exit(main())
