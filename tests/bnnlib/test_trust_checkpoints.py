"""What a run trusts: checkpoints, weights, run records and cached arrays that are corrupt,
truncated, empty, foreign or crafted to run code are refused with one line (and moved aside or
re-made, never silently used); divergence above a loss ceiling; SIGTERM, Ctrl-C and kill -9 of a
real ``python -m bnnlib train`` resume to the record of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from bnnlib.atomic import (
    CorruptFileError,
    load_checkpoint,
    remove_orphan_temps,
    save_checkpoint,
    save_torch,
)
from bnnlib.cli import main
from bnnlib.data import check_dataset, dataset_cache_folder, load_dataset
from bnnlib.experiment.config import RunConfig
from bnnlib.experiment.records import RunRecord
from bnnlib.experiment.runs import CHECKPOINTS, FAILURES, MODEL_FILE, prepare, run
from bnnlib.methods.continual import run_continual
from bnnlib.train.trainer import (
    CHECKPOINT_NAME,
    Trainer,
    TrainingDiverged,
    TrainingInterrupted,
)
from tests.conftest import needs_mnist

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]
SMALL = {"epochs": 2, "train_subset": 600, "test_subset": 300, "batch_size": 50}


def _cfg(**hparams: Any) -> RunConfig:
    return RunConfig(
        model="binary_mlp",
        dataset="mnist",
        hparams_set="bop",
        hparams={**SMALL, **hparams},
        model_kwargs={"width": 0.125},
        device="cpu",
    )


def _strip(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in history]


def _one_warning(caplog: pytest.LogCaptureFixture, *needles: str) -> str:
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(lines) == 1, lines
    assert "\n" not in lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


class _Evil:
    """Unpickling this runs code: it would write ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (Path.write_text, (self.marker, "code ran"))


def _flip_in_tensor(path: Path, tensor: torch.Tensor) -> None:
    """Flip one bit inside the stored bytes of ``tensor`` (the file still loads)."""
    data = bytearray(path.read_bytes())
    raw = tensor.detach().contiguous().numpy().tobytes()
    at = bytes(data).find(raw)
    assert at >= 0
    data[at + len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _largest(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return max(state.values(), key=lambda t: t.numel())


def _corrupt(path: Path, how: str, tensor: torch.Tensor | None = None) -> None:
    if how == "flipped":
        assert tensor is not None
        _flip_in_tensor(path, tensor)
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "foreign_text":
        path.write_text('{"not": "a checkpoint"}\n')
    elif how == "foreign_torch":
        torch.save({"weights": torch.ones(3)}, path)
    else:
        raise AssertionError(how)


# -- checkpoints ----------------------------------------------------------------------------------


@needs_mnist
def test_every_trainer_checkpoint_loads_with_weights_only(tmp_path: Path) -> None:
    """Tensors and plain data only: torch's safe loader reads the file, and the envelope's hash
    is the content's."""
    p = prepare(_cfg(epochs=1), progress=False)
    p.trainer.fit(p.data.train, 1, checkpoint_dir=tmp_path)
    raw = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert raw["format"] == "bnnlib.checkpoint" and len(raw["sha256"]) == 64
    state, digest = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert digest == raw["sha256"] and state["epoch"] == 1
    with pytest.raises(TypeError, match="plain data only"):
        save_checkpoint(tmp_path / "bad.pt", {"rng": np.random.default_rng(0)})
    assert not (tmp_path / "bad.pt").exists()


@needs_mnist
def test_a_crafted_pickle_checkpoint_never_runs_code(tmp_path: Path, caplog) -> None:
    marker = tmp_path / "marker"
    ckpt = tmp_path / "ckpt" / CHECKPOINT_NAME
    ckpt.parent.mkdir()
    torch.save({"epoch": _Evil(marker), "model": {}}, ckpt)
    with pytest.raises(CorruptFileError, match="needs code to load"):
        load_checkpoint(ckpt)
    p = prepare(_cfg(epochs=1), progress=False)
    assert p.trainer.resume_from(ckpt) is False
    assert not marker.exists()
    _one_warning(caplog, str(ckpt), "moved it aside", "from scratch")
    assert not ckpt.exists() and len(list(ckpt.parent.glob("last.pt.corrupt-*"))) == 1


@needs_mnist
@pytest.mark.parametrize("how", ["flipped", "truncated", "empty", "foreign_text", "foreign_torch"])
def test_a_corrupt_checkpoint_is_moved_aside_and_training_starts_afresh(
    how: str, tmp_path: Path, caplog
) -> None:
    straight = prepare(_cfg(), progress=False)
    h_straight = straight.trainer.fit(straight.data.train, 2)

    first = prepare(_cfg(), progress=False)
    first.trainer.fit(first.data.train, 1, checkpoint_dir=tmp_path)
    ckpt = tmp_path / CHECKPOINT_NAME
    _corrupt(ckpt, how, _largest(first.model.state_dict()) if how == "flipped" else None)
    with pytest.raises(CorruptFileError) as err:
        load_checkpoint(ckpt)
    assert str(ckpt) in str(err.value) and "\n" not in str(err.value)

    again = prepare(_cfg(), progress=False)
    h_again = again.trainer.fit(again.data.train, 2, checkpoint_dir=tmp_path)
    _one_warning(caplog, str(ckpt), "from scratch")
    assert len(list(tmp_path.glob("last.pt.corrupt-*"))) == 1  # kept for inspection
    assert _strip(h_again) == _strip(h_straight)  # from scratch, not from the garbage
    for (name, a), b in zip(
        straight.model.state_dict().items(), again.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    assert load_checkpoint(ckpt)[0]["epoch"] == 2


@needs_mnist
def test_a_checkpoint_written_before_hashes_still_resumes(tmp_path: Path) -> None:
    straight = prepare(_cfg(), progress=False)
    h_straight = straight.trainer.fit(straight.data.train, 2)
    first = prepare(_cfg(), progress=False)
    first.trainer.fit(first.data.train, 1)
    save_torch(tmp_path / CHECKPOINT_NAME, first.trainer.state_dict())  # the old plain format
    resumed = prepare(_cfg(), progress=False)
    assert resumed.trainer.resume_from(tmp_path / CHECKPOINT_NAME)
    assert _strip(resumed.trainer.fit(resumed.data.train, 2)) == _strip(h_straight)


# -- run records and weights --------------------------------------------------------------------


def _flip_digit(path: Path, field: str) -> None:
    text = path.read_text()
    at = text.index(f'"{field}": ') + len(field) + 6
    while not text[at].isdigit() or text[at] == "0":
        at += 1
    path.write_text(text[:at] + str((int(text[at]) + 1) % 10) + text[at + 1 :])


@needs_mnist
@pytest.mark.parametrize(
    "how", ["flipped", "truncated", "empty", "foreign", "key_missing", "other_key"]
)
def test_a_corrupt_record_is_refused_then_moved_aside_and_rewritten(
    how: str, tmp_path: Path, caplog, capsys
) -> None:
    cfg = _cfg(epochs=1)
    rec = run(cfg, tmp_path, progress=False)
    path = rec.path
    assert json.loads(path.read_text())["sha256"]
    if how == "flipped":
        _flip_digit(path, "test_acc")  # still valid JSON, another number
    elif how == "truncated":
        path.write_text(path.read_text()[:200])
    elif how == "empty":
        path.write_text("")
    elif how == "foreign":
        path.write_text("[1, 2, 3]\n")
    elif how == "key_missing":
        d = json.loads(path.read_text())
        del d["history"]
        path.write_text(json.dumps(d))
    elif how == "other_key":
        d = json.loads(path.read_text())
        d.pop("sha256")
        d["key"] = "0123456789ab"
        path.write_text(json.dumps(d))
    if how != "other_key":
        with pytest.raises(CorruptFileError) as err:
            RunRecord.load(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)

        # bnnlib test refuses it: one line, exit 2, no numbers
        args = ["binary_mlp", "--dataset", "mnist", "--hparams-set", "bop", "--device", "cpu"]
        hp = "epochs=1,train_subset=600,test_subset=300,batch_size=50,width=0.125"
        capsys.readouterr()
        assert main(["test", *args, "--hparams", hp, "--logdir", str(path)]) == 2
        out, err_text = capsys.readouterr()
        assert out == "" and len(err_text.strip().splitlines()) == 1
        assert str(path) in err_text and "Traceback" not in err_text

    # run() sets it aside and writes the record again from the checkpoint, without training
    trained: list[int] = []
    again = run(cfg, tmp_path, progress=False, on_epoch=lambda m: trained.append(m["epoch"]))
    assert trained == []
    _one_warning(caplog, str(path), "moved it aside")
    assert again.final == rec.final and _strip(again.history) == _strip(rec.history)
    assert RunRecord.load(path).final == rec.final
    assert len(list(tmp_path.glob(f"{path.name}.corrupt-*"))) == 1


@needs_mnist
def test_committed_records_without_a_hash_still_load_with_their_keys() -> None:
    records = [
        p
        for p in (REPO / "runs").rglob("*.json")
        if CHECKPOINTS not in p.parts and FAILURES not in p.parts
    ]
    assert records
    for path in records:
        d = json.loads(path.read_text())
        rec = RunRecord.load(path)
        assert rec.key == d["key"] == path.stem


def test_a_record_with_a_non_finite_number_is_refused_and_not_written(tmp_path: Path) -> None:
    rec = RunRecord(
        key="k",
        config={"hparams": {"threshold": float("inf")}},
        history=[],
        final={},
        provenance={},
    )
    with pytest.raises(ValueError, match=r"config\.hparams\.threshold=inf") as err:
        rec.save(tmp_path / "k.json")
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []
    # A run refuses it earlier, when its hparams are validated, before anything is written.
    with pytest.raises(ValueError, match=r"hparams threshold=inf: must be a finite number"):
        run(_cfg(threshold=1e999), tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


@needs_mnist
@pytest.mark.parametrize("how", ["flipped", "truncated", "empty", "foreign_torch", "evil", "other"])
def test_bnnlib_test_refuses_garbled_weights(how: str, tmp_path: Path, capsys) -> None:
    args = ["binary_mlp", "--dataset", "mnist", "--hparams-set", "bop", "--device", "cpu"]
    hp = "epochs=1,train_subset=600,test_subset=300,batch_size=50,width=0.125"
    assert main(["train", *args, "--hparams", hp, "--logdir", str(tmp_path)]) == 0
    record = Path(capsys.readouterr().out.split("run record: ")[1].split()[0])
    weights = record.parent / CHECKPOINTS / record.stem / MODEL_FILE
    marker = tmp_path / "marker"
    if how == "evil":
        torch.save({"weight": _Evil(marker)}, weights)
    elif how == "other":  # a valid weights file of another run
        other = ["binary_mlp", "--dataset", "mnist", "--hparams-set", "bop", "--device", "cpu"]
        hp2 = hp.replace("epochs=1", "epochs=1,threshold=1e-7")
        assert main(["train", *other, "--hparams", hp2, "--logdir", str(tmp_path / "b")]) == 0
        other_record = Path(capsys.readouterr().out.split("run record: ")[1].split()[0])
        foreign = other_record.parent / CHECKPOINTS / other_record.stem / MODEL_FILE
        weights.write_bytes(foreign.read_bytes())
    else:
        state, _ = load_checkpoint(weights)
        _corrupt(weights, how, _largest(state) if how == "flipped" else None)
    code = main(["test", *args, "--hparams", hp, "--logdir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(weights) in err and "--force" in err
    assert not marker.exists()


# -- cached dataset arrays ------------------------------------------------------------------------


@needs_mnist
@pytest.mark.parametrize("how", ["flipped", "truncated", "empty", "foreign", "legacy_truncated"])
def test_a_corrupt_cached_array_is_set_aside_and_decoded_again(
    how: str, tmp_path: Path, monkeypatch, caplog
) -> None:
    monkeypatch.setenv("BNNLIB_CACHE_DIR", str(tmp_path / "cache"))
    _, good = load_dataset("mnist")
    folder = dataset_cache_folder("mnist")
    assert (folder / "manifest.json").is_file()
    target = folder / "test_x.npy"
    if how == "flipped":
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x40
        target.write_bytes(bytes(data))
    elif how == "truncated":
        target.write_bytes(target.read_bytes()[:1000])
    elif how == "empty":
        target.write_bytes(b"")
    elif how == "foreign":
        np.save(target, np.zeros((10, 1, 28, 28), np.float32))
    elif how == "legacy_truncated":  # a cache from before manifests
        (folder / "manifest.json").unlink()
        target.write_bytes(target.read_bytes()[:1000])
    caplog.clear()
    check_dataset("mnist")
    _one_warning(caplog, str(folder), "decoded again")
    _, again = load_dataset("mnist")
    assert np.array_equal(again.test_x, good.test_x) and np.array_equal(again.train_y, good.train_y)
    assert len(list(folder.parent.glob(f"{folder.name}.corrupt-*"))) == 1


@needs_mnist
def test_a_cache_without_a_manifest_is_accepted(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("BNNLIB_CACHE_DIR", str(tmp_path / "cache"))
    _, good = load_dataset("mnist")
    folder = dataset_cache_folder("mnist")
    (folder / "manifest.json").unlink()
    _, again = load_dataset("mnist")
    assert np.array_equal(again.train_x, good.train_x)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


# -- orphan temporary files -----------------------------------------------------------------------


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_orphan_temps_of_dead_writers_are_removed_live_ones_kept(tmp_path: Path) -> None:
    dead = tmp_path / f".last.pt.{_dead_pid()}-abc123.tmp"
    live = tmp_path / f".last.pt.{os.getpid()}-def456.tmp"
    other = tmp_path / f".x.json.{_dead_pid()}-ghi.tmp"
    for p in (dead, live, other):
        p.write_bytes(b"half")
    assert remove_orphan_temps(tmp_path, "last.pt") == [dead]
    assert live.exists() and other.exists()


@needs_mnist
def test_a_run_removes_the_orphan_temps_of_its_record_and_checkpoint(tmp_path: Path) -> None:
    cfg = _cfg(epochs=1)
    key = cfg.key()
    ckpt_dir = tmp_path / CHECKPOINTS / key
    ckpt_dir.mkdir(parents=True)
    orphans = [
        ckpt_dir / f".last.pt.{_dead_pid()}-aaa.tmp",
        ckpt_dir / f".model.pt.{_dead_pid()}-bbb.tmp",
        tmp_path / f".{key}.json.{_dead_pid()}-ccc.tmp",
    ]
    for p in orphans:
        p.write_bytes(b"half-written")
    run(cfg, tmp_path, progress=False)
    assert not any(p.exists() for p in orphans)
    assert not list(tmp_path.rglob("*.tmp"))


# -- divergence -----------------------------------------------------------------------------------


@needs_mnist
def test_a_loss_above_max_loss_is_divergence_and_keeps_the_last_good_checkpoint(
    tmp_path: Path,
) -> None:
    p = prepare(_cfg(max_loss=1e6), progress=False)
    p.trainer.fit(p.data.train, 1, checkpoint_dir=tmp_path)
    good, _ = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    calls = {"n": 0}
    real_loss = p.trainer.loss_fn

    def exploding(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return real_loss(out, y) * (4e32 if calls["n"] >= 3 else 1.0)  # finite, but huge

    p.trainer.loss_fn = exploding
    with pytest.raises(TrainingDiverged) as err:
        p.trainer.fit(p.data.train, 2, checkpoint_dir=tmp_path)
    message = str(err.value)
    assert "exceeded max_loss=1e+06 at epoch 2, step 3" in message and "\n" not in message
    assert "last good checkpoint (epoch 1)" in message
    kept, _ = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert kept["epoch"] == 1
    for k, v in good["model"].items():
        assert torch.equal(kept["model"][k], v)


def test_max_loss_enters_the_config_only_when_given() -> None:
    plain = _cfg().resolve()
    assert "max_loss" not in plain.hparams
    assert _cfg(max_loss=100.0).resolve().hparams["max_loss"] == 100.0
    assert _cfg(max_loss=100.0).key() != plain.key()
    for bad in (0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="max_loss"):
            _cfg(max_loss=bad).resolve()


# -- interruption in-process: a signal at a known step ----------------------------------------


class _SignalAt:
    """A loader that sends ``signum`` to this process once, before batch ``index`` of epoch
    ``epoch``; otherwise the wrapped loader."""

    def __init__(self, loader: Any, signum: int, epoch: int, index: int) -> None:
        self.loader, self.signum, self.at = loader, signum, (epoch, index)
        self.sent = False
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.loader.set_epoch(epoch)

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            if not self.sent and (self.epoch, i) == self.at:
                self.sent = True
                os.kill(os.getpid(), self.signum)
            yield batch


@needs_mnist
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_epoch_saves_that_step_and_resume_equals_uninterrupted(
    signum: int, tmp_path: Path
) -> None:
    straight = prepare(_cfg(), progress=False)
    h_straight = straight.trainer.fit(straight.data.train, 2, test=straight.data.test)

    p = prepare(_cfg(), progress=False)
    stopping = _SignalAt(p.data.train, signum, epoch=2, index=4)
    with pytest.raises(TrainingInterrupted) as err:
        p.trainer.fit(stopping, 2, test=p.data.test, checkpoint_dir=tmp_path)
    assert err.value.exit_code == 128 + signum
    assert err.value.epoch == 2 and err.value.step == 5
    assert "epoch 2, step 5 of 12" in str(err.value) and "mid-epoch" in str(err.value)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers are restored
    state, _ = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["epoch"] == 1 and state["in_epoch"]["step"] == 5

    resumed = prepare(_cfg(), progress=False)
    h_resumed = resumed.trainer.fit(
        resumed.data.train, 2, test=resumed.data.test, checkpoint_dir=tmp_path
    )
    assert _strip(h_resumed) == _strip(h_straight)
    for (name, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


@needs_mnist
def test_without_mid_epoch_checkpoints_the_epoch_boundary_is_kept(tmp_path: Path) -> None:
    p = prepare(_cfg(), progress=False)
    p.trainer.mid_epoch_checkpoints = False
    with pytest.raises(TrainingInterrupted, match="checkpoint of epoch 1 is kept") as err:
        p.trainer.fit(_SignalAt(p.data.train, signal.SIGTERM, 2, 3), 2, checkpoint_dir=tmp_path)
    assert err.value.exit_code == 143
    state, _ = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["epoch"] == 1 and "in_epoch" not in state


@needs_mnist
def test_continual_learning_resumes_mid_epoch_of_a_new_task(tmp_path: Path, monkeypatch) -> None:
    """A checkpoint inside the first epoch of task 2 must not set the prior or restart the
    schedule a second time."""
    cfg = RunConfig(
        model="mlp_cl_h100",
        dataset="mnist",
        hparams_set="bayesbinn",
        hparams={
            "epochs": 2,
            "train_subset": 500,
            "test_subset": 200,
            "eval_samples": 4,
            "lr": 0.1,
        },
        device="cpu",
    )
    straight = run_continual(cfg, num_tasks=2, results_dir=tmp_path / "a")

    real_step = Trainer.train_step
    calls = {"n": 0}

    def step_then_signal(self: Trainer, x: torch.Tensor, y: torch.Tensor) -> Any:
        out = real_step(self, x, y)
        calls["n"] += 1
        if calls["n"] == 13:  # 5 steps per epoch: step 3 of epoch 3, the first of task 2
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(Trainer, "train_step", step_then_signal)
    with pytest.raises(TrainingInterrupted, match="epoch 3, step 3"):
        run_continual(cfg, num_tasks=2, results_dir=tmp_path / "b")
    failure = json.loads(next((tmp_path / "b" / FAILURES).glob("*.json")).read_text())
    assert failure["status"] == "interrupted" and failure["epoch"] == 3
    monkeypatch.undo()
    resumed = run_continual(cfg, num_tasks=2, results_dir=tmp_path / "b")
    assert resumed.extras == straight.extras
    assert _strip(resumed.history) == _strip(straight.history)
    assert not list((tmp_path / "b" / FAILURES).glob("*.json"))


# -- the command line, in real processes ----------------------------------------------------------

CLI_HP = "epochs=2,train_subset=6000,test_subset=500,batch_size=50,width=0.125"


def _train_cmd(logdir: Path, hparams: str = CLI_HP) -> list[str]:
    return [
        sys.executable,
        "-u",
        "-m",
        "bnnlib",
        "train",
        "binary_mlp",
        "--dataset",
        "mnist",
        "--hparams-set",
        "bop",
        "--device",
        "cpu",
        "--hparams",
        hparams,
        "--logdir",
        str(logdir),
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _record(logdir: Path) -> dict[str, Any]:
    (path,) = (logdir / "mnist" / "binary_mlp").glob("*.json")
    return json.loads(path.read_text())


def _complete(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)


def _stop_after_first_epoch(cmd: list[str], signum: int) -> tuple[int, str]:
    """Start ``cmd``, send ``signum`` once it printed epoch 1, and return (status, stderr)."""
    proc = subprocess.Popen(
        cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("epoch 1:"):
            proc.send_signal(signum)
            break
    proc.stdout.read()
    proc.wait(timeout=600)
    assert proc.stderr is not None
    return proc.returncode, proc.stderr.read()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    logdir = tmp_path_factory.mktemp("straight")
    done = _complete(_train_cmd(logdir))
    assert done.returncode == 0, done.stderr
    return _record(logdir)


def _same_run(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["key"] == b["key"] and a["final"] == b["final"]
    assert _strip(a["history"]) == _strip(b["history"])


@needs_mnist
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signalled_cli_run_saves_exits_and_resumes_to_the_same_record(
    signum: int, uninterrupted: dict[str, Any], tmp_path: Path
) -> None:
    code, err = _stop_after_first_epoch(_train_cmd(tmp_path), signum)
    name = signal.Signals(signum).name
    assert code == 128 + signum, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert name in err and "resumes" in err
    results = tmp_path / "mnist" / "binary_mlp"
    assert not list(results.glob("*.json"))  # no record of an unfinished run
    (failure,) = (results / FAILURES).glob("*.json")
    assert json.loads(failure.read_text())["status"] == "interrupted"
    (ckpt,) = results.glob(f"{CHECKPOINTS}/*/{CHECKPOINT_NAME}")
    assert load_checkpoint(ckpt)[0]["epoch"] >= 1
    assert not list(results.rglob("*.tmp"))

    done = _complete(_train_cmd(tmp_path))
    assert done.returncode == 0, done.stderr
    _same_run(_record(tmp_path), uninterrupted)
    assert not list((results / FAILURES).glob("*.json"))


@needs_mnist
def test_kill_9_then_rerun_resumes_to_the_same_record(
    uninterrupted: dict[str, Any], tmp_path: Path
) -> None:
    proc = subprocess.Popen(
        _train_cmd(tmp_path),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("epoch 1:"):
            proc.kill()
            break
    proc.wait(timeout=600)
    assert proc.returncode == -signal.SIGKILL
    results = tmp_path / "mnist" / "binary_mlp"
    (ckpt,) = results.glob(f"{CHECKPOINTS}/*/{CHECKPOINT_NAME}")
    # what a kill during a checkpoint write leaves: the killed process's temporary file
    orphan = ckpt.parent / f".{CHECKPOINT_NAME}.{proc.pid}-killed.tmp"
    orphan.write_bytes(b"half a checkpoint")
    assert load_checkpoint(ckpt)[0]["epoch"] >= 1  # the complete previous one is intact

    done = _complete(_train_cmd(tmp_path))
    assert done.returncode == 0, done.stderr
    assert not orphan.exists()
    _same_run(_record(tmp_path), uninterrupted)


@needs_mnist
def test_a_cli_run_above_max_loss_exits_4_with_a_failure_record(tmp_path: Path) -> None:
    hp = "epochs=1,train_subset=600,test_subset=100,batch_size=50,width=0.125,max_loss=0.5"
    done = _complete(_train_cmd(tmp_path, hp))
    assert done.returncode == 4, done.stderr
    err = done.stderr
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "exceeded max_loss=0.5 at epoch 1, step 1" in err and "no checkpoint was written" in err
    results = tmp_path / "mnist" / "binary_mlp"
    assert not list(results.glob("*.json"))
    (failure,) = (results / FAILURES).glob("*.json")
    data = json.loads(failure.read_text())
    assert data["status"] == "diverged" and data["epoch"] == 1 and data["step"] == 1
    assert data["config"]["hparams"]["max_loss"] == 0.5 and data["key"] == failure.stem


@needs_mnist
def test_a_checkpoint_of_another_model_is_set_aside_and_the_trainer_left_untouched(
    tmp_path: Path, caplog
) -> None:
    other = RunConfig(
        model="binary_mlp",
        dataset="mnist",
        hparams_set="bop",
        hparams=SMALL,
        model_kwargs={"width": 0.25},
        device="cpu",
    )
    p_other = prepare(other, progress=False)
    p_other.trainer.fit(p_other.data.train, 1, checkpoint_dir=tmp_path)
    p = prepare(_cfg(), progress=False)
    before = {k: v.clone() for k, v in p.model.state_dict().items()}
    assert p.trainer.resume_from(tmp_path / CHECKPOINT_NAME) is False
    _one_warning(caplog, "does not fit this run", "from scratch")
    assert p.trainer.epoch == 0 and p.trainer.history == []
    for k, v in p.model.state_dict().items():
        assert torch.equal(v, before[k]), k


@needs_mnist
def test_a_signal_during_evaluation_keeps_the_epoch_checkpoint(tmp_path: Path) -> None:
    straight = prepare(_cfg(), progress=False)
    h_straight = straight.trainer.fit(straight.data.train, 2, test=straight.data.test)
    p = prepare(_cfg(), progress=False)
    test = _SignalAt(p.data.test, signal.SIGTERM, epoch=0, index=1)
    with pytest.raises(TrainingInterrupted, match="after epoch 1: its checkpoint is saved") as err:
        p.trainer.fit(p.data.train, 2, test=test, checkpoint_dir=tmp_path)
    assert err.value.step == 0 and err.value.exit_code == 143
    resumed = prepare(_cfg(), progress=False)
    h = resumed.trainer.fit(resumed.data.train, 2, test=resumed.data.test, checkpoint_dir=tmp_path)
    assert _strip(h) == _strip(h_straight)


@needs_mnist
def test_bnnlib_test_accepts_weights_and_records_written_before_hashes(
    tmp_path: Path, capsys
) -> None:
    args = ["binary_mlp", "--dataset", "mnist", "--hparams-set", "bop", "--device", "cpu"]
    hp = "epochs=1,train_subset=600,test_subset=300,batch_size=50,width=0.125"
    assert main(["train", *args, "--hparams", hp, "--logdir", str(tmp_path)]) == 0
    record = Path(capsys.readouterr().out.split("run record: ")[1].split()[0])
    weights = record.parent / CHECKPOINTS / record.stem / MODEL_FILE
    state, _ = load_checkpoint(weights)
    save_torch(weights, state)  # the plain state dict older runs saved
    d = json.loads(record.read_text())
    d.pop("sha256")
    d["provenance"].pop("model_sha256")
    record.write_text(json.dumps(d, indent=1))
    assert main(["test", *args, "--hparams", hp, "--logdir", str(tmp_path)]) == 0
    tested = json.loads(capsys.readouterr().out)
    assert tested["test_acc"] == pytest.approx(d["final"]["test_acc"], abs=1e-9)


@needs_mnist
def test_a_sweep_re_run_repairs_a_truncated_record_instead_of_failing_it(
    tmp_path: Path, caplog
) -> None:
    from bnnlib.experiment.sweep import run_configs

    configs = [_cfg(epochs=1, threshold=t).to_dict() for t in (1e-8, 1e-7)]
    first = run_configs(configs, tmp_path, log=None)
    assert first.ok and len(first.ran) == 2
    broken = tmp_path / f"{first.ran[0]}.json"
    good = RunRecord.load(broken)
    broken.write_text(broken.read_text()[:300])
    again = run_configs(configs, tmp_path, log=None)
    assert again.ok and again.ran == [first.ran[0]] and again.skipped == [first.ran[1]]
    _one_warning(caplog, str(broken), "moved it aside")
    assert RunRecord.load(broken).final == good.final
