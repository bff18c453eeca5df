"""Run bench configs as many small ``coreprune bench`` processes at once, within a deadline.

What the lent GPU session ran: a GPU serves several launch-bound CNN fine-tunes at once, and a
session has minutes of device time, not the hour that ``coreprune bench CONFIG`` needs one
run after another. The same code makes every record; only the order and the parallelism differ:

1. every config's model is trained (when its checkpoint is missing), all configs at once;
2. every (config, method, seed, training seed) becomes one job, a copy of the config with that
   one method and seed (and training seed) and its own records file; jobs run ``--workers`` at
   a time, seed 0 of every method first, then seed 1, ..., and none starts after
   ``--deadline`` seconds (a job still running at ``--deadline + --grace`` is stopped; its
   finished records are kept);
3. each config's job records are appended to the config's ``records`` file (records already
   there are kept and not redone), so ``coreprune bench CONFIG --no-run`` tabulates them and a
   later plain ``coreprune bench CONFIG`` finishes what the deadline left out.

What the GPU session ran (530 s on one H200, torch 2.11 there; both models trained in 125 s,
then seed 0 of every method and level except VGG-16's coreset-theory, whose whole-span
peeling did not finish; log in ``benchmarks/results/fmnist32_sharded_bench.log``):

    python benchmarks/sharded_bench.py benchmarks/resnet56_fmnist32.yaml \\
        benchmarks/vgg16_fmnist32.yaml --workers 10 --threads 1 --deadline 440 --grace 70

(Its configs then named the compensated coreset ``coreset+bn`` and the plain ones ``coreset``
and ``coreset-scaled``; the records were relabelled ``coreset``, ``coreset+nobn`` and
``coreset-scaled+nobn`` by their stored ``settings.compensate`` when 0.3 made compensation
the top-k coreset's default.)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from coreprune.bench import append_record, load_config, read_records, record_key, run_key


def _env(threads: int) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONUNBUFFERED="1")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def _train(paths: list[str], data_root: str | None, env: dict[str, str], log) -> None:
    code = ("import sys; from coreprune.bench import load_config, load_bench_data, "
            "trained_model; c = load_config(sys.argv[1]); tr = load_bench_data(c, sys.argv[2] "
            "or None)[0]; [trained_model(c, tr, train_seed=s) for s in c.train_seeds or [None]]")
    procs = []
    for p in paths:
        cfg = load_config(p)
        if all(cfg.checkpoint_for(s).exists() for s in cfg.train_seeds or [None]):
            continue
        log(f"training {p}")
        procs.append((p, subprocess.Popen([sys.executable, "-c", code, p, data_root or ""],
                                          env=env), time.time()))
    for p, proc, t0 in procs:
        if proc.wait() != 0:
            raise SystemExit(f"training {p} failed (exit {proc.returncode})")
        log(f"trained {p} in {time.time() - t0:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("configs", nargs="+")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads per job")
    ap.add_argument("--deadline", type=float, default=420.0,
                    help="seconds after the start past which no job starts")
    ap.add_argument("--grace", type=float, default=60.0,
                    help="seconds after --deadline at which running jobs are stopped")
    ap.add_argument("--data-root")
    ap.add_argument("--log", type=Path, help="also write the jobs' output here")
    args = ap.parse_args()
    t0 = time.time()
    logf = open(args.log, "a") if args.log else None  # noqa: SIM115

    def log(msg: str) -> None:
        line = f"[{time.time() - t0:6.0f} s] {msg}"
        print(line, flush=True)
        if logf:
            logf.write(line + "\n")
            logf.flush()

    env = _env(args.threads)
    _train(args.configs, args.data_root, env, log)
    work = Path(tempfile.mkdtemp(prefix="sharded_bench_"))
    cfgs = {p: load_config(p) for p in args.configs}
    raws = {p: yaml.safe_load(Path(p).read_text()) for p in args.configs}
    seeds = sorted({s for c in cfgs.values() for s in c.seeds})
    jobs = []  # (config path, job config path, records path)
    for s in seeds:
        for p, cfg in cfgs.items():
            if s not in cfg.seeds:
                continue
            done = {record_key(r) for r in read_records(cfg.records)}
            for ts in cfg.train_seeds or [None]:
                for m in cfg.methods:
                    if all(run_key(m, r, s, ts) in done for r in cfg.levels):
                        continue
                    job = work / f"{cfg.name}__{m}__{s}__{ts}"
                    raw = {**raws[p], "methods": [m], "seeds": [s],
                           "checkpoint": str(cfg.checkpoint.resolve()),
                           "records": str(job.with_suffix(".jsonl"))}
                    if ts is not None:
                        raw["train_seeds"] = [ts]
                    job.with_suffix(".yaml").write_text(yaml.safe_dump(raw))
                    jobs.append((p, job.with_suffix(".yaml"), job.with_suffix(".jsonl")))
    log(f"{len(jobs)} jobs, {args.workers} at a time, none started after {args.deadline:.0f} s")
    cmd = [sys.executable, "-m", "coreprune", "bench"]
    running: list[tuple[subprocess.Popen, Path, float]] = []
    queue = list(jobs)
    while queue or running:
        now = time.time() - t0
        for proc, job, start in list(running):
            if proc.poll() is not None:
                running.remove((proc, job, start))
                if logf:
                    logf.write(job.with_suffix(".log").read_text())
                log(f"{job.stem}: exit {proc.returncode} after {time.time() - start:.0f} s")
            elif now > args.deadline + args.grace:
                proc.kill()
                log(f"{job.stem}: stopped at the deadline")
        if queue and len(running) < args.workers and now < args.deadline:
            _, job, _ = queue.pop(0)
            extra = ["--data-root", args.data_root] if args.data_root else []
            with open(job.with_suffix(".log"), "w") as out:
                proc = subprocess.Popen([*cmd, str(job), *extra], env=env,
                                        stdout=out, stderr=subprocess.STDOUT)
            running.append((proc, job, time.time()))
            continue
        if queue and now >= args.deadline:
            log(f"deadline: {len(queue)} jobs not started")
            queue.clear()
        time.sleep(0.5)
    for p, cfg in cfgs.items():
        done = {record_key(r) for r in read_records(cfg.records)}
        cfg.records.parent.mkdir(parents=True, exist_ok=True)
        added = 0
        for q, _, records in jobs:
            if q != p:
                continue
            for r in read_records(records):
                if record_key(r) not in done:
                    append_record(cfg.records, r)
                    done.add(record_key(r))
                    added += 1
        log(f"{cfg.name}: {added} records appended to {cfg.records}")


if __name__ == "__main__":
    main()
