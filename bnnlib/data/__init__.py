"""Datasets, the released code's preprocessing and reproducible device-resident loaders.

Typical use: ``bundle = build_loaders("cifar10-jpeg", "resize_and_flip", 50, device="cuda")`` then
``bundle.train.set_epoch(e)`` before each epoch; show ``bundle.info.label`` next to every result.
"""

from .arrays import ImageArrays
from .loaders import BatchLoader, DataBundle, build_loaders, check_split_sizes, derive_seed
from .paths import cache_dir, data_dir
from .preprocess import (
    Preprocess,
    add_clipped_noise,
    clip_noise,
    get_preprocess,
    list_preprocess,
    pad_crop_flip,
    standardize,
    to_pm1,
)
from .registry import (
    DATASETS,
    DatasetInfo,
    DatasetNotFoundError,
    check_dataset,
    dataset_cache_folder,
    dataset_info,
    list_datasets,
    load_dataset,
)
from .splits import stratified_subset, validation_split

__all__ = [
    "DATASETS",
    "BatchLoader",
    "DataBundle",
    "DatasetInfo",
    "DatasetNotFoundError",
    "ImageArrays",
    "Preprocess",
    "add_clipped_noise",
    "build_loaders",
    "cache_dir",
    "check_dataset",
    "check_split_sizes",
    "clip_noise",
    "data_dir",
    "dataset_cache_folder",
    "dataset_info",
    "derive_seed",
    "get_preprocess",
    "list_datasets",
    "list_preprocess",
    "load_dataset",
    "pad_crop_flip",
    "standardize",
    "stratified_subset",
    "to_pm1",
    "validation_split",
]
