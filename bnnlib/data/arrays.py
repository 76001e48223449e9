"""Decoded datasets as plain uint8 arrays, and their ``.npy`` cache.

Every source (IDX, PNG strips, JPEG tar, torchvision pickles) is decoded once into the same layout,
so the loaders never care where pixels came from and later runs skip the decoding entirely.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_FIELDS = ("train_x", "train_y", "test_x", "test_y")


@dataclass(frozen=True)
class ImageArrays:
    """Images as uint8 (N, C, H, W) in C order and labels as int64 (N,), for both official splits."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            if x.dtype != np.uint8 or x.ndim != 4:
                raise ValueError(f"{split}_x must be uint8 (N, C, H, W), got {x.dtype} {x.shape}")
            if y.dtype != np.int64 or y.shape != (x.shape[0],):
                raise ValueError(
                    f"{split}_y must be int64 of shape ({x.shape[0]},), got {y.dtype} {y.shape}"
                )

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f).nbytes for f in _FIELDS)


def cached_arrays_exist(folder: Path) -> bool:
    """True when all four arrays are in ``folder`` (each file appears atomically, see save)."""
    return all((folder / f"{f}.npy").is_file() for f in _FIELDS)


def save_arrays(arrays: ImageArrays, folder: Path) -> None:
    """Write the arrays as ``.npy`` files; each goes through a temporary file and an atomic rename so a
    concurrent reader never sees a half-written array."""
    folder.mkdir(parents=True, exist_ok=True)
    for field in _FIELDS:
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npy.tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, np.ascontiguousarray(getattr(arrays, field)))
            os.replace(tmp, folder / f"{field}.npy")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def load_arrays(folder: Path) -> ImageArrays:
    return ImageArrays(**{f: np.load(folder / f"{f}.npy") for f in _FIELDS})
