"""Shared fixtures: the offline data directory, one torch thread, and a loader over fixed batches."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

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
