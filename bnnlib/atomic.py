"""Atomic file writes and checked reads: a reader never sees a half-written record or checkpoint,
and never trusts a corrupt, truncated or foreign one.

Every write goes to a temporary file ``.<name>.<pid>-<random>.tmp`` beside the target, is flushed
to disk and renamed over the target, so the target is either the old complete file or the new
complete file. A process killed during a write leaves its temporary file behind; the next run of
the same job removes it (:func:`remove_orphan_temps`: the writer's process is gone).

Checkpoints (:func:`save_checkpoint`) hold tensors and plain data only (dicts, lists, tuples,
strings, numbers, booleans, None), so they load with ``torch.load(..., weights_only=True)``, which
cannot run code. Each carries the sha256 of its content; :func:`load_checkpoint` recomputes it and
refuses a file whose content differs with a :class:`CorruptFileError`, one line naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

# The envelope a checkpoint is saved in: {"format": CHECKPOINT_FORMAT, "version": 1,
# "sha256": <digest of "state">, "state": <the state>}.
CHECKPOINT_FORMAT = "bnnlib.checkpoint"
CHECKPOINT_VERSION = 1
TEMP_SUFFIX = ".tmp"


class CorruptFileError(ValueError):
    """A file that is empty, truncated, garbled or not what it should be; ``str`` is one line that
    names the file and says what happens next."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):  # noqa: ANN204 - keep the fields through pickling (worker processes)
        return (type(self), (self.path, self.reason))


def _replace_from_temp(path: Path, write) -> None:  # noqa: ANN001 - write(fileobj)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.{os.getpid()}-"
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_file(path: str | Path, write: Callable[[Any], Any]) -> None:
    """Write ``path`` atomically: ``write(binary_file)`` fills a temporary file, renamed over it."""
    _replace_from_temp(Path(path), write)


def write_json(path: str | Path, obj: Any, *, allow_nan: bool = True) -> None:
    """Write ``obj`` as JSON atomically. With ``allow_nan=False`` a NaN or infinite number (which
    JSON cannot hold) raises ValueError naming where it is, and nothing is written."""
    if not allow_nan:
        where = non_finite_path(obj)
        if where is not None:
            raise ValueError(
                f"{path}: {where[0]}={where[1]!r} is not a finite number and JSON cannot hold it; "
                "nothing was written"
            )
    data = json.dumps(obj, indent=1, sort_keys=False, allow_nan=allow_nan).encode() + b"\n"
    _replace_from_temp(Path(path), lambda f: f.write(data))


def write_text(path: str | Path, text: str) -> None:
    _replace_from_temp(Path(path), lambda f: f.write(text.encode()))


def save_torch(path: str | Path, obj: Any) -> None:
    _replace_from_temp(Path(path), lambda f: torch.save(obj, f))


def non_finite_path(obj: Any, prefix: str = "") -> tuple[str, float] | None:
    """(dotted path, value) of the first NaN or infinite float in a JSON-like ``obj``, or None."""
    if isinstance(obj, float):
        return None if obj == obj and obj not in (float("inf"), float("-inf")) else (prefix, obj)
    if isinstance(obj, dict):
        items = ((f"{prefix}.{k}" if prefix else str(k), v) for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        items = ((f"{prefix}[{i}]", v) for i, v in enumerate(obj))
    else:
        return None
    for name, value in items:
        found = non_finite_path(value, name)
        if found is not None:
            return found
    return None


# -- temporary files and files set aside -------------------------------------------------------


_TEMP_PID = re.compile(r"\.(\d+)-[a-z0-9_]+\.tmp$")
# A temporary file whose name carries no writer (an older bnnlib's) is an orphan after this long.
UNNAMED_TEMP_AGE_S = 600.0


def remove_orphan_temps(folder: str | Path, name: str | None = None) -> list[Path]:
    """Remove the temporary files killed writes left in ``folder``: those of target ``name``
    (``.<name>.*.tmp``), or all ``.*.tmp`` when ``name`` is None. A file whose writer process is
    still alive on this machine is kept, so a concurrent write is never broken; one without a
    writer in its name is removed once it is older than :data:`UNNAMED_TEMP_AGE_S`. Returns the
    removed paths."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = f".{name}.*{TEMP_SUFFIX}" if name is not None else f".*{TEMP_SUFFIX}"
    removed = []
    for tmp in folder.glob(pattern):
        if not _orphan(tmp):
            continue
        try:
            tmp.unlink()
        except FileNotFoundError:  # another process removed or renamed it first
            continue
        removed.append(tmp)
    return removed


def _orphan(tmp: Path) -> bool:
    found = _TEMP_PID.search(tmp.name)
    if found is None:
        try:
            return time.time() - tmp.stat().st_mtime > UNNAMED_TEMP_AGE_S
        except FileNotFoundError:
            return False
    pid = int(found.group(1))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, OSError):
        return False  # alive under another user, or not a pid of this machine
    return False


def move_aside(path: str | Path) -> Path:
    """Rename a corrupt ``path`` to ``<path>.corrupt-<UTC time>`` (kept for inspection; delete it
    when done) and return the new path."""
    path = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.replace(path, target)
    return target


# -- checkpoints ----------------------------------------------------------------------------------


def state_digest(obj: Any) -> str:
    """sha256 of a checkpoint state: every tensor's dtype, shape and bytes, every plain value's
    type and value, in order. TypeError for anything that is neither (a checkpoint that needs
    ``weights_only=False`` to load is not written)."""
    h = hashlib.sha256()
    _digest(obj, h, "state")
    return h.hexdigest()


def _digest(obj: Any, h: Any, where: str) -> None:  # noqa: ANN401
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(obj.shape)}:".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}:".encode())
        for k, v in obj.items():
            _digest(k, h, where)
            _digest(v, h, f"{where}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        h.update(f"{'L' if isinstance(obj, list) else 'U'}{len(obj)}:".encode())
        for i, v in enumerate(obj):
            _digest(v, h, f"{where}[{i}]")
    elif obj is None or isinstance(obj, (bool, int, float, str, bytes, torch.dtype, torch.device)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    else:
        raise TypeError(
            f"checkpoint {where} is a {type(obj).__module__}.{type(obj).__qualname__}; a "
            "checkpoint holds tensors and plain data only (so it loads with weights_only=True)"
        )


def save_checkpoint(path: str | Path, state: Any) -> str:
    """Write ``state`` atomically with the sha256 of its content; returns the digest."""
    digest = state_digest(state)
    envelope = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "sha256": digest,
        "state": state,
    }
    save_torch(path, envelope)
    return digest


def load_checkpoint(
    path: str | Path,
    *,
    what: str = "checkpoint",
    legacy: Callable[[Any], bool] | None = None,
    advice: str = "",
) -> tuple[Any, str | None]:
    """(state, sha256) of a checkpoint written by :func:`save_checkpoint`, loaded on the CPU with
    ``weights_only=True`` (a file that would run code is refused, never executed).

    Refused with :class:`CorruptFileError`, one line naming the file, ``what`` it should be and
    ``advice``: an empty or truncated file, one torch cannot read, one that needs code to load, a
    content hash that does not match (a flipped bit), or a foreign file. A file without the
    envelope written before checkpoints carried a hash is accepted as legacy, with sha256 None,
    when ``legacy(obj)`` says it has the expected shape."""
    path = Path(path)
    tail = f"; {advice}" if advice else ""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CorruptFileError(path, f"{what} is missing{tail}") from None
    if size == 0:
        raise CorruptFileError(path, f"{what} is empty{tail}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise CorruptFileError(
            path, f"not a readable {what} (truncated, garbled or foreign: {_first_line(exc)}){tail}"
        ) from None
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        if set(obj) != {"format", "version", "sha256", "state"} or not isinstance(
            obj["sha256"], str
        ):
            raise CorruptFileError(path, f"{what} has a damaged header{tail}")
        if obj["version"] != CHECKPOINT_VERSION:
            raise CorruptFileError(
                path, f"{what} has format version {obj['version']!r}, expected 1{tail}"
            )
        try:
            digest = state_digest(obj["state"])
        except TypeError as exc:
            raise CorruptFileError(path, f"{what} holds {exc}{tail}") from None
        if digest != obj["sha256"]:
            raise CorruptFileError(
                path, f"{what} content does not match its sha256 (the file is corrupt){tail}"
            )
        return obj["state"], digest
    if legacy is not None and legacy(obj):
        return obj, None
    raise CorruptFileError(path, f"not a bnnlib {what} (a foreign file){tail}")


def _first_line(exc: BaseException) -> str:
    message = str(exc)
    if "Weights only load failed" in message:
        found = re.search(r"(?:unsupported|Unsupported global:) GLOBAL ([\w.]+)", message)
        named = f" ({found.group(1)})" if found else ""
        return f"it needs code to load{named}, refused unrun"
    text = message.strip().splitlines()
    line = text[0] if text else ""
    line = line.replace("\x1b[1m", "").replace("\x1b[0m", "")
    if len(line) > 100:
        line = line[:97] + "..."
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__
