"""Run a grid of experiments: the product of a few hyper-parameter lists over one base config.

A grid file (YAML)::

    results_dir: runs/bop_ablation        # optional; the caller's results_dir wins
    base:                                 # a RunConfig dict (see bnnlib.experiment.config)
      model: binaryvgg
      dataset: cifar10
      hparams_set: bop
      hparams: {epochs: 1, train_subset: 500}
      profile: cpu
    grid:                                 # dotted paths into the config -> values
      hparams.threshold: [1.0e-8, 1.0e-7]
      hparams.gamma: [1.0e-5, 1.0e-4]
      model_kwargs.norm_layer: [BatchNormalization, LayerNormalization]
      seed: [0, 1]

expands to one config per combination (16 here). Configs whose complete record already exists
are skipped; the rest run in a pool of worker processes. A failing config does not stop the
sweep: its error goes to ``<results_dir>/failures/<key>.json`` and the report lists every failure.
"""

from __future__ import annotations

import copy
import itertools
import json
import multiprocessing
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bnnlib.atomic import write_json
from bnnlib.experiment.yamlfile import find_number_strings, load_yaml_file

GRID_KEYS = ("base", "grid", "results_dir")
FAILURES = "failures"

Runner = Callable[..., Any]


@dataclass
class SweepReport:
    """What the sweep did, by run key."""

    results_dir: Path
    total: int
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def load_grid(grid_file: str | Path) -> dict[str, Any]:
    """Read and check a grid file (keys, non-empty value lists, no number written as a string)."""
    grid_file = Path(grid_file)
    data = load_yaml_file(grid_file, "grid file") or {}
    if not isinstance(data, dict):
        raise ValueError(f"{grid_file}: a grid file must be a mapping with keys {list(GRID_KEYS)}")
    unknown = sorted(set(data) - set(GRID_KEYS))
    if unknown:
        raise ValueError(f"{grid_file}: unknown key {unknown[0]!r}; valid keys: {list(GRID_KEYS)}")
    if not isinstance(data.get("base"), dict):
        raise ValueError(f"{grid_file}: 'base' must be a RunConfig mapping (model, dataset, ...)")
    grid = data.get("grid") or {}
    if not isinstance(grid, dict):
        raise ValueError(f"{grid_file}: 'grid' must map dotted config paths to lists of values")
    for path, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(
                f"{grid_file}: grid entry {path!r} must be a non-empty list, got {values!r}"
            )
    find_number_strings(data, str(grid_file))
    return data


def _set_path(config: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = config
    for name in parents:
        child = node.setdefault(name, {})
        if not isinstance(child, dict):
            raise ValueError(f"grid path {path!r}: {name!r} is {child!r}, not a mapping")
        node = child
    node[leaf] = value


def expand_grid(base: Mapping[str, Any], grid: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """One config dict per combination of the grid values, in file order (last key fastest)."""
    configs = []
    for combination in itertools.product(*grid.values()):
        config = copy.deepcopy(dict(base))
        for path, value in zip(grid, combination, strict=True):
            _set_path(config, path, value)
        configs.append(config)
    return configs


def _run_one(
    runner: Runner,
    config: dict[str, Any],
    results_dir: str,
    force: bool,
    threads: int | None = None,
) -> tuple[str | None, float]:
    """Run one config in a worker: (formatted error or None, seconds). The error is returned,
    not raised, so one failure never takes the pool down. ``threads`` caps torch's intra-op
    threads in a worker process, so that N workers do not oversubscribe N cores."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    began = time.perf_counter()
    try:
        runner(config, results_dir=results_dir, force=force)
    except Exception:  # the sweep records every failure and goes on
        return traceback.format_exc(), time.perf_counter() - began
    return None, time.perf_counter() - began


def _is_recorded(path: Path) -> bool:
    from bnnlib.experiment.records import RunRecord

    try:
        return RunRecord.load(path).status == "complete"
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return False


def sweep(
    grid_file: str | Path,
    workers: int = 1,
    results_dir: str | Path | None = None,
    force: bool = False,
    runner: Runner | None = None,
    log: Callable[[str], None] | None = print,
) -> SweepReport:
    """Run every config of ``grid_file`` (see :func:`run_configs`); ``results_dir`` overrides the
    file's. Check ``report.ok`` (the CLI exits non-zero when it is False)."""
    data = load_grid(grid_file)
    target = results_dir if results_dir is not None else data.get("results_dir")
    if target is None:
        raise ValueError(f"{grid_file}: no results_dir in the grid file and none given")
    configs = expand_grid(data["base"], data.get("grid") or {})
    return run_configs(
        configs, target, workers=workers, force=force, runner=runner, log=log, source=str(grid_file)
    )


def run_configs(
    configs: list[dict[str, Any]],
    results_dir: str | Path,
    *,
    workers: int = 1,
    force: bool = False,
    runner: Runner | None = None,
    log: Callable[[str], None] | None = print,
    source: str = "sweep",
) -> SweepReport:
    """Run ``configs`` through ``runner`` (default :func:`bnnlib.experiment.runs.run`, called as
    ``runner(config_dict, results_dir=..., force=...)``) in ``workers`` processes (1: in this
    process). Every config is validated, and its key computed, before anything runs; configs
    whose complete record exists are skipped; a failure is recorded and the rest go on."""
    from bnnlib.experiment.config import RunConfig

    start = time.perf_counter()
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    target = Path(results_dir)
    default_runner = runner is None
    if runner is None:
        from bnnlib.experiment.runs import run as runner

    unique: dict[str, dict[str, Any]] = {}
    for config in configs:
        try:
            key = RunConfig.from_dict(config).key()
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: invalid config {config}: {err}") from err
        unique.setdefault(key, config)
    configs_by_key = unique
    report = SweepReport(results_dir=target, total=len(configs_by_key))
    pending = {}
    for key, config in configs_by_key.items():
        if not force and _is_recorded(target / f"{key}.json"):
            report.skipped.append(key)
        else:
            pending[key] = config
    if default_runner:
        _check_pending(pending, target, source)

    def finished(key: str, error: str | None, seconds: float) -> None:
        failure = target / FAILURES / f"{key}.json"
        if error is None:
            report.ran.append(key)
            failure.unlink(missing_ok=True)
        else:
            report.failed[key] = error
            write_json(failure, {"key": key, "config": configs_by_key[key], "error": error})
        if log is not None:
            done = len(report.ran) + len(report.failed)
            status = "ok" if error is None else "FAILED: " + error.strip().splitlines()[-1]
            log(f"[{done}/{len(pending)}] {key} {status} ({seconds:.1f} s)")

    if workers == 1:
        for key, config in pending.items():
            finished(key, *_run_one(runner, config, str(target), force))
    elif pending:
        import os

        threads = max(1, (os.cpu_count() or 1) // workers)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {
                pool.submit(_run_one, runner, config, str(target), force, threads): key
                for key, config in pending.items()
            }
            for future in as_completed(futures):
                try:
                    error, seconds = future.result()
                except Exception:  # a worker died (killed, out of memory): record it, go on
                    error, seconds = traceback.format_exc(), 0.0
                finished(futures[future], error, seconds)
    report.seconds = time.perf_counter() - start
    return report


def _check_pending(pending: dict[str, dict[str, Any]], target: Path, source: str) -> None:
    """What :func:`bnnlib.experiment.runs.run` checks before a run (device, model, sizes, data,
    cache and results folders), for every config that will run, before the first one starts."""
    from bnnlib.experiment.config import RunConfig
    from bnnlib.experiment.preflight import check_run

    datasets: set[str] = set()
    for key, config in pending.items():
        cfg = RunConfig.from_dict(config).resolve()
        try:
            check_run(cfg, target, check_data=cfg.dataset not in datasets)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: config {key} {config}: {err}") from None
        datasets.add(cfg.dataset)


def run_and_load(
    configs: list[dict[str, Any]], results_dir: str | Path, *, workers: int = 1
) -> list[Any]:
    """What a caller that needs every record of a list of configs uses: run ``configs`` (recorded
    ones are loaded, not re-run) and return their run records in the order of ``configs``. Any
    failure raises with the first error, so a result never silently lacks a run."""
    from bnnlib.experiment.config import RunConfig
    from bnnlib.experiment.records import load_records

    report = run_configs(configs, results_dir, workers=workers)
    print(f"{len(report.ran)} trained, {len(report.skipped)} loaded from records")
    if report.failed:
        first_error = next(iter(report.failed.values()))
        raise RuntimeError(f"{len(report.failed)} runs failed; the first:\n{first_error}")
    by_key = {r.key: r for r in load_records(results_dir)}
    return [by_key[RunConfig.from_dict(c).key()] for c in configs]
