"""The trainer: resume equals an uninterrupted run, a NaN loss stops the run and keeps the last good
checkpoint, and a binary MLP trained with Bop learns MNIST."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bnnlib.atomic import load_checkpoint
from bnnlib.experiment.config import RunConfig
from bnnlib.experiment.runs import prepare, run
from bnnlib.train.trainer import CHECKPOINT_NAME, TrainingDiverged
from tests.conftest import FixedBatches, needs_mnist

SMALL = {"epochs": 2, "train_subset": 600, "test_subset": 300, "batch_size": 50}


def _cfg(**hparams) -> RunConfig:
    return RunConfig(
        model="binary_mlp",
        dataset="mnist",
        hparams_set="bop",
        hparams={**SMALL, **hparams},
        model_kwargs={"width": 0.125},
    )


def _fit(tmp: Path | None, epochs: int):
    p = prepare(_cfg(), progress=False)
    hist = p.trainer.fit(p.data.train, epochs, test=p.data.test, checkpoint_dir=tmp)
    return p, hist


@needs_mnist
def test_resume_equals_uninterrupted(tmp_path: Path) -> None:
    straight, h_straight = _fit(None, 2)
    _fit(tmp_path, 1)  # "interrupted" after epoch 1: only its checkpoint survives
    assert (tmp_path / CHECKPOINT_NAME).exists()
    resumed, h_resumed = _fit(tmp_path, 2)
    strip = lambda h: [{k: v for k, v in e.items() if k != "epoch_time_s"} for e in h]  # noqa: E731
    assert strip(h_resumed) == strip(h_straight)
    for (name, a), (_, b) in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


@needs_mnist
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    p = prepare(_cfg(), progress=False)
    p.trainer.fit(p.data.train, 1, checkpoint_dir=tmp_path)
    good, _ = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    p.trainer.loss_fn = lambda out, y: out.sum() * float("nan")
    with pytest.raises(TrainingDiverged, match="epoch 1"):
        p.trainer.fit(p.data.train, 2, checkpoint_dir=tmp_path)
    kept, _ = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert kept["epoch"] == 1
    for k, v in good["model"].items():
        assert torch.equal(kept["model"][k], v)


@needs_mnist
def test_run_record_has_provenance_and_is_reused(tmp_path: Path) -> None:
    cfg = _cfg(epochs=1)
    rec = run(cfg, tmp_path, progress=False)
    assert rec.path == tmp_path / f"{cfg.key()}.json"
    prov = rec.provenance
    assert prov["dataset_label"] and prov["train_size"] == 600 and prov["epochs"] == 1
    assert prov["torch_version"] == torch.__version__ and prov["wall_time_s"] > 0
    assert set(rec.history[0]["flip_ratio"]) and 0 <= rec.history[0]["flip_ratio_mean"] < 1
    assert rec.history[0]["binary_fraction"] == 1.0
    mtime = rec.path.stat().st_mtime_ns
    again = run(cfg, tmp_path)
    assert again.path.stat().st_mtime_ns == mtime and again.final == rec.final


@needs_mnist
@pytest.mark.slow
def test_binary_mlp_with_bop_learns_full_mnist_in_one_epoch(tmp_path: Path) -> None:
    """Issue 2's bar: binary weights and activations, Bop, full MNIST, one epoch, >= 93 % test."""
    cfg = RunConfig(model="binary_mlp", dataset="mnist", hparams_set="bop", hparams={"epochs": 1})
    rec = run(cfg, tmp_path, progress=False)
    assert rec.provenance["train_size"] == 60_000 and rec.provenance["test_size"] == 10_000
    assert rec.final["test_acc"] >= 0.93


@needs_mnist
def test_stop_after_epochs_keeps_the_schedule_length(tmp_path: Path) -> None:
    """BayesBiNN's epoch-1 number comes from the first epoch of a 500-epoch cosine: the run stops
    early while the schedule still spans `epochs`."""
    cfg = RunConfig(
        model="mlp_binaryconnect",
        dataset="mnist",
        hparams_set="bayesbinn",
        hparams={"stop_after_epochs": 1, "train_subset": 300, "test_subset": 100},
        model_kwargs={"width": 0.125},
    )
    rec = run(cfg, tmp_path, progress=False)
    assert len(rec.history) == 1 and rec.provenance["schedule_epochs"] == 500
    # The recorded value is the one the next step uses: alpha(2) of the 500-epoch cosine.
    assert rec.history[0]["hparams"]["lr"] == pytest.approx(9.9996052e-5, rel=1e-6)
    with pytest.raises(ValueError, match="stop_after_epochs"):
        RunConfig(
            model="binary_mlp", dataset="mnist", hparams_set="bop", hparams={"stop_after_epochs": 2}
        ).resolve()


def test_every_scheduled_key_is_recorded_in_the_history() -> None:
    """A key the recipes may schedule is also recorded: one list (SCHEDULED_KEYS) drives both."""
    from bnnlib.optim import (
        RECORDED_KEYS,
        SCHEDULED_KEYS,
        ExponentialDecay,
        HyperparameterScheduler,
    )
    from bnnlib.train.trainer import Trainer

    assert set(SCHEDULED_KEYS) <= set(RECORDED_KEYS)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    group = {"params": list(model.parameters()), **{k: 1.0 for k in SCHEDULED_KEYS}}
    opt = torch.optim.SGD([group], lr=1.0)
    schedules = {k: ExponentialDecay(1.0 + i, 1, 0.5) for i, k in enumerate(SCHEDULED_KEYS)}
    sched = HyperparameterScheduler(opt, schedules)
    loader = FixedBatches([(torch.randn(5, 4), torch.randint(0, 3, (5,))) for _ in range(3)])
    trainer = Trainer(model, opt, torch.nn.CrossEntropyLoss(), scheduler=sched, progress=False)
    history = trainer.fit(loader, 2)
    for epoch, metrics in enumerate(history, start=1):
        assert list(metrics["hparams"]) == list(SCHEDULED_KEYS)
        for key, schedule in schedules.items():
            assert metrics["hparams"][key] == pytest.approx(schedule(3 * epoch)), key


def test_tasks_are_selected_by_name_once() -> None:
    from bnnlib.train.tasks import Classification, Denoising, get_task
    from bnnlib.train.trainer import Trainer

    assert isinstance(get_task("classification"), Classification)
    assert isinstance(get_task("denoising"), Denoising)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="unknown task 'segmentation'; choose classification"):
        Trainer(model, opt, torch.nn.MSELoss(), task="segmentation")


def test_denoising_metrics_and_probs_averaging_only_for_classification() -> None:
    from bnnlib.train.metrics import PEAK2_OFFSET_DB
    from bnnlib.train.trainer import Trainer

    torch.manual_seed(0)
    x, y = torch.rand(6, 1, 2, 2) * 2 - 1, torch.rand(6, 1, 2, 2) * 2 - 1
    model = torch.nn.Conv2d(1, 1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    trainer = Trainer(model, opt, torch.nn.MSELoss(), task="denoising", eval_average="probs")
    metrics = trainer.fit(FixedBatches([(x, y)]), 1, test=FixedBatches([(x, y)]))[0]
    assert [k for k in metrics if "psnr" in k] == [
        "train_psnr_peak1",
        "train_psnr_peak2",
        "test_psnr_peak1",
        "test_psnr_peak2",
        "test_noisy_psnr_peak1",
        "test_noisy_psnr_peak2",
    ]
    assert metrics["test_psnr_peak2"] == metrics["test_psnr_peak1"] + PEAK2_OFFSET_DB
    assert torch.equal(trainer.predict(x), model(x).detach())  # no softmax for images
