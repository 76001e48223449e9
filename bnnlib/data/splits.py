"""Seeded index splits: the validation hold-out and class-stratified subsets.

Both use NumPy's legacy ``RandomState``, whose stream NumPy keeps stable across versions, so a given
seed selects the same images on every machine and in every future run.
"""

from __future__ import annotations

import numpy as np


def validation_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices: shuffle 0..n-1 with ``RandomState(seed)`` and hold out the first
    floor(fraction*n), as the BayesBiNN reference does. Both returned sorted."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {fraction}")
    order = np.random.RandomState(seed).permutation(n)
    n_val = int(np.floor(fraction * n))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def tail_split(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices: the last ``size`` of 0..n-1 are the validation images, in
    order, as code that slices ``[:n - size]`` / ``[n - size:]`` holds them out."""
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size < n:
        raise ValueError(f"validation_tail must be an int in 0..{n - 1}, got {size!r}")
    return np.arange(n - size), np.arange(n - size, n)


def stratified_subset(
    indices: np.ndarray, labels: np.ndarray, size: int, seed: int, stream: int
) -> np.ndarray:
    """``size`` of ``indices`` chosen at random but class-stratified: every class gets its share of
    ``size`` to within about one image. Each index gets the key (rank within its class in a seeded
    shuffle + 0.5) / class count, and the smallest keys are kept. Returned sorted."""
    if not 1 <= size <= len(indices):
        raise ValueError(f"subset size must be in 1..{len(indices)}, got {size}")
    shuffled = indices[np.random.RandomState([seed, stream]).permutation(len(indices))]
    classes = labels[shuffled]
    counts = np.bincount(classes)
    rank = np.empty(len(shuffled), np.int64)
    for c in np.flatnonzero(counts):
        rank[classes == c] = np.arange(counts[c])
    key = (rank + 0.5) / counts[classes]
    return np.sort(shuffled[np.argsort(key, kind="stable")[:size]])
