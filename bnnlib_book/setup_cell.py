"""Every notebook's first code cell, rendered from one template and the repository in ``_config.yml``.

A notebook opened in Colab cannot read ``_config.yml``, so the repository URL and branch it
installs from and clones (:func:`bnnlib_book.runtime.setup`) are written into the cell itself.
``_config.yml``'s ``repository.url``/``branch`` is the one place they are set (Jupyter Book's
launch buttons read the same keys); ``bnnlib-book setup-cells`` writes the rendered cell into
every ``notebooks/*.py`` and its paired ``.ipynb``, and ``bnnlib-book setup-cells --check`` (run
by ``make lint`` and ``tests/bnnlib_book/test_setup_cell.py``) fails when any notebook's cell
differs from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

CONFIG = "_config.yml"
DEFAULT_BRANCH = "main"
TAG = "hide-input"
MARKER = "`bnnlib-book setup-cells`"

TEMPLATE = """\
# Setup: in a fresh runtime (Colab) install bnnlib from the book's repository, fetch the
# book's files (params, run records) and report the device. Written from _config.yml by
# {marker} (template: bnnlib_book/setup_cell.py); do not edit it here.
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("bnnlib_book") is None:
    package = {package}
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", package])
    importlib.invalidate_caches()

from bnnlib_book.runtime import setup

runtime = setup(
    repository={url},
    branch={branch},
)"""


def repository(root: str | Path = ".") -> tuple[str, str]:
    """``repository.url`` and ``repository.branch`` (default ``main``) of ``<root>/_config.yml``."""
    path = Path(root) / CONFIG
    config = yaml.safe_load(path.read_text()) or {}
    repo = config.get("repository") or {}
    url, branch = repo.get("url"), repo.get("branch", DEFAULT_BRANCH)
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"{path}: repository.url must name the book's repository")
    if not isinstance(branch, str) or not branch.strip():
        raise ValueError(f"{path}: repository.branch must be a branch name")
    return url.strip(), branch.strip()


def render_setup_cell(url: str, branch: str) -> str:
    """The setup cell's source for ``url`` at ``branch``."""
    package = f"bnnlib[book] @ git+{url}@{branch}"
    return TEMPLATE.format(
        marker=MARKER,
        package=json.dumps(package),
        url=json.dumps(url),
        branch=json.dumps(branch),
    )


def notebook_sources(root: str | Path = ".") -> list[Path]:
    """The jupytext sources ``<root>/notebooks/*.py``."""
    return sorted((Path(root) / "notebooks").glob("*.py"))


def _first_code_cell(cells: list[Any]) -> int | None:
    return next((i for i, c in enumerate(cells) if c["cell_type"] == "code"), None)


def _source(cell: Any) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else source


def cell_problems(cells: list[Any], expected: str, name: str) -> list[str]:
    """What is wrong with a notebook's cells (nbformat nodes or ``.ipynb`` JSON dicts): the first
    code cell must be ``expected`` and tagged hide-input, and no other cell may install bnnlib."""
    first = _first_code_cell(cells)
    if first is None:
        return [f"{name}: no code cell"]
    problems = []
    cell = cells[first]
    if _source(cell) != expected:
        state = "is not the setup cell" if MARKER not in _source(cell) else "differs from"
        problems.append(f"{name}: first code cell {state} the one rendered from {CONFIG}")
    if TAG not in cell.get("metadata", {}).get("tags", []):
        problems.append(f"{name}: setup cell is not tagged {TAG}")
    for i, other in enumerate(cells):
        if i != first and other["cell_type"] == "code" and "git+" in _source(other):
            problems.append(f"{name}: cell {i} installs from a repository outside the setup cell")
    return problems


def check_setup_cells(root: str | Path = ".") -> list[str]:
    """Every problem of every notebook (``.py`` and paired ``.ipynb``) in ``root``; empty when
    all setup cells match ``_config.yml``."""
    import jupytext

    root = Path(root)
    expected = render_setup_cell(*repository(root))
    problems = []
    for source in notebook_sources(root):
        problems += cell_problems(jupytext.read(source).cells, expected, str(source.name))
        paired = source.with_suffix(".ipynb")
        if paired.is_file():
            cells = json.loads(paired.read_text())["cells"]
            problems += cell_problems(cells, expected, str(paired.name))
        else:
            problems.append(f"{paired.name}: missing (jupytext --sync {source.name})")
    return problems


def write_setup_cells(root: str | Path = ".") -> list[Path]:
    """Write the rendered setup cell into every notebook: replace a first code cell that is a
    setup cell, or insert one before the first code cell; then sync the paired ``.ipynb`` with
    jupytext. Returns the sources that changed."""
    import jupytext
    import nbformat
    from jupytext.cli import jupytext as jupytext_cli

    root = Path(root)
    expected = render_setup_cell(*repository(root))
    changed = []
    for source in notebook_sources(root):
        nb = jupytext.read(source)
        paired = source.with_suffix(".ipynb")
        if not cell_problems(nb.cells, expected, source.name) and (
            paired.is_file()
            and not cell_problems(json.loads(paired.read_text())["cells"], expected, paired.name)
        ):
            continue
        first = _first_code_cell(nb.cells)
        if first is not None and MARKER in nb.cells[first].source:
            cell = nb.cells[first]
            cell.source = expected
            tags = cell.metadata.setdefault("tags", [])
            if TAG not in tags:
                tags.append(TAG)
        else:
            cell = nbformat.v4.new_code_cell(expected, metadata={"tags": [TAG]})
            nb.cells.insert(len(nb.cells) if first is None else first, cell)
        jupytext.write(nb, source, fmt="py:percent")
        jupytext_cli(["--sync", "--quiet", str(source)])
        changed.append(source)
    return changed
