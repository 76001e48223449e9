"""Decoded datasets as plain uint8 arrays, and their ``.npy`` cache.

Every source (IDX, PNG strips, JPEG tar, torchvision pickles) is decoded once into the same layout,
so the loaders never care where pixels came from and later runs skip the decoding entirely.

Each array is written atomically, then ``manifest.json`` with the sha256 of every array file. A
cache is used only when its files match the manifest (checked once per process while the files
are unchanged); a folder whose array is corrupt, truncated, empty or foreign is moved aside to
``<folder>.corrupt-<UTC time>`` with a one-line warning and the dataset is decoded again from its
source. A cache written before manifests existed is accepted when its arrays read back with the
right dtypes (no hash to check).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bnnlib.atomic import (
    UNNAMED_TEMP_AGE_S,
    CorruptFileError,
    move_aside,
    remove_orphan_temps,
    write_file,
    write_json,
)

_FIELDS = ("train_x", "train_y", "test_x", "test_y")
MANIFEST = "manifest.json"
# What the cache checked already in this process: folder -> the files' (size, mtime, inode).
_VERIFIED: dict[Path, tuple] = {}

logger = logging.getLogger(__name__)


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
    """True when all four arrays are in ``folder`` and pass :func:`verify_arrays`; a folder that
    fails is moved aside (one-line warning), so the caller decodes the dataset again."""
    remove_orphan_temps(folder)
    if not all((folder / f"{f}.npy").is_file() for f in _FIELDS):
        return False
    try:
        verify_arrays(folder)
    except CorruptFileError as exc:
        try:
            moved = move_aside(folder)
        except FileNotFoundError:  # another process set it aside first
            return False
        logger.warning(
            "%s: %s; moved the cache folder aside to %s and the dataset is decoded again",
            exc.path,
            exc.reason,
            moved.name,
        )
        return False
    return True


def verify_arrays(folder: Path) -> None:
    """Check the cached arrays against ``manifest.json`` (or, without one, that they read back as
    the right arrays); :class:`~bnnlib.atomic.CorruptFileError` names the first bad file."""
    signature = _signature(folder)
    if _VERIFIED.get(folder) == signature:
        return
    manifest = folder / MANIFEST
    if manifest.exists():
        files = _read_manifest(manifest)
        for field in _FIELDS:
            name = f"{field}.npy"
            if _sha256(folder / name) != files[name]:
                raise CorruptFileError(
                    folder / name, f"cached array does not match its sha256 in {MANIFEST}"
                )
    else:
        for field in _FIELDS:
            _read(folder / f"{field}.npy", mmap=True)
    _VERIFIED[folder] = signature


def save_arrays(arrays: ImageArrays, folder: Path) -> None:
    """Write the arrays as ``.npy`` files, then the manifest of their sha256; each file goes
    through a temporary file and an atomic rename so a concurrent reader never sees a
    half-written one."""
    folder.mkdir(parents=True, exist_ok=True)
    remove_orphan_temps(folder)
    for old in folder.glob("tmp*.npy.tmp"):  # an older bnnlib's temporary names
        _remove_if_old(old)
    (folder / MANIFEST).unlink(missing_ok=True)
    files = {}
    for field in _FIELDS:
        path = folder / f"{field}.npy"
        array = np.ascontiguousarray(getattr(arrays, field))
        write_file(path, lambda fh, a=array: np.save(fh, a))
        files[path.name] = _sha256(path)
    write_json(folder / MANIFEST, {"format": 1, "sha256": files})
    _VERIFIED[folder] = _signature(folder)


def load_arrays(folder: Path) -> ImageArrays:
    """The cached arrays of ``folder``, checked first (:func:`verify_arrays`)."""
    verify_arrays(folder)
    arrays = {f: _read(folder / f"{f}.npy") for f in _FIELDS}
    try:
        return ImageArrays(**arrays)
    except ValueError as exc:
        raise CorruptFileError(folder, f"cached arrays of the wrong kind ({exc})") from None


def _read(path: Path, mmap: bool = False) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - numpy raises many kinds for a bad file
        raise CorruptFileError(
            path, f"cached array is unreadable (truncated, garbled or foreign: {exc})"
        ) from None
    field = path.stem
    dtype, ndim = (np.uint8, 4) if field.endswith("_x") else (np.int64, 1)
    if array.dtype != dtype or array.ndim != ndim:
        raise CorruptFileError(
            path,
            f"cached array is {array.dtype} {array.shape}, expected {np.dtype(dtype)} {ndim}-D",
        )
    return array


def _read_manifest(manifest: Path) -> dict[str, str]:
    try:
        files = json.loads(manifest.read_bytes())["sha256"]
        if all(isinstance(files[f"{f}.npy"], str) for f in _FIELDS):
            return files
    except (ValueError, KeyError, TypeError):
        pass
    raise CorruptFileError(manifest, "cache manifest is unreadable (truncated or garbled)")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _signature(folder: Path) -> tuple:
    out = []
    for name in (*(f"{f}.npy" for f in _FIELDS), MANIFEST):
        try:
            st = (folder / name).stat()
        except FileNotFoundError:
            out.append(None)
            continue
        out.append((st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(out)


def _remove_if_old(path: Path) -> None:
    try:
        if time.time() - path.stat().st_mtime > UNNAMED_TEMP_AGE_S:
            path.unlink()
    except FileNotFoundError:
        pass
