"""Atomic file writes: a reader never sees a half-written record or checkpoint."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _replace_from_temp(path: Path, write) -> None:  # noqa: ANN001 - write(fileobj)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    data = json.dumps(obj, indent=1, sort_keys=False, allow_nan=True).encode() + b"\n"
    _replace_from_temp(Path(path), lambda f: f.write(data))


def write_text(path: str | Path, text: str) -> None:
    _replace_from_temp(Path(path), lambda f: f.write(text.encode()))


def save_torch(path: str | Path, obj: Any) -> None:
    _replace_from_temp(Path(path), lambda f: torch.save(obj, f))
