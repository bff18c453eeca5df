"""Elementwise activations on plain arrays, by name, for the moment computations.

An :class:`Activation` is a name and an optional parameter (the negative slope of leaky ReLU,
the alpha of ELU, ...). It evaluates on numpy arrays, so quadrature and Monte Carlo can push
Gaussian samples or nodes through it; ReLU, leaky ReLU, GELU (and its tanh form, by GELU's)
and the identity also have closed-form Gaussian moments (:mod:`coreprune.reconstruction.moments`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import erf, expit

from ..errors import InvalidArgumentError

__all__ = ["Activation", "ACTIVATIONS", "CLOSED_FORM"]

_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _hardsigmoid(x: np.ndarray) -> np.ndarray:
    return np.clip(x / 6.0 + 0.5, 0.0, 1.0)


# name -> (f(x, param), default param); param is None where the function takes none
ACTIVATIONS: dict[str, tuple[Callable[[np.ndarray, float | None], np.ndarray], float | None]] = {
    "identity": (lambda x, p: x, None),
    "relu": (lambda x, p: np.maximum(x, 0.0), None),
    "leaky_relu": (lambda x, p: np.where(x > 0, x, p * x), 0.01),
    "relu6": (lambda x, p: np.clip(x, 0.0, 6.0), None),
    "elu": (lambda x, p: np.where(x > 0, x, p * np.expm1(np.minimum(x, 0.0))), 1.0),
    "selu": (lambda x, p: _SELU_SCALE * np.where(
        x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0.0))), None),
    "gelu": (lambda x, p: 0.5 * x * (1.0 + erf(x / np.sqrt(2.0))), None),
    "gelu_tanh": (lambda x, p: 0.5 * x * (1.0 + np.tanh(
        np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3))), None),
    "silu": (lambda x, p: x * expit(x), None),
    "mish": (lambda x, p: x * np.tanh(_softplus(x)), None),
    "softplus": (lambda x, p: _softplus(x), None),
    "tanh": (lambda x, p: np.tanh(x), None),
    "sigmoid": (lambda x, p: expit(x), None),
    "hardtanh": (lambda x, p: np.clip(x, -1.0, 1.0), None),
    "hardsigmoid": (lambda x, p: _hardsigmoid(x), None),
    "hardswish": (lambda x, p: x * _hardsigmoid(x), None),
}

# activations whose Gaussian moments have a closed form here
CLOSED_FORM = ("identity", "relu", "leaky_relu", "gelu", "gelu_tanh")


@dataclass(frozen=True)
class Activation:
    """An elementwise activation ``phi`` by name (a key of :data:`ACTIVATIONS`).

    Attributes:
        name: e.g. ``"relu"``, ``"gelu"``, ``"leaky_relu"``.
        param: the negative slope of ``leaky_relu`` or the alpha of ``elu``; ``None`` takes
            PyTorch's default (0.01 and 1.0).
    """

    name: str
    param: float | None = None

    def __post_init__(self) -> None:
        if self.name not in ACTIVATIONS:
            raise InvalidArgumentError(f"unknown activation {self.name!r}; known: "
                                       f"{', '.join(sorted(ACTIVATIONS))}")
        default = ACTIVATIONS[self.name][1]
        if self.param is None and default is not None:
            object.__setattr__(self, "param", default)
        if self.param is not None and not np.isfinite(self.param):
            raise InvalidArgumentError(f"activation {self.name!r}: parameter must be finite, "
                                       f"got {self.param!r}")

    @property
    def closed_form(self) -> bool:
        """Whether :func:`~coreprune.reconstruction.moments.activation_moments` has a closed
        form for it."""
        return self.name in CLOSED_FORM

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ACTIVATIONS[self.name][0](np.asarray(x, dtype=np.float64), self.param)

    def __str__(self) -> str:
        return self.name if self.param is None else f"{self.name}({self.param:g})"
