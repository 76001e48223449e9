"""Continual learning on permuted MNIST: one network learns a sequence of pixel-permuted tasks.

BayesBiNN's continual-learning experiment (Meng, Bachmann & Khan, 2020; the reference
``main_permute_mnist_CL.py``): each task is the same classification problem with a fixed random
permutation of the pixels (task 1 is permuted as well, as in the reference). One model and one
optimizer carry over from task to task. Before task t >= 2 the prior becomes the posterior at the
end of task t - 1 ("with prior"), or stays at lambda_prior = 0 ("without prior"); lambda, the
momentum and the step count carry on, and the learning-rate schedule restarts over the task's
epochs. After each task the C-sample mean prediction is tested on every task seen so far, which is
what shows forgetting.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from bnnlib.experiment import RESULTS_DIR
from bnnlib.experiment.config import ResolvedConfig, RunConfig
from bnnlib.experiment.locks import locked
from bnnlib.experiment.records import RunRecord
from bnnlib.experiment.runs import (
    Prepared,
    cached_record,
    check_finite_config,
    clear_failure,
    failure_record,
    prepare,
    resolve_config,
    run_provenance,
)
from bnnlib.optim import sub_optimizers
from bnnlib.train.trainer import CHECKPOINT_NAME, Trainer

# Mixed into every permutation seed, so the pixel orders are not the streams of other seeded draws.
_PERMUTATION_STREAM = 0x5045524D


class _Loader(Protocol):
    num_samples: int

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...
    def __len__(self) -> int: ...
    def set_epoch(self, epoch: int) -> None: ...


def permutation(seed: int, task: int, num_pixels: int = 784) -> torch.Tensor:
    """The pixel order of ``task`` (1-based): a pure function of (seed, task, num_pixels)."""
    for name, value, low in (("seed", seed, 0), ("task", task, 1), ("num_pixels", num_pixels, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    rng = np.random.default_rng([_PERMUTATION_STREAM, seed, task])
    return torch.from_numpy(rng.permutation(num_pixels).astype(np.int64))


def permutations(num_tasks: int, seed: int, num_pixels: int = 784) -> list[torch.Tensor]:
    """Pixel orders of tasks 1..num_tasks; a longer sequence extends a shorter one."""
    if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
        raise ValueError(f"num_tasks must be an int >= 1, got {num_tasks!r}")
    return [permutation(seed, t, num_pixels) for t in range(1, num_tasks + 1)]


def permute_pixels(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Reorder the pixels of a batch: (B, P) flat inputs, or (B, C, H, W) images with the same
    order for every channel (as the reference does). ``perm`` must be on ``x``'s device."""
    if x.ndim < 2:
        raise ValueError(f"expected a batch of inputs (B, ...), got shape {tuple(x.shape)}")
    flat = x if x.ndim == 2 else x.flatten(2)
    if flat.shape[-1] != perm.numel():
        raise ValueError(
            f"permutation of {perm.numel()} pixels does not fit inputs of shape {tuple(x.shape)}"
            f" ({flat.shape[-1]} pixels per channel)"
        )
    return flat.index_select(flat.ndim - 1, perm).view_as(x)


class PermutedLoader:
    """A bnnlib.data loader whose batches have their pixels permuted by one fixed order.

    Epoch selection, length and size are the wrapped loader's, so the trainer treats it like any
    loader. The permutation is moved once to the device the batches live on."""

    def __init__(self, loader: _Loader, perm: torch.Tensor) -> None:
        if not torch.is_tensor(perm) or perm.ndim != 1 or perm.dtype != torch.int64:
            raise TypeError("perm must be a 1-D int64 tensor of pixel indices")
        if not torch.equal(perm.sort().values.cpu(), torch.arange(perm.numel())):
            raise ValueError(f"perm is not a permutation of 0..{perm.numel() - 1}")
        self.loader = loader
        self.perm = perm

    @property
    def num_samples(self) -> int:
        return self.loader.num_samples

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.loader:
            if self.perm.device != x.device:
                self.perm = self.perm.to(x.device)
            yield permute_pixels(x, self.perm), y


def record_key(
    config: RunConfig | ResolvedConfig | dict[str, Any],
    num_tasks: int = 5,
    use_prior: bool = True,
    eval_every_epoch: bool = False,
) -> str:
    """The record name: a hash of the resolved run plus the continual-learning settings."""
    cfg = resolve_config(config)
    blob = json.dumps(
        {
            "experiment": "permuted_continual",
            "run": cfg.identity(),
            "num_tasks": num_tasks,
            "use_prior": use_prior,
            "eval_every_epoch": eval_every_epoch,
        },
        sort_keys=True,
        default=repr,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@locked(  # one trainer per key
    lambda a: (
        a["results_dir"],
        record_key(a["config"], a["num_tasks"], a["use_prior"], a["eval_every_epoch"]),
    )
)
def run_continual(
    config: RunConfig | ResolvedConfig | dict[str, Any],
    num_tasks: int = 5,
    use_prior: bool = True,
    results_dir: str | Path = Path(RESULTS_DIR) / "continual",
    *,
    force: bool = False,
    progress: bool | None = None,
    eval_every_epoch: bool = False,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> RunRecord:
    """Train ``config`` on ``num_tasks`` permuted tasks (``hparams["epochs"]`` epochs each) and
    write the record ``<results_dir>/<key>.json``, or load it when it exists (unless ``force``).

    The record's ``history`` has one row per epoch with its ``task`` and ``task_epoch``;
    ``extras["task_evals"]`` one row per task, ``{"task": t, "acc_task_1": ..., "avg_acc": ...}``,
    measured after the task's last epoch; ``final`` the last of them (``test_acc`` = ``avg_acc``).
    An interrupted run resumes from its per-epoch checkpoint in ``<results_dir>/.ckpt/<key>/``."""
    cfg = resolve_config(config)
    _check_settings(cfg, num_tasks, use_prior, eval_every_epoch)
    check_finite_config(cfg)
    results_dir = Path(results_dir)
    key = record_key(cfg, num_tasks, use_prior, eval_every_epoch)
    rec, path, ckpt_dir = cached_record(results_dir, key, force)
    if rec is not None:
        return rec
    config_dict = cfg.to_dict() | {
        "num_tasks": num_tasks,
        "use_prior": use_prior,
        "eval_every_epoch": eval_every_epoch,
    }
    prepared = prepare(cfg, progress=progress)
    start = time.perf_counter()
    with failure_record(results_dir, key, config_dict):
        history = train_continual(
            prepared,
            num_tasks,
            use_prior,
            eval_every_epoch=eval_every_epoch,
            checkpoint_dir=ckpt_dir,
            on_epoch=on_epoch,
        )
    evals = task_evaluations(history)
    epochs = cfg.hparams["epochs"]
    provenance = run_provenance(cfg, prepared, time.perf_counter() - start)
    provenance |= {"epochs": epochs * num_tasks, "epochs_per_task": epochs, "num_tasks": num_tasks}
    final = {k: v for k, v in evals[-1].items() if k != "task"}
    final["test_acc"] = final["avg_acc"]
    record = RunRecord(
        key=key,
        config=config_dict,
        history=history,
        final=final,
        provenance=provenance,
        extras={"task_evals": evals},
    )
    record.save(path)
    clear_failure(results_dir, key)
    return record


def train_continual(
    prepared: Prepared,
    num_tasks: int,
    use_prior: bool,
    *,
    eval_every_epoch: bool = False,
    checkpoint_dir: str | Path | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the task sequence on a prepared run; returns the trainer's per-epoch history.

    The end-of-task evaluation is written into the history row of the task's last epoch before
    that epoch's checkpoint is saved, so a resumed run finds every finished task's numbers there.
    A run resumes from ``checkpoint_dir`` when it holds a checkpoint (:meth:`Trainer.resume_from`:
    a corrupt one is moved aside and the run starts from scratch); the task boundary steps
    (prior, schedule restart) are idempotent, so a crash at a boundary resumes correctly, and they
    are not repeated for a checkpoint taken in the middle of a task's first epoch."""
    cfg = prepared.config
    _check_settings(cfg, num_tasks, use_prior, eval_every_epoch)
    trainer, data = prepared.trainer, prepared.data
    epochs = cfg.hparams["epochs"]
    perms = permutations(num_tasks, cfg.seed, _pixels_per_channel(data.test))
    trains = [PermutedLoader(data.train, p) for p in perms]
    tests = [PermutedLoader(data.test, p) for p in perms]
    tracker = _TaskTracker(tests, epochs, eval_every_epoch)
    trainer.add_callback(tracker)
    if checkpoint_dir is not None:
        trainer.resume_from(Path(checkpoint_dir) / CHECKPOINT_NAME)
    for task in range(1, num_tasks + 1):
        end = task * epochs
        if trainer.epoch >= end:
            continue
        tracker.task = task
        if trainer.epoch == (task - 1) * epochs and trainer.stopped_in_epoch is None:
            start_task(trainer, task, use_prior)
        trainer.fit(
            trains[task - 1], end, checkpoint_dir=checkpoint_dir, resume=False, on_epoch=on_epoch
        )
    return trainer.history


def start_task(trainer: Trainer, task: int, use_prior: bool) -> None:
    """The task boundary of BayesBiNN's continual learning: with the prior, lambda_prior := lambda
    of the previous task; the learning-rate schedule restarts at its first step. Nothing else is
    reset."""
    if task >= 2 and use_prior:
        for opt in _prior_optimizers(trainer.optimizer):
            opt.set_prior_from_current()
    if trainer.scheduler is not None:
        # The scheduler's state is its step counter; step 0 rewrites the schedules' first values.
        trainer.scheduler.load_state_dict({"last_step": 0})


def evaluate_tasks(trainer: Trainer, tests: list[PermutedLoader]) -> dict[str, float]:
    """Test accuracy and loss on each given task and the mean accuracy over them."""
    row: dict[str, float] = {}
    for t, loader in enumerate(tests, start=1):
        res = trainer.evaluate(loader, prefix="test")
        row[f"acc_task_{t}"] = res["test_acc"]
        row[f"loss_task_{t}"] = res["test_loss"]
    row["avg_acc"] = sum(row[f"acc_task_{t}"] for t in range(1, len(tests) + 1)) / len(tests)
    return row


def task_evaluations(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per finished task from a continual history: its end-of-task accuracies."""
    out = []
    for row in history:
        if row.get("task_end"):
            t = row["task"]
            accs = {f"acc_task_{k}": row[f"acc_task_{k}"] for k in range(1, t + 1)}
            out.append({"task": t, **accs, "avg_acc": row["avg_acc"]})
    return out


class _TaskTracker:
    """Trainer callback: tags each epoch with its task and tests the seen tasks at task ends."""

    def __init__(self, tests: list[PermutedLoader], epochs: int, every_epoch: bool) -> None:
        self.tests = tests
        self.epochs = epochs
        self.every_epoch = every_epoch
        self.task = 1

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        task_end = epoch == self.task * self.epochs
        metrics["task"] = self.task
        metrics["task_epoch"] = epoch - (self.task - 1) * self.epochs
        metrics["task_end"] = task_end
        if task_end or self.every_epoch:
            metrics |= evaluate_tasks(trainer, self.tests[: self.task])


def _prior_optimizers(optimizer: torch.optim.Optimizer) -> list[torch.optim.Optimizer]:
    """The optimizer, or the optimizers a Router steps, that keep a prior (BayesBiNN)."""
    return [o for o in sub_optimizers(optimizer) if hasattr(o, "set_prior_from_current")]


def _pixels_per_channel(loader: _Loader) -> int:
    x, _ = next(iter(loader))
    return x.shape[1] if x.ndim == 2 else x[0, 0].numel()


def _check_settings(
    cfg: ResolvedConfig, num_tasks: int, use_prior: bool, eval_every_epoch: bool
) -> None:
    if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
        raise ValueError(f"num_tasks must be an int >= 1, got {num_tasks!r}")
    for name, value in (("use_prior", use_prior), ("eval_every_epoch", eval_every_epoch)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool, got {value!r}")
    if cfg.task != "classification":
        raise ValueError(
            f"continual learning permutes classification inputs; model {cfg.model!r} is a "
            f"{cfg.task} model"
        )
    if use_prior and cfg.hparams["optimizer"] != "bayesbinn":
        raise ValueError(
            f"use_prior=True needs BayesBiNN's prior; hparams set {cfg.hparams_set!r} trains with "
            f"{cfg.hparams['optimizer']!r} (use_prior=False runs it without one)"
        )
