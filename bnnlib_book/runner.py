"""Execute one parameterized notebook with papermill, after checking its params.

Notebooks are found by name in ``notebooks/`` (the jupytext ``.py`` is the source) and run with
this environment's Jupyter kernel; the params are validated by :mod:`bnnlib_book.params` first.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bnnlib_book.params import load_params, parse_parameters, validate_params

KERNEL_NAME = "python3"


def resolve_notebook(notebook: str | Path, root: str | Path = ".") -> Path:
    """A notebook path, or a name such as ``00_quickstart`` looked up in ``<root>/notebooks``
    (the jupytext ``.py`` is the source; the paired ``.ipynb`` is used when there is no ``.py``)."""
    path = Path(notebook)
    if path.suffix in (".py", ".ipynb"):
        if not path.is_file():
            raise FileNotFoundError(f"notebook {str(path)!r} does not exist")
        return path
    folder = Path(root) / "notebooks"
    for suffix in (".py", ".ipynb"):
        candidate = folder / f"{notebook}{suffix}"
        if candidate.is_file():
            return candidate
    names = sorted({p.stem for p in folder.glob("*.py")} | {p.stem for p in folder.glob("*.ipynb")})
    raise ValueError(f"unknown notebook {str(notebook)!r}; notebooks in {folder}: {names}")


def read_notebook(path: str | Path) -> Any:
    """The notebook as an nbformat node (jupytext reads the py:percent source)."""
    import jupytext

    return jupytext.read(Path(path))


def parameters_cell_source(nb: Any, name: str = "notebook") -> str:
    """Source of the single code cell tagged ``parameters``."""
    cells = [
        c
        for c in nb.cells
        if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])
    ]
    if len(cells) != 1:
        raise ValueError(
            f"{name} must have exactly one code cell tagged 'parameters', found {len(cells)}"
        )
    return cells[0].source


def notebook_parameters(notebook: str | Path, root: str | Path = ".") -> dict[str, Any]:
    """Parameter names and defaults of a notebook (path or name)."""
    path = resolve_notebook(notebook, root)
    return parse_parameters(
        parameters_cell_source(read_notebook(path), str(path)), f"{path} parameters cell"
    )


def check_kernel(kernel_name: str = KERNEL_NAME) -> None:
    """The kernel must run this interpreter, or the notebook would import another bnnlib (or
    none, and its first cell would install one from the network)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel as err:
        raise RuntimeError(
            f"no Jupyter kernel {kernel_name!r}; install one for this environment with "
            f"'{sys.executable} -m ipykernel install --sys-prefix'"
        ) from err
    program = spec.argv[0]
    own = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    if program not in own and os.path.realpath(program) != os.path.realpath(sys.executable):
        raise RuntimeError(
            f"Jupyter kernel {kernel_name!r} ({spec.resource_dir}) runs {program}, not {sys.executable}; "
            f"install this environment's kernel with '{sys.executable} -m ipykernel install --sys-prefix'"
        )


def run_notebook(
    notebook: str | Path,
    params: str | Path | Mapping[str, Any] | None = None,
    output: str | Path | None = None,
    cwd: str | Path | None = None,
    root: str | Path = ".",
    kernel_name: str = KERNEL_NAME,
    log_output: bool = False,
) -> Path:
    """Execute ``notebook`` (path or name) with ``params`` (YAML path or dict) into ``output``.

    The parameters are validated against the notebook's parameters cell first. ``output``
    defaults to ``<root>/_build/executed/<name>.ipynb``; ``cwd`` (default ``root``) is the
    kernel's working directory, so relative results folders in params resolve against the
    repository. Raises papermill's ``PapermillExecutionError`` when a cell fails (the partly
    executed notebook is saved to ``output``). Returns the output path.
    """
    import nbformat
    import papermill

    root = Path(root)
    source = resolve_notebook(notebook, root)
    nb = read_notebook(source)
    defaults = parse_parameters(
        parameters_cell_source(nb, str(source)), f"{source} parameters cell"
    )
    if params is None:
        values: dict[str, Any] = {}
        label = "params"
    elif isinstance(params, Mapping):
        values, label = dict(params), "params"
    else:
        values, label = load_params(params), str(params)
    validate_params(values, defaults, label)
    check_kernel(kernel_name)

    output = (
        Path(output)
        if output is not None
        else root / "_build" / "executed" / f"{source.stem}.ipynb"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bnnlib-notebook-") as tmp:
        input_path = Path(tmp) / f"{source.stem}.ipynb"
        nbformat.write(nb, input_path)
        papermill.execute_notebook(
            str(input_path),
            str(output),
            parameters=values,
            kernel_name=kernel_name,
            cwd=str(cwd if cwd is not None else root),
            progress_bar=False,
            log_output=log_output,
        )
    return output


def chapter_params(notebook: str, profile: str, root: str | Path = ".") -> dict[str, Any]:
    """What ``notebook`` runs with under ``profile``: its defaults overridden by
    ``<root>/params/<notebook>/<profile>.yaml`` when that file exists, with ``dataset = "auto"``
    picked as the page picks it (:func:`bnnlib_book.runtime.pick_dataset`)."""
    from bnnlib_book.runtime import pick_dataset

    path = Path(root) / "params" / notebook / f"{profile}.yaml"
    params = notebook_parameters(notebook, root) | (load_params(path) if path.is_file() else {})
    if isinstance(params.get("dataset"), str):
        params["dataset"] = pick_dataset(params["dataset"])
    return params
