"""The BayesBiNN authors' own per-epoch training logs (package data, ``reference_logs/``).

Source: GitHub ``team-approx-bayes/BayesBiNN``, commit 67e0c6f
(``67e0c6f7d19c22ebf5bfee8360fd734347f26057``), file ``training_log.zip``, converted unchanged to
one CSV per run (``<dataset>_run<k>.csv``) with the run's own config beside it
(``<dataset>_run<k>.config.json``). 5 runs x 500 epochs of the paper's three BayesBiNN settings
(MNIST, CIFAR-10, CIFAR-100); there is no STE log.

:func:`reference_logs` returns them as one frame with accuracies in **percent**, as the CSVs
hold them (our run records hold fractions: multiply by 100 before comparing).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

REFERENCE_DIR = Path(__file__).resolve().parent / "reference_logs"
SOURCE = (
    "team-approx-bayes/BayesBiNN commit 67e0c6f, training_log.zip (the authors' GPU runs, "
    "converted unchanged)"
)
DATASETS = ("mnist", "cifar10", "cifar100")
RUNS = tuple(range(5))
EPOCHS = 500
METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")
COLUMNS = ("dataset", "run", "epoch", *METRICS)
ACCURACY_UNIT = "%"


def _file(dataset: str, run: int, suffix: str) -> Path:
    if dataset not in DATASETS:
        raise ValueError(f"no reference logs for {dataset!r}; datasets: {', '.join(DATASETS)}")
    path = REFERENCE_DIR / f"{dataset}_run{run}{suffix}"
    if not path.is_file():
        raise FileNotFoundError(
            f"reference log {path.name} is missing from {REFERENCE_DIR} (package data of "
            f"bnnlib_book; source: {SOURCE})"
        )
    return path


def reference_config(dataset: str, run: int = 0) -> dict[str, Any]:
    """The config one of the authors' runs saved (``<dataset>_run<run>.config.json``)."""
    return json.loads(_file(dataset, run, ".config.json").read_text())


def reference_logs(datasets: Sequence[str] = DATASETS) -> pd.DataFrame:
    """One row per (dataset, run, epoch) with the columns of :data:`COLUMNS`; accuracies in %,
    losses as logged. Raises FileNotFoundError naming the file when a log is missing."""
    frames = []
    for dataset in datasets:
        for run in RUNS:
            log = pd.read_csv(_file(dataset, run, ".csv"))
            missing = sorted(set(("epoch", *METRICS)) - set(log.columns))
            if missing:
                raise ValueError(f"{dataset}_run{run}.csv lacks the columns {missing}")
            frames.append(log.assign(dataset=dataset, run=run))
    out = pd.concat(frames, ignore_index=True)[list(COLUMNS)]
    return out.astype({"run": int, "epoch": int})


def reference_band(
    logs: pd.DataFrame, dataset: str, metric: str = "test_acc", epochs: Sequence[int] | None = None
) -> pd.DataFrame:
    """Per epoch of ``dataset`` (all, or ``epochs``): the runs' mean, min, max and count of
    ``metric`` (in the logs' unit, % for accuracies), indexed by epoch."""
    rows = logs[logs["dataset"] == dataset]
    if epochs is not None:
        rows = rows[rows["epoch"].isin(list(epochs))]
    return rows.groupby("epoch")[metric].agg(["mean", "min", "max", "count"])


def reference_values(
    logs: pd.DataFrame, dataset: str, metric: str = "test_acc"
) -> dict[int, list[float]]:
    """Epoch -> the runs' values of ``metric`` (the form :func:`~bnnlib_book.grading.judge_epoch_matched`
    takes)."""
    rows = logs[logs["dataset"] == dataset]
    return {int(e): [float(v) for v in g[metric]] for e, g in rows.groupby("epoch")}
