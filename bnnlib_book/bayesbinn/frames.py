"""BayesBiNN and STE run records as tables: per-epoch curves, mean +- std over seeds (population
std, as the paper reports), and the per-task accuracies of continual learning."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from bnnlib.experiment.records import RunRecord
from bnnlib_book.bayesbinn.design import method_of


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


def seed_summary(records: Sequence[RunRecord], metric: str = "test_acc") -> pd.DataFrame:
    """Per method: number of seeds, mean and population std (ddof=0, as the paper) of the final
    ``metric`` in percent."""
    if not records:
        raise ValueError("no run records to summarise")
    values = pd.DataFrame(
        [{"method": method_of(r), "value": 100.0 * r.final[metric]} for r in records]
    )
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
