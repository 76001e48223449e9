"""Bad input, tried as a careless user would: every case runs the real CLI in a subprocess and must
stop before any work with exit status 2, one line on stderr that names the key or the file, and
nothing written (no results folder, record, checkpoint or cache file).

Most cases fail before any data is read. The few that get past the dataset check (the results
folder, a truncated MNIST file) need MNIST in BNNLIB_DATA_DIR. A read-only folder is a read-only
bind mount in a private mount namespace (``unshare -m``) when running as root, which ignores
permission bits, and a folder without write permission otherwise. A full disk is simulated: the
subprocess imports a ``sitecustomize`` that makes ``shutil.disk_usage`` report 1000 bytes free.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from tests.conftest import DATA_DIR, has_data

REPO = Path(__file__).resolve().parents[2]
MNIST_RAW = Path(DATA_DIR or "/nonexistent") / "MNIST" / "raw"
TRAIN_MLP = ["train", "binary_mlp", "--dataset", "mnist", "--hparams-set", "bop"]
TRAIN_VGG = ["train", "binaryvgg", "--dataset", "cifar10", "--hparams-set", "bop"]


@dataclass
class Case:
    argv: list[str]
    needles: tuple[str, ...]
    setup: Callable[[Path], dict[str, str]] | None = None  # tmp dir -> extra environment
    module: str = "bnnlib"
    read_only: str | None = None  # a folder (relative to the tmp dir) to make read-only
    full_disk: bool = False
    marks: list = field(default_factory=list)


def _has_cuda(n: int = 1) -> bool:
    return torch.cuda.is_available() and torch.cuda.device_count() >= n


needs_mnist = pytest.mark.skipif(
    not has_data("MNIST", "raw"), reason="BNNLIB_DATA_DIR with MNIST/raw is not set"
)


def _write(name: str, text: str) -> Callable[[Path], dict[str, str]]:
    def setup(tmp: Path) -> dict[str, str]:
        (tmp / "work" / name).write_text(text)
        return {}

    return setup


def _folder(name: str) -> Callable[[Path], dict[str, str]]:
    def setup(tmp: Path) -> dict[str, str]:
        (tmp / "work" / name).mkdir()
        return {}

    return setup


def _cache_file(tmp: Path) -> dict[str, str]:
    (tmp / "cachefile").write_text("not a folder")
    return {"BNNLIB_CACHE_DIR": str(tmp / "cachefile")}


def _cache_below_file(tmp: Path) -> dict[str, str]:
    (tmp / "cachefile").write_text("not a folder")
    return {"BNNLIB_CACHE_DIR": str(tmp / "cachefile" / "bnnlib")}


def _cache_read_only(tmp: Path) -> dict[str, str]:
    (tmp / "rocache").mkdir()
    return {"BNNLIB_CACHE_DIR": str(tmp / "rocache")}


def _logdir_read_only(tmp: Path) -> dict[str, str]:
    (tmp / "work" / "rologs").mkdir()
    return {}


def _mnist_copy(damage: Callable[[Path], None]) -> Callable[[Path], dict[str, str]]:
    def setup(tmp: Path) -> dict[str, str]:
        raw = tmp / "data" / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for f in MNIST_RAW.iterdir():
            shutil.copy(f, raw / f.name)
        damage(raw)
        return {"BNNLIB_DATA_DIR": str(tmp / "data")}

    return setup


def _truncate(raw: Path) -> None:
    path = raw / "train-images-idx3-ubyte.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _foreign_header(raw: Path) -> None:
    # A whole, valid gzip file whose IDX header says 1000 images, not 10000.
    path = raw / "t10k-images-idx3-ubyte.gz"
    body = bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (1000, 28, 28))
    path.write_bytes(gzip.compress(body + bytes(1000 * 28 * 28)))


def _grid(text: str) -> Callable[[Path], dict[str, str]]:
    return _write("grid.yaml", text)


GOOD_GRID_BASE = "base: {model: binary_mlp, dataset: mnist, hparams_set: bop}\n"

CASES: dict[str, Case] = {
    # the device
    "device-cuda": Case(
        [*TRAIN_MLP, "--device", "cuda"],
        ("'cuda'", "cpu"),
        marks=[pytest.mark.skipif(_has_cuda(), reason="CUDA is available")],
    ),
    "device-cuda3": Case(
        [*TRAIN_MLP, "--device", "cuda:3"],
        ("'cuda:3'", "cpu"),
        marks=[pytest.mark.skipif(_has_cuda(4), reason="4 CUDA devices are available")],
    ),
    "device-mps": Case(
        [*TRAIN_MLP, "--device", "mps"],
        ("'mps'", "cpu"),
        marks=[pytest.mark.skipif(torch.backends.mps.is_available(), reason="MPS is available")],
    ),
    "device-garbage": Case([*TRAIN_MLP, "--device", "garbage"], ("'garbage'", "cpu")),
    "test-device-cuda": Case(
        ["test", "binary_mlp", "--dataset", "mnist", "--hparams-set", "bop", "--device", "cuda"],
        ("'cuda'",),
        marks=[pytest.mark.skipif(_has_cuda(), reason="CUDA is available")],
    ),
    # model arguments
    "norm-layer-bogus": Case(
        [*TRAIN_VGG, "--hparams", "norm_layer=Bogus"], ("norm_layer='Bogus'", "LayerNormalization")
    ),
    "norm-layer-not-taken": Case(
        [*TRAIN_MLP, "--hparams", "norm_layer=BatchNormalization"], ("'norm_layer'", "width")
    ),
    "width-abc": Case([*TRAIN_MLP, "--hparams", "width=abc"], ("width='abc'", "number")),
    "width-negative": Case([*TRAIN_MLP, "--hparams", "width=-1"], ("width=-1", "> 0")),
    "width-zero": Case([*TRAIN_MLP, "--hparams", "width=0"], ("width=0", "> 0")),
    "width-inf": Case([*TRAIN_MLP, "--hparams", "width=1e999"], ("width=inf", "finite")),
    "weight-mode-bogus": Case(
        [*TRAIN_MLP, "--hparams", "weight_mode=foo"], ("weight_mode", "binary, latent, real")
    ),
    "model-takes-other-images": Case(
        ["train", "binarynet_batch", "--dataset", "mnist", "--hparams-set", "bop"],
        ("'mnist'", "1,28,28", "3,32,32"),
    ),
    # sizes against the dataset
    "train-subset-too-big": Case(
        [*TRAIN_MLP, "--hparams", "train_subset=60001"], ("train_subset", "1..60000")
    ),
    "test-subset-too-big": Case(
        [*TRAIN_MLP, "--hparams", "test_subset=10001"], ("test_subset", "1..10000")
    ),
    "batch-size-too-big": Case(
        [*TRAIN_MLP, "--hparams", "batch_size=60001"], ("batch_size=60001", "1..60000")
    ),
    "batch-size-over-subset": Case(
        [*TRAIN_MLP, "--hparams", "train_subset=50,batch_size=64"],
        ("batch_size=64", "train_subset=50", "1..50"),
    ),
    "validation-split-holds-out-nothing": Case(
        [*TRAIN_MLP, "--hparams", "validation_split=0.00001"], ("validation_split=1e-05",)
    ),
    "validation-split-leaves-no-batch": Case(
        [*TRAIN_MLP, "--hparams", "validation_split=0.9999"],
        ("validation_split=0.9999", "batch_size=100"),
    ),
    "test-command-subset-too-big": Case(
        ["test", "binary_mlp", "--dataset", "mnist", "--hparams", "test_subset=20000"],
        ("test_subset",),
    ),
    # seed and numbers
    "seed-negative": Case([*TRAIN_MLP, "--seed", "-1"], ("seed=-1", "0..4294967295")),
    "seed-too-big": Case([*TRAIN_MLP, "--seed", str(2**32)], ("seed=4294967296",)),
    "seed-not-int": Case([*TRAIN_MLP, "--seed", "abc"], ("--seed", "'abc'")),
    "threshold-inf": Case(
        [*TRAIN_MLP, "--hparams", "threshold=1e999"], ("threshold=inf", "finite")
    ),
    "threshold-nan-string": Case([*TRAIN_MLP, "--hparams", "threshold=nan"], ("threshold='nan'",)),
    "opt-param-inf": Case(
        [*TRAIN_MLP, "--hparams", "opt_param={'threshold':1e999}"], ("threshold=inf",)
    ),
    "sweep-nan": Case(
        ["sweep", "grid.yaml", "--results-dir", "res"],
        ("threshold=nan", "finite"),
        setup=_grid(GOOD_GRID_BASE + "grid: {hparams.threshold: [.nan]}\n"),
    ),
    "sweep-inf": Case(
        ["sweep", "grid.yaml", "--results-dir", "res"],
        ("gamma=inf", "finite"),
        setup=_grid(GOOD_GRID_BASE + "grid: {hparams.gamma: [.inf]}\n"),
    ),
    "sweep-subset-too-big": Case(
        ["sweep", "grid.yaml", "--results-dir", "res"],
        ("grid.yaml", "train_subset", "1..60000"),
        setup=_grid(GOOD_GRID_BASE + "grid: {hparams.train_subset: [100, 70000]}\n"),
    ),
    "sweep-device-cuda": Case(
        ["sweep", "grid.yaml", "--results-dir", "res"],
        ("grid.yaml", "'cuda'"),
        setup=_grid(GOOD_GRID_BASE + "grid: {device: [cuda]}\n"),
        marks=[pytest.mark.skipif(_has_cuda(), reason="CUDA is available")],
    ),
    # summary
    "summary-input-shape-channels": Case(
        ["summary", "binarynet", "--input-shape", "1,28,28"], ("--input-shape 1,28,28", "3,32,32")
    ),
    "summary-input-shape-features": Case(
        ["summary", "binary_mlp", "--input-shape", "3,32,32"], ("--input-shape 3,32,32", "784")
    ),
    "summary-input-shape-zero": Case(
        ["summary", "binarynet", "--input-shape", "0,32,32"], ("--input-shape", ">= 1")
    ),
    "summary-width-abc": Case(["summary", "binarynet", "--hparams", "width=abc"], ("width='abc'",)),
    # files given on the command line
    "sweep-malformed-yaml": Case(
        ["sweep", "grid.yaml"],
        ("grid.yaml", "not valid YAML", "line 2"),
        setup=_grid("base: {model: binary_mlp\n  dataset: [mnist\n"),
    ),
    "sweep-folder": Case(["sweep", "grids"], ("grids", "folder"), setup=_folder("grids")),
    "sweep-missing": Case(["sweep", "nothere.yaml"], ("nothere.yaml", "does not exist")),
    "config-folder": Case(["train", "--config", "cfgs"], ("cfgs", "folder"), setup=_folder("cfgs")),
    "config-malformed-json": Case(
        ["train", "--config", "run.json"],
        ("run.json", "not valid JSON"),
        setup=_write("run.json", '{"epochs": 1,'),
    ),
    "config-unknown-key": Case(
        ["train", "--config", "run.json"],
        ("run.json", "'bogus'"),
        setup=_write("run.json", '{"bogus": 1}'),
    ),
    "config-wrong-type": Case(
        ["train", "--config", "run.json"],
        ("run.json", "'epochs'"),
        setup=_write("run.json", '{"epochs": "ten"}'),
    ),
    "config-missing": Case(["train", "--config", "nothere.json"], ("nothere.json", "not exist")),
    "book-params-malformed-yaml": Case(
        ["--root", str(REPO), "run", "01_bop_ablation", "-f", "p.yaml", "--output", "o.ipynb"],
        ("p.yaml", "not valid YAML"),
        setup=_write("p.yaml", "epochs: [1,\n"),
        module="bnnlib_book",
    ),
    "book-params-folder": Case(
        ["--root", str(REPO), "run", "01_bop_ablation", "-f", "pdir", "--output", "o.ipynb"],
        ("pdir", "folder"),
        setup=_folder("pdir"),
        module="bnnlib_book",
    ),
    "book-params-missing": Case(
        ["--root", str(REPO), "run", "01_bop_ablation", "-f", "no.yaml", "--output", "o.ipynb"],
        ("no.yaml", "does not exist"),
        module="bnnlib_book",
    ),
    # the cache folder
    "cache-dir-is-file": Case(TRAIN_MLP, ("BNNLIB_CACHE_DIR", "cachefile", "file"), _cache_file),
    "cache-dir-below-file": Case(
        TRAIN_MLP, ("BNNLIB_CACHE_DIR", "cachefile", "file"), _cache_below_file
    ),
    "cache-dir-read-only": Case(
        TRAIN_MLP,
        ("BNNLIB_CACHE_DIR", "rocache", "not writable"),
        _cache_read_only,
        read_only="rocache",
    ),
    # the data files
    "mnist-truncated": Case(
        TRAIN_MLP,
        ("train-images-idx3-ubyte.gz", "truncated", "good copy"),
        _mnist_copy(_truncate),
        marks=[needs_mnist],
    ),
    "mnist-foreign-header": Case(
        TRAIN_MLP,
        ("t10k-images-idx3-ubyte.gz", "header", "good copy"),
        _mnist_copy(_foreign_header),
        marks=[needs_mnist],
    ),
    # the results folder
    "logdir-is-file": Case(
        [*TRAIN_MLP, "--logdir", "logs"],
        ("--logdir", "logs", "file"),
        setup=_write("logs", "not a folder"),
        marks=[needs_mnist],
    ),
    "logdir-read-only": Case(
        [*TRAIN_MLP, "--logdir", "rologs/logs"],
        ("--logdir", "rologs", "not writable"),
        setup=_logdir_read_only,
        read_only="work/rologs",
        marks=[needs_mnist],
    ),
    "logdir-disk-full": Case(
        [*TRAIN_MLP, "--logdir", "logs"],
        ("--logdir", "MB free", "checkpoint"),
        full_disk=True,
        marks=[needs_mnist],
    ),
}

_FULL_DISK = """\
import shutil

_disk_usage = shutil.disk_usage


def _full(path):
    usage = _disk_usage(path)
    return type(usage)(usage.total, usage.total - 1000, 1000)


shutil.disk_usage = _full
"""


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _read_only_wrapper(folder: Path) -> list[str]:
    """Command prefix that runs the CLI with ``folder`` read-only."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return []
    if shutil.which("unshare") is None:
        pytest.skip("root ignores permission bits and unshare is not installed")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("root ignores permission bits and unshare -m is not permitted here")
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, str(folder)]


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=name, marks=c.marks) for name, c in CASES.items()]
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case: Case, tmp_path: Path) -> None:
    if case.module == "bnnlib_book":
        pytest.importorskip("papermill")
    work = tmp_path / "work"
    work.mkdir()
    cache = tmp_path / "cache"
    cache.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "BNNLIB_CACHE_DIR": str(cache),
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
    }
    if DATA_DIR:
        env["BNNLIB_DATA_DIR"] = DATA_DIR
    if case.setup is not None:
        env |= case.setup(tmp_path)
    if case.full_disk:
        site = tmp_path / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(_FULL_DISK)
        env["PYTHONPATH"] = f"{REPO}{os.pathsep}{site}"
    prefix = _read_only_wrapper(tmp_path / case.read_only) if case.read_only else []
    before = _files(tmp_path)
    try:
        proc = subprocess.run(
            [*prefix, sys.executable, "-m", case.module, *case.argv],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        if case.read_only and os.geteuid() != 0:
            (tmp_path / case.read_only).chmod(0o755)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in case.needles:
        assert needle in lines[0], (needle, lines[0])
    assert proc.stdout == ""
    assert _files(tmp_path) == before, "files were written"
