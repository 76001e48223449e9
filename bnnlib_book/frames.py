"""Run records as pandas frames, for the book's tables and charts.

pandas is a book dependency, not a library one, so the frame of :mod:`bnnlib.experiment.records`
lives here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from bnnlib.experiment.records import RunRecord


def records_frame(records: Sequence[RunRecord]) -> pd.DataFrame:
    """A long pandas frame: one row per (run, epoch), config flattened into columns."""
    rows = []
    for rec in records:
        cfg = {
            "key": rec.key,
            "model": rec.config["model"],
            "dataset": rec.config["dataset"],
            "hparams_set": rec.config["hparams_set"],
            "seed": rec.config["seed"],
            "profile": rec.config.get("profile"),
            **{f"model_{k}": v for k, v in rec.config.get("model_kwargs", {}).items()},
            **{k: v for k, v in rec.config["hparams"].items() if not isinstance(v, (dict, list))},
        }
        for h in rec.history:
            row = dict(cfg)
            for k, v in h.items():
                if k == "hparams":
                    row |= {f"current_{hk}": hv for hk, hv in v.items()}
                elif not isinstance(v, dict):
                    row[k] = v
            rows.append(row)
    return pd.DataFrame(rows)


def best_epoch(history: Sequence[Mapping[str, Any]], metric: str = "val_acc") -> Mapping[str, Any]:
    """The epoch entry of ``history`` with the highest ``metric`` (the first on ties): model
    selection on the validation set, so the test accuracy read from it is not picked on the test
    set. ValueError when no entry has ``metric``."""
    scored = [h for h in history if h.get(metric) is not None]
    if not scored:
        raise ValueError(f"no epoch of this history has {metric!r}")
    return max(scored, key=lambda h: h[metric])
