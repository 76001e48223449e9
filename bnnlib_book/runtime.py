"""What a notebook's setup cell does, in a checkout or in a fresh runtime such as Colab.

A page reads more than the installed packages hold: its params (``params/``), the notebooks'
parameters cells (the summary grades every chapter with them), the committed run records
(``runs/``) and the benchmark results (``benchmarks/results``), all by paths relative to the
book's folder. :func:`setup` makes those paths resolve wherever the notebook runs:

- in a checkout (the working directory or one of its parents holds ``_toc.yml``, ``notebooks/``
  and ``params/``: ``bnnlib-book build``, or Jupyter started anywhere inside the checkout) it
  uses that checkout;
- elsewhere (Colab's ``/content``, a notebook downloaded into an empty folder) it makes a
  shallow ``git clone`` of the book's repository into ``./<repository name>`` (or reuses that
  clone when it is already there, so running the cell again keeps the records trained in it).

It then changes the working directory to that folder, so every relative path of the page, and
every record a run writes, lands in the book's tree. The repository and branch come from the
setup cell, which :mod:`bnnlib_book.setup_cell` renders from ``_config.yml``;
``BNNLIB_BOOK_REPOSITORY`` and ``BNNLIB_BOOK_BRANCH`` override them (a fork, a mirror, or the
local repository of ``tests/test_colab.py``).

Training picks its device itself (``RunConfig.device`` is ``"auto"``: CUDA when available);
:func:`setup` reports it. :func:`pick_dataset` turns a page's ``dataset = "auto"`` into true
CIFAR-10 when it can be had, or the offline JPEG copy otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import bnnlib  # noqa: F401  imported before the working directory changes (see setup)
from bnnlib.data import DatasetNotFoundError, check_dataset, dataset_info

REPOSITORY_ENV = "BNNLIB_BOOK_REPOSITORY"
BRANCH_ENV = "BNNLIB_BOOK_BRANCH"
BOOK_MARKERS = ("_toc.yml", "notebooks", "params")

AUTO = "auto"
CIFAR10_CHOICES = ("cifar10", "cifar10-jpeg")
"""What ``dataset = "auto"`` becomes: the first of these that is available."""


@dataclass(frozen=True)
class Runtime:
    """Where a page runs: the book's folder (now the working directory), whether it is a clone
    this setup made or reused, and the device training picks."""

    root: Path
    cloned: bool
    device: str


def is_book_root(folder: Path) -> bool:
    """Whether ``folder`` holds the book: ``_toc.yml``, ``notebooks/`` and ``params/``."""
    return all((folder / name).exists() for name in BOOK_MARKERS)


def find_book_root(start: str | Path) -> Path | None:
    """``start`` or the nearest of its parents that holds the book, or None."""
    start = Path(start).resolve()
    for folder in (start, *start.parents):
        if is_book_root(folder):
            return folder
    return None


def repository_name(url: str) -> str:
    """The folder ``git clone`` would make: the URL's last component without ``.git``."""
    name = url.rstrip("/").rsplit("/", 1)[-1]
    name = name.removesuffix(".git")
    if not name or name in (".", ".."):
        raise ValueError(f"cannot name a folder after the repository URL {url!r}")
    return name


def clone_book(url: str, branch: str, dest: str | Path) -> Path:
    """A shallow clone of ``url`` at ``branch`` in ``dest``; an existing clone there is reused
    as it is (``git -C dest pull`` updates it). RuntimeError when ``dest`` is something else or
    git fails."""
    dest = Path(dest)
    if dest.exists():
        if is_book_root(dest):
            return dest
        raise RuntimeError(
            f"{dest} exists but holds no book (no {', '.join(BOOK_MARKERS)}); move it away or "
            "run the notebook from another folder"
        )
    command = ["git", "clone", "--quiet", "--depth", "1", "--branch", branch, url, str(dest)]
    try:
        done = subprocess.run(command, capture_output=True, text=True)
    except FileNotFoundError:
        raise RuntimeError(
            f"git is not installed: cannot fetch the book's files from {url}"
        ) from None
    if done.returncode != 0:
        raise RuntimeError(
            f"git clone of {url} (branch {branch}) failed (exit {done.returncode}): "
            f"{done.stderr.strip()}"
        )
    if not is_book_root(dest):
        raise RuntimeError(f"the clone of {url} (branch {branch}) holds no book: {dest}")
    return dest


def _commit(root: Path) -> str | None:
    done = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip() if done.returncode == 0 else None


def device_name() -> str:
    """The device a run with ``device="auto"`` trains on, with the GPU's name."""
    import torch

    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return "cpu"


def setup(repository: str, branch: str, cwd: str | Path | None = None) -> Runtime:
    """Find or fetch the book's folder, make it the working directory, report the device.

    A clone holds both packages' sources, which must not shadow the installed ones: ``bnnlib``
    and ``bnnlib_book`` are imported before the working directory changes, and the entries of
    ``sys.path`` that name the clone (``""`` among them) are dropped.
    """
    start = Path.cwd() if cwd is None else Path(cwd)
    root = find_book_root(start)
    cloned = root is None
    lines = []
    if root is None:
        url = os.environ.get(REPOSITORY_ENV) or repository
        branch = os.environ.get(BRANCH_ENV) or branch
        dest = start.resolve() / repository_name(url)
        fresh = not dest.exists()
        root = clone_book(url, branch, dest)
        commit = _commit(root)
        at = f", commit {commit}" if commit else ""
        how = "cloned" if fresh else "reusing the clone"
        lines.append(f"book files: {root} ({how} of {url}, branch {branch}{at})")
    os.chdir(root)
    if cloned:
        # The clone holds both packages' sources: with the working directory on sys.path (Jupyter
        # puts "" there, and spawned sweep workers inherit sys.path) they would shadow the
        # installed packages in modules imported from now on.
        here = root.resolve()
        sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != here]
    runtime = Runtime(root=root, cloned=cloned, device=device_name())
    lines.append(f"device: {runtime.device}")
    print("\n".join(lines))
    return runtime


def dataset_available(name: str) -> bool:
    """Whether ``name`` can be loaded here: cached, in ``BNNLIB_DATA_DIR``, or downloadable."""
    try:
        check_dataset(name)
    except DatasetNotFoundError:
        return False
    return True


def pick_dataset(name: str) -> str:
    """A page's ``dataset`` parameter as the data set its runs use: ``"auto"`` becomes true
    CIFAR-10 (``cifar10``: in ``BNNLIB_DATA_DIR``, cached, or downloaded by torchvision) when it
    is available and the offline JPEG copy (``cifar10-jpeg``) otherwise, with one printed line
    saying which and why; any other name is returned as it is. The page's labels come from the
    name returned (``dataset_info(name).label``, or the records' provenance)."""
    if name != AUTO:
        return name
    for i, candidate in enumerate(CIFAR10_CHOICES):
        if dataset_available(candidate):
            label = dataset_info(candidate).label
            why = (
                ""
                if i == 0
                else f"; {', '.join(repr(n) for n in CIFAR10_CHOICES[:i])} not available here "
                "(not in BNNLIB_DATA_DIR, not cached, and the download host is unreachable)"
            )
            print(f"dataset 'auto': {candidate!r}, labelled {label!r}{why}")
            return candidate
    raise DatasetNotFoundError(
        f"dataset 'auto': none of {', '.join(repr(n) for n in CIFAR10_CHOICES)} is available; "
        f"run online (torchvision downloads CIFAR-10) or set BNNLIB_DATA_DIR to the offline copy"
    )
