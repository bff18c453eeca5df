"""Train (and cache) every checkpoint that bench configs need, one process per model, e.g. on a
GPU before the benches run on a CPU:

    python benchmarks/train_checkpoints.py benchmarks/vgg16_fmnist32_datafree.yaml \\
        benchmarks/resnet20_fmnist32_datafree.yaml --device cuda --workers 5

Each config's ``checkpoint`` (``-s{seed}`` per training seed) is trained with its ``train``
settings exactly as ``coreprune bench`` would, and skipped if it exists. Prints each model's test
accuracy.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import torch

from coreprune.bench import load_bench_data, load_config, trained_model
from coreprune.train import evaluate


def _train(path: str, seed: int | None, device: str | None, data_root: str | None) -> str:
    torch.set_num_threads(1)
    cfg = load_config(path)
    if device is not None:
        cfg = replace(cfg, device=device)
    tr, te, _ = load_bench_data(cfg, data_root)
    model = trained_model(cfg, tr, lambda m: print(m, flush=True), seed)
    acc = evaluate(model.to(device or "cpu"), te, device=device)
    return f"{cfg.checkpoint_for(seed)}: test accuracy {acc:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", nargs="+")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: the config's)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--data-root")
    args = ap.parse_args(argv)
    jobs = [(p, s) for p in args.config for s in (load_config(p).train_seeds or [None])]
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for line in pool.map(_train, *zip(*jobs, strict=True),
                             [args.device] * len(jobs), [args.data_root] * len(jobs)):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
