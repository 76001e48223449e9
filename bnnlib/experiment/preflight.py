"""Checks of everything a run needs, done before any data is read or any file is written.

:meth:`RunConfig.resolve` checks what a config says (names, types, ranges); the checks here are
about the machine and the data it meets: the device exists, the model can be built from its
arguments and takes the dataset's images (built on the meta device, so nothing is allocated), the
subset and batch sizes fit the dataset's splits, the dataset's files are there and whole, the cache
folder is writable, and the results folder is a writable folder with room for a checkpoint. Each
failure is a ValueError of one line that names the key or the file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from torch import nn

from bnnlib.data.paths import check_writable_location
from bnnlib.experiment.config import ResolvedConfig

# A checkpoint holds the weights and up to three optimizer tensors per weight (Adam's two moments,
# Bop2ndOrder's two averages, BayesBiNN's lambda and mu), plus the final model.pt and some slack.
_CHECKPOINT_COPIES = 5
_CHECKPOINT_SLACK = 1 << 20


def check_device(name: str) -> torch.device:
    """The torch device ``name`` names, if this machine has it ("auto" always exists)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device {name!r} is not a torch device; choose one of {_available_devices()}"
        ) from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index is not None and device.index >= count):
            raise ValueError(
                f"device {name!r} is not available on this machine ({count} CUDA devices); "
                f"choose one of {_available_devices()}"
            )
        return device
    backend = getattr(torch.backends, device.type, None) or getattr(torch, device.type, None)
    available = getattr(backend, "is_available", None)
    if available is None or not available():
        raise ValueError(
            f"device {name!r} is not available on this machine; choose one of "
            f"{_available_devices()}"
        )
    return device


def _available_devices() -> str:
    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        names.append("mps")
    return ", ".join(names)


def check_run(
    cfg: ResolvedConfig,
    results_dir: str | Path | None = None,
    *,
    label: str = "results folder",
    check_data: bool = True,
) -> None:
    """Every check of a resolved run that needs no data decoded: device, model arguments against
    the dataset's images, subset and batch sizes, the dataset's files and the cache folder (unless
    ``check_data`` is False, for a dataset already checked); with ``results_dir`` also that folder
    (``label`` names it in the message)."""
    from bnnlib.data import check_dataset, check_split_sizes, dataset_info
    from bnnlib.models import check_model_args
    from bnnlib.models.registry import check_input_shape

    check_device(cfg.device)
    model = check_model_args(cfg.model, cfg.model_kwargs)
    try:
        check_input_shape(cfg.model, model, dataset_info(cfg.dataset).image_shape, cfg.model_kwargs)
    except ValueError as exc:
        raise ValueError(f"dataset {cfg.dataset!r}: {exc}") from None
    hp = cfg.hparams
    check_split_sizes(cfg.dataset, hp["batch_size"], **split_options(hp))
    if "binarize_order" in hp:
        check_layer_order(hp, model, results_dir)
    if check_data:
        check_dataset(cfg.dataset)
    if results_dir is not None:
        check_results_dir(Path(results_dir), checkpoint_bytes(model), label=label)


def split_options(hp: dict) -> dict:
    """The keyword arguments of the data splits a resolved hparams set names, as
    :func:`bnnlib.data.build_loaders` and :func:`bnnlib.data.check_split_sizes` take them."""
    return {
        "validation_split": hp["validation_split"],
        "validation_tail": hp.get("validation_tail", 0),
        "train_subset": hp["train_subset"],
        "test_subset": hp["test_subset"],
    }


def check_layer_order(hp: dict, model: nn.Module, results_dir: str | Path | None) -> None:
    """A layer-wise binarization order fits the model's layers; an ``ascend``/``descend`` order
    names sensitivity runs whose records (under ``results_dir``) each hold one of its layers."""
    from bnnlib.experiment.runs import sensitivity_scores
    from bnnlib.methods.layerwise import layer_names, resolve_order

    names = layer_names(model)
    scores = None
    if hp["binarize_order"] in ("ascend", "descend") and "sensitivity_runs" in hp:
        if results_dir is None:
            return  # the records are read where the run is trained
        scores = sensitivity_scores(list(hp["sensitivity_runs"]), results_dir, model)
    resolve_order(hp["binarize_order"], names, order_seed=hp.get("order_seed", 0), scores=scores)


def checkpoint_bytes(model: nn.Module) -> int:
    """About how many bytes one checkpoint of ``model`` and the final weights take on disk."""
    tensors = [*model.parameters(), *model.buffers()]
    size = sum(t.numel() * t.element_size() for t in tensors)
    return _CHECKPOINT_COPIES * size + _CHECKPOINT_SLACK


def check_results_dir(
    folder: Path, need_bytes: int = _CHECKPOINT_SLACK, *, label: str = "results folder"
) -> None:
    """``folder`` (existing or not yet created) can hold the run's files: every existing part of
    it is a folder, the nearest existing one is writable (a probe file, removed at once), and its
    disk has ``need_bytes`` free. Nothing is created."""
    existing = check_writable_location(
        folder, f"{label} {folder}", "give a writable folder for the results"
    )
    free = shutil.disk_usage(existing).free
    if free < need_bytes:
        raise ValueError(
            f"{label} {folder}: {free / 1e6:.1f} MB free on its disk, one checkpoint needs about "
            f"{need_bytes / 1e6:.1f} MB; free space or give a folder on another disk"
        )
