"""Sweeps under faults, with real processes: a worker killed by ``kill -9`` fails only its own
config, the sweep's parent killed by ``kill -9`` takes its workers with it, and two processes
never train the same run key at once (the run lock). Every wait is on a file a run writes (its
lock file, its checkpoint folder, a log line), bounded by a timeout, never a fixed sleep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from bnnlib.experiment.config import RunConfig
from bnnlib.experiment.locks import EXIT_LOCKED, LOCKS, RunLocked, lock_path, run_lock
from bnnlib.experiment.records import RunRecord
from bnnlib.experiment.runs import CHECKPOINTS
from bnnlib.experiment.sweep import FAILURES, expand_grid, run_configs
from tests.conftest import needs_mnist

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable

# A tiny real run: a fraction of a second per epoch on a CPU core, so that a kill lands mid-run.
MNIST_BASE = {
    "model": "binary_mlp",
    "dataset": "mnist",
    "hparams_set": "bop",
    "hparams": {"epochs": 8, "train_subset": 1000, "test_subset": 100, "width": 0.125},
}
FAKE_BASE = {
    "model": "binarynet",
    "dataset": "mnist",
    "hparams_set": "bop",
    "hparams": {"epochs": 1, "train_subset": 64},
}


# --- helpers ------------------------------------------------------------------------------------


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env |= {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return env


def bnnlib(*args: str, out: Path, **popen: object) -> subprocess.Popen:
    """``python -m bnnlib ARGS`` in a new process, its stdout and stderr into ``out``.*"""
    return subprocess.Popen(
        [PYTHON, "-m", "bnnlib", *args],
        cwd=ROOT,
        env=child_env(),
        stdout=open(out.with_suffix(".out"), "w"),  # noqa: SIM115 - closed with the process
        stderr=open(out.with_suffix(".err"), "w"),  # noqa: SIM115
        **popen,
    )


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def children_of(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(p) for p in (task / "children").read_text().split()}
    return found


def holder(results: Path, key: str) -> int | None:
    """The pid written in ``key``'s lock file, once it is there."""
    try:
        text = lock_path(results, key).read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def training(results: Path, key: str) -> int | None:
    """The pid training ``key`` once it is mid-run: it holds the lock and has checkpointed."""
    pid = holder(results, key)
    ckpt = results / CHECKPOINTS / key
    return pid if pid is not None and ckpt.is_dir() and any(ckpt.iterdir()) else None


def write_grid(path: Path, base: dict, grid: dict) -> Path:
    path.write_text(yaml.safe_dump({"base": base, "grid": grid}))
    return path


def keys_of(base: dict, grid: dict) -> list[str]:
    return [RunConfig.from_dict(c).key() for c in expand_grid(base, grid)]


def finish(proc: subprocess.Popen, out: Path, timeout: float = 90.0) -> tuple[int, str, str]:
    code = proc.wait(timeout=timeout)
    return code, out.with_suffix(".out").read_text(), out.with_suffix(".err").read_text()


@pytest.fixture
def procs():
    """Processes a test starts; any still running at the end is killed."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- a worker killed by kill -9 -----------------------------------------------------------------


def gated_run(config: dict, results_dir: str, force: bool) -> RunRecord:
    """A stand-in for ``run`` driven by files in ``<results_dir>/../state``: it notes its pid;
    seed 0 then waits to be killed (on its first attempt only), seed 1 waits for ``release``."""
    cfg = RunConfig.from_dict(config)
    key, state = cfg.key(), Path(results_dir).parent / "state"
    state.mkdir(exist_ok=True)
    (state / f"started-{key}").write_text(str(os.getpid()))
    gate = {0: state / f"killed-{key}", 1: state / "release"}.get(cfg.seed)
    if gate is not None and not (cfg.seed == 0 and (state / f"tried-{key}").exists()):
        (state / f"tried-{key}").write_text("")
        wait_for(gate.exists, f"{gate.name}", timeout=60)
    record = RunRecord(
        key=key,
        config=cfg.resolve().to_dict(),
        history=[{"epoch": 1, "train_loss": 0.5}],
        final={"test_acc": 0.9},
        provenance={"pid": os.getpid()},
    )
    record.save(Path(results_dir) / f"{key}.json")
    return record


def test_a_killed_worker_fails_only_its_config_and_a_rerun_completes_it(tmp_path: Path) -> None:
    grid = {"seed": [0, 1, 2, 3, 4]}
    configs, keys = expand_grid(FAKE_BASE, grid), keys_of(FAKE_BASE, grid)
    victim, slow, rest = keys[0], keys[1], keys[2:]
    results, state = tmp_path / "runs", tmp_path / "state"
    lines: list[str] = []
    done: dict[str, object] = {}

    def sweep_in_background() -> None:
        done["report"] = run_configs(
            configs, results, workers=2, runner=gated_run, log=lines.append
        )

    thread = threading.Thread(target=sweep_in_background)
    thread.start()
    try:
        pid = int(wait_for(lambda: _read(state / f"started-{victim}"), "the victim to start"))
        wait_for((state / f"started-{slow}").exists, "the slow config to start")
        assert parent_of(pid) == os.getpid()  # a worker, not this process
        assert not any((state / f"started-{k}").exists() for k in rest)  # both workers are busy
        os.kill(pid, signal.SIGKILL)
        failure = results / FAILURES / f"{victim}.json"
        wait_for(failure.exists, "the victim's failure file")
        # the worker that died held the victim only: nothing else failed
        assert sorted(p.stem for p in (results / FAILURES).iterdir()) == [victim]
        (state / "release").write_text("")
    finally:
        (state / "release").write_text("")
        thread.join(timeout=120)
    report = done["report"]
    assert set(report.failed) == {victim}
    assert sorted(report.ran) == sorted([slow, *rest])
    reason = json.loads(failure.read_text())["error"]
    assert reason.startswith(
        f"worker died (signal 9, SIGKILL) while running this config (pid {pid})"
    )
    assert sum("FAILED: worker died (signal 9, SIGKILL)" in line for line in lines) == 1
    assert all((results / f"{k}.json").is_file() for k in [slow, *rest])
    assert not (results / f"{victim}.json").exists()

    again = run_configs(configs, results, workers=2, runner=gated_run, log=None)
    assert again.ok and again.ran == [victim] and sorted(again.skipped) == sorted([slow, *rest])
    assert (results / f"{victim}.json").is_file() and not failure.exists()


def _read(path: Path) -> str | None:
    try:
        return path.read_text() or None
    except FileNotFoundError:
        return None


@needs_mnist
@pytest.mark.slow
def test_kill_9_of_a_training_worker_fails_its_config_only(tmp_path: Path, procs: list) -> None:
    grid = {"seed": [0, 1, 2]}
    grid_file = write_grid(tmp_path / "grid.yaml", MNIST_BASE, grid)
    keys, results = keys_of(MNIST_BASE, grid), tmp_path / "runs"
    args = ["sweep", str(grid_file), "--workers", "2", "--results-dir", str(results)]
    sweep = bnnlib(*args, out=tmp_path / "first")
    procs.append(sweep)
    pid = int(wait_for(lambda: training(results, keys[0]), "the first config to checkpoint"))
    assert parent_of(pid) == sweep.pid
    os.kill(pid, signal.SIGKILL)
    code, out, err = finish(sweep, tmp_path / "first")
    assert code == 1, err
    assert "3 configs: 2 ran, 0 already recorded, 1 failed" in out
    assert f"FAILED {keys[0]}: worker died (signal 9, SIGKILL) while running this config" in err
    assert sorted(p.stem for p in results.glob("*.json")) == sorted(keys[1:])
    assert lock_path(results, keys[0]).exists()  # left by the killed worker: it must not block

    rerun = bnnlib(*args[:2], "--results-dir", str(results), out=tmp_path / "again")  # 1 worker
    procs.append(rerun)
    code, out, err = finish(rerun, tmp_path / "again")
    assert code == 0, err
    assert "3 configs: 1 ran, 2 already recorded, 0 failed" in out
    record = RunRecord.load(results / f"{keys[0]}.json")
    assert record.status == "complete" and len(record.history) == 8
    assert not (results / FAILURES / f"{keys[0]}.json").exists()
    assert not (results / LOCKS).exists()  # every lock released and its file removed


# --- the sweep's parent killed by kill -9 -------------------------------------------------------


@needs_mnist
@pytest.mark.slow
def test_kill_9_of_the_sweep_stops_its_workers(tmp_path: Path, procs: list) -> None:
    base = {**MNIST_BASE, "hparams": {**MNIST_BASE["hparams"], "epochs": 500}}
    grid = {"seed": [0, 1, 2]}
    grid_file = write_grid(tmp_path / "grid.yaml", base, grid)
    keys, results = keys_of(base, grid), tmp_path / "runs"
    sweep = bnnlib(
        "sweep", str(grid_file), "--workers", "2", "--results-dir", str(results), out=tmp_path / "s"
    )
    procs.append(sweep)
    busy = {int(wait_for(lambda k=k: training(results, k), f"{k} to train")) for k in keys[:2]}
    workers = children_of(sweep.pid)
    assert busy <= workers and len(workers) >= 2
    sweep.send_signal(signal.SIGKILL)
    sweep.wait(timeout=30)
    try:
        wait_for(lambda: not any(alive(pid) for pid in workers), "the workers to exit", timeout=30)
    finally:  # a failing run must not leave them training
        for pid in filter(alive, workers):
            os.kill(pid, signal.SIGKILL)
    for key in keys[:2]:  # their locks went with them
        with run_lock(results, key):
            pass


def test_the_watchdog_stops_a_worker_whose_parent_dies_without_pdeathsig(
    tmp_path: Path, procs: list
) -> None:
    pid_file = tmp_path / "worker.pid"
    worker = (
        "import os, sys, time\n"
        "from bnnlib.experiment.sweep import stop_with_parent\n"
        "stop_with_parent(os.getppid(), pdeathsig=False, interval=0.05)\n"
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "time.sleep(60)\n"
    )
    parent = f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {worker!r}])\ntime.sleep(60)\n"
    middle = subprocess.Popen([PYTHON, "-c", parent], cwd=ROOT, env=child_env())
    procs.append(middle)
    pid = int(wait_for(lambda: _read(pid_file), "the worker to start"))
    assert parent_of(pid) == middle.pid
    middle.kill()
    middle.wait()
    try:
        wait_for(lambda: not alive(pid), "the orphaned worker to exit", timeout=20)
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


# --- one run key, two processes -----------------------------------------------------------------


@needs_mnist
@pytest.mark.slow
def test_two_trains_of_one_run_key_train_it_once(tmp_path: Path, procs: list) -> None:
    cfg = RunConfig.from_dict(MNIST_BASE)
    key, results = cfg.key(), tmp_path / "logs" / "mnist" / "binary_mlp"
    hp = ",".join(f"{k}={v}" for k, v in MNIST_BASE["hparams"].items())
    args = ["train", "binary_mlp", "--dataset", "mnist", "--hparams-set", "bop"]
    args += ["--hparams", hp, "--logdir", str(tmp_path / "logs")]
    first = bnnlib(*args, out=tmp_path / "first")
    procs.append(first)
    wait_for(lambda: training(results, key), "the first process to train")
    first.send_signal(signal.SIGSTOP)  # it holds the lock, mid-run, for as long as it is stopped
    try:
        second = subprocess.run(
            [PYTHON, "-m", "bnnlib", *args],
            cwd=ROOT,
            env=child_env(),
            capture_output=True,
            text=True,
        )
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == EXIT_LOCKED, second.stderr
    assert second.stderr.startswith(f"bnnlib train: run {key} is being trained by pid {first.pid} ")
    assert second.stderr.count("\n") == 1 and "epoch" not in second.stdout
    code, out, err = finish(first, tmp_path / "first")
    assert code == 0, err
    record = results / f"{key}.json"
    written = record.read_bytes()
    assert not (results / LOCKS).exists()

    third = subprocess.run(
        [PYTHON, "-m", "bnnlib", *args], cwd=ROOT, env=child_env(), capture_output=True, text=True
    )
    assert third.returncode == 0 and "epoch" not in third.stdout  # loaded, not trained again
    assert record.read_bytes() == written


@needs_mnist
@pytest.mark.slow
def test_two_sweeps_of_one_grid_train_each_run_once(tmp_path: Path, procs: list) -> None:
    grid = {"seed": [0, 1]}
    grid_file = write_grid(tmp_path / "grid.yaml", MNIST_BASE, grid)
    keys, results = keys_of(MNIST_BASE, grid), tmp_path / "runs"
    args = ["sweep", str(grid_file), "--results-dir", str(results)]
    first = bnnlib(*args, out=tmp_path / "first")
    procs.append(first)
    wait_for(lambda: training(results, keys[0]), "the first sweep to train its first config")
    first.send_signal(signal.SIGSTOP)
    second = bnnlib(*args, out=tmp_path / "second")
    procs.append(second)
    try:
        wait_for(
            lambda: (
                f"run {keys[0]} is being trained by pid {first.pid}"
                in (tmp_path / "second.out").read_text()
            ),
            "the second sweep to put the locked config back",
        )
    finally:
        first.send_signal(signal.SIGCONT)
    outputs = [finish(p, tmp_path / name) for p, name in [(first, "first"), (second, "second")]]
    assert all(code == 0 for code, _, _ in outputs), outputs
    trained = [line for _, out, _ in outputs for line in out.splitlines() if line.endswith(" s)")]
    for key in keys:  # each key trained by one sweep, found recorded by the other
        assert sum(f"] {key} ok (" in line for line in trained) == 1, trained
        assert sum(f"] {key} recorded by another process" in line for line in trained) == 1
    assert all(RunRecord.load(results / f"{k}.json").status == "complete" for k in keys)


# --- the lock itself ----------------------------------------------------------------------------


def test_a_lock_is_exclusive_across_processes_and_dies_with_its_holder(
    tmp_path: Path, procs: list
) -> None:
    results = tmp_path / "runs"
    holder_proc = hold_lock(results, "abc")
    procs.append(holder_proc)
    with pytest.raises(RunLocked, match=f"run abc is being trained by pid {holder_proc.pid} "):
        with run_lock(results, "abc"):
            pass
    holder_proc.kill()  # kill -9: no clean-up runs, the file stays, the kernel drops the lock
    holder_proc.wait()
    assert lock_path(results, "abc").exists()
    with run_lock(results, "abc") as path:
        with run_lock(results, "abc"):  # re-entrant in one thread
            assert path.read_text().strip() == str(os.getpid())
        assert path.exists()
    assert not path.exists() and not (results / LOCKS).exists()
    assert results.is_dir()  # it existed before: only folders the lock made are removed


def test_a_lock_leaves_no_folder_behind_for_a_run_that_wrote_nothing(tmp_path: Path) -> None:
    results = tmp_path / "new" / "runs"
    with pytest.raises(ValueError, match="bad input"):
        with run_lock(results, "abc"):
            assert lock_path(results, "abc").exists()
            raise ValueError("bad input")
    assert not results.exists()


def hold_lock(results: Path, key: str) -> subprocess.Popen:
    """A process that holds ``key``'s lock until its stdin is closed."""
    hold = (
        "import sys\n"
        "from bnnlib.experiment.locks import run_lock\n"
        f"with run_lock({str(results)!r}, {key!r}):\n"
        "    print('held', flush=True)\n"
        "    sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [PYTHON, "-c", hold],
        cwd=ROOT,
        env=child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline() == "held\n"
    return proc


def quick_run(config: dict, results_dir: str, force: bool) -> RunRecord:
    cfg = RunConfig.from_dict(config)
    record = RunRecord(
        key=cfg.key(),
        config=cfg.resolve().to_dict(),
        history=[{"epoch": 1, "train_loss": 0.5}],
        final={"test_acc": 0.9},
        provenance={"pid": os.getpid()},
    )
    record.save(Path(results_dir) / f"{record.key}.json")
    return record


def test_a_config_locked_elsewhere_waits_until_the_rest_is_done(
    tmp_path: Path, procs: list
) -> None:
    """The holder goes away without a record (it failed): the sweep then trains the config."""
    grid = {"seed": [0, 1]}
    configs, keys = expand_grid(FAKE_BASE, grid), keys_of(FAKE_BASE, grid)
    results = tmp_path / "runs"
    other = hold_lock(results, keys[0])
    procs.append(other)
    lines: list[str] = []
    done: dict[str, object] = {}
    thread = threading.Thread(
        target=lambda: done.update(
            report=run_configs(configs, results, runner=quick_run, log=lines.append)
        )
    )
    thread.start()
    try:
        wait_for(lambda: (results / f"{keys[1]}.json").exists(), "the free config to run")
        assert lines[0] == (
            f"run {keys[0]} is being trained by pid {other.pid}; coming back to it once the rest "
            "is done"
        )
        assert not (results / f"{keys[0]}.json").exists() and thread.is_alive()  # waiting
    finally:
        other.stdin.close()
        thread.join(timeout=60)
    report = done["report"]
    assert report.ok and report.ran == [keys[1], keys[0]] and report.skipped == []
