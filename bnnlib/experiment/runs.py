"""Run one configured experiment, or find its record: the single path from a config to a number.

``run`` validates the whole config and checks the dataset before anything is written. A run whose
record exists is loaded, not re-trained (records are keyed by the hash of the resolved config), and
an interrupted run resumes from its last per-epoch checkpoint.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bnnlib import __version__
from bnnlib.atomic import save_torch
from bnnlib.experiment.config import ResolvedConfig, RunConfig
from bnnlib.experiment.records import RunRecord, git_commit, hardware_description
from bnnlib.train.trainer import Trainer

CHECKPOINTS = ".ckpt"


@dataclass
class Prepared:
    """Everything a run needs, built but not yet trained."""

    config: ResolvedConfig
    device: torch.device
    data: Any
    model: nn.Module
    trainer: Trainer


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def prepare(
    config: RunConfig | ResolvedConfig | dict[str, Any],
    *,
    progress: bool | None = None,
    tensorboard_dir: str | Path | None = None,
) -> Prepared:
    """Build data, model, optimizer and trainer for ``config`` (validated first)."""
    from bnnlib.data import build_loaders
    from bnnlib.experiment.preflight import check_run
    from bnnlib.experiment.recipes import build_model, build_recipe

    cfg = resolve_config(config)
    check_run(cfg)
    hp = cfg.hparams
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    data = build_loaders(
        cfg.dataset,
        cfg.preprocess_fn,
        hp["batch_size"],
        validation_split=hp["validation_split"],
        train_subset=hp["train_subset"],
        test_subset=hp["test_subset"],
        seed=cfg.seed,
        device=device,
    )
    model = build_model(cfg).to(device)
    recipe = build_recipe(cfg, model, data.train.num_samples, device)
    trainer = Trainer(
        model,
        recipe.optimizer,
        recipe.loss_fn,
        task=cfg.task,
        device=device,
        scheduler=recipe.scheduler,
        eval_options={"kind": hp["eval_kind"], "num": hp["eval_samples"]},
        eval_average=hp["eval_average"],
        seed=cfg.seed,
        progress=progress,
        tensorboard_dir=tensorboard_dir,
    )
    return Prepared(cfg, device, data, model, trainer)


def run(
    config: RunConfig | ResolvedConfig | dict[str, Any],
    results_dir: str | Path = "runs",
    *,
    force: bool = False,
    progress: bool | None = None,
    tensorboard: bool = False,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> RunRecord:
    """Train ``config`` to completion and write its record, or load the record if it exists."""
    cfg = resolve_config(config)
    results_dir = Path(results_dir)
    key = cfg.key()
    check_before_work(cfg, results_dir, force)
    rec, path, ckpt_dir = cached_record(results_dir, key, force)
    if rec is not None:
        return rec
    tb_dir = results_dir / "tensorboard" / key if tensorboard else None
    prepared = prepare(cfg, progress=progress, tensorboard_dir=tb_dir)
    trainer, data = prepared.trainer, prepared.data
    start = time.perf_counter()
    history = trainer.fit(
        data.train,
        run_epochs(cfg),
        test=data.test,
        val=data.val,
        checkpoint_dir=ckpt_dir,
        on_epoch=on_epoch,
    )
    extras = trainer.task.run_extras(trainer, data.test)
    save_torch(ckpt_dir / "model.pt", prepared.model.state_dict())
    final = {k: v for k, v in history[-1].items() if k.startswith(("test_", "val_"))}
    record = RunRecord(
        key=key,
        config=cfg.to_dict(),
        history=history,
        final=final,
        provenance=run_provenance(cfg, prepared, time.perf_counter() - start),
        extras=extras,
    )
    record.save(path)
    return record


def check_before_work(cfg: ResolvedConfig, results_dir: Path, force: bool) -> None:
    """Everything the run needs (device, model, sizes, data, cache, ``results_dir``), checked
    before a file is touched; a complete record is served without training, so it skips them."""
    from bnnlib.experiment.preflight import check_run

    if force or not (results_dir / f"{cfg.key()}.json").exists():
        check_run(cfg, results_dir)


def cached_record(results_dir: Path, key: str, force: bool) -> tuple[RunRecord | None, Path, Path]:
    """(the complete record of ``key`` or None, its path, its checkpoint folder). With ``force``
    no record is returned and old checkpoints are removed, so the run starts afresh."""
    path = results_dir / f"{key}.json"
    ckpt_dir = results_dir / CHECKPOINTS / key
    if path.exists() and not force:
        rec = RunRecord.load(path)
        if rec.status == "complete":
            return rec, path, ckpt_dir
    if force and ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)
    return None, path, ckpt_dir


def run_epochs(cfg: ResolvedConfig) -> int:
    """Epochs the run trains: ``epochs``, or ``stop_after_epochs`` when the run stops early."""
    return cfg.hparams.get("stop_after_epochs", cfg.hparams["epochs"])


def dry_run(config: RunConfig | ResolvedConfig | dict[str, Any]) -> dict[str, Any]:
    """Build data, model and optimizer and take one optimizer step on one batch; write nothing."""
    prepared = prepare(config, progress=False)
    trainer = prepared.trainer
    x, y = next(iter(prepared.data.train))
    trainer.model.train()
    loss, _ = trainer.train_step(x, y)
    return {
        "key": prepared.config.key(),
        "loss": float(loss),
        "batch_shape": list(x.shape),
        "train_samples": prepared.data.train.num_samples,
        "steps_per_epoch": len(prepared.data.train),
        "device": str(prepared.device),
    }


def resolve_config(config: RunConfig | ResolvedConfig | dict[str, Any]) -> ResolvedConfig:
    if isinstance(config, ResolvedConfig):
        return config
    if isinstance(config, dict):
        config = RunConfig.from_dict(config)
    return config.resolve()


def run_provenance(cfg: ResolvedConfig, prepared: Prepared, wall: float) -> dict[str, Any]:
    info = prepared.data.info
    return {
        "bnnlib_version": __version__,
        "git_commit": git_commit(),
        "torch_version": torch.__version__,
        "device": str(prepared.device),
        "hardware": hardware_description(),
        "wall_time_s": round(wall, 2),
        "dataset": cfg.dataset,
        "dataset_label": info.label,
        "train_size": prepared.data.train.num_samples,
        "val_size": prepared.data.val.num_samples if prepared.data.val is not None else 0,
        "test_size": prepared.data.test.num_samples,
        "epochs": run_epochs(cfg),
        "schedule_epochs": cfg.hparams["epochs"],
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
