"""The papers' reported numbers, each with its source, for the book's "paper vs ours" tables.

The values live in ``paper_numbers/<paper>.yaml`` (package data), each with its source and a
provenance tag (README, report, code, paper, unverified). A value not yet transcribed is kept with
``value: null`` and the page says so instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FOLDER = Path(__file__).resolve().parent / "paper_numbers"
FIELDS = ("setting", "metric", "value", "unit", "source", "tag")
TAGS = ("README", "report", "code", "paper", "unverified", "n/a")


@dataclass(frozen=True)
class Reported:
    setting: str
    metric: str
    value: float | None
    unit: str
    source: str
    tag: str

    @property
    def shown(self) -> str:
        """The value as a page shows it: the number, or why there is none."""
        if self.value is None:
            return "not yet transcribed from the paper"
        return f"{self.value:g}{' ' + self.unit if self.unit else ''}"


def papers() -> list[str]:
    return sorted(p.stem for p in FOLDER.glob("*.yaml"))


def reported(paper: str) -> list[Reported]:
    """Every reported value of ``paper`` (a file stem in ``paper_numbers``)."""
    path = FOLDER / f"{paper}.yaml"
    if not path.exists():
        raise ValueError(f"no reported numbers for {paper!r}; papers: {', '.join(papers())}")
    entries = yaml.safe_load(path.read_text()) or []
    return [_entry(path, i, e) for i, e in enumerate(entries)]


def _entry(path: Path, i: int, e: Any) -> Reported:
    if not isinstance(e, dict) or set(e) != set(FIELDS):
        raise ValueError(f"{path} entry {i}: needs exactly the keys {', '.join(FIELDS)}")
    if e["tag"] not in TAGS:
        raise ValueError(f"{path} entry {i}: tag {e['tag']!r} is not one of {', '.join(TAGS)}")
    if e["value"] is not None and not isinstance(e["value"], (int, float)):
        raise ValueError(f"{path} entry {i}: value {e['value']!r} must be a number or null")
    return Reported(**{k: e[k] for k in FIELDS})
