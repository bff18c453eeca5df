"""Fuzz: random MLPs and CNNs (widths, depths, activations, BatchNorm, residual blocks), pruned at
random ratios by random methods; forward shapes, reported parameter counts and determinism."""

import random

import torch
from torch import nn

from coreprune.metrics import count_params
from coreprune.pruning import Pruner

ACTS = [nn.ReLU, nn.Tanh, nn.GELU, nn.LeakyReLU]
METHODS = ["coreset", "coreset-theory", "mussay", "l1", "l2", "random"]


class Residual(nn.Module):
    def __init__(self, c, act, bn):
        super().__init__()
        self.a = nn.Conv2d(c, c, 3, padding=1, bias=not bn)
        self.na = nn.BatchNorm2d(c) if bn else nn.Identity()
        self.b = nn.Conv2d(c, c, 3, padding=1, bias=not bn)
        self.nb = nn.BatchNorm2d(c) if bn else nn.Identity()
        self.act = act()

    def forward(self, x):
        return self.act(x + self.nb(self.b(self.act(self.na(self.a(x))))))


def random_model(rng: random.Random):
    act = rng.choice(ACTS)
    bn = rng.random() < 0.5
    if rng.random() < 0.5:
        widths = [rng.randint(3, 12)] + [rng.randint(2, 24) for _ in range(rng.randint(1, 3))]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(a, b)] + ([nn.BatchNorm1d(b)] if bn else []) + [act()]
        layers.append(nn.Linear(widths[-1], rng.randint(2, 5)))
        return nn.Sequential(*layers), torch.randn(4, widths[0])
    cin, c = rng.randint(1, 3), rng.randint(2, 10)
    layers = [nn.Conv2d(cin, c, 3, padding=1)] + ([nn.BatchNorm2d(c)] if bn else []) + [act()]
    for _ in range(rng.randint(0, 2)):
        if rng.random() < 0.5:
            layers.append(Residual(c, act, bn))
        else:
            c2 = rng.randint(2, 10)
            layers += [nn.Conv2d(c, c2, 3, padding=1)] + ([nn.BatchNorm2d(c2)] if bn else [])
            layers.append(act())
            c = c2
    layers += [nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * c, rng.randint(2, 5))]
    return nn.Sequential(*layers), torch.randn(2, cin, 6, 6)


def test_fuzz_random_models():
    rng = random.Random(1234)
    pruned_any = 0
    for case in range(200):
        torch.manual_seed(case)
        model, x = random_model(rng)
        model.eval()
        method = rng.choice(METHODS)
        ratio = rng.uniform(0.1, 0.95)
        coupled = rng.random() < 0.3
        ok = True
        try:
            p1 = Pruner(method, keep_ratio=ratio, seed=case, prune_coupled=coupled)
            a = p1.fit_transform(model, x)
        except Exception as exc:  # only coreprune's own, named errors are acceptable
            from coreprune import CorepruneError

            assert isinstance(exc, CorepruneError), f"case {case}: {type(exc).__name__}: {exc}"
            ok = False
        if not ok:
            continue
        b = Pruner(method, keep_ratio=ratio, seed=case, prune_coupled=coupled).fit_transform(
            model, x)
        assert a.eval()(x).shape == model(x).shape, f"case {case}"
        assert p1.report_.params_after == count_params(a), f"case {case}"
        assert torch.isfinite(a(x)).all(), f"case {case}"
        for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(),
                                      strict=True):
            assert ka == kb and torch.equal(va, vb), f"case {case}: {ka} differs"
        pruned_any += p1.report_.params_after < p1.report_.params_before
    assert pruned_any >= 150
