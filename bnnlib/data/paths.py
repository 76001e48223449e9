"""Where datasets are read from and where decoded arrays are cached.

Reading and writing are kept apart on purpose: ``BNNLIB_DATA_DIR`` may be a read-only shared folder,
so everything bnnlib produces (decoded ``.npy`` arrays, torchvision downloads) goes to the cache.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

DATA_DIR_ENV = "BNNLIB_DATA_DIR"
CACHE_DIR_ENV = "BNNLIB_CACHE_DIR"


def data_dir() -> Path | None:
    """The offline data folder named by ``BNNLIB_DATA_DIR``, or None when unset or empty."""
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """The writable cache folder: ``BNNLIB_CACHE_DIR``, default ``~/.cache/bnnlib`` (not created here)."""
    value = os.environ.get(CACHE_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "bnnlib"


def writable_folder(folder: Path) -> bool:
    """Whether a file can be created in the existing folder ``folder``: the permission bits and a
    probe file, removed at once (root ignores the bits, a read-only mount does not)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".bnnlib-probe-")
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True


def check_writable_location(folder: Path, where: str, fix: str) -> Path:
    """The nearest existing folder at or above ``folder`` (which need not exist), checked to be a
    folder a file can be created in; ValueError ``"<where>: ... ; <fix>"`` otherwise. Nothing is
    created."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{where}: {existing} is a file, not a folder; {fix}")
    if not writable_folder(existing):
        raise ValueError(f"{where}: {existing} is not writable (read-only or no permission); {fix}")
    return existing
