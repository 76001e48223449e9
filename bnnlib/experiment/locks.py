"""One exclusive lock per run key, so two processes never train the same run at the same time.

A run holds ``<results_dir>/.locks/<key>.lock`` (``fcntl.flock``, exclusive) for as long as it
trains; the file holds the holder's pid. A second process that asks for the same lock either gets
:class:`RunLocked` at once (``wait=False``: ``bnnlib train`` then exits with
:data:`EXIT_LOCKED`) or blocks until the holder is done (``wait=True``: what a sweep does, after
its other configs, to then find the holder's record).

The kernel drops a flock when its holder dies, even by ``kill -9``: a lock file left behind by a
killed process blocks nothing, and the next run takes it. A holder that finishes removes its lock
file (and the ``.locks`` folder, once empty). On a file system without flock support (some FUSE
mounts) runs go ahead unlocked, with one warning.

Locks are re-entrant within a thread: a sweep worker holds a config's lock and the run it calls
takes the same lock again without blocking itself.
"""

from __future__ import annotations

import errno
import functools
import inspect
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

try:
    import fcntl
except ImportError:  # not POSIX: no locks
    fcntl = None  # type: ignore[assignment]

LOCKS = ".locks"
EXIT_LOCKED = 3
"""The exit status of ``bnnlib train`` when another process is training the same run."""

_NO_LOCK_SUPPORT = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
_held: dict[tuple[str, int], int] = {}
_held_guard = threading.Lock()
_warned = False

F = TypeVar("F", bound=Callable[..., Any])


class RunLocked(RuntimeError):
    """Another process holds the lock of this run key."""

    def __init__(self, key: str, pid: int | None, path: Path) -> None:
        self.key, self.pid, self.path = key, pid, path
        holder = f"pid {pid}" if pid is not None else "another process"
        super().__init__(
            f"run {key} is being trained by {holder} (lock {path}); wait for it to finish and run "
            "again to load its record, or stop that process"
        )


def lock_path(results_dir: str | Path, key: str) -> Path:
    return Path(results_dir) / LOCKS / f"{key}.lock"


@contextmanager
def run_lock(results_dir: str | Path, key: str, *, wait: bool = False) -> Iterator[Path]:
    """Hold ``<results_dir>/.locks/<key>.lock`` for the ``with`` block. Raises :class:`RunLocked`
    when another process holds it (``wait=False``), or blocks until it is free (``wait=True``)."""
    path = lock_path(results_dir, key)
    ident = (os.path.abspath(path), threading.get_ident())
    with _held_guard:
        nested = ident in _held
        if nested:
            _held[ident] += 1
    if nested:
        try:
            yield path
        finally:
            with _held_guard:
                _held[ident] -= 1
        return
    new_results_dir = not path.parent.parent.exists()
    fd = _acquire(path, key, wait)
    with _held_guard:
        _held[ident] = 1
    try:
        yield path
    finally:
        with _held_guard:
            del _held[ident]
        if fd is not None:
            _release(path, fd, new_results_dir)


def locked(key_of: Callable[[Mapping[str, Any]], tuple[str | Path, str]]) -> Callable[[F], F]:
    """Decorate a function that trains one run so the call holds the run's lock (no waiting).
    ``key_of`` gets the call's arguments by name, defaults applied, and returns
    ``(results_dir, key)``."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            results_dir, key = key_of(bound.arguments)
            with run_lock(results_dir, key):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _acquire(path: Path, key: str, wait: bool) -> int | None:
    global _warned
    if fcntl is None:
        return None
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:  # a finishing holder removed the empty folder just now
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise RunLocked(key, pid, path) from None
        except OSError as err:
            os.close(fd)
            if err.errno not in _NO_LOCK_SUPPORT:
                raise
            if not _warned:
                warnings.warn(
                    f"{path.parent}: this file system does not support flock; runs are not "
                    "locked, so do not train the same run from two processes",
                    stacklevel=4,
                )
                _warned = True
            return None
        except BaseException:
            os.close(fd)
            raise
        # The previous holder removes the file when it is done: the lock is ours only if the
        # file we locked is still the one at ``path``.
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        mine = os.fstat(fd)
        if current is not None and (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)


def _release(path: Path, fd: int, new_results_dir: bool) -> None:
    try:
        path.unlink(missing_ok=True)  # while still holding it: see _acquire
    finally:
        os.close(fd)
    try:
        path.parent.rmdir()  # the .locks folder, once no other run holds a lock there
        if new_results_dir:  # a run that wrote nothing leaves no folder behind
            path.parent.parent.rmdir()
    except OSError:
        pass


def _read_pid(fd: int) -> int | None:
    """The holder writes its pid right after locking: give it a moment."""
    for _ in range(20):
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if text.isdigit():
            return int(text)
        time.sleep(0.01)
    return None
