"""How accurate can a LeNet-300-100 with 90% of its parameters removed get at all (issue 2)?

Removing 90% of LeNet-300-100's parameters (266,610 -> at most 26,661) by removing neurons
leaves at most 33 units in the first hidden layer, whatever the method: each one costs 785
parameters of the 784-input layer. This script measures the ceiling of such networks on
Fashion-MNIST with a grid of training recipes, each over 5 seeds:

* starting points: the coreset's pruned network (784-33-11-10) and the coreset under the
  sensitivity allocation (784-33-16-10), both folded as ``coreprune.prune`` returns them; and
  four shapes inside the budget trained from scratch (PyTorch's default initialisation):
  784-33-11-10, 784-33-16-10, 784-32-24-10, 784-30-48-10;
* optimiser: Adam lr 1e-3 or SGD (Nesterov momentum 0.9) lr 0.05, cosine decay, batch 128;
* epochs: 40 or 150;
* data: plain, or augmented (a random shift of up to 2 pixels and a horizontal flip per image);
* loss: cross-entropy; or knowledge distillation from the unpruned model,
  ``0.1 CE + 0.9 T^2 KL`` at T=4, or ``0.5 CE + 0.5 T^2 KL`` at T=2.

Each (optimiser, epochs, data) group trains its 6 starting points x 3 losses x 5 seeds = 90
networks as one batched ensemble (``torch.baddbmm``), every network zero-padded to 784-33-48-10
(padded units get zero gradients and stay zero; each task checks and records it) and with its
own shuffling and augmentation draws, so they are independent runs; each group is split into 2
tasks that run in parallel worker processes. No gradient clipping (``coreprune.finetune``
clips to norm 5; its 20-epoch SGD default is not in this grid). Test accuracy of every network
is recorded every 10 epochs and at the end; the tables report the final one (mean and per
seed). The best final mean over the grid is optimistic (it is chosen on the test set), which
is what an upper bound wants.

Needs a GPU. The committed results: one H100, ``run --workers 16 --start-deadline 250
--hard-deadline 440`` (444 s; the deadline stopped the 150-epoch tasks 0-5 at epochs 70-140),
then ``run --workers 4 --tasks 0 1 2 3 --hard-deadline 275`` (262 s, all 150 epochs); tasks 4
and 5 (SGD, augmented, 150 epochs) stay stopped at epoch 80, which the report marks "cut at".
On 2 CPU cores it would take about a day. Two steps:

    python benchmarks/lenet300_capacity.py prepare          # here: writes the starting points
    python benchmarks/lenet300_capacity.py run --workers 16 # on the GPU machine

``prepare`` prunes ``runs/lenet300_fmnist.pt`` (the model of ``lenet300_fmnist.py``, 90.03%)
and writes ``runs/lenet300_capacity_start.pt`` (teacher + starting points); ``run`` writes
``benchmarks/results/lenet300_capacity.json`` and prints the table (``report`` reprints it).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import queue
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from coreprune.metrics import count_params
from coreprune.models import build_model

ROOT = Path(__file__).resolve().parent
START = Path("runs/lenet300_capacity_start.pt")
OUT = ROOT / "results" / "lenet300_capacity.json"
BUDGET = count_params(build_model("lenet300")) // 10  # 90% removed: 26,661 of 266,610
SCRATCH_SHAPES = [(33, 11), (33, 16), (32, 24), (30, 48)]
OPTIMISERS = {"adam": 1e-3, "sgd": 0.05}
EPOCHS = [40, 150]
AUGMENT = [False, True]
LOSSES = {"ce": (0.0, 1.0), "kd T=4 a=0.9": (0.9, 4.0), "kd T=2 a=0.5": (0.5, 2.0)}
SEEDS = 5


def n_params(h1: int, h2: int) -> int:
    """Parameters of a 784-h1-h2-10 MLP."""
    return count_params(nn.Sequential(nn.Linear(784, h1), nn.Linear(h1, h2), nn.Linear(h2, 10)))


def linear_layers(model: torch.nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight [in, out], bias [out]) of each Linear of ``model`` in order."""
    return [(m.weight.detach().t().contiguous(), m.bias.detach().clone())
            for m in model.modules() if isinstance(m, torch.nn.Linear)]


def prepare(ckpt: Path) -> None:
    from coreprune import io, prune

    teacher = io.load(ckpt)
    starts = {}
    for label, opts in [("coreset", {}), ("coreset, sensitivity allocation",
                                           {"allocation": "sensitivity"})]:
        pruned = prune(teacher, method="coreset", params_removed=0.9, seed=0, **opts)
        layers = linear_layers(pruned)
        h1, h2 = layers[0][0].shape[1], layers[1][0].shape[1]
        starts[label] = layers
        print(f"{label}: 784-{h1}-{h2}-10, {n_params(h1, h2)} parameters")
    START.parent.mkdir(parents=True, exist_ok=True)
    tmp = START.with_suffix(".tmp")
    torch.save({"teacher": linear_layers(teacher), "starts": starts}, tmp)
    os.replace(tmp, START)
    print(f"written {START}")


def forward(layers: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
    """Batched MLP: ``x`` is [N, B, 784], layer weights [N, in, out], biases [N, out]."""
    for i, (w, b) in enumerate(layers):
        x = torch.baddbmm(b.unsqueeze(1), x, w)
        if i < len(layers) - 1:
            x = F.relu(x)
    return x


def augment(x: torch.Tensor, background: float, gen: torch.Generator) -> torch.Tensor:
    """Shift each image [M, 1, 28, 28] by up to 2 pixels and flip it left-right with p=1/2."""
    m = x.shape[0]
    shift = torch.randint(-2, 3, (m, 2), generator=gen, device=x.device).float() * (2.0 / 28)
    flip = torch.randint(0, 2, (m,), generator=gen, device=x.device).float() * 2 - 1
    theta = torch.zeros(m, 2, 3, device=x.device)
    theta[:, 0, 0] = flip
    theta[:, 1, 1] = 1.0
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x - background, grid, mode="nearest", padding_mode="zeros",
                         align_corners=False) + background


PAD = (33, 48)  # every network is zero-padded to 784-33-48-10 to share one batched ensemble


def members(starts: dict) -> list[dict]:
    """The networks of one group: starting point x loss x seed, pruned starting points first."""
    inits = [(label, [w.shape[1] for w, _ in layers[:2]]) for label, layers in starts.items()]
    inits += [("scratch", list(s)) for s in SCRATCH_SHAPES]
    out = []
    for (start, shape), loss, seed in itertools.product(inits, LOSSES, range(SEEDS)):
        assert n_params(*shape) <= BUDGET and shape[0] <= PAD[0] and shape[1] <= PAD[1], shape
        out.append({"start": start, "shape": shape, "loss": loss, "seed": seed})
    return out


def init_layers(nets: list[dict], starts: dict, gen: torch.Generator,
                device: torch.device) -> list[list[torch.Tensor]]:
    """Stacked, zero-padded (weight [N, in, out], bias [N, out]) per layer. A padded unit has
    zero weights in and out; its ReLU input is 0, whose gradient PyTorch takes as 0, so it gets
    zero gradients and stays exactly zero under SGD and Adam (no weight decay here)."""
    dims = [784, *PAD, 10]
    stacked = [[torch.zeros(len(nets), i, o), torch.zeros(len(nets), o)]
               for i, o in itertools.pairwise(dims)]
    for k, net in enumerate(nets):
        if net["start"] != "scratch":
            layers = starts[net["start"]]
        else:  # nn.Linear's default initialisation
            layers = []
            for fan_in, fan_out in itertools.pairwise([784, *net["shape"], 10]):
                bound = 1.0 / math.sqrt(fan_in)
                layers.append(((torch.rand(fan_in, fan_out, generator=gen) * 2 - 1) * bound,
                               (torch.rand(fan_out, generator=gen) * 2 - 1) * bound))
        for (w, b), (sw, sb) in zip(layers, stacked, strict=True):
            sw[k, :w.shape[0], :w.shape[1]] = w
            sb[k, :b.shape[0]] = b
    return [[t.to(device).requires_grad_() for t in layer] for layer in stacked]


def run_group(group: dict, data: dict, device: torch.device, hard_deadline: float) -> dict | None:
    """Train one task's ensemble (its share of the group's networks) and return per-network
    accuracies. Past ``hard_deadline`` (a ``time.time()``) it stops and returns what it measured
    (``epochs_done`` says how far it got), or None if that was before the first evaluation."""
    xtr, ytr, xte, yte = data["xtr"], data["ytr"], data["xte"], data["yte"]
    background = float(xtr.min())
    nets = members(data["starts"])[group["part"]::group["parts"]]
    n = len(nets)
    alpha = torch.tensor([LOSSES[m["loss"]][0] for m in nets], device=device)
    temp = torch.tensor([LOSSES[m["loss"]][1] for m in nets], device=device)
    gen = torch.Generator().manual_seed(group["id"])
    dgen = torch.Generator(device=device).manual_seed(group["id"])
    layers = init_layers(nets, data["starts"], gen, device)
    teacher = [(w.to(device)[None].expand(n, -1, -1), b.to(device)[None].expand(n, -1))
               for w, b in data["teacher"]]
    params = [p for layer in layers for p in layer]
    lr, epochs, batch = OPTIMISERS[group["optimiser"]], group["epochs"], 128
    if group["optimiser"] == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=lr)
    else:
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True)
    steps_per_epoch = (len(ytr) + batch - 1) // batch
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps_per_epoch)

    @torch.no_grad()
    def test_acc() -> list[float]:
        logits = forward(layers, xte.flatten(1).unsqueeze(0).expand(n, -1, -1))
        return [round(a, 2) for a in (100.0 * (logits.argmax(2) == yte).float().mean(1)).tolist()]

    curve = {}
    t0 = time.time()
    for epoch in range(epochs):
        if time.time() > hard_deadline:
            if not curve:
                return None
            break  # keep what was measured; the report marks the recipe as cut short
        perm = torch.argsort(torch.rand(n, len(ytr), generator=dgen, device=device), dim=1)
        for i in range(steps_per_epoch):
            idx = perm[:, i * batch:(i + 1) * batch]  # [n, B]: each network its own shuffle
            x, y = xtr[idx], ytr[idx]  # [n, B, 1, 28, 28], [n, B]
            if group["augment"]:
                x = augment(x.flatten(0, 1), background, dgen).view_as(x)
            x = x.flatten(2)
            logits = forward(layers, x)
            ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
            ce = ce.view(n, -1).mean(1)
            with torch.no_grad():
                t_logits = forward(teacher, x)
            t = temp[:, None, None]
            kl = (F.softmax(t_logits / t, 2) * (F.log_softmax(t_logits / t, 2)
                                                - F.log_softmax(logits / t, 2))).sum(2).mean(1)
            loss = ((1 - alpha) * ce + alpha * temp**2 * kl).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if (epoch + 1) % 10 == 0 or epoch + 1 == epochs:
            curve[epoch + 1] = test_acc()
    padding = 0.0  # sum of |weights| outside each network's own shape: 0 if padding is inert
    for k, m in enumerate(nets):
        for (w, b), (h_in, h_out) in zip(layers, itertools.pairwise([784, *m["shape"], 10]),
                                         strict=True):
            padding += float(w[k, h_in:].detach().abs().sum()
                             + w[k, :, h_out:].detach().abs().sum()
                             + b[k, h_out:].detach().abs().sum())
    return {**group, "seconds": round(time.time() - t0, 1), "padding_abs_sum": padding,
            "epochs_done": max(curve),
            "nets": [{**m, "params": n_params(*m["shape"]), "acc": curve[max(curve)][k],
                      "curve": {e: accs[k] for e, accs in curve.items()}}
                     for k, m in enumerate(nets)]}


def groups(epochs_grid: list[int] = EPOCHS, parts: int = 2) -> list[dict]:
    """Every (optimiser, epochs, data) group, longest first, its members split in ``parts``
    (each part is one worker's task)."""
    return [{"id": i, "optimiser": opt, "epochs": epochs, "augment": aug, "part": part,
             "parts": parts}
            for i, (epochs, opt, aug, part) in enumerate(itertools.product(
                sorted(epochs_grid, reverse=True), OPTIMISERS, AUGMENT[::-1], range(parts)))]


def worker(rank: int, todo, results, deadlines: tuple[float, float], data_root: str | None,
           train_subset: int | None) -> None:
    from coreprune.data import load_dataset

    torch.set_num_threads(1)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tr, te = load_dataset("fashion-mnist", root=data_root)
    if train_subset:
        tr = tr.subset(train_subset)
    blob = torch.load(START, weights_only=True)
    data = {"xtr": tr.x.to(device), "ytr": tr.y.to(device), "xte": te.x.to(device),
            "yte": te.y.to(device), "teacher": blob["teacher"], "starts": blob["starts"]}
    while True:
        try:
            group = todo.get_nowait()
        except queue.Empty:
            return
        if time.time() > deadlines[0]:
            print(f"[worker {rank}] start deadline passed: group {group} not run", flush=True)
            continue
        res = run_group(group, data, device, deadlines[1])
        if res is None:
            print(f"[worker {rank}] hard deadline passed: group {group} dropped", flush=True)
            continue
        print(f"[worker {rank}] {group} done in {res['seconds']} s, padding sum |w| "
              f"{res['padding_abs_sum']}", flush=True)
        results.put(res)


def recipes(blob: dict) -> list[dict]:
    """One row per (group, starting point, shape, loss): the final accuracies over the seeds."""
    rows: dict[tuple, dict] = {}
    for g in blob["groups"]:
        for net in g["nets"]:
            key = (g["optimiser"], g["epochs"], g["augment"], net["start"], tuple(net["shape"]),
                   net["loss"])
            row = rows.setdefault(key, {"start": net["start"], "shape": net["shape"],
                                        "epochs_done": g["epochs_done"],
                                        "params": net["params"], "optimiser": g["optimiser"],
                                        "epochs": g["epochs"], "augment": g["augment"],
                                        "loss": net["loss"], "accs": []})
            row["accs"].append(net["acc"])
            row["epochs_done"] = min(row["epochs_done"], g["epochs_done"])
    for row in rows.values():
        row["mean"] = statistics.mean(row["accs"])
        row["std"] = statistics.stdev(row["accs"]) if len(row["accs"]) > 1 else 0.0
    return sorted(rows.values(), key=lambda r: -r["mean"])


def report(path: Path) -> None:
    blob = json.loads(path.read_text())
    rows = recipes(blob)
    if not rows:
        print(f"no group finished ({blob['groups_not_run']} not run)")
        return
    print(f"unpruned {blob['acc_unpruned']:.2f}; issue 2's target >= "
          f"{blob['acc_unpruned'] - 1.0:.2f}; {len(rows)} recipes x {blob['seeds']} seeds, "
          f"{len(blob['groups'])} tasks run, {blob['groups_not_run']} not; "
          + "; ".join(f"{r['device']}, torch {r['torch']}, {r['seconds']} s"
                      for r in blob.get("runs", [blob])))
    for start, shape in dict.fromkeys((r["start"], tuple(r["shape"])) for r in rows):
        sub = [r for r in rows if r["start"] == start and tuple(r["shape"]) == shape]
        print(f"\n{start} 784-{shape[0]}-{shape[1]}-10 ({sub[0]['params']} parameters): "
              f"best {min(4, len(sub))} of {len(sub)} recipes")
        for r in sub[:4]:
            cut = "" if r["epochs_done"] == r["epochs"] else f" (cut at {r['epochs_done']})"
            print(f"  {r['mean']:6.2f} ± {r['std']:4.2f}  {r['optimiser']} {r['epochs']:3d} ep"
                  f"{cut} "
                  f"{'aug  ' if r['augment'] else 'plain'} {r['loss']:13s} per seed {r['accs']}")
    best = rows[0]
    print(f"\nbest mean of the grid: {best['mean']:.2f} ({best['start']} "
          f"784-{best['shape'][0]}-{best['shape'][1]}-10, {best['optimiser']} {best['epochs']} "
          f"ep, {'aug' if best['augment'] else 'plain'}, {best['loss']}); gap to unpruned "
          f"{blob['acc_unpruned'] - best['mean']:.2f}")


def run(args: argparse.Namespace) -> None:
    import torch.multiprocessing as mp

    from coreprune.data import load_dataset

    t0 = time.time()
    all_tasks = groups(args.epochs or EPOCHS, args.parts)
    todo_list = all_tasks[:args.max_groups]
    if args.tasks:
        todo_list = [g for g in todo_list if g["id"] in args.tasks]
    ctx = mp.get_context("spawn")
    todo, results = ctx.Queue(), ctx.Queue()
    for g in todo_list:
        todo.put(g)
    deadlines = (t0 + args.start_deadline, t0 + args.hard_deadline)
    procs = [ctx.Process(target=worker, args=(r, todo, results, deadlines, args.data_root,
                                              args.train_subset))
             for r in range(args.workers)]
    for p in procs:
        p.start()
    done = []
    while len(done) < len(todo_list) and any(p.is_alive() for p in procs):
        with contextlib.suppress(queue.Empty):
            done.append(results.get(timeout=5))
    with contextlib.suppress(queue.Empty):
        while len(done) < len(todo_list):
            done.append(results.get(timeout=1))
    for p in procs:
        p.join()
    teacher = torch.load(START, weights_only=True)["teacher"]
    _, te = load_dataset("fashion-mnist", root=args.data_root)
    with torch.no_grad():
        logits = forward([(w[None], b[None]) for w, b in teacher], te.x.flatten(1)[None])[0]
    acc0 = round(float(100.0 * (logits.argmax(1) == te.y).float().mean()), 2)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    this_run = {"device": device, "torch": torch.__version__, "workers": args.workers,
                "seconds": round(time.time() - t0), "tasks": [g["id"] for g in done]}
    blob = {"acc_unpruned": acc0, "device": device, "torch": torch.__version__, "seeds": SEEDS,
            "train_subset": args.train_subset, "runs": [this_run], "groups": done,
            "groups_not_run": len(todo_list) - len(done)}
    if args.tasks and OUT.exists():  # a rerun replaces a task's results if it got further
        old = json.loads(OUT.read_text())
        kept = {g["id"]: g for g in old["groups"]}
        for g in done:
            if g["id"] not in kept or g["epochs_done"] >= kept[g["id"]]["epochs_done"]:
                kept[g["id"]] = g
        blob["runs"] = old.get("runs", [{k: old[k] for k in ("device", "torch", "seconds")}])
        blob["runs"].append(this_run)
        blob["groups"] = list(kept.values())
        blob["groups_not_run"] = len(all_tasks) - len(kept)
    blob["groups"] = sorted(blob["groups"], key=lambda g: g["id"])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(json.dumps(blob))
    os.replace(tmp, OUT)
    report(OUT)
    print(f"{len(done)} of {len(todo_list)} groups in {time.time() - t0:.0f} s; written {OUT}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--checkpoint", type=Path, default=Path("runs/lenet300_fmnist.pt"))
    r = sub.add_parser("run")
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--start-deadline", type=float, default=1e9,
                   help="seconds after the start; groups not started by then are skipped")
    r.add_argument("--hard-deadline", type=float, default=1e9,
                   help="seconds after the start; groups still training then are dropped")
    r.add_argument("--train-subset", type=int, default=None, help="smoke test: N training images")
    r.add_argument("--data-root", default=None)
    r.add_argument("--parts", type=int, default=2, help="tasks per group (parallelism)")
    r.add_argument("--tasks", type=int, nargs="+", default=None,
                   help="rerun only these task ids; their results replace the earlier ones in "
                        "the results file")
    r.add_argument("--max-groups", type=int, default=None, help="run the first N groups only")
    r.add_argument("--epochs", type=int, nargs="+", default=None, help=f"default {EPOCHS}")
    sub.add_parser("report")
    args = ap.parse_args()
    if args.cmd == "prepare":
        prepare(args.checkpoint)
    elif args.cmd == "run":
        run(args)
    else:
        report(OUT)


if __name__ == "__main__":
    sys.exit(main())
