"""Run records: what a run was (config), what it measured (history, final) and where (provenance).

A record is one JSON file ``<results_dir>/<key>.json`` written atomically, so a reader and the
sweep can trust any file they find: it is complete or it is absent. Its ``sha256`` field is the
hash of the rest of the record as canonical JSON (:func:`record_digest`), checked on load, and it
holds finite numbers only (NaN and infinity are not JSON), so any JSON reader can read it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bnnlib.atomic import CorruptFileError, non_finite_path, write_json

SCHEMA_VERSION = 1
_REQUIRED = ("key", "config", "history", "final", "provenance")


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
        """Write the record atomically with its content hash. A NaN or infinite number anywhere
        in it raises ValueError naming the field, and nothing is written."""
        d = self.to_dict()
        bad = non_finite_path(d)
        if bad is not None:
            raise ValueError(
                f"{path}: run record field {bad[0]}={bad[1]!r} is not a finite number and JSON "
                "cannot hold it; nothing was written"
            )
        write_json(path, {**d, "sha256": record_digest(d)}, allow_nan=False)
        self.path = Path(path)

    @classmethod
    def load(cls, path: str | Path) -> RunRecord:
        """Read and check a record. Refused with :class:`~bnnlib.atomic.CorruptFileError` (a
        ValueError), one line naming the file: empty, not JSON (truncated or garbled), not a run
        record, another schema, a missing field, or content that does not match its ``sha256``.
        A record without ``sha256`` (written before records carried one) is accepted as it is.
        What a caller does with a refused record is its policy: :func:`bnnlib.experiment.runs.run`
        moves it aside and runs again; ``bnnlib test`` refuses to evaluate."""
        path = Path(path)
        text = path.read_bytes()
        if not text.strip():
            raise CorruptFileError(path, "run record is empty")
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CorruptFileError(
                path, f"run record is not valid JSON (truncated or garbled: {exc})"
            ) from None
        if not isinstance(d, dict):
            raise CorruptFileError(path, "not a run record (a JSON object is expected)")
        if d.get("schema") != SCHEMA_VERSION:
            raise CorruptFileError(
                path, f"run record schema {d.get('schema')!r}, expected {SCHEMA_VERSION}"
            )
        missing = [k for k in _REQUIRED if k not in d]
        if missing:
            raise CorruptFileError(path, f"run record lacks the field {missing[0]!r}")
        digest = d.pop("sha256", None)
        if digest is not None and digest != _digest_or_none(d):
            raise CorruptFileError(
                path, "run record content does not match its sha256 (the file was changed)"
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


def record_digest(d: dict[str, Any]) -> str:
    """sha256 of a record dict (without its ``sha256`` field) as canonical JSON: sorted keys, no
    spaces, after a JSON round trip (so what is hashed is what a reader gets back)."""
    plain = json.loads(json.dumps(d, allow_nan=False))
    blob = json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def _digest_or_none(d: dict[str, Any]) -> str | None:
    try:
        return record_digest(d)
    except ValueError:  # a NaN the writer would never have written
        return None


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
