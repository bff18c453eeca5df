"""What an attention head contributes to its block's output, from the weights alone.

Head ``h`` of a multi-head attention layer writes ``y_h(t) = W_O,h sum_j a_h(t, j) u_h(x_j)``
to token ``t``'s output, where ``u_h(x) = W_V,h x + b_V,h`` is the head's value of token
``x`` (``W_V,h``: (d, D_in), ``W_O,h``: (D_out, d), the head's columns of the output
projection) and ``a_h(t, .)`` are its attention weights: non-negative, summing to 1 (a row of
a softmax). So ``y_h(t)`` lies in the convex hull of the points ``W_O,h u_h(x_j)``:

* ``||y_h(t)|| <= max_j ||W_O,h u_h(x_j)||`` for any attention pattern (the norm is convex);
* the value bias contributes exactly ``W_O,h b_V,h`` to every token (the weights sum to 1),
  whatever the pattern, so removing a head and adding that vector to the output projection's
  bias is exact for this term;
* under the moment model of the layer input (tokens ``x ~ N(m, diag(s^2))``, the model of a
  LayerNorm output, :mod:`coreprune.pruning.propagation`), a head whose attention weights do
  not depend on the values has ``E[y_h] = W_O,h (W_V,h m + b_V,h)`` and
  ``E||y_h||^2 <= E||W_O,h u_h(x)||^2`` (Jensen), in closed form:
  ``||W_O,h (W_V,h m + b_V,h)||^2 + ||W_O,h W_V,h diag(s)||_F^2``.

:func:`head_output_moments` gives both per head. Plain arrays, no ``nn.Module``.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidArgumentError

__all__ = ["head_output_moments"]


def head_output_moments(value_weight: np.ndarray, value_bias: np.ndarray | None,
                        output_weight: np.ndarray, input_mean: np.ndarray,
                        input_std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and second moment of each head's output value ``W_O,h (W_V,h x + b_V,h)`` for
    ``x ~ N(input_mean, diag(input_std^2))`` (module docstring: the second moment bounds the
    head's expected squared contribution when its attention does not depend on the values).

    Args:
        value_weight: (H, d, D_in) each head's rows of the value projection.
        value_bias: (H, d) their biases, or None.
        output_weight: (H, D_out, d) each head's columns of the output projection.
        input_mean: (D_in,) or a scalar.
        input_std: (D_in,) or a scalar, >= 0.

    Returns:
        ``(mean, second_moment)``: (H, D_out) and (H,).
    """
    wv = np.asarray(value_weight, dtype=np.float64)
    wo = np.asarray(output_weight, dtype=np.float64)
    if wv.ndim != 3 or wo.ndim != 3 or wv.shape[:2] != (wo.shape[0], wo.shape[2]):
        raise InvalidArgumentError(f"value_weight (H, d, D_in) and output_weight (H, D_out, d) "
                                   f"do not match: {wv.shape}, {wo.shape}")
    d_in = wv.shape[2]
    m = np.broadcast_to(np.asarray(input_mean, dtype=np.float64), (d_in,))
    s = np.broadcast_to(np.asarray(input_std, dtype=np.float64), (d_in,))
    if np.any(s < 0):
        raise InvalidArgumentError("input_std must be >= 0")
    bv = np.zeros(wv.shape[:2]) if value_bias is None else np.asarray(value_bias, np.float64)
    ov = np.einsum("hod,hdi->hoi", wo, wv)  # (H, D_out, D_in): each head's OV circuit
    mean = np.einsum("hoi,i->ho", ov, m) + np.einsum("hod,hd->ho", wo, bv)
    second = (mean ** 2).sum(1) + ((ov * s) ** 2).sum((1, 2))
    return mean, second
