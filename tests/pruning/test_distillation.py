import copy

import pytest
import torch
from torch import nn

from coreprune.errors import InvalidArgumentError
from coreprune.pruning import Pruner
from coreprune.pruning.distillation import distill_on_synthetic_inputs
from coreprune.pruning.propagation import InputPrior
from coreprune.pruning.synthesis import class_inverted_inputs


def _classifier() -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(12, 48), nn.ReLU(), nn.Linear(48, 24), nn.ReLU(),
                        nn.Linear(24, 4))
    with torch.no_grad():
        net[4].weight.mul_(8.0)  # confident scores, as a trained classifier's
    return net


def _divergence(student: nn.Module, teacher: nn.Module, z: torch.Tensor) -> float:
    """Mean KL(teacher || student) of the class probabilities on ``z``."""
    with torch.no_grad():
        return float(nn.functional.kl_div(student(z).log_softmax(1), teacher(z).log_softmax(1),
                                          reduction="batchmean", log_target=True))


def test_a_student_equal_to_its_teacher_keeps_its_scores_and_nothing_removed_is_not_trained():
    teacher = _classifier()
    student = copy.deepcopy(teacher)
    inputs, _ = class_inverted_inputs(teacher, torch.randn(2, 12), InputPrior(), n=64, steps=10)
    res = distill_on_synthetic_inputs(student, teacher, inputs, InputPrior(), steps=20)
    # the loss starts at zero; rounding leaves gradients of ~1e-8, which Adam's normalised
    # steps turn into moves of up to lr: the scores stay the teacher's
    assert res.first_loss < 1e-7 and res.last_loss < 1e-4
    x = torch.randn(64, 12)
    assert torch.allclose(student(x), teacher(x), atol=0.05)
    # through the pruner: nothing removed, nothing distilled, no output changed
    whole = Pruner(keep_ratio=1.0, distill_steps=20).fit_transform(teacher, x[:2])
    assert torch.equal(whole(x), teacher(x))


def test_distillation_brings_the_pruned_scores_back_is_seeded_and_leaves_the_teacher_as_it_was():
    teacher = _classifier().train()
    before = [p.detach().clone() for p in teacher.parameters()]
    x = torch.randn(2, 12)
    folds = Pruner("greedy", keep_ratio=0.25).fit_transform(teacher, x)
    runs = [Pruner("greedy", keep_ratio=0.25, distill_steps=150, seed=s).fit_transform(teacher, x)
            for s in (0, 0, 1)]
    z = torch.randn(4000, 12, generator=torch.Generator().manual_seed(5))
    assert _divergence(runs[0], teacher, z) < 0.6 * _divergence(folds, teacher, z)
    rep = Pruner("greedy", keep_ratio=0.25, distill_steps=150)
    rep.fit_transform(teacher, x)
    info = rep.report_.target["distillation"]
    assert info["steps"] == 150 and info["last_loss"] < info["first_loss"]
    assert rep.report_.params_after == sum(p.numel() for p in folds.parameters())
    # seeded: the same seed gives the same weights, another seed others
    same = zip(runs[0].parameters(), runs[1].parameters(), strict=True)
    other = zip(runs[0].parameters(), runs[2].parameters(), strict=True)
    assert all(torch.equal(p, q) for p, q in same)
    assert not all(torch.equal(p, q) for p, q in other)
    # the teacher: weights, mode and gradient flags as they were; the student: no gradients left
    assert all(torch.equal(p, q) for p, q in zip(teacher.parameters(), before, strict=True))
    assert teacher.training and all(p.requires_grad for p in teacher.parameters())
    assert all(p.grad is None for p in runs[0].parameters())


def test_distill_steps_is_checked_and_needs_a_classifier():
    with pytest.raises(InvalidArgumentError, match="distill_steps must be an integer >= 0"):
        Pruner(keep_ratio=0.5, distill_steps=-1)
    with pytest.raises(InvalidArgumentError, match="distill_steps must be an integer >= 0"):
        Pruner(keep_ratio=0.5, distill_steps=2.5)
    regressor = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 1))
    with pytest.raises(InvalidArgumentError, match="distill_steps needs a classifier"):
        Pruner(keep_ratio=0.5, distill_steps=10).fit(regressor, torch.randn(2, 6))
    # without distillation the report says nothing of it
    p = Pruner(keep_ratio=0.5)
    p.fit_transform(_classifier(), torch.randn(2, 12))
    assert "distillation" not in p.report_.target
