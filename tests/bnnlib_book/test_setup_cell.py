"""Every notebook's first code cell is the setup cell rendered from ``_config.yml``, and
``bnnlib-book setup-cells`` writes and checks it."""

from __future__ import annotations

import json
from pathlib import Path

import jupytext
import pytest

from bnnlib_book import cli
from bnnlib_book.runtime import Runtime
from bnnlib_book.setup_cell import (
    MARKER,
    TAG,
    check_setup_cells,
    render_setup_cell,
    repository,
    write_setup_cells,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.py"))


def _first_code_cell(path: Path):
    return next(c for c in jupytext.read(path).cells if c.cell_type == "code")


def test_config_names_the_repository() -> None:
    url, branch = repository(REPO_ROOT)
    assert url.startswith("https://") and branch


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_starts_with_the_cell_rendered_from_config(notebook: Path) -> None:
    url, branch = repository(REPO_ROOT)
    for path in (notebook, notebook.with_suffix(".ipynb")):
        cell = _first_code_cell(path)
        assert cell.source == render_setup_cell(url, branch), (
            f"{path.name}: run bnnlib-book setup-cells"
        )
        assert TAG in cell.metadata.get("tags", [])
        assert f'"bnnlib[book] @ git+{url}@{branch}"' in cell.source
        assert f'repository="{url}"' in cell.source and f'branch="{branch}"' in cell.source


def test_the_checkout_passes_the_check() -> None:
    assert check_setup_cells(REPO_ROOT) == []


def test_no_other_cell_names_a_repository_url() -> None:
    url, _ = repository(REPO_ROOT)
    for notebook in NOTEBOOKS:
        cells = [c for c in jupytext.read(notebook).cells if c.cell_type == "code"]
        assert not [c for c in cells[1:] if url in c.source or "git+" in c.source], notebook


def test_rendering_follows_the_url_and_branch() -> None:
    a = render_setup_cell("https://example.org/a/book", "main")
    b = render_setup_cell("https://example.org/b/fork.git", "dev")
    assert a != b
    assert "git+https://example.org/b/fork.git@dev" in b and "example.org/a" not in b
    compile(a, "setup cell", "exec")


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

# %%
value = 1
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_config.yml").write_text(
        "title: tiny\nrepository:\n  url: https://example.org/one/book\n  branch: main\n"
    )
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: notebooks/tiny\n")
    (tmp_path / "notebooks" / "tiny.py").write_text(NOTEBOOK)
    return tmp_path


def test_write_inserts_then_replaces_and_check_follows_the_config(tiny: Path) -> None:
    notebook = tiny / "notebooks" / "tiny.py"
    problems = check_setup_cells(tiny)
    assert any("is not the setup cell" in p for p in problems)
    assert any("tiny.ipynb: missing" in p for p in problems)

    assert write_setup_cells(tiny) == [notebook]
    assert check_setup_cells(tiny) == []
    cells = jupytext.read(notebook).cells
    assert [c.cell_type for c in cells] == ["markdown", "code", "code"]
    assert cells[1].source == render_setup_cell("https://example.org/one/book", "main")
    assert cells[2].source == "value = 1"
    assert write_setup_cells(tiny) == []  # nothing to do

    config = tiny / "_config.yml"
    config.write_text(config.read_text().replace("one/book", "two/book"))
    problems = check_setup_cells(tiny)
    assert sorted(p.split(":")[0] for p in problems) == ["tiny.ipynb", "tiny.py"]
    assert all("differs from the one rendered from _config.yml" in p for p in problems)
    assert cli.main(["--root", str(tiny), "setup-cells", "--check"]) == 1

    assert cli.main(["--root", str(tiny), "setup-cells"]) == 0
    assert cli.main(["--root", str(tiny), "setup-cells", "--check"]) == 0
    cells = jupytext.read(notebook).cells
    assert len(cells) == 3 and "https://example.org/two/book" in cells[1].source
    paired = json.loads(notebook.with_suffix(".ipynb").read_text())["cells"]
    assert "".join(paired[1]["source"]) == cells[1].source


def test_check_wants_the_tag_and_one_install(tiny: Path) -> None:
    write_setup_cells(tiny)
    notebook = tiny / "notebooks" / "tiny.py"
    text = notebook.read_text()
    untagged = text.replace('# %% tags=["hide-input"]\n', "# %%\n", 1)
    notebook.write_text(untagged + '\n# %%\nsource = "git+https://example.org/x"\n')
    problems = [p for p in check_setup_cells(tiny) if p.startswith("tiny.py")]  # .ipynb: stale
    assert problems == [
        "tiny.py: setup cell is not tagged hide-input",
        "tiny.py: cell 3 installs from a repository outside the setup cell",
    ]


def test_config_without_a_url_is_refused(tiny: Path) -> None:
    (tiny / "_config.yml").write_text("title: tiny\n")
    with pytest.raises(ValueError, match=r"repository\.url"):
        repository(tiny)
    assert cli.main(["--root", str(tiny), "setup-cells", "--check"]) == 2


def test_the_rendered_cell_runs_in_a_checkout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In a checkout (here: from its notebooks/ folder, as Jupyter starts there) the cell
    installs nothing, clones nothing, and makes the checkout the working directory."""
    monkeypatch.chdir(REPO_ROOT / "notebooks")
    namespace: dict = {}
    exec(compile(render_setup_cell(*repository(REPO_ROOT)), "setup cell", "exec"), namespace)
    runtime = namespace["runtime"]
    assert isinstance(runtime, Runtime)
    assert runtime.root == REPO_ROOT and not runtime.cloned
    assert Path.cwd() == REPO_ROOT
    out = capsys.readouterr().out
    assert out.startswith("device: ") and "book files" not in out
    assert MARKER in render_setup_cell("u", "b")
