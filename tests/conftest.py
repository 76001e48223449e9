"""Shared fixtures: the offline data directory, one torch thread, a loader over fixed batches,
and the wheel built from the checkout (once per session: ``tests/test_wheel.py`` and
``tests/test_colab.py`` install it away from the checkout)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

DATA_DIR = os.environ.get("BNNLIB_DATA_DIR")
REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bnnlib", "bnnlib_book")


def has_data(*parts: str) -> bool:
    return bool(DATA_DIR) and Path(DATA_DIR, *parts).exists()


needs_mnist = pytest.mark.skipif(
    not has_data("MNIST", "raw"), reason="BNNLIB_DATA_DIR with MNIST/raw is not set"
)
needs_cifar_png = pytest.mark.skipif(
    not has_data("CIFAR10-convnetjs-subset"),
    reason="BNNLIB_DATA_DIR with the CIFAR-10 PNG subset is not set",
)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Small matrices on a shared 2-core machine: a second intra-op thread only adds contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class FixedBatches:
    """A loader over fixed batches with the trainer's loader interface, recording the epochs it
    is set to."""

    def __init__(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.batches = batches
        self.epochs: list[int] = []
        self.num_samples = sum(y.shape[0] for _, y in batches)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)


def run_checked(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run ``cmd``, capturing its output; fail the test with both streams when it fails."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kwargs)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def can_build_offline() -> bool:
    """Whether this interpreter holds the build backend pyproject.toml asks for (setuptools>=68,
    and wheel unless setuptools ships bdist_wheel itself, from 70.1), so the wheel builds without
    an index. A fresh ``python3 -m venv`` of Python 3.11 has setuptools 65.5 and no wheel: there
    pip builds in an isolated environment and fetches the backend from its index."""
    try:
        setuptools_version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return False
    major_minor = tuple(int(n) for n in re.findall(r"\d+", setuptools_version)[:2])
    if major_minor < (68, 0):
        return False
    return major_minor >= (70, 1) or importlib.util.find_spec("wheel") is not None


def copy_wheel_sources(dest: Path) -> None:
    """The root's files and the two package folders: what the wheel is built from."""
    dest.mkdir()
    for path in REPO_ROOT.iterdir():
        if path.is_file():
            shutil.copy2(path, dest / path.name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for package in PACKAGES:
        shutil.copytree(REPO_ROOT / package, dest / package, ignore=ignore)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the sources (``pip wheel --no-build-isolation`` when
    :func:`can_build_offline`), so the build leaves no ``build/`` or ``*.egg-info`` in the
    checkout and no stale ``build/lib`` leaks into it."""
    tmp = tmp_path_factory.mktemp("wheel")
    copy_wheel_sources(tmp / "src")
    out = tmp / "dist"
    run_checked(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            *(["--no-build-isolation"] if can_build_offline() else []),
            "--no-cache-dir",
            "--disable-pip-version-check",
            "-q",
            "-w",
            str(out),
            str(tmp / "src"),
        ]
    )
    wheels = sorted(out.glob("bnnlib-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {out}: {list(out.iterdir())}"
    return wheels[0]


def install_wheel(wheel: Path, target: Path) -> Path:
    """``pip install --target``: the wheel alone (no dependencies, no index) into ``target``."""
    run_checked(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ]
    )
    return target
