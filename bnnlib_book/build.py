"""Build the book: execute every notebook in ``_toc.yml`` with one params profile, then render.

The committed notebooks stay output-free. Executed copies go to a staging tree,
``<out>/stage``, which mirrors the repository layout (``_config.yml``, ``_toc.yml``, ``book/``,
``notebooks/<name>.ipynb``), so page paths, Colab links and toc entries are the same as in the
repository. Jupyter Book then renders the staging tree with execution off (papermill already ran
the notebooks; "auto" would silently re-run them with their defaults) and with warnings as
errors, into ``<out>/html``.

A notebook is re-executed only when something it depends on changed: its source, its params,
the bnnlib sources, or the run records in the folders its ``*_dir``/``*_dirs`` parameters name.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bnnlib.experiment import PROFILES
from bnnlib_book import params as params_files
from bnnlib_book import runner as notebook_runner

BOOK_FILES = ("_config.yml", "_toc.yml")
PROSE_DIR = "book"
METADATA_KEY = "bnnlib"
REDIRECT_MARK = 'http-equiv="Refresh"'


class BookBuildError(RuntimeError):
    """A notebook failed or Jupyter Book reported a warning or error."""


@dataclass
class NotebookRun:
    """How one notebook was brought up to date."""

    name: str
    seconds: float
    executed: bool


@dataclass
class BuildReport:
    """Where the book went and how long each part took."""

    profile: str
    html_dir: Path
    notebooks: list[NotebookRun] = field(default_factory=list)
    sphinx_seconds: float = 0.0
    total_seconds: float = 0.0


def toc_documents(root: str | Path = ".") -> list[str]:
    """Document names in ``_toc.yml`` order (paths without suffix, relative to ``root``)."""
    from sphinx_external_toc.parsing import parse_toc_yaml

    return list(parse_toc_yaml(Path(root) / "_toc.yml"))


def _notebook_source(root: Path, docname: str) -> Path | None:
    for suffix in (".py", ".ipynb"):
        path = root / f"{docname}{suffix}"
        if path.is_file():
            return path
    return None


def params_path(root: Path, notebook: str, profile: str) -> Path:
    """``params/<notebook name>/<profile>.yaml``."""
    return root / "params" / Path(notebook).name / f"{profile}.yaml"


def _digest_bytes(chunks: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(hashlib.sha256(chunk).digest())
    return h.hexdigest()


def _library_digest() -> str:
    """The source of both packages: a change to either re-executes every notebook."""
    import bnnlib

    chunks = []
    for package in (Path(bnnlib.__file__).parent, Path(__file__).parent):
        files = sorted(p for p in package.rglob("*.py") if "__pycache__" not in p.parts)
        chunks += [
            f"{package.name}/{p.relative_to(package)}".encode() + p.read_bytes() for p in files
        ]
    return _digest_bytes(chunks)


def _record_dirs(params: Mapping[str, Any], cwd: Path) -> list[Path]:
    """Folders named by ``*_dir`` (str) and ``*_dirs`` (list of str) parameters."""
    dirs: list[Path] = []
    for key, value in params.items():
        if key.endswith("_dir") and isinstance(value, str):
            dirs.append(cwd / value)
        elif key.endswith("_dirs") and isinstance(value, list):
            dirs.extend(cwd / v for v in value if isinstance(v, str))
    return dirs


def _records_digest(dirs: Iterable[Path]) -> str:
    chunks = []
    for folder in dirs:
        if folder.is_dir():
            for path in sorted(folder.rglob("*.json")):
                if not any(part.startswith(".") for part in path.relative_to(folder).parts):
                    chunks.append(str(path).encode() + path.read_bytes())
    return _digest_bytes(chunks)


def _inputs_digest(source: Path, params: Mapping[str, Any], library: str, cwd: Path) -> str:
    return _digest_bytes(
        [
            source.read_bytes(),
            json.dumps(params, sort_keys=True, default=str).encode(),
            library.encode(),
            _records_digest(_record_dirs(params, cwd)).encode(),
        ]
    )


def _stored_digest(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        metadata = json.loads(path.read_text()).get("metadata", {})
    except json.JSONDecodeError:
        return None
    return metadata.get(METADATA_KEY, {}).get("inputs_digest")


def _finish_executed(path: Path, profile: str, digest: str) -> None:
    """Record the inputs' digest in the executed notebook. The page then shows only the
    parameters papermill injected (the values the profile used), not the overridden defaults."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.metadata[METADATA_KEY] = {"profile": profile, "inputs_digest": digest}
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    nbformat.write(nb, path)


def _sync_file(source: Path, target: Path) -> None:
    """Copy only when the content differs, keeping mtimes so Sphinx rebuilds only what changed."""
    if target.is_file() and target.read_bytes() == source.read_bytes():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def _remove_stale(stage: Path, keep: set[Path]) -> None:
    for path in sorted(stage.rglob("*"), reverse=True):
        if path.is_file() and path not in keep:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def _run_jupyter_book(stage: Path, out: Path) -> None:
    # sphinx-external-toc writes html/index.html (a redirect to the root page) only when it is
    # missing, so a changed root would keep redirecting to the old one.
    index = out / "html" / "index.html"
    if index.is_file() and REDIRECT_MARK in index.read_text(errors="replace"):
        index.unlink()
    command = [
        sys.executable,
        "-c",
        "from jupyter_book.cli.main import main; main()",
        "build",
        str(stage),
        "--path-output",
        str(out.parent),
        "-W",
        "-n",
        "--keep-going",
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stdout + result.stderr).splitlines()
        problems = [line for line in lines if "WARNING" in line or "ERROR" in line]
        shown = "\n".join(problems or lines[-40:])
        raise BookBuildError(f"jupyter-book build failed (exit {result.returncode}):\n{shown}")


def _sources(root: Path, profile: str) -> tuple[dict[str, tuple[Path, dict[str, Any]]], list[Path]]:
    """The toc's notebooks (docname -> source, validated params) and its Markdown pages."""
    notebooks: dict[str, tuple[Path, dict[str, Any]]] = {}
    pages: list[Path] = []
    for docname in toc_documents(root):
        source = _notebook_source(root, docname)
        if source is not None:
            path = params_path(root, docname, profile)
            if not path.is_file():
                raise ValueError(
                    f"notebook {docname!r} has no params file for profile {profile!r}: {path}"
                )
            params = params_files.load_params(path)
            defaults = notebook_runner.notebook_parameters(source, root)
            params_files.validate_params(params, defaults, str(path.relative_to(root)))
            notebooks[docname] = (source, params)
        elif (root / f"{docname}.md").is_file():
            pages.append(root / f"{docname}.md")
        else:
            raise ValueError(
                f"_toc.yml entry {docname!r} has no .md, .py or .ipynb source under {root}"
            )
    return notebooks, pages


def _stage_sources(
    root: Path, stage: Path, pages: list[Path], notebooks: Mapping[str, Any]
) -> None:
    """Copy the configuration, prose and pages into ``stage``; drop files no longer listed."""
    keep: set[Path] = set()
    prose = [p for p in (root / PROSE_DIR).rglob("*") if p.is_file()]
    for path in [*(root / name for name in BOOK_FILES), *prose, *pages]:
        target = stage / path.relative_to(root)
        _sync_file(path, target)
        keep.add(target)
    keep.update(stage / f"{docname}.ipynb" for docname in notebooks)
    if stage.is_dir():
        _remove_stale(stage, keep)


def build_book(
    profile: str = "cpu",
    force: bool = False,
    root: str | Path = ".",
    out: str | Path | None = None,
) -> BuildReport:
    """Execute the toc's notebooks with ``params/<notebook>/<profile>.yaml`` and build the HTML
    into ``<out>/html`` (``out`` defaults to ``<root>/_build`` and, as Jupyter Book requires, must
    be a folder named ``_build``). ``force`` re-executes notebooks whose inputs did not change
    (their experiments still come from cached run records). Raises :class:`BookBuildError` when a
    notebook fails (after trying all of them) or when Jupyter Book reports a warning."""
    start = time.perf_counter()
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {list(PROFILES)}")
    root = Path(root).resolve()
    out = Path(out).resolve() if out is not None else root / "_build"
    if out.name != "_build":
        raise ValueError(f"out must be a folder named '_build' (Jupyter Book's layout), got {out}")
    stage = out / "stage"

    notebooks, pages = _sources(root, profile)
    _stage_sources(root, stage, pages, notebooks)

    report = BuildReport(profile=profile, html_dir=out / "html")
    library = _library_digest()
    failures = []
    for docname, (source, params) in notebooks.items():
        target = stage / f"{docname}.ipynb"
        began = time.perf_counter()
        if not force and _stored_digest(target) == _inputs_digest(source, params, library, root):
            report.notebooks.append(NotebookRun(docname, time.perf_counter() - began, False))
            continue
        try:
            notebook_runner.run_notebook(source, params, target, cwd=root, root=root)
        except Exception as err:  # every notebook runs; all failures are reported together
            failures.append(f"{docname}: {type(err).__name__}: {err}".strip())
            continue
        _finish_executed(target, profile, _inputs_digest(source, params, library, root))
        report.notebooks.append(NotebookRun(docname, time.perf_counter() - began, True))
    if failures:
        raise BookBuildError(
            f"{len(failures)} notebook(s) failed; the executed copies are under {stage}:\n"
            + "\n".join(failures)
        )

    began = time.perf_counter()
    _run_jupyter_book(stage, out)
    report.sphinx_seconds = time.perf_counter() - began
    report.total_seconds = time.perf_counter() - start
    return report
