"""Measuring a model: parameters, FLOPs (torch's own counter) and CPU latency."""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_params", "count_flops", "measure_latency", "model_summary"]


def count_params(model: nn.Module) -> int:
    """Number of parameters (each shared tensor counted once)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, example_inputs: torch.Tensor) -> int:
    """FLOPs of one forward pass on a batch of one, by ``torch.utils.flop_counter``
    (a multiply-accumulate counts as 2 FLOPs)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(example_inputs[:1])
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def measure_latency(model: nn.Module, example_inputs: torch.Tensor, repeats: int = 20,
                    warmup: int = 3) -> float:
    """Median wall time in milliseconds of one forward pass on ``example_inputs``."""
    was_training = model.training
    model.eval()
    times = []
    try:
        with torch.no_grad():
            for i in range(warmup + repeats):
                t0 = time.perf_counter()
                model(example_inputs)
                if i >= warmup:
                    times.append(time.perf_counter() - t0)
    finally:
        model.train(was_training)
    times.sort()
    return 1000.0 * times[len(times) // 2]


def model_summary(model: nn.Module, example_inputs: torch.Tensor,
                  latency: bool = False) -> dict[str, float]:
    """``{"params", "flops"[, "latency_ms"]}`` of ``model``."""
    out: dict[str, float] = {"params": count_params(model),
                             "flops": count_flops(model, example_inputs)}
    if latency:
        out["latency_ms"] = measure_latency(model, example_inputs)
    return out
