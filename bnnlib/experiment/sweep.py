"""Run a grid of experiments: the product of a few hyper-parameter lists over one base config.

A grid file (YAML)::

    results_dir: results/tau_gamma        # optional; the caller's results_dir wins
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
are skipped; the rest run in this process (``workers=1``) or in worker processes. A failing config
does not stop the sweep: its error goes to ``<results_dir>/failures/<key>.json`` and the report
lists every failure.

Faults:

- **A worker dies** (``kill -9``, the out-of-memory killer, a crash in native code): only the config
  it was running fails, with the reason (``worker died (signal 9, SIGKILL) ...``) in its failure
  file; a fresh worker takes its place and the other configs go on. The dead config is not retried
  in the same sweep (what killed it, often memory, would likely kill it again): running the sweep
  again retries it, resuming from its last checkpoint. Each worker gets its configs one at a time
  over its own pipe, so a death is charged to that worker's config alone, never to configs that
  have not started.
- **The sweep's process dies** (even by ``kill -9``): its workers stop too, by SIGTERM from the
  kernel on Linux (``PR_SET_PDEATHSIG``) and, everywhere, by a watchdog thread that notices the
  parent is gone (:func:`stop_with_parent`); idle workers also see their pipe close.
- **Another process trains the same run** (a second sweep, or ``bnnlib train``, on the same
  results folder): every config runs under its run lock (:mod:`bnnlib.experiment.locks`). A config
  whose lock is held elsewhere is put back at the end of the queue; once the rest is done the
  sweep waits for the lock, then skips the config as recorded (or, if the other process died or
  failed, trains it). A run is never trained by two processes at once.
"""

from __future__ import annotations

import copy
import ctypes
import itertools
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing import connection
from pathlib import Path
from typing import Any

from bnnlib.atomic import write_json
from bnnlib.experiment.locks import RunLocked, run_lock
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
    key: str,
    config: dict[str, Any],
    results_dir: str,
    force: bool,
    wait: bool = False,
) -> tuple[str, str | None, float]:
    """Run one config under its run lock: (outcome, detail, seconds). ``"ran"``; ``"recorded"``
    when, once the lock is held, its complete record is found (another process trained it);
    ``"locked"`` with the holder's message when another process holds the lock and ``wait`` is
    False; ``"failed"`` with the formatted error, returned rather than raised so that one failure
    never takes the sweep down."""
    began = time.perf_counter()
    try:
        with run_lock(results_dir, key, wait=wait):
            if not force and _is_recorded(Path(results_dir) / f"{key}.json"):
                return "recorded", None, time.perf_counter() - began
            runner(config, results_dir=results_dir, force=force)
    except RunLocked as exc:
        return "locked", str(exc), time.perf_counter() - began
    except Exception:  # the sweep records every failure and goes on
        return "failed", traceback.format_exc(), time.perf_counter() - began
    return "ran", None, time.perf_counter() - began


@dataclass
class _Worker:
    process: Any
    conn: Any
    task: tuple[str, bool] | None = None  # (key, waited) of the config it runs now
    began: float = 0.0
    done: int = 0  # configs it has finished


def _run_pool(
    runner: Runner,
    configs: dict[str, dict[str, Any]],
    queue: deque[tuple[str, bool]],
    results_dir: str,
    force: bool,
    workers: int,
    settle: Callable[[str, bool, str, str | None, float], None],
) -> None:
    """Run the queued configs in up to ``workers`` spawned processes, one config at a time each,
    handing each worker its next config over its own pipe, so that the parent always knows which
    config a worker runs. A worker that dies fails only that config; a fresh worker takes its
    place while configs remain. Idle workers are sent home as soon as the queue is empty."""
    context = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    pool: list[_Worker] = []

    def start_worker() -> _Worker:
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_worker_main,
            args=(theirs, os.getpid(), threads),
            name="bnnlib-sweep-worker",
            daemon=False,  # a run may start processes of its own; the finally below joins them
        )
        process.start()
        theirs.close()
        worker = _Worker(process, ours)
        pool.append(worker)
        return worker

    def give(worker: _Worker) -> None:
        key, waited = queue.popleft()
        try:
            worker.conn.send((runner, key, configs[key], results_dir, force, waited))
        except OSError:  # the worker died since the last look
            if worker.done == 0:  # a fresh worker that cannot start would fail every config
                worker.task, worker.began = (key, waited), time.perf_counter()
            else:  # an established worker died idle: the config never started, run it elsewhere
                queue.appendleft((key, waited))
            retire(worker)
            return
        except Exception:  # the task cannot be sent (an unpicklable runner or config)
            settle(key, waited, "failed", traceback.format_exc(), 0.0)
            return
        worker.task, worker.began = (key, waited), time.perf_counter()

    def retire(worker: _Worker) -> None:
        """Remove a dead (or finished) worker from the pool: its unfinished config fails with the
        reason."""
        worker.process.join(timeout=10)
        if worker.process.is_alive():  # its pipe broke but it lives on: make sure it is gone
            worker.process.kill()
            worker.process.join()
        worker.conn.close()
        pool.remove(worker)
        if worker.task is not None:
            key, waited = worker.task
            worker.task = None
            reason = _death_reason(worker.process.exitcode, worker.process.pid)
            settle(key, waited, "failed", reason, time.perf_counter() - worker.began)

    try:
        while queue or any(w.task is not None for w in pool):
            for worker in [w for w in pool if w.task is None]:
                if queue:
                    give(worker)
            while queue and len(pool) < workers:
                give(start_worker())
            if not queue:
                for worker in [w for w in pool if w.task is None]:
                    _send_home(worker)
                    retire(worker)
            if not pool:
                continue
            handles = [w.conn for w in pool] + [w.process.sentinel for w in pool]
            ready = set(connection.wait(handles))
            for worker in list(pool):
                dead = worker.process.sentinel in ready
                if not dead and worker.conn not in ready:
                    continue
                result = None
                try:
                    if worker.conn.poll():
                        result = worker.conn.recv()
                except (EOFError, OSError):  # the worker died, perhaps half-way through a send
                    dead = True
                if result is not None and worker.task is not None:
                    key, waited = worker.task
                    worker.task, worker.done = None, worker.done + 1
                    settle(key, waited, *result)
                if dead:
                    retire(worker)
    finally:
        for worker in list(pool):  # normal end: none left; Ctrl-C or an error here: stop them
            if worker.task is not None:
                worker.process.terminate()
            else:
                _send_home(worker)
        for worker in list(pool):
            worker.process.join(timeout=30)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()


def _send_home(worker: _Worker) -> None:
    try:
        worker.conn.send(None)
    except OSError:  # already gone
        pass


def _death_reason(exitcode: int | None, pid: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = f", {signal.Signals(-exitcode).name}"
        except ValueError:
            name = ""
        how = f"worker died (signal {-exitcode}{name})"
    else:
        how = f"worker exited with code {exitcode}"
    return (
        f"{how} while running this config (pid {pid}); the other configs went on; run the sweep "
        "again to retry it (it resumes from its last checkpoint)"
    )


def _worker_main(conn: Any, parent_pid: int, threads: int | None) -> None:
    """A sweep worker: run the configs the parent sends until it sends None or goes away."""
    stop_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if task is None:
            return
        result = _run_one(*task)
        try:
            conn.send(result)
        except OSError:
            return


PR_SET_PDEATHSIG = 1


def stop_with_parent(parent_pid: int, *, pdeathsig: bool = True, interval: float = 1.0) -> None:
    """Make this process exit when ``parent_pid`` (its parent) dies, even by ``kill -9``: on Linux
    the kernel sends it SIGTERM (``prctl(PR_SET_PDEATHSIG)``); everywhere a watchdog thread checks
    every ``interval`` seconds that the parent is still its parent, and if not sends itself
    SIGTERM (a handler may save a checkpoint), then exits 30 s later at the latest."""
    if pdeathsig and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the watchdog alone
            pass
    if os.getppid() != parent_pid:  # the parent died before the line above
        os._exit(1)
    threading.Thread(
        target=_watch_parent, args=(parent_pid, interval), name="parent-watchdog", daemon=True
    ).start()


def _watch_parent(parent_pid: int, interval: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(interval)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
    os._exit(1)


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
    whose complete record exists are skipped; a failure (an error, a dead worker) is recorded and
    the rest go on; a config another process is training is waited for at the end (see the
    module's notes on faults)."""
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
    pending: dict[str, dict[str, Any]] = {}
    for key, config in configs_by_key.items():
        if not force and _is_recorded(target / f"{key}.json"):
            report.skipped.append(key)
        else:
            pending[key] = config
    if default_runner:
        _check_pending(pending, target, source)

    queue: deque[tuple[str, bool]] = deque((key, False) for key in pending)

    def settle(key: str, waited: bool, outcome: str, detail: str | None, seconds: float) -> None:
        """Record one config's outcome; a config locked by another process goes to the back of the
        queue, to be waited for once the rest is done."""
        if outcome == "locked" and not waited:
            queue.append((key, True))
            if log is not None:
                log(f"{detail.split(' (lock ')[0]}; coming back to it once the rest is done")
            return
        if outcome == "locked":  # still locked after waiting: a lock the runner took itself
            outcome = "failed"
        failure = target / FAILURES / f"{key}.json"
        if outcome == "ran":
            report.ran.append(key)
        elif outcome == "recorded":
            report.skipped.append(key)
        else:
            report.failed[key] = detail or outcome
            write_json(failure, {"key": key, "config": configs_by_key[key], "error": detail})
        if outcome != "failed":
            failure.unlink(missing_ok=True)
        if log is not None:
            done = len(report.ran) + len(report.failed) + len(report.skipped) - skipped_before
            status = {"ran": "ok", "recorded": "recorded by another process"}.get(outcome)
            if status is None:
                status = "FAILED: " + (detail or outcome).strip().splitlines()[-1]
            log(f"[{done}/{len(pending)}] {key} {status} ({seconds:.1f} s)")

    skipped_before = len(report.skipped)
    if workers == 1:
        while queue:
            key, waited = queue.popleft()
            settle(key, waited, *_run_one(runner, key, pending[key], str(target), force, waited))
    elif pending:
        _run_pool(runner, pending, queue, str(target), force, workers, settle)
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
