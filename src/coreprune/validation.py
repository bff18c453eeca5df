"""``check_*`` input validation used at every public boundary (scikit-learn style)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .errors import DeviceMismatchError, GeometryError, InvalidArgumentError

__all__ = ["check_fraction", "check_points", "check_weights_vector", "check_positive_int",
           "check_device"]


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def check_device(model: torch.nn.Module, device: str | torch.device | None = None,
                 inputs: torch.Tensor | None = None) -> torch.device:
    """The one device all of ``model``'s parameters and buffers are on.

    Raises:
        DeviceMismatchError: the tensors are on several devices, not on ``device`` (when
            given), or ``inputs`` is on another device; the message names the tensor.
        InvalidArgumentError: ``device`` is not a device name.
    """
    try:
        want = None if device is None else torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidArgumentError(f"device must be e.g. 'cpu' or 'cuda', got {device!r}") from None
    found: torch.device | None = None
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if found is None:
            found = t.device
        elif not _same_device(t.device, found):
            raise DeviceMismatchError(f"model is on several devices: {name!r} is on {t.device}, "
                                      f"earlier tensors on {found}")
        if want is not None and not _same_device(t.device, want):
            raise DeviceMismatchError(f"model tensor {name!r} is on {t.device}, but device "
                                      f"{want} was asked for; move the model with "
                                      f".to({str(want)!r})")
    found = found if found is not None else torch.device("cpu")
    if inputs is not None and not _same_device(inputs.device, found):
        raise DeviceMismatchError(f"example inputs are on {inputs.device} but the model is on "
                                  f"{found}")
    return found


def check_fraction(value: Any, name: str) -> float:
    """Return ``value`` as a float in the open interval (0, 1), or raise naming ``name``."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be a number in (0, 1), got {value!r}") from None
    if not math.isfinite(x) or not 0.0 < x < 1.0:
        raise InvalidArgumentError(f"{name} must lie in the open interval (0, 1), got {value!r}")
    return x


def check_positive_int(value: Any, name: str) -> int:
    """Return ``value`` as a positive ``int``, or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_points(points: Any, name: str = "points", min_rows: int = 1) -> np.ndarray:
    """Return ``points`` as a finite float64 array of shape (n, d) with n >= ``min_rows``."""
    arr = np.asarray(points)
    if arr.dtype.kind not in "fiu":
        raise GeometryError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim != 2:
        raise GeometryError(f"{name} must have shape (n, d), got shape {arr.shape}")
    if arr.shape[0] < min_rows or arr.shape[1] < 1:
        raise GeometryError(f"{name} must hold at least {min_rows} point(s) of dimension >= 1, "
                            f"got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.argwhere(~np.isfinite(arr))[0, 0])
        raise GeometryError(f"{name} holds a NaN or Inf value (first in row {bad})")
    return arr


def check_weights_vector(weights: Any, n: int, name: str = "weights") -> np.ndarray:
    """Return non-negative finite weights of length ``n`` summing to 1 (within 1e-9)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise GeometryError(f"{name} must have shape ({n},), got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise GeometryError(f"{name} must be finite and non-negative")
    total = w.sum()
    if not abs(total - 1.0) <= 1e-9:
        raise GeometryError(f"{name} must sum to 1, got {total!r}")
    return w
