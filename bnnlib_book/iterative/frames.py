"""Run records of layer-by-layer binarization as the frames its pages draw and grade.

The number a run is judged by is the test accuracy of a *fully binary* network: the accuracy at
the epoch of best validation accuracy among the epochs in which every layer is binary (the float
baseline: among all epochs). The released scripts log the best test accuracy over all epochs,
which picks the epoch on the test set and, for an iterative run, may pick an epoch in which some
layers are still float; the tables show it beside ours as "best test (as released)", over the
fully binary epochs only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from bnnlib.experiment.records import RunRecord
from bnnlib.methods.layerwise import sensitivity_score
from bnnlib_book.frames import best_epoch
from bnnlib_book.runs import LabelledRun, labels_by_key

LABELS = ("model", "kind", "order", "run", "seed")
ACCURACIES = ("train accuracy (%)", "validation accuracy (%)", "test accuracy (%)")


def _layers(record: RunRecord) -> int:
    return len(record.history[-1].get("binary_layers", []))


def binary_epochs(record: RunRecord) -> list[dict]:
    """The epochs the claim is about: those with every layer binary (float runs: every epoch;
    a sensitivity run: every epoch, with its one layer binary)."""
    kind = record.config["hparams_set"]
    if kind in ("float", "sensitivity"):
        return list(record.history)
    full = max(len(h.get("binary_layers", [])) for h in record.history)
    return [h for h in record.history if len(h.get("binary_layers", [])) == full]


def run_numbers(record: RunRecord) -> dict[str, float | int]:
    """Test accuracy at the best-validation fully binary epoch, the final and the best test
    accuracy (fully binary epochs), and the epochs they come from."""
    epochs = binary_epochs(record)
    best_val = best_epoch(epochs, "val_acc" if "val_acc" in epochs[0] else "test_acc")
    best_test = best_epoch(epochs, "test_acc")
    return {
        "test_at_best_val": best_val["test_acc"],
        "best_val_epoch": best_val["epoch"],
        "final_test": record.history[-1]["test_acc"],
        "best_test": best_test["test_acc"],
        "best_test_epoch": best_test["epoch"],
        "first_binary_epoch": epochs[0]["epoch"],
        "epochs": record.history[-1]["epoch"],
    }


def runs_frame(records: Sequence[RunRecord], runs: Sequence[LabelledRun]) -> pd.DataFrame:
    """One row per run with its labels and :func:`run_numbers`; records of other runs dropped."""
    labels = labels_by_key(runs)
    rows = [{**labels[r.key], "key": r.key, **run_numbers(r)} for r in records if r.key in labels]
    return pd.DataFrame(rows, columns=[*LABELS, "key", *_NUMBERS])


_NUMBERS = (
    "test_at_best_val",
    "best_val_epoch",
    "final_test",
    "best_test",
    "best_test_epoch",
    "first_binary_epoch",
    "epochs",
)


def seed_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model and run: n seeds, mean and std (over seeds, n - 1) of the three accuracies."""
    columns = ["model", "run", "n"]
    columns += [
        f"{c}_{s}" for c in ("test_at_best_val", "final_test", "best_test") for s in ("mean", "std")
    ]
    rows = []
    for (model, run), group in frame.groupby(["model", "run"], sort=False):
        row = {"model": model, "run": run, "n": len(group)}
        for col in ("test_at_best_val", "final_test", "best_test"):
            row[f"{col}_mean"] = group[col].mean()
            row[f"{col}_std"] = group[col].std(ddof=1) if len(group) > 1 else math.nan
        row["best_val_epoch"] = ", ".join(str(e) for e in group["best_val_epoch"])
        rows.append(row)
    return pd.DataFrame(rows, columns=[*columns, "best_val_epoch"])


SHOWN = {
    "test_at_best_val": "test acc. at best val. epoch (%)",
    "final_test": "final test acc. (%)",
    "best_test": "best test acc., as released (%)",
}


def shown_table(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`seed_table` as a page shows it: "mean +- std" in %, the std left out for one
    seed (never NaN), the seeds' best-validation epochs."""
    rows = []
    for _, row in table.iterrows():
        out = {"model": row["model"], "run": row["run"], "seeds": int(row["n"])}
        for col, name in SHOWN.items():
            mean, std = 100 * row[f"{col}_mean"], 100 * row[f"{col}_std"]
            out[name] = f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"
        out["best val. epochs"] = row["best_val_epoch"]
        rows.append(out)
    return pd.DataFrame(
        rows, columns=["model", "run", "seeds", *SHOWN.values(), "best val. epochs"]
    )


def curves_frame(records: Sequence[RunRecord], runs: Sequence[LabelledRun]) -> pd.DataFrame:
    """One row per run and epoch: labels, accuracies in %, and how many layers are binary."""
    labels = labels_by_key(runs)
    rows = []
    for rec in records:
        if rec.key not in labels:
            continue
        for h in rec.history:
            rows.append(
                {
                    **labels[rec.key],
                    "epoch": h["epoch"],
                    "train accuracy (%)": 100 * h["train_acc"],
                    "validation accuracy (%)": 100 * h["val_acc"] if "val_acc" in h else math.nan,
                    "test accuracy (%)": 100 * h["test_acc"],
                    "binary layers": len(h.get("binary_layers", [])),
                }
            )
    return pd.DataFrame(rows, columns=[*LABELS, "epoch", *ACCURACIES, "binary layers"])


def mean_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Per model, run and epoch: the accuracies averaged over seeds, and how many seeds."""
    grouped = curves.groupby(["model", "run", "epoch"], sort=False)
    out = grouped[list(ACCURACIES)].mean()
    out["seeds"] = grouped.size()
    return out.reset_index()


def timeline_frame(records: Sequence[RunRecord], runs: Sequence[LabelledRun]) -> pd.DataFrame:
    """When each layer is binary, from the records: one row per (run, layer) with the first and
    last epoch it was binary (a layer never binary is left out). One seed per run label."""
    labels = labels_by_key(runs)
    rows, seen = [], set()
    for rec in records:
        lab = labels.get(rec.key)
        if lab is None or (lab["model"], lab["run"]) in seen:
            continue
        seen.add((lab["model"], lab["run"]))
        first: dict[str, int] = {}
        for h in rec.history:
            for layer in h.get("binary_layers", []):
                first.setdefault(layer, h["epoch"])
        last = rec.history[-1]["epoch"]
        for position, (layer, start) in enumerate(first.items(), start=1):
            rows.append(
                {
                    "model": lab["model"],
                    "run": lab["run"],
                    "layer": layer,
                    "turn": position,
                    "first epoch": start,
                    "last epoch": last,
                }
            )
    return pd.DataFrame(
        rows, columns=["model", "run", "layer", "turn", "first epoch", "last epoch"]
    )


def sensitivity_frame(records: Sequence[RunRecord], runs: Sequence[LabelledRun]) -> pd.DataFrame:
    """The sensitivity runs: which layer, its best validation accuracy (the ranking's score), and
    the rank (1 = lowest accuracy: ``ascend`` binarizes it first)."""
    labels = labels_by_key(runs)
    rows = []
    for rec in records:
        lab = labels.get(rec.key)
        if lab is None or lab["kind"] != "sensitivity":
            continue
        name, score = sensitivity_score(rec.history)  # the score the guided runs rank by
        rows.append(
            {
                "model": lab["model"],
                "layer": f"L{lab['order']}",
                "name": name,
                "seed": lab["seed"],
                "score": score,
                "epochs": rec.history[-1]["epoch"],
            }
        )
    frame = pd.DataFrame(rows, columns=["model", "layer", "name", "seed", "score", "epochs"])
    frame["rank"] = frame.groupby(["model", "seed"])["score"].rank(method="first").astype("Int64")
    return frame.sort_values(["model", "seed", "rank"]).reset_index(drop=True)
