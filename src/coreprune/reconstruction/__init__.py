"""Data-free reconstruction on plain arrays (no ``nn.Module`` here).

* :class:`Activation` — elementwise activations by name (:mod:`.activations`)
* :class:`Gaussian`, :func:`activation_moments` — Gaussian moments of ``phi(P x + b)``: closed
  form (ReLU, leaky ReLU), Gauss-Hermite quadrature or seeded Monte Carlo (:mod:`.moments`);
  :func:`gated_moments` of a gated MLP's ``phi(G x) * (U x)``
* :class:`Fold`, :func:`least_squares_fold`, :func:`fold_error` — the least-squares affine
  reconstruction of removed units from kept ones and its predicted error (:mod:`.affine`)
* :func:`greedy_selection` — the units that best explain the others (:mod:`.selection`)
* :func:`head_output_moments` — what each attention head contributes, from the weights
  (:mod:`.heads`)
"""

from .activations import ACTIVATIONS, Activation
from .affine import Fold, drop_fold, fold_error, least_squares_fold, output_gram
from .heads import head_output_moments
from .moments import (
    MOMENT_METHODS,
    Gaussian,
    activation_moments,
    bivariate_normal_cdf,
    gated_moments,
)
from .selection import GreedySelection, greedy_selection

__all__ = [
    "ACTIVATIONS",
    "MOMENT_METHODS",
    "Activation",
    "Fold",
    "Gaussian",
    "GreedySelection",
    "activation_moments",
    "bivariate_normal_cdf",
    "drop_fold",
    "fold_error",
    "gated_moments",
    "greedy_selection",
    "head_output_moments",
    "least_squares_fold",
    "output_gram",
]
