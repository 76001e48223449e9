"""Run records: what a run was (config), what it measured (history, final) and where (provenance).

A record is one JSON file ``<results_dir>/<key>.json`` written atomically, so a reader and the
sweep can trust any file they find: it is complete or it is absent.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bnnlib.atomic import write_json

SCHEMA_VERSION = 1


@dataclass
class RunRecord:
    key: str
    config: dict[str, Any]
    history: list[dict[str, Any]]
    final: dict[str, Any]
    provenance: dict[str, Any]
    extras: dict[str, Any] = field(default_factory=dict)
    status: str = "complete"
    path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "key": self.key,
            "status": self.status,
            "config": self.config,
            "final": self.final,
            "provenance": self.provenance,
            "history": self.history,
            "extras": self.extras,
        }

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_dict())
        self.path = Path(path)

    @classmethod
    def load(cls, path: str | Path) -> RunRecord:
        d = json.loads(Path(path).read_text())
        if d.get("schema") != SCHEMA_VERSION:
            raise ValueError(
                f"{path}: run record schema {d.get('schema')!r}, expected {SCHEMA_VERSION}"
            )
        return cls(
            key=d["key"],
            config=d["config"],
            history=d["history"],
            final=d["final"],
            provenance=d["provenance"],
            extras=d.get("extras", {}),
            status=d.get("status", "complete"),
            path=Path(path),
        )

    @property
    def label(self) -> str:
        """How a number from this run is labelled on a page: profile, dataset, epochs, hardware."""
        p = self.provenance
        return (
            f"{self.config.get('profile') or 'no profile'} profile, {p.get('dataset_label')}, "
            f"{p.get('train_size')} train images, {p.get('epochs')} epochs, {p.get('hardware')}"
        )


def load_records(results_dir: str | Path, **where: Any) -> list[RunRecord]:
    """Complete records in ``results_dir``; ``where`` filters on top-level config fields or hparams
    (``load_records(d, model="binaryae", threshold=1e-8)``)."""
    out = []
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            rec = RunRecord.load(path)
        except (ValueError, KeyError, json.JSONDecodeError):
            continue
        if rec.status == "complete" and all(
            _config_value(rec.config, k) == v for k, v in where.items()
        ):
            out.append(rec)
    return out


def _config_value(config: dict[str, Any], key: str) -> Any:
    if key in config:
        return config[key]
    return config.get("hparams", {}).get(key, config.get("model_kwargs", {}).get(key))


def hardware_description() -> str:
    """CPU model and core count, or the GPU name: the hardware label of a run."""
    import torch

    if torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)}"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {model}, {os.cpu_count()} cores"


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
