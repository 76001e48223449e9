"""Run one configured experiment, or find its record: the single path from a config to a number.

``run`` validates the whole config and checks the dataset before anything is written. A run whose
record exists is loaded, not re-trained (records are keyed by the hash of the resolved config), and
an interrupted run resumes from its last checkpoint (per epoch, or mid-epoch after SIGINT/SIGTERM).

What is trusted: a record, a checkpoint and the saved weights each carry the sha256 of their
content. A corrupt, truncated, empty or foreign record is moved aside to
``<key>.json.corrupt-<UTC time>`` with a one-line warning and the run is done again (it resumes
from its checkpoint, so usually only the record is rewritten); a corrupt checkpoint is moved aside
the same way and training starts from scratch (:meth:`Trainer.resume_from`). A run that diverges
or is interrupted writes ``<results_dir>/failures/<key>.json`` (what a sweep writes for a failed
config), removed again once the run completes.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bnnlib import __version__
from bnnlib.atomic import (
    CorruptFileError,
    move_aside,
    non_finite_path,
    remove_orphan_temps,
    save_checkpoint,
    write_json,
)
from bnnlib.experiment import RESULTS_DIR
from bnnlib.experiment.config import ResolvedConfig, RunConfig
from bnnlib.experiment.locks import locked
from bnnlib.experiment.records import RunRecord, git_commit, hardware_description
from bnnlib.train.trainer import Trainer, TrainingDiverged, TrainingInterrupted

CHECKPOINTS = ".ckpt"
MODEL_FILE = "model.pt"
FAILURES = "failures"  # the folder a sweep writes its failures to, shared with single runs

logger = logging.getLogger(__name__)


@dataclass
class Prepared:
    """Everything a run needs, built but not yet trained."""

    config: ResolvedConfig
    device: torch.device
    data: Any
    model: nn.Module
    trainer: Trainer


def prepare(
    config: RunConfig | ResolvedConfig | dict[str, Any],
    *,
    progress: bool | None = None,
    tensorboard_dir: str | Path | None = None,
    results_dir: str | Path = RESULTS_DIR,
) -> Prepared:
    """Build data, model, optimizer and trainer for ``config`` (validated first). A layer-wise
    binarization run gets its :class:`~bnnlib.methods.layerwise.LayerBinarization` callback;
    ``results_dir`` holds the records of its sensitivity runs, if its order reads any."""
    from bnnlib.data import build_loaders
    from bnnlib.experiment.preflight import check_device, check_run, split_options
    from bnnlib.experiment.recipes import build_model, build_recipe

    cfg = resolve_config(config)
    check_run(cfg)
    hp = cfg.hparams
    device = check_device(cfg.device)
    torch.manual_seed(cfg.seed)
    data = build_loaders(
        cfg.dataset,
        cfg.preprocess_fn,
        hp["batch_size"],
        **split_options(hp),
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
        max_loss=hp.get("max_loss"),
    )
    if "binarize_order" in hp:
        from bnnlib.methods.layerwise import layerwise_callback

        scores = (
            sensitivity_scores(hp["sensitivity_runs"], results_dir, model)
            if ("sensitivity_runs" in hp)
            else None
        )
        trainer.add_callback(layerwise_callback(model, hp, scores))
    return Prepared(cfg, device, data, model, trainer)


def sensitivity_scores(
    keys: list[str], results_dir: str | Path, model: nn.Module
) -> dict[str, float]:
    """Layer name -> the best validation accuracy (test accuracy without a validation split) of
    its sensitivity run: the complete record of each key under ``results_dir``, each with one
    binary layer of ``model``. ValueError naming the key that is missing or does not fit."""
    from bnnlib.methods.layerwise import layer_names, sensitivity_score

    names = layer_names(model)
    scores: dict[str, float] = {}
    for key in keys:
        path = Path(results_dir) / f"{key}.json"
        if not path.exists():
            raise ValueError(
                f"sensitivity run {key!r} has no record at {path}; run the sensitivity runs first "
                "(bnnlib iterative sensitivity ...) or give their results folder"
            )
        try:
            layer, score = sensitivity_score(RunRecord.load(path).history)
        except ValueError as exc:
            raise ValueError(f"run {key!r}: {exc}") from None
        if layer not in names:
            raise ValueError(
                f"run {key!r} is not a sensitivity run of this model: its binary layer {layer!r} "
                f"is not one of {', '.join(names)}"
            )
        if layer in scores:
            raise ValueError(f"sensitivity_runs name two runs of layer {layer!r}")
        scores[layer] = score
    return scores


@locked(lambda a: (a["results_dir"], resolve_config(a["config"]).key()))  # one trainer per key
def run(
    config: RunConfig | ResolvedConfig | dict[str, Any],
    results_dir: str | Path = RESULTS_DIR,
    *,
    force: bool = False,
    progress: bool | None = None,
    tensorboard: bool = False,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> RunRecord:
    """Train ``config`` to completion and write its record, or load the record if it exists.

    Raises :class:`~bnnlib.train.trainer.TrainingDiverged` or
    :class:`~bnnlib.train.trainer.TrainingInterrupted` after writing the failure record."""
    cfg = resolve_config(config)
    check_finite_config(cfg)
    results_dir = Path(results_dir)
    key = cfg.key()
    check_before_work(cfg, results_dir, force)
    rec, path, ckpt_dir = cached_record(results_dir, key, force)
    if rec is not None:
        return rec
    tb_dir = results_dir / "tensorboard" / key if tensorboard else None
    prepared = prepare(cfg, progress=progress, tensorboard_dir=tb_dir, results_dir=results_dir)
    trainer, data = prepared.trainer, prepared.data
    start = time.perf_counter()
    with failure_record(results_dir, key, cfg.to_dict()):
        history = trainer.fit(
            data.train,
            run_epochs(cfg),
            test=data.test,
            val=data.val,
            checkpoint_dir=ckpt_dir,
            on_epoch=on_epoch,
        )
    extras = trainer.task.run_extras(trainer, data.test)
    final = {k: v for k, v in history[-1].items() if k.startswith(("test_", "val_"))}
    provenance = run_provenance(cfg, prepared, time.perf_counter() - start)
    provenance["model_sha256"] = save_checkpoint(ckpt_dir / MODEL_FILE, prepared.model.state_dict())
    record = RunRecord(
        key=key,
        config=cfg.to_dict(),
        history=history,
        final=final,
        provenance=provenance,
        extras=extras,
    )
    record.save(path)
    clear_failure(results_dir, key)
    return record


def check_before_work(cfg: ResolvedConfig, results_dir: Path, force: bool) -> None:
    """Everything the run needs (device, model, sizes, data, cache, ``results_dir``), checked
    before a file is touched; a complete record is served without training, so it skips them."""
    from bnnlib.experiment.preflight import check_run

    if force or not (results_dir / f"{cfg.key()}.json").exists():
        check_run(cfg, results_dir)


def cached_record(results_dir: Path, key: str, force: bool) -> tuple[RunRecord | None, Path, Path]:
    """(the complete record of ``key`` or None, its path, its checkpoint folder). With ``force``
    no record is returned and old checkpoints are removed, so the run starts afresh.

    Temporary files a killed write of this run left are removed. A record that cannot be trusted
    (see :meth:`RunRecord.load`), or that names another key, is moved aside to
    ``<key>.json.corrupt-<UTC time>`` with a one-line warning and treated as missing: the run
    is done again, from its checkpoint when one is there."""
    path = results_dir / f"{key}.json"
    ckpt_dir = results_dir / CHECKPOINTS / key
    remove_orphan_temps(results_dir, path.name)
    remove_orphan_temps(results_dir / FAILURES, path.name)
    if path.exists() and not force:
        try:
            rec = RunRecord.load(path)
            if rec.key != key:
                raise CorruptFileError(path, f"run record of another run (key {rec.key!r})")
        except CorruptFileError as exc:
            moved = move_aside(path)
            logger.warning(
                "%s: %s; moved it aside to %s and the run is done again",
                exc.path,
                exc.reason,
                moved.name,
            )
        else:
            if rec.status == "complete":
                return rec, path, ckpt_dir
    if force and ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)
    return None, path, ckpt_dir


def check_finite_config(cfg: ResolvedConfig) -> None:
    """ValueError naming the first NaN or infinite number of the config: its record could not be
    written as JSON, so the run is refused before it starts."""
    bad = non_finite_path(cfg.to_dict())
    if bad is not None:
        raise ValueError(f"{bad[0]}={bad[1]!r} is not a finite number; give a finite value")


@contextlib.contextmanager
def failure_record(results_dir: Path, key: str, config: dict[str, Any]) -> Iterator[None]:
    """Around training: a divergence or an interruption writes ``failures/<key>.json`` (key,
    config, status, the one-line error, epoch, step and the checkpoint it resumes from) before
    it propagates (:func:`clear_failure` removes it once the run completes)."""
    failure = results_dir / FAILURES / f"{key}.json"
    try:
        yield
    except (TrainingDiverged, TrainingInterrupted) as exc:
        diverged = isinstance(exc, TrainingDiverged)
        write_json(
            failure,
            {
                "key": key,
                "config": config,
                "status": "diverged" if diverged else "interrupted",
                "error": str(exc),
                "epoch": exc.epoch,
                "step": exc.step,
                "checkpoint": str(exc.checkpoint) if exc.checkpoint is not None else None,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
        raise


def clear_failure(results_dir: Path, key: str) -> None:
    """Remove the failure record of ``key`` once its run record is written."""
    (results_dir / FAILURES / f"{key}.json").unlink(missing_ok=True)


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
