"""A page's runs as the design built them: each run config with the labels the page shows.

A design returns :class:`LabelledRun` values; the page trains their configs and joins the records
back to the labels by run key, so no run's role is ever recovered from its hyper-parameter values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from bnnlib.experiment.config import RunConfig
from bnnlib.experiment.records import RunRecord


@dataclass(frozen=True)
class LabelledRun:
    """One run of a page: the labels its tables, charts and claims use, and its RunConfig dict."""

    label: Mapping[str, str]
    config: Mapping[str, Any]

    @cached_property
    def key(self) -> str:
        """The run key: the name of the run's record (a hash of the resolved config)."""
        return RunConfig.from_dict(dict(self.config)).key()


def configs(runs: Iterable[LabelledRun]) -> list[dict[str, Any]]:
    """The configs of ``runs``, in order, as :func:`bnnlib.experiment.sweep.run_and_load` takes them."""
    return [dict(r.config) for r in runs]


def labels_by_key(runs: Iterable[LabelledRun]) -> dict[str, dict[str, str]]:
    """Run key -> labels; two runs with one key must carry the same labels."""
    out: dict[str, dict[str, str]] = {}
    for run in runs:
        label = dict(run.label)
        if out.setdefault(run.key, label) != label:
            raise ValueError(f"run {run.key} has two labels: {out[run.key]} and {label}")
    return out


def select(
    records: Sequence[RunRecord], runs: Iterable[LabelledRun], **wanted: str
) -> list[RunRecord]:
    """The records of the runs whose labels have the ``wanted`` values, in record order; records
    of no run in ``runs`` are left out."""
    labels = labels_by_key(runs)
    return [
        r
        for r in records
        if r.key in labels and all(labels[r.key].get(k) == v for k, v in wanted.items())
    ]


def recorded(
    runs: Sequence[LabelledRun], results_dir: str | Path
) -> tuple[list[RunRecord], list[LabelledRun]]:
    """The complete records of ``runs`` found in ``results_dir`` (in run order) and the runs that
    have none: a page that must not train (its runs take hours) shows what is recorded and says
    what is missing. Records are checked as :meth:`RunRecord.load` checks them."""
    from bnnlib.experiment.records import load_records

    folder = Path(results_dir)
    by_key = {r.key: r for r in load_records(folder)} if folder.is_dir() else {}
    found = [by_key[r.key] for r in runs if r.key in by_key and by_key[r.key].status == "complete"]
    missing = [r for r in runs if r.key not in by_key]
    return found, missing
