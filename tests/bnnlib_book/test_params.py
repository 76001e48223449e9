"""Params files against the notebooks' parameters cells, and the checks run_notebook makes
before a kernel starts."""

from __future__ import annotations

import json
from pathlib import Path

import jupytext
import pytest

from bnnlib_book.build import PROFILES, toc_documents
from bnnlib_book.params import load_params, parse_parameters, validate_params
from bnnlib_book.runner import notebook_parameters, run_notebook

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.py"))
PARAMS_FILES = sorted((REPO_ROOT / "params").glob("*/*.yaml"))


def test_there_are_notebooks_and_params() -> None:
    assert NOTEBOOKS and PARAMS_FILES


@pytest.mark.parametrize("path", PARAMS_FILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_params_file_fits_its_notebook(path: Path) -> None:
    notebook = REPO_ROOT / "notebooks" / f"{path.parent.name}.py"
    assert notebook.is_file(), f"{path} names no notebook"
    defaults = notebook_parameters(notebook)
    params = load_params(path)
    validate_params(params, defaults, str(path))
    if "interactive" in defaults:
        assert params.get("interactive") is False, "params files build the book: interactive: false"
    if "profile" in defaults and path.stem in PROFILES:
        assert params.get("profile") == path.stem


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_every_profile(notebook: Path) -> None:
    present = sorted(p.stem for p in (REPO_ROOT / "params" / notebook.stem).glob("*.yaml"))
    assert set(PROFILES) <= set(present)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_paired_ipynb_matches_source_and_has_no_outputs(notebook: Path) -> None:
    source = jupytext.read(notebook)
    paired = json.loads(notebook.with_suffix(".ipynb").read_text())
    assert [(c.cell_type, c.source) for c in source.cells] == [
        (c["cell_type"], "".join(c["source"])) for c in paired["cells"]
    ], "run: jupytext --sync " + str(notebook.relative_to(REPO_ROOT))
    for cell in paired["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    assert paired["metadata"]["kernelspec"]["name"] == "python3"


def test_toc_lists_every_notebook() -> None:
    listed = {d for d in toc_documents(REPO_ROOT) if d.startswith("notebooks/")}
    assert listed == {f"notebooks/{p.stem}" for p in NOTEBOOKS}


CELL = """profile = "cpu"
epochs = 2
lr = 1.0e-3
thresholds = [1.0e-8, 1.0e-7]
hparams = {"gamma": 1.0e-4, "norm": "bn"}
interactive = True
results_dir: str = "runs/x"
extra = None
"""


def test_parse_parameters_reads_literals_in_order() -> None:
    assert parse_parameters(CELL) == {
        "profile": "cpu",
        "epochs": 2,
        "lr": 1.0e-3,
        "thresholds": [1.0e-8, 1.0e-7],
        "hparams": {"gamma": 1.0e-4, "norm": "bn"},
        "interactive": True,
        "results_dir": "runs/x",
        "extra": None,
    }


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x = __import__('os').getcwd()", "must be a literal"),
        ("import os", "only 'name = literal'"),
        ("a = b = 1", "only 'name = literal'"),
        ("a.b = 1", "assign to a plain name"),
    ],
)
def test_parse_parameters_rejects_code(source: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_parameters(source)


DEFAULTS = parse_parameters(CELL)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"epochs": 5, "lr": 1, "profile": "smoke"},
        {"thresholds": [1.0e-9], "hparams": {"gamma": 1.0e-5, "new_key": 3}},
        {"extra": {"anything": [1, "a"]}, "interactive": False},
    ],
)
def test_valid_params_pass(params: dict) -> None:
    validate_params(params, DEFAULTS)


@pytest.mark.parametrize(
    ("params", "error", "pieces"),
    [
        ({"epoch": 3}, ValueError, ["unknown parameter 'epoch'", "'epochs'", "'lr'"]),
        ({"epochs": 2.5}, TypeError, ["'epochs'", "expected int", "got float"]),
        ({"epochs": True}, TypeError, ["'epochs'", "expected int", "got bool"]),
        ({"interactive": 1}, TypeError, ["'interactive'", "expected bool", "got int"]),
        ({"profile": 3}, TypeError, ["'profile'", "expected str", "got int"]),
        ({"lr": "1e-3"}, TypeError, ["'lr'", "string '1e-3'", "write it as 0.001"]),
        ({"thresholds": [1.0e-8, "1e-7"]}, TypeError, ["'thresholds'[1]", "write it as 1.0e-07"]),
        ({"hparams": {"gamma": "1e-4"}}, TypeError, ["'hparams'['gamma']", "string '1e-4'"]),
        ({"hparams": {"sigma": "1E-3"}}, TypeError, ["'hparams'['sigma']", "string '1E-3'"]),
        ({"extra": ["5e-2"]}, TypeError, ["'extra'[0]", "string '5e-2'"]),
        ({"thresholds": 1.0e-8}, TypeError, ["'thresholds'", "expected list", "got float"]),
    ],
)
def test_invalid_params_name_the_key(params: dict, error: type, pieces: list[str]) -> None:
    with pytest.raises(error) as raised:
        validate_params(params, DEFAULTS, "grid.yaml")
    for piece in ["grid.yaml", *pieces]:
        assert piece in str(raised.value)


def test_yaml_float_trap_is_caught_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "cpu.yaml"
    path.write_text("lr: 1e-3\nepochs: 3\n")
    with pytest.raises(TypeError, match="write it as 0.001"):
        validate_params(load_params(path), DEFAULTS, str(path))
    path.write_text("lr: 1.0e-3\nepochs: 3\n")
    validate_params(load_params(path), DEFAULTS, str(path))


def test_a_params_file_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must be a mapping"):
        load_params(path)


TINY = """# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
scale = 2.0
label = "default"

# %%
from pathlib import Path

Path("result.txt").write_text(f"{label}:{scale * 21}")
"""


def test_run_notebook_injects_params_and_runs_in_cwd(tmp_path: Path) -> None:
    notebook = tmp_path / "tiny.py"
    notebook.write_text(TINY)
    params = tmp_path / "p.yaml"
    params.write_text("scale: 3.0\nlabel: injected\n")
    output = run_notebook(notebook, params, tmp_path / "out" / "tiny.ipynb", cwd=tmp_path)
    assert (tmp_path / "result.txt").read_text() == "injected:63.0"
    executed = json.loads(output.read_text())
    assert executed["metadata"]["papermill"]["parameters"] == {"scale": 3.0, "label": "injected"}
    assert notebook.read_text() == TINY


def test_run_notebook_checks_params_before_starting_a_kernel(tmp_path: Path) -> None:
    notebook = tmp_path / "tiny.py"
    notebook.write_text(TINY)
    output = tmp_path / "out.ipynb"
    with pytest.raises(
        ValueError, match="unknown parameter 'scal'; valid parameters: \\['label', 'scale'\\]"
    ):
        run_notebook(notebook, {"scal": 1.0}, output, cwd=tmp_path)
    with pytest.raises(TypeError, match="'scale'.*string '1e3'"):
        run_notebook(notebook, {"scale": "1e3"}, output, cwd=tmp_path)
    assert not output.exists() and not (tmp_path / "result.txt").exists()


def test_unknown_notebook_name_lists_the_notebooks() -> None:
    with pytest.raises(ValueError, match="00_quickstart"):
        notebook_parameters("no_such_notebook")
