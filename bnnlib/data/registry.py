"""Datasets by name: what each one is (:class:`DatasetInfo`), where it is found, and decode-once caching.

Locating a dataset only checks that files exist (and, for torchvision downloads, that the host
answers), so :func:`check_dataset` can fail fast with a message that says where it looked and how to
provide the data before any decoding starts. The offline CIFAR-10 copies are separate names with
their own labels because they are not the paper's data set (see the data folder's README).
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from .arrays import ImageArrays, cached_arrays_exist, load_arrays, save_arrays
from .paths import CACHE_DIR_ENV, DATA_DIR_ENV, cache_dir, check_writable_location, data_dir
from .readers import (
    MNIST_FILES,
    PNG_TEST_BATCH,
    PNG_TRAIN_BATCHES,
    check_idx_file,
    read_jpeg_tar,
    read_labels_js,
    read_mnist_raw,
    read_png_subset,
    read_torchvision,
)

logger = logging.getLogger(__name__)

_CACHE_FORMAT = "v1"
_PNG_FOLDER = "CIFAR10-convnetjs-subset"
_JPEG_TAR = Path("CIFAR10-jpeg") / "cifar10-jpeg-q75.tar.gz"
_LABELS_JS = Path(_PNG_FOLDER) / "cifar10_labels.js"


class DatasetNotFoundError(ValueError):
    """A known dataset whose files are neither in BNNLIB_DATA_DIR, nor cached, nor downloadable."""


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset name stands for; ``label`` is the name a chart or table must show, and
    ``exact`` is False for data that differ from the canonical images (results not comparable)."""

    name: str
    label: str
    num_classes: int
    image_shape: tuple[int, int, int]
    train_size: int
    test_size: int
    exact: bool
    source: str


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "mnist",
            "MNIST",
            10,
            (1, 28, 28),
            60_000,
            10_000,
            True,
            "IDX files from $BNNLIB_DATA_DIR/MNIST/raw, else torchvision download",
        ),
        DatasetInfo(
            "cifar10",
            "CIFAR-10",
            10,
            (3, 32, 32),
            50_000,
            10_000,
            True,
            "torchvision CIFAR10 (cifar-10-batches-py in $BNNLIB_DATA_DIR or the cache, else download)",
        ),
        DatasetInfo(
            "cifar10-jpeg",
            "CIFAR-10 (JPEG re-encoded)",
            10,
            (3, 32, 32),
            50_000,
            10_000,
            False,
            "JPEG quality-75 re-encoding of all CIFAR-10 images ($BNNLIB_DATA_DIR/CIFAR10-jpeg); "
            "train in original order, test in ImageFolder order",
        ),
        DatasetInfo(
            "cifar10-png-subset",
            "CIFAR-10 PNG subset (2k train / 1k test)",
            10,
            (3, 32, 32),
            2_000,
            1_000,
            True,
            "exact first 2,000 train and 1,000 test CIFAR-10 images from the convnetjs PNGs",
        ),
        DatasetInfo(
            "cifar100",
            "CIFAR-100",
            100,
            (3, 32, 32),
            50_000,
            10_000,
            True,
            "torchvision CIFAR100 (cifar-100-python in $BNNLIB_DATA_DIR or the cache, else download)",
        ),
    )
}

_OFFLINE_CIFAR10 = (
    "offline copies are available as 'cifar10-jpeg' (labelled "
    f"{DATASETS['cifar10-jpeg'].label!r}) and 'cifar10-png-subset' (labelled "
    f"{DATASETS['cifar10-png-subset'].label!r})"
)


def list_datasets() -> tuple[str, ...]:
    return tuple(DATASETS)


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` for ``name``; ValueError listing the valid names otherwise."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    return DATASETS[name]


def check_dataset(name: str) -> DatasetInfo:
    """Fail fast, without decoding: ValueError for an unknown name, DatasetNotFoundError when the data
    are neither cached, nor in BNNLIB_DATA_DIR, nor downloadable. Returns the info otherwise."""
    info = dataset_info(name)
    if not cached_arrays_exist(_cache_folder(name)):
        check_cache_dir()
        _locate(name)
    return info


def check_cache_dir() -> Path:
    """The cache folder, checked writable without creating it: ValueError naming
    ``BNNLIB_CACHE_DIR`` when it (or the nearest existing folder above it) is a file or cannot be
    written."""
    folder = cache_dir()
    fix = f"point {CACHE_DIR_ENV} at a writable folder"
    check_writable_location(folder, f"{CACHE_DIR_ENV}={folder}", fix)
    return folder


def load_dataset(name: str) -> tuple[DatasetInfo, ImageArrays]:
    """Decoded uint8 arrays of ``name``, decoding and caching them as ``.npy`` on first use."""
    info = dataset_info(name)
    folder = _cache_folder(name)
    if cached_arrays_exist(folder):
        arrays = load_arrays(folder)
    else:
        build = _locate(name)
        start = time.perf_counter()
        arrays = build()
        seconds = time.perf_counter() - start
        _check_shapes(info, arrays)
        save_arrays(arrays, folder)
        logger.info(
            "decoded %s in %.1f s; cached %.1f MB in %s", name, seconds, arrays.nbytes / 1e6, folder
        )
    _check_shapes(info, arrays)
    return info, arrays


def dataset_cache_folder(name: str) -> Path:
    """Where the decoded arrays of ``name`` live (delete it to force a fresh decode)."""
    dataset_info(name)
    return _cache_folder(name)


def _cache_folder(name: str) -> Path:
    return cache_dir() / "arrays" / f"{name}-{_CACHE_FORMAT}"


def _check_shapes(info: DatasetInfo, arrays: ImageArrays) -> None:
    expected = {"train": info.train_size, "test": info.test_size}
    for split, size in expected.items():
        shape = getattr(arrays, f"{split}_x").shape
        if shape != (size, *info.image_shape):
            raise ValueError(
                f"{info.name} {split} images have shape {shape}, expected {(size, *info.image_shape)}"
            )
        labels = getattr(arrays, f"{split}_y")
        if labels.min() < 0 or labels.max() >= info.num_classes:
            raise ValueError(f"{info.name} {split} labels outside 0..{info.num_classes - 1}")


def _locate(name: str) -> Callable[[], ImageArrays]:
    """A thunk that decodes ``name`` from the first place it is found; raises if it is nowhere."""
    return {
        "mnist": _locate_mnist,
        "cifar10": lambda: _locate_torchvision("cifar10", "CIFAR10", "cifar-10-batches-py"),
        "cifar100": lambda: _locate_torchvision("cifar100", "CIFAR100", "cifar-100-python"),
        "cifar10-jpeg": _locate_jpeg,
        "cifar10-png-subset": _locate_png_subset,
    }[name]()


def _data_paths(*relative: Path | str) -> tuple[list[Path], list[str]]:
    """Candidate paths inside BNNLIB_DATA_DIR and their descriptions for an error message."""
    root = data_dir()
    if root is None:
        return [], [f"${DATA_DIR_ENV}/{rel} ({DATA_DIR_ENV} is unset)" for rel in relative]
    paths = [root / rel for rel in relative]
    return paths, [str(p) for p in paths]


def _torchvision_root() -> Path:
    return cache_dir() / "torchvision"


def _reachable(url: str) -> bool:
    """Whether the download host answers at all (any HTTP status counts), honouring proxy settings."""
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=5).close()
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False
    return True


def _torchvision_class(class_name: str) -> type:
    import torchvision.datasets

    return getattr(torchvision.datasets, class_name)


def _download_url(dataset_cls: type) -> str:
    if hasattr(dataset_cls, "mirrors"):
        return dataset_cls.mirrors[0] + dataset_cls.resources[0][0]
    return dataset_cls.url


def _torchvision_build(name: str, dataset_cls: type, root: Path, download: bool) -> ImageArrays:
    try:
        return read_torchvision(dataset_cls, root, download)
    except (RuntimeError, OSError) as err:
        action = "downloading into" if download else "reading"
        raise DatasetNotFoundError(f"dataset {name!r}: {action} {root} failed: {err}") from err


def _locate_mnist() -> Callable[[], ImageArrays]:
    folders, looked = _data_paths(Path("MNIST") / "raw")
    folders.append(_torchvision_root() / "MNIST" / "raw")
    looked.append(str(folders[-1]))
    for folder in folders:
        if all((folder / f).is_file() for f in MNIST_FILES.values()):
            _check_mnist_files(folder)
            return partial(read_mnist_raw, folder)
    dataset_cls = _torchvision_class("MNIST")
    if _reachable(_download_url(dataset_cls)):
        return partial(_torchvision_build, "mnist", dataset_cls, _torchvision_root(), True)
    raise DatasetNotFoundError(
        f"dataset 'mnist' not found: looked in {', '.join(looked)} and the download mirror is "
        f"unreachable; set {DATA_DIR_ENV} to a folder containing MNIST/raw/ with "
        f"{', '.join(MNIST_FILES.values())}, or run online so torchvision downloads it into "
        f"{_torchvision_root()}"
    )


def _check_mnist_files(folder: Path) -> None:
    info = DATASETS["mnist"]
    dims = {
        "train_x": (info.train_size, *info.image_shape[1:]),
        "train_y": (info.train_size,),
        "test_x": (info.test_size, *info.image_shape[1:]),
        "test_y": (info.test_size,),
    }
    for key, name in MNIST_FILES.items():
        try:
            check_idx_file(folder / name, dims[key])
        except ValueError as err:
            raise DatasetNotFoundError(
                f"dataset 'mnist': {err}; replace it with a good copy (the file of that name from "
                f"the MNIST mirror, checked against its MD5 sum), or remove the folder so "
                f"torchvision downloads MNIST into {_torchvision_root()}"
            ) from None


def _locate_torchvision(name: str, class_name: str, folder: str) -> Callable[[], ImageArrays]:
    candidates, looked = _data_paths(folder)
    candidates.append(_torchvision_root() / folder)
    looked.append(str(candidates[-1]))
    dataset_cls = _torchvision_class(class_name)
    for path in candidates:
        if path.is_dir():
            return partial(_torchvision_build, name, dataset_cls, path.parent, False)
    url = _download_url(dataset_cls)
    if _reachable(url):
        return partial(_torchvision_build, name, dataset_cls, _torchvision_root(), True)
    offline = f"; {_OFFLINE_CIFAR10}" if name == "cifar10" else ""
    raise DatasetNotFoundError(
        f"dataset {name!r} not found: looked in {', '.join(looked)} and {url} is unreachable"
        f"{offline}; to use the real data set {DATA_DIR_ENV} to a folder containing {folder}/ "
        f"(the python version of {url}), or run online so torchvision downloads it into "
        f"{_torchvision_root()}"
    )


def _require_files(name: str, relative: tuple[Path, ...], what: str) -> list[Path]:
    paths, looked = _data_paths(*relative)
    missing = (
        [d for p, d in zip(paths, looked, strict=True) if not p.is_file()] if paths else looked
    )
    if missing:
        raise DatasetNotFoundError(
            f"dataset {name!r} not found: missing {', '.join(missing)}; set {DATA_DIR_ENV} to a "
            f"folder containing {', '.join(str(r) for r in relative)} ({what})"
        )
    return paths


def _locate_jpeg() -> Callable[[], ImageArrays]:
    tar, labels = _require_files(
        "cifar10-jpeg",
        (_JPEG_TAR, _LABELS_JS),
        "the JPEG tar, and the labels that give the original train order",
    )
    n_train = DATASETS["cifar10-jpeg"].train_size
    return lambda: read_jpeg_tar(tar, read_labels_js(labels)[:n_train])


def _locate_png_subset() -> Callable[[], ImageArrays]:
    batches = (*PNG_TRAIN_BATCHES, PNG_TEST_BATCH)
    relative = tuple(Path(_PNG_FOLDER) / f"cifar10_batch_{b}.png" for b in batches)
    paths = _require_files(
        "cifar10-png-subset", (*relative, _LABELS_JS), "the convnetjs CIFAR-10 demo files"
    )
    return partial(read_png_subset, paths[0].parent)
