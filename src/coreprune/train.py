"""Training, evaluation and fine-tuning loops (CPU or GPU), seeded."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .data import Split
from .errors import InvalidArgumentError
from .validation import check_device

__all__ = ["train", "evaluate", "finetune", "FINETUNE_EPOCHS", "FINETUNE_LR", "FINETUNE_OPTIMIZER",
           "FINETUNE_CLIP"]

# The fine-tuning setting of the LeNet-300-100 benchmark; the CLI and the benchmarks use it too.
FINETUNE_EPOCHS = 20
FINETUNE_LR = 0.05
FINETUNE_OPTIMIZER = "sgd"
FINETUNE_CLIP = 5.0


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, batch_size: int = 1000,
             device: str | torch.device | None = None) -> float:
    """Top-1 accuracy in percent of ``model`` on ``split`` (eval mode; mode restored after).

    Raises:
        DeviceMismatchError: ``model`` is not on ``device`` (when given).
    """
    device = check_device(model, device)
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(split), batch_size):
        x = split.x[i:i + batch_size].to(device)
        y = split.y[i:i + batch_size].to(device)
        correct += int((model(x).argmax(1) == y).sum())
    model.train(was_training)
    return 100.0 * correct / max(len(split), 1)


def train(model: nn.Module, split: Split, epochs: int = 10, lr: float = 1e-3,
          batch_size: int = 128, optimizer: str = "adam", weight_decay: float = 0.0,
          seed: int = 0, device: str | torch.device | None = None,
          progress: bool = True, teacher: nn.Module | None = None,
          temperature: float = 4.0, clip_grad_norm: float | None = None) -> list[float]:
    """Train ``model`` in place on ``split`` with cross-entropy; returns the mean loss per epoch.

    ``optimizer`` is "adam" or "sgd" (momentum 0.9); the learning rate decays on a cosine.
    Shuffling is drawn from ``seed``. Gradients are clipped to norm ``clip_grad_norm`` unless
    it is None. With a ``teacher`` (the unpruned model, when fine-tuning)
    the loss adds knowledge distillation: ``T^2 KL(softmax(teacher/T) || softmax(model/T))``.
    """
    if epochs < 0:
        raise InvalidArgumentError(f"epochs must be >= 0, got {epochs}")
    if not lr > 0:
        raise InvalidArgumentError(f"lr must be positive, got {lr}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device).train()
    if teacher is not None:
        teacher.to(device).eval()
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=lr,
                                                      weight_decay=weight_decay)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True,
                              weight_decay=weight_decay)
    else:
        raise InvalidArgumentError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    steps = max(1, epochs * ((len(split) + batch_size - 1) // batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for epoch in range(epochs):
        perm = torch.randperm(len(split), generator=gen).to(split.x.device)
        total, count = 0.0, 0
        bar = tqdm(range(0, len(split), batch_size), desc=f"epoch {epoch + 1}/{epochs}",
                   disable=not progress, leave=False)
        for i in bar:
            idx = perm[i:i + batch_size]
            x, y = split.x[idx].to(device), split.y[idx].to(device)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            if teacher is not None:
                with torch.no_grad():
                    soft = F.softmax(teacher(x) / temperature, dim=1)
                loss = loss + temperature**2 * F.kl_div(
                    F.log_softmax(logits / temperature, dim=1), soft, reduction="batchmean")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        losses.append(total / max(count, 1))
    model.eval()
    return losses


def finetune(model: nn.Module, split: Split, epochs: int = FINETUNE_EPOCHS, lr: float = FINETUNE_LR,
             **kwargs: object) -> list[float]:
    """Fine-tune a pruned model: :func:`train`, by default 20 epochs of SGD at lr 0.05 with
    gradients clipped to norm 5 (reweighted coresets can carry large fold weights that make
    unclipped SGD diverge); the setting of the LeNet-300-100 benchmark."""
    kwargs.setdefault("optimizer", FINETUNE_OPTIMIZER)
    kwargs.setdefault("clip_grad_norm", FINETUNE_CLIP)
    return train(model, split, epochs=epochs, lr=lr, **kwargs)  # type: ignore[arg-type]
