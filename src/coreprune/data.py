"""Datasets from files on disk; nothing is ever downloaded.

* IDX files (MNIST, Fashion-MNIST), gzipped or not: :func:`read_idx`.
* CIFAR-10 python batches (``data_batch_1`` ... ``test_batch``): :func:`read_cifar10_batch`.
* :func:`load_dataset` returns ``(train, test)`` tensors for "fashion-mnist", "fashion-mnist-32"
  (padded to 32x32), "mnist", "cifar10" and "digits" (scikit-learn's bundled 8x8 digits).
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DataFileError, InvalidArgumentError

__all__ = ["Split", "read_idx", "read_cifar10_batch", "load_dataset", "DATASETS",
           "FASHION_MNIST_DIR", "NORMALIZATIONS"]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
DATASETS = ("fashion-mnist", "fashion-mnist-32", "mnist", "cifar10", "digits")
# how pixels become inputs: "standard" (the training split's per-channel mean and sd), "unit"
# ([0, 1]: x / 255) or "pm1" ([-1, 1]: torchvision's Normalize((0.5,), (0.5,)))
NORMALIZATIONS = ("standard", "unit", "pm1")


@dataclass
class Split:
    """Images ``x`` (N, C, H, W) float32 normalised, labels ``y`` (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, n: int, seed: int = 0) -> Split:
        """A seeded random subset of ``n`` examples (all if ``n >= len``)."""
        if n >= len(self):
            return self
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        return Split(self.x[idx], self.y[idx])


def _open(path: Path):
    if not path.is_file():
        raise DataFileError(f"data file not found: {path}")
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format; gzip detected by content).

    Raises:
        DataFileError: missing file, bad magic number, unknown dtype or truncated data.
    """
    path = Path(path)
    try:
        with _open(path) as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0:
                raise DataFileError(f"{path}: not an IDX file (bad magic number {head!r})")
            code, ndim = head[2], head[3]
            if code not in _IDX_DTYPES:
                raise DataFileError(f"{path}: unknown IDX element type 0x{code:02x}")
            dims_raw = f.read(4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise DataFileError(f"{path}: truncated IDX header")
            dims = struct.unpack(f">{ndim}I", dims_raw)
            dtype = np.dtype(_IDX_DTYPES[code])
            count = int(np.prod(dims)) if dims else 1
            raw = f.read(count * dtype.itemsize)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        if isinstance(exc, DataFileError):
            raise
        raise DataFileError(f"{path}: cannot read ({exc})") from None
    if len(raw) != count * dtype.itemsize:
        raise DataFileError(f"{path}: truncated IDX data ({len(raw)} of "
                            f"{count * dtype.itemsize} bytes)")
    return np.frombuffer(raw, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def read_cifar10_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch: ``(images (N, 3, 32, 32) uint8, labels (N,) int64)``."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"data file not found: {path}")
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        data = np.asarray(d[b"data"], dtype=np.uint8)
        labels = np.asarray(d[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as exc:
        raise DataFileError(f"{path}: not a CIFAR-10 python batch ({exc!r})") from None
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise DataFileError(f"{path}: CIFAR-10 batch has data {data.shape}, "
                            f"labels {labels.shape}")
    return data.reshape(-1, 3, 32, 32), labels


def _normalise(train: np.ndarray, test: np.ndarray, normalization: str = "standard"
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale to [0, 1]; then ``"standard"``: standardise both splits with the training split's
    channel stats, ``"pm1"``: map to [-1, 1], ``"unit"``: leave as is."""
    tr = torch.as_tensor(train, dtype=torch.float32) / 255.0
    te = torch.as_tensor(test, dtype=torch.float32) / 255.0
    if normalization == "unit":
        return tr, te
    if normalization == "pm1":
        return 2.0 * tr - 1.0, 2.0 * te - 1.0
    mean = tr.mean(dim=(0, 2, 3), keepdim=True)
    std = tr.std(dim=(0, 2, 3), keepdim=True)
    return (tr - mean) / std, (te - mean) / std


def _idx_pair(root: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    def find(stem: str) -> Path:
        for name in (stem, stem + ".gz"):
            if (root / name).is_file():
                return root / name
        raise DataFileError(f"data file not found: {root / stem}[.gz]")

    x = read_idx(find(f"{prefix}-images-idx3-ubyte"))
    y = read_idx(find(f"{prefix}-labels-idx1-ubyte"))
    if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise DataFileError(f"{root}: {prefix} images {x.shape} and labels {y.shape} disagree")
    return x[:, None], y.astype(np.int64)


def load_dataset(name: str, root: str | os.PathLike | None = None,
                 fallback: bool = False, normalization: str = "standard") -> tuple[Split, Split]:
    """Load ``(train, test)`` of dataset ``name`` from ``root``.

    Args:
        name: one of :data:`DATASETS`.
        root: folder holding the files; Fashion-MNIST defaults to
            ``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``).
        fallback: if Fashion-MNIST is missing, say how to get it on stderr and return the
            bundled digits instead of raising.
        normalization: one of :data:`NORMALIZATIONS`: ``"standard"`` (both splits standardised
            with the training split's per-channel mean and std), ``"unit"`` (pixels in [0, 1])
            or ``"pm1"`` (pixels in [-1, 1]).
    """
    if name not in DATASETS:
        raise InvalidArgumentError(f"unknown dataset {name!r}; choose from {DATASETS}")
    if normalization not in NORMALIZATIONS:
        raise InvalidArgumentError(f"unknown normalization {normalization!r}; choose from "
                                   f"{NORMALIZATIONS}")
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x = (d.images[:, None] * (255.0 / 16.0)).astype(np.float32)
        y = d.target.astype(np.int64)
        perm = np.random.default_rng(0).permutation(len(y))
        x, y = x[perm], y[perm]
        n_train = 1400
        xtr_t, xte_t = _normalise(x[:n_train], x[n_train:], normalization)
        return (Split(xtr_t, torch.as_tensor(y[:n_train])),
                Split(xte_t, torch.as_tensor(y[n_train:])))
    if name.startswith("fashion-mnist"):
        folder = Path(root) if root is not None else FASHION_MNIST_DIR
        try:
            xtr, ytr = _idx_pair(folder, "train")
            xte, yte = _idx_pair(folder, "t10k")
        except DataFileError as exc:
            if not fallback:
                raise DataFileError(f"{exc}. Install Fashion-MNIST with "
                                    "`apt-get install dataset-fashion-mnist`") from None
            print(f"coreprune: Fashion-MNIST not found ({exc}); install it with "
                  "`apt-get install dataset-fashion-mnist`. Falling back to scikit-learn's "
                  "bundled 8x8 digits.", file=sys.stderr)
            return load_dataset("digits", normalization=normalization)
    elif name == "mnist":
        if root is None:
            raise InvalidArgumentError("mnist needs root= (a folder with the IDX files)")
        xtr, ytr = _idx_pair(Path(root), "train")
        xte, yte = _idx_pair(Path(root), "t10k")
    else:  # cifar10
        if root is None:
            raise InvalidArgumentError("cifar10 needs root= (the cifar-10-batches-py folder)")
        parts = [read_cifar10_batch(Path(root) / f"data_batch_{i}") for i in range(1, 6)]
        xtr = np.concatenate([p[0] for p in parts])
        ytr = np.concatenate([p[1] for p in parts])
        xte, yte = read_cifar10_batch(Path(root) / "test_batch")
    xtr_t, xte_t = _normalise(xtr, xte, normalization)
    if name == "fashion-mnist-32":
        xtr_t, xte_t = F.pad(xtr_t, (2, 2, 2, 2)), F.pad(xte_t, (2, 2, 2, 2))
    return Split(xtr_t, torch.as_tensor(ytr)), Split(xte_t, torch.as_tensor(yte))
