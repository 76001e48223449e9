"""bnnlib.experiment.sweep with a fake runner: expansion, skipping recorded configs, failures kept apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bnnlib.experiment.config import RunConfig
from bnnlib.experiment.records import RunRecord
from bnnlib.experiment.sweep import expand_grid, load_grid, sweep

BASE = {
    "model": "binarynet",
    "dataset": "mnist",
    "hparams_set": "bop",
    "hparams": {"epochs": 1, "train_subset": 64},
    "profile": "smoke",
}


def fake_run(config: dict, results_dir: str, force: bool) -> RunRecord:
    """Stands in for bnnlib.experiment.runs.run: fails for seed 1, otherwise writes a record."""
    cfg = RunConfig.from_dict(config)
    if cfg.seed == 1:
        raise ValueError(f"boom for threshold {cfg.hparams.get('threshold')}")
    record = RunRecord(
        key=cfg.key(),
        config=cfg.resolve().to_dict(),
        history=[{"epoch": 1, "train_loss": 0.5}],
        final={"test_acc": 0.9},
        provenance={"fake": True},
    )
    record.save(Path(results_dir) / f"{record.key}.json")
    return record


def write_grid(path: Path, grid: dict, base: dict = BASE, **extra: object) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({"base": base, "grid": grid, **extra}))
    return path


def keys_of(base: dict, grid: dict) -> list[str]:
    return [RunConfig.from_dict(c).key() for c in expand_grid(base, grid)]


def test_expand_grid_sets_dotted_paths_in_product_order() -> None:
    base = {"model": "m", "hparams": {"epochs": 1}}
    configs = expand_grid(
        base,
        {"hparams.threshold": [1.0e-8, 1.0e-7], "model_kwargs.norm_layer": ["bn", "ln"]},
    )
    assert [(c["hparams"]["threshold"], c["model_kwargs"]["norm_layer"]) for c in configs] == [
        (1.0e-8, "bn"),
        (1.0e-8, "ln"),
        (1.0e-7, "bn"),
        (1.0e-7, "ln"),
    ]
    assert all(c["hparams"]["epochs"] == 1 for c in configs)
    assert base == {"model": "m", "hparams": {"epochs": 1}}


def test_failures_are_recorded_and_the_rest_runs(tmp_path: Path) -> None:
    grid = {"hparams.threshold": [1.0e-8, 1.0e-7], "seed": [0, 1, 2]}
    grid_file = write_grid(tmp_path / "grid.yaml", grid)
    results = tmp_path / "runs"
    report = sweep(grid_file, results_dir=results, runner=fake_run, log=None)

    keys = keys_of(BASE, grid)
    failing = {RunConfig.from_dict(c).key() for c in expand_grid(BASE, grid) if c["seed"] == 1}
    assert report.total == 6 and not report.ok
    assert set(report.failed) == failing
    assert sorted(report.ran) == sorted(set(keys) - failing)
    for key in failing:
        saved = json.loads((results / "failures" / f"{key}.json").read_text())
        assert saved["key"] == key and saved["config"]["seed"] == 1
        assert "ValueError: boom for threshold" in saved["error"]
    assert sorted(p.stem for p in results.glob("*.json")) == sorted(set(keys) - failing)


def test_recorded_configs_are_skipped_unless_forced(tmp_path: Path) -> None:
    grid = {"hparams.threshold": [1.0e-8, 1.0e-7], "seed": [0, 2]}
    grid_file = write_grid(tmp_path / "grid.yaml", grid, results_dir=str(tmp_path / "runs"))
    calls: list[dict] = []

    def counting_run(config: dict, results_dir: str, force: bool) -> RunRecord:
        calls.append(config)
        return fake_run(config, results_dir, force)

    first = sweep(grid_file, runner=counting_run, log=None)
    assert first.ok and len(first.ran) == 4 and len(calls) == 4
    second = sweep(grid_file, runner=counting_run, log=None)
    assert second.ok and second.ran == [] and sorted(second.skipped) == sorted(first.ran)
    assert len(calls) == 4
    forced = sweep(grid_file, runner=counting_run, force=True, log=None)
    assert len(forced.ran) == 4 and len(calls) == 8


def test_worker_pool_runs_configs_and_keeps_failures(tmp_path: Path) -> None:
    grid = {"seed": [0, 1, 2]}
    grid_file = write_grid(tmp_path / "grid.yaml", grid)
    lines: list[str] = []
    report = sweep(
        grid_file, workers=2, results_dir=tmp_path / "runs", runner=fake_run, log=lines.append
    )
    assert len(report.ran) == 2 and len(report.failed) == 1
    assert len(lines) == 3 and sum("FAILED: ValueError: boom" in line for line in lines) == 1


def test_a_failure_file_is_removed_once_the_config_succeeds(tmp_path: Path) -> None:
    grid_file = write_grid(tmp_path / "grid.yaml", {"seed": [1]})
    results = tmp_path / "runs"
    assert not sweep(grid_file, results_dir=results, runner=fake_run, log=None).ok
    (key,) = keys_of(BASE, {"seed": [1]})
    assert (results / "failures" / f"{key}.json").is_file()

    def healed(config: dict, results_dir: str, force: bool) -> RunRecord:
        return fake_run({**config, "seed": 0}, results_dir, force)

    assert sweep(grid_file, results_dir=results, runner=healed, log=None).ok
    assert not (results / "failures" / f"{key}.json").exists()


@pytest.mark.parametrize(
    ("grid", "extra", "message"),
    [
        ({"hparams.threshold": ["1e-8"]}, {}, "write it as 1.0e-08"),
        ({"seed": []}, {}, "must be a non-empty list"),
        ({"seed": [0]}, {"workers": 2}, "unknown key 'workers'"),
    ],
)
def test_bad_grid_files_are_rejected(tmp_path: Path, grid: dict, extra: dict, message: str) -> None:
    path = write_grid(tmp_path / "grid.yaml", grid, **extra)
    with pytest.raises((TypeError, ValueError), match=message):
        load_grid(path)


def test_invalid_configs_fail_before_anything_runs(tmp_path: Path) -> None:
    grid_file = write_grid(tmp_path / "grid.yaml", {"model": ["binarynet", "no_such_model"]})
    calls: list[dict] = []
    with pytest.raises(ValueError, match="no_such_model"):
        sweep(grid_file, results_dir=tmp_path, runner=lambda c, **kw: calls.append(c), log=None)
    assert calls == []


def test_results_dir_is_required(tmp_path: Path) -> None:
    grid_file = write_grid(tmp_path / "grid.yaml", {"seed": [0]})
    with pytest.raises(ValueError, match="no results_dir"):
        sweep(grid_file, runner=fake_run, log=None)
