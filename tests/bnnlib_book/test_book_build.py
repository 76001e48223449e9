"""build_book on a tiny book in a temporary folder: staging, reuse of unchanged notebooks,
re-execution on change, and failures that stop the build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bnnlib_book.build import BookBuildError, build_book

CONFIG = """title: tiny
execute:
  execute_notebooks: "off"
sphinx:
  extra_extensions:
    - bnnlib_book.assets
"""
TOC = """format: jb-book
root: book/intro
chapters:
  - file: notebooks/tiny
"""
NOTEBOOK = """# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tiny

# %% tags=["parameters"]
profile = "cpu"
value = 1

# %%
print(f"value={value} profile={profile}")
"""


@pytest.fixture
def tiny_book(tmp_path: Path) -> Path:
    (tmp_path / "book").mkdir()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "params" / "tiny").mkdir(parents=True)
    (tmp_path / "_config.yml").write_text(CONFIG)
    (tmp_path / "_toc.yml").write_text(TOC)
    (tmp_path / "book" / "intro.md").write_text("# Intro\n\nA tiny book.\n")
    (tmp_path / "notebooks" / "tiny.py").write_text(NOTEBOOK)
    for profile in ("smoke", "cpu", "paper"):
        (tmp_path / "params" / "tiny" / f"{profile}.yaml").write_text(
            f"profile: {profile}\nvalue: 7\n"
        )
    return tmp_path


def test_build_executes_stages_and_reuses(tiny_book: Path) -> None:
    first = build_book("smoke", root=tiny_book)
    page = (first.html_dir / "notebooks" / "tiny.html").read_text()
    assert "value=7 profile=smoke" in page
    assert [run.executed for run in first.notebooks] == [True]
    assert (tiny_book / "notebooks" / "tiny.py").read_text() == NOTEBOOK
    assert not (tiny_book / "notebooks" / "tiny.ipynb").exists()
    staged = json.loads((tiny_book / "_build" / "stage" / "notebooks" / "tiny.ipynb").read_text())
    assert staged["metadata"]["bnnlib"]["profile"] == "smoke"

    again = build_book("smoke", root=tiny_book)
    assert [run.executed for run in again.notebooks] == [False]
    assert build_book("smoke", root=tiny_book, force=True).notebooks[0].executed

    (tiny_book / "params" / "tiny" / "smoke.yaml").write_text("profile: smoke\nvalue: 8\n")
    changed = build_book("smoke", root=tiny_book)
    assert changed.notebooks[0].executed
    assert "value=8 profile=smoke" in (changed.html_dir / "notebooks" / "tiny.html").read_text()


def test_the_front_page_follows_the_toc_root(tiny_book: Path) -> None:
    first = build_book("smoke", root=tiny_book)
    assert "url=book/intro.html" in (first.html_dir / "index.html").read_text()
    toc = tiny_book / "_toc.yml"
    toc.write_text("format: jb-book\nroot: notebooks/tiny\nchapters:\n  - file: book/intro\n")
    again = build_book("smoke", root=tiny_book)
    assert "url=notebooks/tiny.html" in (again.html_dir / "index.html").read_text()


def test_unknown_profile_lists_the_valid_ones(tiny_book: Path) -> None:
    with pytest.raises(
        ValueError, match=r"unknown profile 'gpu'; valid profiles: \['smoke', 'cpu', 'paper'\]"
    ):
        build_book("gpu", root=tiny_book)


def test_bad_params_fail_before_any_execution(tiny_book: Path) -> None:
    (tiny_book / "params" / "tiny" / "cpu.yaml").write_text("profile: cpu\nvalu: 7\n")
    with pytest.raises(ValueError, match="unknown parameter 'valu'"):
        build_book("cpu", root=tiny_book)
    assert not (tiny_book / "_build" / "stage").exists()


def test_failing_notebook_stops_the_build(tiny_book: Path) -> None:
    (tiny_book / "notebooks" / "tiny.py").write_text(
        NOTEBOOK + '\n# %%\nraise RuntimeError("cell failed")\n'
    )
    with pytest.raises(
        BookBuildError,
        match="(?s)notebooks/tiny: PapermillExecutionError.*RuntimeError: cell failed",
    ):
        build_book("smoke", root=tiny_book)
    assert not (tiny_book / "_build" / "html").exists()


def test_sphinx_warnings_are_errors(tiny_book: Path) -> None:
    (tiny_book / "book" / "intro.md").write_text("# Intro\n\nSee {ref}`no-such-label`.\n")
    with pytest.raises(BookBuildError, match="no-such-label"):
        build_book("smoke", root=tiny_book)
