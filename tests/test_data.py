import gzip
import pickle
import struct

import numpy as np
import pytest

from coreprune.data import load_dataset, read_cifar10_batch, read_idx
from coreprune.errors import DataFileError


def write_idx(path, arr, gz=False):
    codes = {np.uint8: 0x08, np.int32: 0x0C}
    head = bytes([0, 0, codes[arr.dtype.type], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    with (gzip.open if gz else open)(path, "wb") as f:  # closed: 3.12's gzip buffers writes
        f.write(data)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip(tmp_path, gz):
    img = np.random.default_rng(0).integers(0, 255, size=(5, 4, 3), dtype=np.uint8)
    write_idx(tmp_path / "x", img, gz)
    np.testing.assert_array_equal(read_idx(tmp_path / "x"), img)
    big = np.arange(6, dtype=np.int32).reshape(2, 3) - 3
    write_idx(tmp_path / "y", big, gz)
    np.testing.assert_array_equal(read_idx(tmp_path / "y"), big)


def test_idx_errors(tmp_path):
    with pytest.raises(DataFileError, match="not found"):
        read_idx(tmp_path / "missing")
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(DataFileError, match="magic"):
        read_idx(tmp_path / "bad")
    img = np.zeros((5, 4), dtype=np.uint8)
    write_idx(tmp_path / "t", img)
    (tmp_path / "t").write_bytes((tmp_path / "t").read_bytes()[:-3])
    with pytest.raises(DataFileError, match="truncated"):
        read_idx(tmp_path / "t")


def test_mnist_folder_layout(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 4)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 255, size=(n, 28, 28), dtype=np.uint8), gz=True)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte",
                  rng.integers(0, 10, size=n, dtype=np.uint8))
    tr, te = load_dataset("mnist", tmp_path)
    assert tr.x.shape == (12, 1, 28, 28) and te.y.shape == (4,)
    assert abs(float(tr.x.mean())) < 1e-5
    tr32, _ = load_dataset("fashion-mnist-32", tmp_path)
    assert tr32.x.shape == (12, 1, 32, 32)


def test_cifar_batches(tmp_path):
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {b"data": rng.integers(0, 255, size=(3, 3072), dtype=np.uint8),
             b"labels": list(rng.integers(0, 10, size=3))}
        (tmp_path / name).write_bytes(pickle.dumps(d))
    x, y = read_cifar10_batch(tmp_path / "test_batch")
    assert x.shape == (3, 3, 32, 32) and y.shape == (3,)
    tr, te = load_dataset("cifar10", tmp_path)
    assert tr.x.shape == (15, 3, 32, 32) and len(te) == 3
    (tmp_path / "test_batch").write_bytes(b"garbage")
    with pytest.raises(DataFileError, match="CIFAR-10"):
        read_cifar10_batch(tmp_path / "test_batch")


def test_missing_fashion_mnist_says_how_to_install(tmp_path, capsys):
    with pytest.raises(DataFileError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", tmp_path)
    tr, te = load_dataset("fashion-mnist", tmp_path, fallback=True)
    assert tr.x.shape[-1] == 8  # scikit-learn digits
    assert "apt-get install dataset-fashion-mnist" in capsys.readouterr().err
