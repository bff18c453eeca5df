"""Data-free distillation: after the folds, a few Adam steps that bring the pruned classifier's
class scores back to the original's on synthetic inputs (no data is read).

The folds of :mod:`coreprune.compensation` fit every layer on its own, each under a model of its
inputs. :func:`distill_on_synthetic_inputs` then trains the whole pruned model (the student) to
reproduce the unpruned model's (the teacher's) class scores, each step on a batch of inputs
inverted from the teacher's class scores (:func:`~coreprune.pruning.synthesis.
class_inverted_inputs`) and as many fresh samples of the input prior, minimising

    T^2 KL( softmax(teacher(x) / T) || softmax(student(x) / T) )

(Hinton, Vinyals, Dean 2015; with inputs synthesised from the teacher as in data-free knowledge
distillation, Yin et al. 2020). It is training, on inputs made from the model: opt in with
``Pruner(distill_steps=N)``. Measured in ``benchmarks/studies/synthetic_distillation.py``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from .propagation import InputPrior
from .synthesis import _frozen, _prior_samples

__all__ = ["DistillationResult", "distill_on_synthetic_inputs", "DISTILLATION_DEFAULTS"]

# chosen on the LeNet-300-100 of benchmarks/lenet300_fmnist_datafree.yaml, checked on the other
# MLP configs (benchmarks/studies/synthetic_distillation.py)
DISTILLATION_DEFAULTS: dict[str, float | int] = {"lr": 1e-3, "temperature": 4.0,
                                                 "batch_size": 256}


@dataclass
class DistillationResult:
    """What :func:`distill_on_synthetic_inputs` did: its settings, the loss (the batch's
    distillation loss, nats) at the first and the last step, and the time (seconds)."""

    steps: int
    inverted_inputs: int
    batch_size: int
    lr: float
    temperature: float
    first_loss: float
    last_loss: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def distill_on_synthetic_inputs(student: nn.Module, teacher: nn.Module,
                                inverted_inputs: torch.Tensor, prior: InputPrior, steps: int,
                                lr: float = 1e-3, temperature: float = 4.0,
                                batch_size: int = 256, seed: int = 0) -> DistillationResult:
    """Train ``student`` in place for ``steps`` Adam steps (rate ``lr``) on the loss of the
    module docstring at temperature ``temperature``.

    Each step reads ``batch_size`` of ``inverted_inputs`` (``(n, *input_shape)``, drawn with
    replacement) and ``batch_size`` fresh samples of ``prior``'s first component (independent
    elements), all seeded by ``seed``. Both models run in eval mode (BatchNorm statistics and
    dropout as they are); only the student's parameters that require gradients change, and
    every model's mode and ``requires_grad`` flags are restored after. ``teacher`` is not
    changed.
    """
    was_training = student.training
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    start = prior.components()[0]
    example = inverted_inputs[:1]
    draws = torch.Generator().manual_seed(seed)
    first = last = 0.0
    t0 = time.perf_counter()
    student.eval()
    try:
        with _frozen(teacher), torch.enable_grad():
            for step in range(steps):
                idx = torch.randint(0, len(inverted_inputs), (batch_size,), generator=draws)
                fresh = _prior_samples(start, example, batch_size,
                                       seed=seed * 1_000_003 + step + 1)
                x = torch.cat([inverted_inputs[idx.to(inverted_inputs.device)], fresh])
                with torch.no_grad():
                    target = nn.functional.log_softmax(teacher(x) / temperature, dim=1)
                scores = nn.functional.log_softmax(student(x) / temperature, dim=1)
                # log targets: a student computing the teacher's scores gets gradients of
                # exactly zero (Adam would turn rounding noise into steps of size lr)
                loss = temperature ** 2 * nn.functional.kl_div(
                    scores, target, reduction="batchmean", log_target=True)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                last = float(loss.detach())
                if step == 0:
                    first = last
    finally:
        for p in params:
            p.grad = None
        student.train(was_training)
    return DistillationResult(steps, len(inverted_inputs), batch_size, lr, temperature, first,
                              last, time.perf_counter() - t0)
