"""Shared fixtures: the offline data directory and small run configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA_DIR = os.environ.get("BNNLIB_DATA_DIR")


def has_data(*parts: str) -> bool:
    return bool(DATA_DIR) and Path(DATA_DIR, *parts).exists()


needs_mnist = pytest.mark.skipif(
    not has_data("MNIST", "raw"), reason="BNNLIB_DATA_DIR with MNIST/raw is not set"
)
needs_cifar_png = pytest.mark.skipif(
    not has_data("CIFAR10-convnetjs-subset"),
    reason="BNNLIB_DATA_DIR with the CIFAR-10 PNG subset is not set",
)
