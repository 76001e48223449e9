"""BayesBiNN and STE run records as tables: per-epoch curves, mean +- std over seeds (population
std, as the paper reports), the per-task accuracies of continual learning, and our first epochs
beside the authors' logged runs (accuracy in %)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from bnnlib.experiment.records import RunRecord
from bnnlib_book.bayesbinn.design import method_of
from bnnlib_book.bayesbinn.reference import reference_band
from bnnlib_book.grading import EPOCH_MARGIN, band_position


def curves_frame(records: Sequence[RunRecord]) -> pd.DataFrame:
    """One row per (run, epoch): method, seed, epoch, train and test accuracy."""
    rows = [
        {
            "method": method_of(rec),
            "seed": rec.config["seed"],
            "run": f"{method_of(rec)}, seed {rec.config['seed']}",
            "epoch": h["epoch"],
            "train_acc": h.get("train_acc"),
            "test_acc": h.get("test_acc"),
        }
        for rec in records
        for h in rec.history
    ]
    return pd.DataFrame(rows)


def seed_summary(
    records: Sequence[RunRecord], metric: str = "test_acc", at: str = "final"
) -> pd.DataFrame:
    """Per method: number of seeds, mean and population std (ddof=0, as the paper) of ``metric``
    in percent, after the last epoch (``at="final"``) or at the epoch of best validation accuracy
    among those run (``at="best_val"``, the paper's model selection)."""
    if not records:
        raise ValueError("no run records to summarise")
    if at not in ("final", "best_val"):
        raise ValueError(f"at must be 'final' or 'best_val', got {at!r}")

    def value(r: RunRecord) -> float:
        if at == "final":
            return r.final[metric]
        best = max(
            (h for h in r.history if h.get("val_acc") is not None), key=lambda h: h["val_acc"]
        )
        return best[metric]

    values = pd.DataFrame([{"method": method_of(r), "value": 100.0 * value(r)} for r in records])
    grouped = values.groupby("method", sort=False)["value"]
    return pd.DataFrame(
        {"seeds": grouped.size(), "mean": grouped.mean(), "std": grouped.std(ddof=0)}
    )


def task_frame(records: Mapping[str, RunRecord]) -> pd.DataFrame:
    """Continual-learning accuracies, one row per (run label, tasks trained, task tested):
    ``after_task`` is the number of tasks trained so far, ``task`` the task tested."""
    rows = []
    for label, rec in records.items():
        for ev in rec.extras["task_evals"]:
            for t in range(1, ev["task"] + 1):
                rows.append(
                    {
                        "run": label,
                        "after_task": ev["task"],
                        "task": f"task {t}",
                        "accuracy": ev[f"acc_task_{t}"],
                    }
                )
            rows.append(
                {
                    "run": label,
                    "after_task": ev["task"],
                    "task": "average over seen tasks",
                    "accuracy": ev["avg_acc"],
                }
            )
    return pd.DataFrame(rows)


def mean_std_text(values: Sequence[float]) -> str:
    """``mean +- std (n=k)`` of ``values`` with two decimals (``mean (n=1)``; "not run" if empty)."""
    if not values:
        return "not run"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.2f} (n=1)"
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{mean:.2f} +- {std:.2f} (n={len(values)})"


def ours_percent(records: Sequence[RunRecord], metric: str = "test_acc") -> pd.DataFrame:
    """One row per (run, epoch) of our records: method, seed, epoch and ``metric`` in %."""
    return pd.DataFrame(
        [
            {
                "method": method_of(rec),
                "seed": rec.config["seed"],
                "run": f"ours, {method_of(rec)}, seed {rec.config['seed']}",
                "epoch": int(h["epoch"]),
                metric: 100.0 * h[metric],
            }
            for rec in records
            for h in rec.history
            if h.get(metric) is not None
        ],
        columns=["method", "seed", "run", "epoch", metric],
    )


def epoch_table(
    records: Sequence[RunRecord],
    logs: pd.DataFrame,
    dataset: str,
    *,
    graded: bool,
    metric: str = "test_acc",
    margin: float = EPOCH_MARGIN,
) -> pd.DataFrame:
    """Epoch by epoch (the epochs our runs trained): ours per method as "mean +- std (n=k)"
    (sample std), the authors' mean, min and max over their runs (``logs``, %), and where our
    BayesBiNN mean lies against their band widened by ``margin`` (``graded`` False: "not
    comparable"). Every cell is text or a number: no NaN."""
    ours = ours_percent(records, metric)
    epochs = sorted(ours["epoch"].unique())
    band = reference_band(logs, dataset, metric, epochs)
    methods = list(dict.fromkeys(ours["method"]))
    rows = []
    for e in epochs:
        at = ours[ours["epoch"] == e]
        row: dict[str, object] = {"epoch": int(e)}
        for m in methods:
            row[f"ours {m} (%)"] = mean_std_text(list(at.loc[at["method"] == m, metric]))
        if e in band.index:
            ref = band.loc[e]
            row |= {
                "authors' BayesBiNN mean (%)": f"{ref['mean']:.2f}",
                "authors' BayesBiNN min (%)": f"{ref['min']:.2f}",
                "authors' BayesBiNN max (%)": f"{ref['max']:.2f}",
                "authors' runs": str(int(ref["count"])),
            }
            bayesbinn = list(at.loc[at["method"] == "BayesBiNN", metric])
            position = (
                band_position(sum(bayesbinn) / len(bayesbinn), ref["min"], ref["max"], margin)
                if bayesbinn
                else "no BayesBiNN run"
            )
            row["our BayesBiNN mean vs their band"] = position if graded else "not comparable"
        else:
            row |= {
                k: "not logged"
                for k in (
                    "authors' BayesBiNN mean (%)",
                    "authors' BayesBiNN min (%)",
                    "authors' BayesBiNN max (%)",
                    "authors' runs",
                    "our BayesBiNN mean vs their band",
                )
            }
        rows.append(row)
    return pd.DataFrame(rows)


def overlay_frames(
    records: Sequence[RunRecord],
    logs: pd.DataFrame,
    dataset: str,
    shown_epochs: int,
    metric: str = "test_acc",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the overlay figure draws: the authors' band (epoch, mean, min, max over their runs,
    epochs 1..``shown_epochs``) and our runs (one row per run and epoch, ``metric`` in %)."""
    band = reference_band(logs, dataset, metric, range(1, shown_epochs + 1)).reset_index()
    return band, ours_percent(records, metric)
