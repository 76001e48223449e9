"""The study's run records as tables: per-epoch frames, the design joined with its records
(:class:`AblationResults`), PSNR tables and the comparison rows beside the study's values."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bnnlib.experiment.config import RunConfig
from bnnlib.experiment.records import RunRecord
from bnnlib.train.metrics import PEAK2_OFFSET_DB
from bnnlib_book.bop.design import (
    DENOISERS,
    NORM_LABELS,
    STUDY_COMPARE_EPOCHS,
    STUDY_SCALE,
    AblationDesign,
    close,
    reported_entry,
    reported_value,
)
from bnnlib_book.charts import format_value as _fmt

_ABLATION_COLUMNS = [
    "key",
    "norm",
    "threshold",
    "gamma",
    "epochs",
    "dataset",
    "width",
    "train_size",
    "epoch",
    "train_acc",
    "train_loss",
    "test_acc",
    "flip_ratio_mean",
]
# Per-epoch metrics of the ablation frame and their chart labels.
ABLATION_METRICS = {
    "train_acc": "train accuracy (%)",
    "train_loss": "train loss",
    "test_acc": "test accuracy (%)",
}


def _bop_runs(records: Iterable[RunRecord]) -> Iterator[tuple[RunRecord, dict[str, Any]]]:
    """The Bop runs of ``binaryvgg`` among ``records``, each with the columns that name it."""
    for rec in records:
        hp, kwargs = rec.config["hparams"], rec.config.get("model_kwargs", {})
        if rec.config["model"] != "binaryvgg" or hp.get("optimizer") != "bop":
            continue
        yield (
            rec,
            {
                "key": rec.key,
                "norm": NORM_LABELS.get(kwargs.get("norm_layer", "BatchNormalization")),
                "threshold": hp["threshold"],
                "gamma": hp["gamma"],
                "epochs": hp["epochs"],
            },
        )


def ablation_frame(records: Iterable[RunRecord]) -> pd.DataFrame:
    """One row per (Bop run of ``binaryvgg``, epoch); accuracies in percent."""
    rows = []
    for rec, run in _bop_runs(records):
        kwargs = rec.config.get("model_kwargs", {})
        for h in rec.history:
            rows.append(
                {
                    **run,
                    "dataset": rec.config["dataset"],
                    "width": float(kwargs.get("width", 1.0)),
                    "train_size": rec.provenance.get("train_size"),
                    "epoch": h["epoch"],
                    "train_acc": 100 * h["train_acc"],
                    "train_loss": h["train_loss"],
                    "test_acc": 100 * h["test_acc"] if "test_acc" in h else np.nan,
                    "flip_ratio_mean": h.get("flip_ratio_mean", np.nan),
                }
            )
    return pd.DataFrame(rows, columns=_ABLATION_COLUMNS)


def flip_frame(records: Iterable[RunRecord]) -> pd.DataFrame:
    """Per-layer flip ratio (flips per weight per step) of the Bop runs, one row per (run, epoch,
    layer), plus the size-weighted mean over layers as layer "all layers". Zero ratios are
    dropped, because the charts draw them on a log scale."""
    rows = []
    for rec, run in _bop_runs(records):
        for h in rec.history:
            ratios = {**h.get("flip_ratio", {}), "all layers": h.get("flip_ratio_mean", 0.0)}
            rows += [
                {**run, "epoch": h["epoch"], "layer": layer, "flip_ratio": ratio}
                for layer, ratio in ratios.items()
                if ratio > 0
            ]
    columns = ["key", "norm", "threshold", "gamma", "epochs", "epoch", "layer", "flip_ratio"]
    return pd.DataFrame(rows, columns=columns)


def at_value(column: pd.Series, value: float) -> pd.Series:
    return column.map(lambda v: close(float(v), value)).astype(bool)


@dataclass
class AblationResults:
    """The ablation's records split into the gamma sweep, the tau sweep and the comparison."""

    design: AblationDesign
    records: list[RunRecord]
    frame: pd.DataFrame = field(init=False)

    def __post_init__(self) -> None:
        self.frame = ablation_frame(self.records)
        self._roles = {r.key: r.label["roles"].split(", ") for r in self.design.runs()}

    def _role(self, role: str, frame: pd.DataFrame | None) -> pd.DataFrame:
        """Rows of ``frame`` (default: the per-epoch frame) whose run has ``role`` in the design,
        joined by run key."""
        f = self.frame if frame is None else frame
        return f[f["key"].map(lambda k: role in self._roles.get(k, ())).astype(bool)]

    def gamma_sweep(
        self, norm: str | None = None, frame: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """Rows of the gamma sweep (``norm``: "BN", "LN" or None for both) from ``frame``
        (default: the per-epoch frame; :func:`flip_frame` has the same run columns)."""
        return _norm(self._role("gamma sweep", frame), norm)

    def tau_sweep(self, norm: str | None = None, frame: pd.DataFrame | None = None) -> pd.DataFrame:
        """Rows of the tau sweep (``norm``: "BN", "LN" or None for both) from ``frame``."""
        return _norm(self._role("tau sweep", frame), norm)

    def comparison(self, frame: pd.DataFrame | None = None) -> pd.DataFrame:
        """Rows of the longer BatchNorm-versus-LayerNorm runs from ``frame``."""
        return self._role("comparison", frame)

    @property
    def at_study_scale(self) -> bool:
        """Whether every Bop run is at the study's scale: true CIFAR-10, all 50,000 training
        images, full width, grid runs of 100 epochs and comparison runs of 250."""
        f = self.frame
        if not len(f):
            return False
        full = (
            (f["dataset"] == STUDY_SCALE["dataset"])
            & (f["train_size"] == STUDY_SCALE["train_size"])
            & at_value(f["width"], STUDY_SCALE["width"])
        )
        return (
            bool(full.all())
            and self.design.grid_epochs == STUDY_SCALE["epochs"]
            and int(self.design.compare["epochs"]) == STUDY_COMPARE_EPOCHS
        )

    def grid_record(self, norm: str, threshold: float, gamma: float) -> RunRecord | None:
        """The record of the grid run at (``norm``, ``threshold``, ``gamma``), if the design has
        that run and it ran."""
        long = {v: k for k, v in NORM_LABELS.items()}
        key = RunConfig.from_dict(self.design.bop_config(long[norm], threshold, gamma)).key()
        grid = {"gamma sweep", "tau sweep"}
        if not grid & set(self._roles.get(key, ())):
            return None
        return next((r for r in self.records if r.key == key), None)

    def latent_record(self) -> RunRecord | None:
        """The latent-weight contrast run, if the design has one and it ran."""
        keys = {k for k, roles in self._roles.items() if "latent" in roles}
        return next((r for r in self.records if r.key in keys), None)


def _norm(frame: pd.DataFrame, norm: str | None) -> pd.DataFrame:
    return frame[frame["norm"] == norm] if norm else frame


def final_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The last epoch of every run in a per-epoch frame."""
    if not len(frame):
        return frame
    return frame.sort_values("epoch").groupby("key").tail(1)


def metric_frame(frame: pd.DataFrame, metrics: Mapping[str, str]) -> pd.DataFrame:
    """``frame`` in long form: a ``metric`` column (the labels of ``metrics``) and a ``value``."""
    keep = [c for c in frame.columns if c not in metrics]
    present = {k: v for k, v in metrics.items() if k in frame.columns}
    long = frame.melt(id_vars=keep, value_vars=list(present), var_name="metric")
    long["metric"] = long["metric"].map(present)
    return long.dropna(subset=["value"])


def contrast_frame(results: AblationResults) -> pd.DataFrame:
    """Training and test accuracy per epoch of the latent-weight run and of the Bop run at the
    study's best point (BatchNorm, tau 1e-8, gamma 1e-5) of the grid, when both exist."""
    latent = results.latent_record()
    sweep = results.gamma_sweep("BN")
    best = sweep[at_value(sweep["threshold"], 1e-8) & at_value(sweep["gamma"], 1e-5)]
    rows = []
    if latent is not None:
        hp = latent.config["hparams"]
        label = f"Adam {_fmt(hp['lr'])}, latent weights"
        for h in latent.history:
            rows.append(
                {
                    "run": label,
                    "epoch": h["epoch"],
                    "train accuracy (%)": 100 * h["train_acc"],
                    "test accuracy (%)": 100 * h["test_acc"],
                    "weights at +-1 (%)": 100 * h.get("binary_fraction", np.nan),
                }
            )
    for _, r in best.iterrows():
        rows.append(
            {
                "run": f"Bop, tau {_fmt(r['threshold'])}, gamma {_fmt(r['gamma'])}",
                "epoch": r["epoch"],
                "train accuracy (%)": r["train_acc"],
                "test accuracy (%)": r["test_acc"],
                "weights at +-1 (%)": 100.0,
            }
        )
    return pd.DataFrame(rows)


def study_psnr(split: str) -> dict[str, float]:
    """The study's final PSNR (max 1 convention) of each model on ``split`` ("train"/"test")."""
    if split not in ("train", "test"):
        raise ValueError(f"split {split!r}; choose train or test")
    return {
        label: reported_value(label, f"{split} PSNR, max = 1 convention") for label in DENOISERS
    }


def denoising_comparison(records: Mapping[str, RunRecord]) -> list[dict[str, Any]]:
    """Comparison-table rows: the study's train and test PSNR of each model beside ours, both in
    the max 1 convention."""
    rows = []
    for label, record in records.items():
        for split in ("train", "test"):
            entry = reported_entry(label, f"{split} PSNR, max = 1 convention")
            rows.append(
                history_comparison_row(
                    f"{label}: {split} PSNR, max 1 (dB)",
                    record,
                    f"{split}_psnr_peak1",
                    entry.value,
                    f"{entry.source} [{entry.tag}]",
                )
            )
    return rows


def psnr_table(records: Mapping[str, RunRecord]) -> pd.DataFrame:
    """Final PSNR of each model in both peak conventions, the study's values beside ours, and the
    noisy input itself as a baseline row (the test images before any model)."""
    rows = []
    for label, rec in records.items():
        last = rec.history[-1]
        rows.append(
            {
                "model": label,
                "train, max 1 (ours)": last["train_psnr_peak1"],
                "train, max 1 (study)": reported_value(label, "train PSNR, max = 1 convention"),
                "test, max 1 (ours)": last["test_psnr_peak1"],
                "test, max 1 (study)": reported_value(label, "test PSNR, max = 1 convention"),
                "train, peak-to-peak 2 (ours)": last["train_psnr_peak2"],
                "test, peak-to-peak 2 (ours)": last["test_psnr_peak2"],
            }
        )
    if records:
        noisy1 = float(np.mean([r.history[-1]["test_noisy_psnr_peak1"] for r in records.values()]))
        rows.append(
            {
                "model": "noisy input (no model)",
                "test, max 1 (ours)": noisy1,
                "test, peak-to-peak 2 (ours)": noisy1 + PEAK2_OFFSET_DB,
            }
        )
    return pd.DataFrame(rows).set_index("model")


def psnr_frame(records: Mapping[str, RunRecord]) -> pd.DataFrame:
    """PSNR per epoch in long form (model, epoch, metric, value), with the noisy test input as a
    series of its own so the charts show the level a model has to beat."""
    names = {
        "train_psnr_peak1": "train, max 1",
        "test_psnr_peak1": "test, max 1",
        "train_psnr_peak2": "train, peak-to-peak 2",
        "test_psnr_peak2": "test, peak-to-peak 2",
    }
    rows = []
    for label, rec in records.items():
        for h in rec.history:
            for key, name in names.items():
                rows.append({"model": label, "epoch": h["epoch"], "metric": name, "value": h[key]})
    first = next(iter(records.values()), None)
    if first is not None:
        for h in first.history:
            for peak in ("peak1", "peak2"):
                rows.append(
                    {
                        "model": "noisy input (no model)",
                        "epoch": h["epoch"],
                        "metric": names[f"test_psnr_{peak}"],
                        "value": h[f"test_noisy_psnr_{peak}"],
                    }
                )
    return pd.DataFrame(rows, columns=["model", "epoch", "metric", "value"])


def _psnr_u8(a: Any, b: Any) -> float:
    """PSNR (max 1 convention, data in [-1, 1]) between two uint8 images."""
    x = np.asarray(a, dtype=np.float64) / 127.5 - 1.0
    y = np.asarray(b, dtype=np.float64) / 127.5 - 1.0
    with np.errstate(divide="ignore"):  # identical images: +inf dB
        return float(-10.0 * np.log10(np.mean((x - y) ** 2)))


def vispics_table(records: Mapping[str, RunRecord]) -> pd.DataFrame:
    """For each model's best, median and worst test image: the PSNR of the output against the
    clean image (denoising) and against the noisy input (the target ``vispics`` compares with),
    both from the stored 8-bit images in the max 1 convention."""
    rows = []
    for label, rec in records.items():
        for pick, ex in rec.extras.get("reconstructions", {}).items():
            rows.append(
                {
                    "model": label,
                    "test image": f"{pick} (#{ex['index']})",
                    "output vs clean (denoising)": _psnr_u8(ex["output"], ex["clean"]),
                    "output vs noisy input (vispics target)": _psnr_u8(ex["output"], ex["noisy"]),
                    "noisy input vs clean": _psnr_u8(ex["noisy"], ex["clean"]),
                }
            )
    return pd.DataFrame(rows).set_index(["model", "test image"]) if rows else pd.DataFrame()


def history_comparison_row(
    result: str,
    record: RunRecord,
    metric: str,
    paper: float | None,
    paper_source: str,
    scale: float = 1.0,
) -> dict[str, Any]:
    """A :func:`bnnlib_book.charts.comparison_table` row for a metric of the run's last epoch
    (training metrics live in the history, not in ``record.final``), times ``scale``."""
    last = record.history[-1]
    if metric not in last:
        raise ValueError(f"metric {metric!r} is not in the last epoch's history: {sorted(last)}")
    p = record.provenance
    return {
        "result": result,
        "paper": paper,
        "paper source": paper_source,
        "ours": last[metric] * scale,
        "profile": record.config.get("profile"),
        "dataset": p.get("dataset_label", p.get("dataset")),
        "epochs": p.get("epochs"),
        "hardware": p.get("hardware"),
    }
