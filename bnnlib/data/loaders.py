"""Device-resident batch loaders whose epochs are pure functions of (seed, epoch).

The uint8 images of a dataset are moved to the target device once; a loader holds only an index
vector into them, gathers each batch there and preprocesses it there, so no worker processes, PIL
transforms or host-to-device copies sit in the training loop. Every pass reseeds its generators from
(seed, stream, epoch): iterating an epoch twice, or resuming from a checkpoint at epoch e, yields the
very same batches as the uninterrupted run (on the same device type).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from .preprocess import Preprocess, get_preprocess
from .registry import DatasetInfo, check_dataset, dataset_info, load_dataset
from .splits import stratified_subset, tail_split
from .splits import validation_split as split_validation

_TRAIN, _VAL, _TEST = 0, 1, 2


def derive_seed(*keys: int) -> int:
    """A well-mixed 63-bit seed from non-negative integer keys (NumPy's SeedSequence hashing)."""
    hi, lo = np.random.SeedSequence(list(keys)).generate_state(2, np.uint32)
    return ((int(hi) << 32) | int(lo)) & (2**63 - 1)


class BatchLoader:
    """Batches ``(inputs, targets)`` of ``images[indices]`` on ``images.device``.

    Training loaders shuffle and augment; evaluation loaders keep index order and only apply the
    deterministic part of the preprocessing (plus the AE noise, which is seeded the same way, so an
    evaluation is reproducible). ``drop_last`` drops the incomplete final batch (Keras ``fit``).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        indices: np.ndarray,
        preprocess: Preprocess,
        batch_size: int,
        *,
        train: bool,
        drop_last: bool,
        seed: int,
        stream: int,
    ) -> None:
        self.images = images
        self.labels = labels
        self.indices = torch.as_tensor(indices, dtype=torch.long)
        self.preprocess = preprocess
        self.batch_size = batch_size
        self.train = train
        self.drop_last = drop_last
        self.seed = seed
        self.stream = stream
        self.epoch = 0

    @property
    def num_samples(self) -> int:
        """Images in this split (with ``drop_last`` a pass yields ``len(self) * batch_size`` of them)."""
        return len(self.indices)

    @property
    def device(self) -> torch.device:
        return self.images.device

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffle, augmentation and noise of ``epoch`` for the next passes."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order_gen = torch.Generator().manual_seed(
            derive_seed(self.seed, self.stream, self.epoch, 0)
        )
        batch_gen = torch.Generator(device=self.device)
        batch_gen.manual_seed(derive_seed(self.seed, self.stream, self.epoch, 1))
        order = self.indices
        if self.train:
            order = order[torch.randperm(len(order), generator=order_gen)]
        order = order.to(self.device)
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            x = self.images.index_select(0, idx)
            y = self.labels.index_select(0, idx)
            yield self.preprocess(x, y, train=self.train, generator=batch_gen)


@dataclass(frozen=True)
class DataBundle:
    """The loaders of one experiment; ``val`` is None without a validation split."""

    train: BatchLoader
    val: BatchLoader | None
    test: BatchLoader
    info: DatasetInfo
    preprocess: Preprocess


def check_split_sizes(
    dataset: str,
    batch_size: int,
    *,
    validation_split: float = 0.0,
    train_subset: int | None = None,
    test_subset: int | None = None,
    drop_last_train: bool = True,
    validation_tail: int = 0,
) -> None:
    """Check subset and batch sizes against the sizes of ``dataset``'s splits (from its
    :class:`DatasetInfo`, so nothing is read): ValueError naming the key and its valid range."""
    info = dataset_info(dataset)
    _check_tail(validation_tail, validation_split, info.train_size, dataset)
    n_val = int(math.floor(validation_split * info.train_size)) + validation_tail
    if validation_split > 0 and n_val == 0:
        raise ValueError(
            f"validation_split={validation_split} holds out no image of the {info.train_size} "
            f"training images of {dataset}; use at least {1 / info.train_size:.2g}, or 0"
        )
    n_train = info.train_size - n_val
    held = (
        f"validation_tail={validation_tail}"
        if validation_tail
        else f"validation_split={validation_split}"
    )
    after = f" left after {held}" if n_val else ""
    if n_train < 1:
        raise ValueError(
            f"validation_split={validation_split} leaves no training image of {dataset}"
        )
    if train_subset is not None:
        _check_subset("train_subset", train_subset, n_train, f"training images of {dataset}{after}")
    if test_subset is not None:
        _check_subset("test_subset", test_subset, info.test_size, f"test images of {dataset}")
    used = train_subset if train_subset is not None else n_train
    if drop_last_train and batch_size > used:
        what = f"train_subset={train_subset}" if train_subset is not None else "the training set"
        what += f", {held}" if n_val else ""
        raise ValueError(
            f"batch_size={batch_size} exceeds the {used} training images of {dataset} "
            f"({what}), so no full training batch is left; use 1..{used}"
        )


def _check_tail(tail: object, fraction: float, train_size: int, dataset: str) -> None:
    if isinstance(tail, bool) or not isinstance(tail, int) or not 0 <= tail < train_size:
        raise ValueError(
            f"validation_tail must be an int in 0..{train_size - 1} (images of {dataset}'s "
            f"training set), got {tail!r}"
        )
    if tail and fraction:
        raise ValueError(
            f"validation_split={fraction} and validation_tail={tail} both hold out validation "
            "images; set one of them"
        )


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def build_loaders(
    dataset: str,
    preprocess_fn: str,
    batch_size: int,
    *,
    validation_split: float = 0.0,
    train_subset: int | None = None,
    test_subset: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    drop_last_train: bool = True,
    eval_batch_size: int | None = None,
    validation_tail: int = 0,
) -> DataBundle:
    """Train/validation/test loaders of ``dataset`` preprocessed by ``preprocess_fn``.

    - Validation: the first floor(validation_split*n) of a ``RandomState(seed)`` shuffle of the
      official train set, preprocessed like the test set (BayesBiNN reference, 10 %); or, with
      ``validation_tail``, the last ``validation_tail`` images of the train set in file order.
    - ``train_subset`` / ``test_subset``: a seeded class-stratified random subset of the remaining
      train images / of the test set (see :func:`stratified_subset`).
    - Train drops the remainder batch (Keras ``fit``); validation and test keep it, so every image
      is evaluated. Keras ``evaluate`` in the Bop recipes also drops it (validation runs
      ``n_val // batch_size`` steps), which makes their test numbers cover slightly fewer images.
    - ``eval_batch_size`` (default ``batch_size``) only changes speed, never eval results.
    """
    _check_int("batch_size", batch_size, 1)
    _check_int("seed", seed, 0)
    if eval_batch_size is not None:
        _check_int("eval_batch_size", eval_batch_size, 1)
    if isinstance(validation_split, bool) or not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
    preprocess = get_preprocess(preprocess_fn)
    check_split_sizes(
        dataset,
        batch_size,
        validation_split=validation_split,
        train_subset=train_subset,
        test_subset=test_subset,
        drop_last_train=drop_last_train,
        validation_tail=validation_tail,
    )
    check_dataset(dataset)
    info, arrays = load_dataset(dataset)

    if validation_tail:
        train_idx, val_idx = tail_split(len(arrays.train_y), validation_tail)
    else:
        train_idx, val_idx = split_validation(len(arrays.train_y), validation_split, seed)
    if validation_split > 0 and len(val_idx) == 0:
        raise ValueError(
            f"validation_split={validation_split} holds out no image of {len(arrays.train_y)}"
        )
    if train_subset is not None:
        _check_subset("train_subset", train_subset, len(train_idx))
        train_idx = stratified_subset(train_idx, arrays.train_y, train_subset, seed, _TRAIN)
    test_idx = np.arange(len(arrays.test_y))
    if test_subset is not None:
        _check_subset("test_subset", test_subset, len(test_idx))
        test_idx = stratified_subset(test_idx, arrays.test_y, test_subset, seed, _TEST)
    if drop_last_train and len(train_idx) < batch_size:
        raise ValueError(
            f"batch_size={batch_size} exceeds the {len(train_idx)} training images, so dropping the "
            "remainder batch leaves no training batch"
        )

    device = torch.device(device)
    train_x, train_y, test_x, test_y = (
        _tensor(a, device) for a in (arrays.train_x, arrays.train_y, arrays.test_x, arrays.test_y)
    )
    eval_bs = eval_batch_size or batch_size

    make = partial(BatchLoader, preprocess=preprocess, seed=seed)
    val = None
    if len(val_idx):
        val = make(
            train_x, train_y, val_idx, batch_size=eval_bs, train=False, drop_last=False, stream=_VAL
        )
    return DataBundle(
        train=make(
            train_x,
            train_y,
            train_idx,
            batch_size=batch_size,
            train=True,
            drop_last=drop_last_train,
            stream=_TRAIN,
        ),
        val=val,
        test=make(
            test_x, test_y, test_idx, batch_size=eval_bs, train=False, drop_last=False, stream=_TEST
        ),
        info=info,
        preprocess=preprocess,
    )


def _tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """Arrays decoded straight from a file buffer are read-only; torch needs writable memory, so
    those (and only those) are copied once."""
    return torch.from_numpy(np.require(array, requirements=["C", "W"])).to(device)


def _check_subset(name: str, value: object, available: int, what: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= available:
        of = f" (the {available} {what})" if what else ""
        raise ValueError(f"{name} must be an int in 1..{available}, got {value!r}{of}")
