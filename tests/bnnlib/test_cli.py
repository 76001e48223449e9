"""The CLI: the seeds' command shapes, and bad input stopping before any work with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bnnlib.cli import main, parse_hparams
from tests.conftest import needs_cifar_png, needs_mnist


def test_parse_hparams_reads_the_seed_commands() -> None:
    got = parse_hparams(
        """norm_layer="BatchNormalization",opt_param="{'threshold':5e-7, 'gamma':1e-4}",epochs=100"""
    )
    assert got == {
        "norm_layer": "BatchNormalization",
        "opt_param": "{'threshold':5e-7, 'gamma':1e-4}",
        "epochs": 100,
    }
    assert parse_hparams("threshold=1e-6,gamma=1e-7,sigma=1e-3,epochs=150") == {
        "threshold": 1e-6,
        "gamma": 1e-7,
        "sigma": 1e-3,
        "epochs": 150,
    }
    assert parse_hparams("unbiased=True,train_subset=None") == {
        "unbiased": True,
        "train_subset": None,
    }


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["train", "binarynet_bacth", "--dataset", "mnist"], "binarynet_batch"),
        (["train", "binarynet_batch", "--dataset", "cifar11"], "cifar10"),
        (
            ["train", "binarynet_batch", "--dataset", "mnist", "--hparams-set", "bop2ndorder"],
            "bop2ndOrder",
        ),
        (
            [
                "train",
                "binarynet_batch",
                "--dataset",
                "mnist",
                "--hparams-set",
                "bop",
                "--hparams",
                "tresh=1",
            ],
            "tresh",
        ),
        (
            [
                "train",
                "binarynet_batch",
                "--dataset",
                "mnist",
                "--hparams-set",
                "bop",
                "--hparams",
                "threshold=-1e-6",
            ],
            "threshold",
        ),
        (
            [
                "train",
                "binarynet_batch",
                "--dataset",
                "mnist",
                "--hparams-set",
                "bop",
                "--hparams",
                "gamma=2.0",
            ],
            "gamma",
        ),
        (
            [
                "train",
                "binarynet_batch",
                "--dataset",
                "mnist",
                "--hparams-set",
                "bop",
                "--hparams",
                "epochs=0",
            ],
            "epochs",
        ),
        (
            [
                "train",
                "binarynet_batch",
                "--dataset",
                "mnist",
                "--hparams-set",
                "bop",
                "--hparams",
                "epochs=ten",
            ],
            "epochs",
        ),
        (
            ["train", "binarynet_batch", "--dataset", "mnist", "--preprocess-fn", "flip_only"],
            "flip_only",
        ),
        (["train", "binarynet_batch", "--dataset", "mnist", "--hparams", "epochs=(1"], "unclosed"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    argv, needle, tmp_path: Path, capsys
) -> None:
    code = main([*argv, "--logdir", str(tmp_path / "logs")])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "logs").exists()


def test_missing_dataset_says_where_it_looked(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("BNNLIB_DATA_DIR", str(tmp_path / "nodata"))
    monkeypatch.setenv("BNNLIB_CACHE_DIR", str(tmp_path / "cache"))
    code = main(
        [
            "train",
            "binarynet_batch",
            "--dataset",
            "cifar10",
            "--hparams-set",
            "bop",
            "--logdir",
            str(tmp_path / "logs"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "nodata" in err and "BNNLIB_DATA_DIR" in err
    assert not (tmp_path / "logs").exists()


@needs_cifar_png
def test_dry_run_takes_one_step_and_writes_nothing(tmp_path: Path, capsys) -> None:
    code = main(
        [
            "train",
            "binarynet_batch",
            "--dataset",
            "cifar10-png-subset",
            "--preprocess-fn",
            "resize_and_flip",
            "--hparams-set",
            "bop2ndOrder_CIFAR",
            "--dry-run",
            "--logdir",
            str(tmp_path / "logs"),
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["batch_shape"] == [50, 3, 32, 32]
    assert not (tmp_path / "logs").exists()


@needs_mnist
def test_train_then_test_round_trip(tmp_path: Path, capsys) -> None:
    args = [
        "binary_mlp",
        "--dataset",
        "mnist",
        "--hparams-set",
        "bop",
        "--hparams",
        "epochs=1,train_subset=1000,test_subset=500",
        "--logdir",
        str(tmp_path),
    ]
    assert main(["train", *args]) == 0
    out = capsys.readouterr().out
    record_file = Path(out.split("run record: ")[1].split()[0])
    record = json.loads(record_file.read_text())
    assert record["provenance"]["train_size"] == 1000 and record["history"][0]["epoch"] == 1
    assert main(["test", *args]) == 0
    tested = json.loads(capsys.readouterr().out)
    assert tested["test_acc"] == pytest.approx(record["final"]["test_acc"], abs=1e-9)


def test_summary_lists_and_prints(capsys) -> None:
    assert main(["summary", "--list"]) == 0
    names = capsys.readouterr().out.split()
    assert {
        "binarynet",
        "binarynet_batch",
        "binaryvgg",
        "autoencoder",
        "binaryae",
        "binary_mlp",
    } <= set(names)
    assert main(["summary", "binarynet_batch"]) == 0
    assert "1-bit" in capsys.readouterr().out


@needs_mnist
def test_tensorboard_flag_writes_event_files(tmp_path: Path) -> None:
    args = [
        "train",
        "binary_mlp",
        "--dataset",
        "mnist",
        "--hparams-set",
        "bop",
        "--hparams",
        "epochs=1,train_subset=200,test_subset=100,width=0.125",
        "--logdir",
        str(tmp_path),
        "--tensorboard=True",
    ]
    assert main(args) == 0
    events = list(
        (tmp_path / "mnist" / "binary_mlp" / "tensorboard").glob("*/events.out.tfevents.*")
    )
    assert len(events) == 1 and events[0].stat().st_size > 0


@needs_mnist
def test_continual_learning_from_the_seed_json(tmp_path: Path, capsys) -> None:
    cl = (
        Path(__file__).resolve().parents[2]
        / "bnnlib_book"
        / "bayesbinn"
        / "runfiles"
        / "permuted_mnist_cl_bayesbinn.json"
    )
    args = [
        "train",
        "--config",
        str(cl),
        "--tasks",
        "2",
        "--logdir",
        str(tmp_path),
        "--hparams",
        "epochs=2,train_subset=300,test_subset=100,lr=0.1,eval_samples=2",
    ]
    assert main(args) == 0
    final = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert set(final) >= {"acc_task_1", "acc_task_2", "avg_acc"}
    assert main([*args[:4], "0", *args[5:]]) == 2
