"""The setup a notebook runs first: finding the book's folder or cloning it, and the CIFAR-10
choice of ``dataset = "auto"``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bnnlib.data import DatasetNotFoundError
from bnnlib_book import runtime
from bnnlib_book.runner import chapter_params
from bnnlib_book.runtime import (
    BRANCH_ENV,
    REPOSITORY_ENV,
    clone_book,
    find_book_root,
    pick_dataset,
    repository_name,
    setup,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@invalid", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A git repository holding a minimal book on branches main and dev."""
    repo = tmp_path / "remote" / "book.git"
    (repo / "notebooks").mkdir(parents=True)
    (repo / "params" / "x").mkdir(parents=True)
    (repo / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    (repo / "notebooks" / "x.py").write_text("x = 1\n")
    (repo / "params" / "x" / "smoke.yaml").write_text("x: 2\n")
    _git("init", "-q", "-b", "main", cwd=repo)
    _git("add", "-A", cwd=repo)
    _git("commit", "-q", "-m", "book", cwd=repo)
    _git("checkout", "-q", "-b", "dev", cwd=repo)
    (repo / "params" / "x" / "smoke.yaml").write_text("x: 3\n")
    _git("commit", "-q", "-am", "dev", cwd=repo)
    _git("checkout", "-q", "main", cwd=repo)
    return repo


def test_the_checkout_is_found_from_inside_it(tmp_path: Path) -> None:
    assert find_book_root(REPO_ROOT) == REPO_ROOT
    assert find_book_root(REPO_ROOT / "notebooks") == REPO_ROOT
    assert find_book_root(REPO_ROOT / "bnnlib_book" / "bop") == REPO_ROOT
    assert find_book_root(tmp_path) is None


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://github.com/bnnlib/bnnlib", "bnnlib"),
        ("https://github.com/someone/fork.git", "fork"),
        ("https://example.org/x/book/", "book"),
        ("file:///tmp/remote/book.git", "book"),
    ],
)
def test_repository_name(url: str, name: str) -> None:
    assert repository_name(url) == name


@needs_git
def test_clone_is_shallow_at_the_branch_and_reused(remote: Path, tmp_path: Path) -> None:
    dest = tmp_path / "work" / "book"
    assert clone_book(remote.as_uri(), "dev", dest) == dest
    assert (dest / "params" / "x" / "smoke.yaml").read_text() == "x: 3\n"
    count = subprocess.run(
        ["git", "-C", str(dest), "rev-list", "--count", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert count.stdout.strip() == "1"  # --depth 1
    (dest / "runs").mkdir()
    (dest / "runs" / "trained.json").write_text("{}")
    assert clone_book(remote.as_uri(), "main", dest) == dest  # reused as it is
    assert (dest / "runs" / "trained.json").is_file()


@needs_git
def test_clone_failures_say_why(remote: Path, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"branch nope\) failed .*nope"):
        clone_book(remote.as_uri(), "nope", tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError, match="holds no book"):
        clone_book(remote.as_uri(), "main", tmp_path / "b")
    assert (tmp_path / "b" / "notes.txt").read_text() == "mine"


@needs_git
def test_setup_in_an_empty_folder_clones_and_moves_there(
    remote: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """As in Colab: no checkout around, so the repository is cloned next to the notebook and
    becomes the working directory; the environment variables override the cell's URL."""
    folder = tmp_path / "content"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setenv(REPOSITORY_ENV, remote.as_uri())
    monkeypatch.setenv(BRANCH_ENV, "dev")
    path_before = ["", *sys.path, str(folder / "book")]  # Jupyter's "" and the clone itself
    monkeypatch.setattr(sys, "path", list(path_before))
    first = setup("https://example.invalid/not/used", "main")
    assert first.cloned and first.root == folder / "book"
    assert Path.cwd() == folder / "book"
    assert Path("params/x/smoke.yaml").read_text() == "x: 3\n"
    out = capsys.readouterr().out
    assert f"(cloned of {remote.as_uri()}, branch dev, commit " in out
    assert "device: " in out

    assert "" not in sys.path and str(folder / "book") not in sys.path
    assert [p for p in sys.path if p] == [p for p in path_before if p and p != str(folder / "book")]

    monkeypatch.chdir(folder)
    again = setup("https://example.invalid/not/used", "main")
    assert again.root == first.root and again.cloned
    assert "reusing the clone" in capsys.readouterr().out


# dataset = "auto"


@pytest.fixture
def availability(monkeypatch: pytest.MonkeyPatch):
    """Make ``check_dataset`` succeed for the names in the returned set only."""
    available: set[str] = set()
    asked: list[str] = []

    def check(name: str):
        asked.append(name)
        if name not in available:
            raise DatasetNotFoundError(f"dataset {name!r} not found (test)")

    monkeypatch.setattr(runtime, "check_dataset", check)
    return available, asked


def test_auto_picks_true_cifar10_when_available(availability, capsys) -> None:
    available, asked = availability
    available.update({"cifar10", "cifar10-jpeg"})
    assert pick_dataset("auto") == "cifar10"
    assert asked == ["cifar10"]
    assert "'cifar10', labelled 'CIFAR-10'" in capsys.readouterr().out


def test_auto_falls_back_to_the_offline_copy(availability, capsys) -> None:
    available, asked = availability
    available.add("cifar10-jpeg")
    assert pick_dataset("auto") == "cifar10-jpeg"
    assert asked == ["cifar10", "cifar10-jpeg"]
    out = capsys.readouterr().out
    assert "labelled 'CIFAR-10 (JPEG re-encoded)'" in out and "'cifar10' not available" in out


def test_auto_with_neither_fails(availability) -> None:
    with pytest.raises(DatasetNotFoundError, match="none of 'cifar10', 'cifar10-jpeg'"):
        pick_dataset("auto")


@pytest.mark.parametrize("name", ["cifar10", "cifar10-jpeg", "cifar10-png-subset", "mnist"])
def test_a_named_dataset_is_kept_without_a_check(availability, name: str) -> None:
    _, asked = availability
    assert pick_dataset(name) == name
    assert asked == []


def test_chapter_params_pick_auto_as_the_page_does(availability, tmp_path: Path) -> None:
    available, _ = availability
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "page.py").write_text(
        '# %% tags=["parameters"]\nprofile = "cpu"\ndataset = "auto"\n'
    )
    available.add("cifar10-jpeg")
    assert chapter_params("page", "cpu", tmp_path)["dataset"] == "cifar10-jpeg"
    available.add("cifar10")
    assert chapter_params("page", "cpu", tmp_path)["dataset"] == "cifar10"
    (tmp_path / "params" / "page").mkdir(parents=True)
    (tmp_path / "params" / "page" / "cpu.yaml").write_text("dataset: cifar10-png-subset\n")
    assert chapter_params("page", "cpu", tmp_path)["dataset"] == "cifar10-png-subset"


@pytest.mark.parametrize(
    "notebook",
    [
        "01_bop_ablation",
        "02_denoising_ae",
        "03_bop2_variants",
        "04_bop2_ablations",
        "05_bop2_cifar_recipe",
        "08_iterative_cifar",
    ],
)
def test_cifar_pages_default_to_auto_and_their_profiles_name_the_data(notebook: str) -> None:
    from bnnlib_book.params import load_params
    from bnnlib_book.runner import notebook_parameters

    assert notebook_parameters(notebook, REPO_ROOT)["dataset"] == "auto"
    for profile in ("smoke", "cpu", "paper"):
        named = load_params(REPO_ROOT / "params" / notebook / f"{profile}.yaml")["dataset"]
        assert named != "auto", (notebook, profile)
