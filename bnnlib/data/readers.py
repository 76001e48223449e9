"""Format readers: raw files on disk -> :class:`ImageArrays` (uint8 NCHW, int64 labels).

Pure numpy/Pillow, no torchvision, so they work offline on a read-only folder. The layouts are the
ones described in the offline data folder's README (IDX for MNIST, 1000-image PNG strips plus a
``labels.js`` for the convnetjs CIFAR-10 subset, and a tar of per-class JPEGs).
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from .arrays import ImageArrays

MNIST_FILES = {
    "train_x": "train-images-idx3-ubyte.gz",
    "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz",
    "test_y": "t10k-labels-idx1-ubyte.gz",
}
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
PNG_TRAIN_BATCHES = (0, 1)
PNG_TEST_BATCH = 50
_PNG_ROWS = 1000
_CIFAR_TRAIN = 50_000
_JPEG_NAME = re.compile(r"^(train|test)/([a-z]+)/(\d+)\.jpg$")


def check_idx_file(path: Path, dims: tuple[int, ...]) -> None:
    """Check a gzipped unsigned-byte IDX file without decompressing it: the gzip magic, the IDX
    header (type code, ``dims``) and the gzip trailer's uncompressed size, which a truncated or
    garbled file does not match. ValueError naming the file otherwise."""
    path = Path(path)
    expected = 4 + 4 * len(dims) + int(np.prod(dims))
    try:
        with open(path, "rb") as fh:
            magic = fh.read(2)
            fh.seek(-4, 2)
            isize = int.from_bytes(fh.read(4), "little")
        with gzip.open(path, "rb") as fh:
            header = fh.read(4 + 4 * len(dims))
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise ValueError(f"{path}: unreadable gzip IDX file ({err})") from None
    if magic != b"\x1f\x8b":
        raise ValueError(f"{path}: not a gzip file")
    want = bytes([0, 0, 0x08, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    if header != want:
        raise ValueError(f"{path}: IDX header {header.hex()} is not that of {dims} unsigned bytes")
    if isize != expected % 2**32:
        raise ValueError(
            f"{path}: truncated or corrupt (its gzip trailer says {isize} bytes, "
            f"expected {expected})"
        )


def read_idx(path: Path) -> np.ndarray:
    """Parse a gzipped IDX file holding unsigned bytes (type code 0x08) into an array of its dims."""
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"{path}: truncated or corrupt gzip file ({err})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (header {raw[:4].hex()})")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} but holds {len(raw) - offset} bytes")
    return np.frombuffer(raw, np.uint8, offset=offset).reshape(dims)


def read_mnist_raw(folder: Path) -> ImageArrays:
    """MNIST from the four canonical ``.gz`` IDX files in ``folder``."""
    parts = {key: read_idx(folder / name) for key, name in MNIST_FILES.items()}
    return ImageArrays(
        train_x=np.ascontiguousarray(parts["train_x"][:, None]),
        train_y=parts["train_y"].astype(np.int64),
        test_x=np.ascontiguousarray(parts["test_x"][:, None]),
        test_y=parts["test_y"].astype(np.int64),
    )


def read_labels_js(path: Path) -> np.ndarray:
    """The convnetjs ``var labels=[...]`` line: 50,000 train labels then the first 1,000 test labels."""
    labels = np.array([int(v) for v in re.findall(r"\d+", path.read_text())], dtype=np.int64)
    if labels.shape != (_CIFAR_TRAIN + _PNG_ROWS,) or labels.max() > 9:
        raise ValueError(f"{path}: expected 51000 labels in 0..9, got {labels.shape[0]}")
    return labels


def read_png_strip(path: Path) -> np.ndarray:
    """One 1024x1000 PNG whose row k is a 32x32 RGB image in row-major order -> (1000, 3, 32, 32)."""
    with Image.open(path) as img:
        hwc = np.asarray(img.convert("RGB")).reshape(_PNG_ROWS, 32, 32, 3)
    return np.ascontiguousarray(hwc.transpose(0, 3, 1, 2))


def read_png_subset(folder: Path) -> ImageArrays:
    """The exact convnetjs CIFAR-10 subset: train images 0-1,999 and test images 0-999."""
    labels = read_labels_js(folder / "cifar10_labels.js")
    train = [read_png_strip(folder / f"cifar10_batch_{b}.png") for b in PNG_TRAIN_BATCHES]
    n_train = _PNG_ROWS * len(PNG_TRAIN_BATCHES)
    return ImageArrays(
        train_x=np.concatenate(train),
        train_y=labels[:n_train].copy(),
        test_x=read_png_strip(folder / f"cifar10_batch_{PNG_TEST_BATCH}.png"),
        test_y=labels[_CIFAR_TRAIN:].copy(),
    )


def iter_tar_files(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each regular file, streamed in archive order without extracting to disk."""
    with tarfile.open(path, "r|gz") as tar:
        for member in tar:
            if member.isfile():
                yield member.name, tar.extractfile(member).read()


def decode_jpeg(data: bytes) -> np.ndarray:
    """A 32x32 JPEG -> (3, 32, 32) uint8 via Pillow (its libjpeg; other decoders differ by a few levels)."""
    with Image.open(io.BytesIO(data)) as img:
        hwc = np.asarray(img.convert("RGB"))
    if hwc.shape != (32, 32, 3):
        raise ValueError(f"expected a 32x32 RGB JPEG, got shape {hwc.shape}")
    return hwc.transpose(2, 0, 1)


def jpeg_member_slot(name: str) -> tuple[str, int, int]:
    """``train/<class>/NNNN.jpg`` -> (split, class index, index k within the class)."""
    match = _JPEG_NAME.match(name)
    if match is None or match.group(2) not in CIFAR10_CLASSES:
        raise ValueError(f"unexpected member {name!r} in the CIFAR-10 JPEG tar")
    return match.group(1), CIFAR10_CLASSES.index(match.group(2)), int(match.group(3))


def train_positions(train_labels: np.ndarray) -> list[np.ndarray]:
    """positions[c][k] = index in the original train order of the k-th train image of class c."""
    return [np.flatnonzero(train_labels == c) for c in range(len(CIFAR10_CLASSES))]


def read_jpeg_tar(path: Path, train_labels: np.ndarray) -> ImageArrays:
    """The re-encoded CIFAR-10 JPEGs. Train images go back to the original CIFAR-10 order (the k-th
    file of a class is that class's k-th image in ``train_labels``), so index i matches the exact PNG
    subset; the test set has no full label list, so it follows ImageFolder order (class, then k)."""
    positions = train_positions(train_labels)
    train_x = np.empty((len(train_labels), 3, 32, 32), np.uint8)
    filled = np.zeros(len(train_labels), bool)
    test: dict[tuple[int, int], np.ndarray] = {}
    for name, data in iter_tar_files(path):
        split, cls, k = jpeg_member_slot(name)
        if split == "train":
            if k >= len(positions[cls]):
                raise ValueError(f"{name}: class has only {len(positions[cls])} train labels")
            train_x[positions[cls][k]] = decode_jpeg(data)
            filled[positions[cls][k]] = True
        else:
            test[(cls, k)] = decode_jpeg(data)
    if not filled.all():
        raise ValueError(f"{path}: {int((~filled).sum())} train images missing from the tar")
    keys = sorted(test)
    return ImageArrays(
        train_x=train_x,
        train_y=train_labels.astype(np.int64),
        test_x=np.stack([test[key] for key in keys]),
        test_y=np.array([cls for cls, _ in keys], dtype=np.int64),
    )


def nchw_from_torchvision(data: object) -> np.ndarray:
    """torchvision's ``.data`` (MNIST: uint8 tensor N,H,W; CIFAR: uint8 ndarray N,H,W,C) -> NCHW."""
    array = np.asarray(data, dtype=np.uint8)
    if array.ndim == 3:
        return np.ascontiguousarray(array[:, None])
    return np.ascontiguousarray(array.transpose(0, 3, 1, 2))


def read_torchvision(dataset_cls: type, root: Path, download: bool) -> ImageArrays:
    """Both splits of a torchvision dataset class (MNIST, CIFAR10, CIFAR100) stored under ``root``."""
    splits = {
        train: dataset_cls(str(root), train=train, download=download) for train in (True, False)
    }
    return ImageArrays(
        train_x=nchw_from_torchvision(splits[True].data),
        train_y=np.asarray(splits[True].targets, dtype=np.int64),
        test_x=nchw_from_torchvision(splits[False].data),
        test_y=np.asarray(splits[False].targets, dtype=np.int64),
    )
