"""Every notebook runs as it runs in Colab: the built wheel alone, the committed notebook in an
empty folder, no checkout on the path, the smoke parameters, data only from ``BNNLIB_DATA_DIR``.

- **The environment** is a new venv (``python -m venv --without-pip``). Its site-packages holds
  the wheel (``pip install --target``, see ``tests/conftest.py``) and one ``.pth`` line naming
  this interpreter's site-packages, for the third-party packages (torch, papermill, ...), so torch
  is not installed again. A ``.pth`` line only adds its folder to ``sys.path``; the ``.pth`` files
  in that folder are not run, so an editable install of the checkout there stays inert (checked).
  The venv's own Jupyter kernel runs the notebooks; ``HOME`` is an empty folder (no user kernels
  or caches), the ``PYTHON*``, ``JUPYTER*``, ``PIP_*`` and ``XDG_*`` variables are dropped, and pip
  has no index (``PIP_NO_INDEX``), so a setup cell that tried to install would fail.
- **The repository.** In Colab the setup cell clones the URL of ``_config.yml``; here
  ``BNNLIB_BOOK_REPOSITORY`` points it at a local git repository holding what a clone of this
  checkout would hold (tracked and untracked, not ignored files, so uncommitted work is what is
  tested), committed on the branch ``_config.yml`` names. The smoke params are read from it.
- **Each notebook**: the committed ``.ipynb`` is copied into an empty folder with one cell
  appended, which checks inside the kernel that every ``bnnlib``/``bnnlib_book`` module came from
  the wheel and that the page worked in its own clone; papermill runs it from that folder. The
  decoded-array cache (``BNNLIB_CACHE_DIR``, derived from the data) is the session's, so CIFAR-10
  is not decoded once per page.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from bnnlib.data.paths import cache_dir
from bnnlib_book.params import load_params
from bnnlib_book.runtime import REPOSITORY_ENV, repository_name
from bnnlib_book.setup_cell import repository
from tests.conftest import DATA_DIR, REPO_ROOT, has_data, install_wheel, run_checked

NOTEBOOKS = sorted(p.stem for p in (REPO_ROOT / "notebooks").glob("*.ipynb"))
RECORD_DIRS = ("results_dir", "continual_dir")  # folders a page writes its own records to
DROPPED_ENV = ("PYTHON", "JUPYTER", "PIP_", "XDG_", "BNNLIB_", "VIRTUAL_ENV", "CONDA")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed"),
    pytest.mark.skipif(
        not (
            has_data("MNIST", "raw")
            and has_data("CIFAR10-convnetjs-subset")
            and has_data("CIFAR10-jpeg")
        ),
        reason="BNNLIB_DATA_DIR with MNIST, the CIFAR-10 PNG subset and JPEG copy is not set",
    ),
]


def _git(*args: str, cwd: Path) -> None:
    run_checked(["git", "-c", "user.name=test", "-c", "user.email=test@invalid", *args], cwd=cwd)


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository with the files a clone of this checkout holds, on the config's branch,
    in a folder named as the repository (so the clone is named as in Colab)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
    )
    if listed.returncode != 0:
        pytest.skip(f"{REPO_ROOT} is not a git checkout")
    url, branch = repository(REPO_ROOT)
    repo = tmp_path_factory.mktemp("remote") / repository_name(url)
    names = [n for n in listed.stdout.decode().split("\0") if n and (REPO_ROOT / n).is_file()]
    for name in names:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, repo / name)
    _git("init", "-q", cwd=repo)
    _git("checkout", "-q", "-b", branch, cwd=repo)
    _git("add", "-A", cwd=repo)
    _git("commit", "-q", "-m", "the checkout's files", cwd=repo)
    return repo


@pytest.fixture(scope="module")
def fresh_env(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A new venv with the wheel and this interpreter's third-party packages, and its kernel."""
    tmp = tmp_path_factory.mktemp("colab-env")
    venv = tmp / "venv"
    run_checked([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    purelib = Path(
        run_checked(
            [str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
        ).stdout.strip()
    )
    install_wheel(wheel, purelib)
    (purelib / "third_party.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    home = tmp / "home"
    home.mkdir()
    env = _env(home, remote=None)
    run_checked(
        [str(python), "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"], env=env
    )
    check = textwrap.dedent(
        """
        import sys
        from pathlib import Path

        import bnnlib, bnnlib_book

        site, repo = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
        for module in (bnnlib, bnnlib_book):
            assert site in Path(module.__file__).resolve().parents, module.__file__
        assert not [m for m in sys.modules if m.startswith("__editable__")], sys.modules
        assert not [p for p in sys.path if p and Path(p).resolve() == repo], sys.path
        print("ok")
        """
    )
    out = run_checked([str(python), "-c", check, str(purelib), str(REPO_ROOT)], env=env, cwd=home)
    assert out.stdout.strip() == "ok"
    return {"python": python, "site": purelib, "home": home}


def _env(home: Path, remote: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROPPED_ENV)}
    env |= {
        "HOME": str(home),
        "BNNLIB_DATA_DIR": str(DATA_DIR),
        "BNNLIB_CACHE_DIR": str(cache_dir()),
        "OMP_NUM_THREADS": "1",
        "PIP_NO_INDEX": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    if remote is not None:
        env[REPOSITORY_ENV] = remote.as_uri()
    return env


DRIVER = textwrap.dedent(
    """
    import json
    import sys
    from pathlib import Path

    import nbformat
    import papermill

    from bnnlib_book.params import load_params

    args = json.loads(Path(sys.argv[1]).read_text())
    notebook = Path(args["notebook"])
    nb = nbformat.read(notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(args["check"]))
    nbformat.write(nb, notebook)
    papermill.execute_notebook(
        str(notebook),
        args["output"],
        parameters=load_params(args["params"]),
        kernel_name="python3",
        cwd=str(notebook.parent),
        progress_bar=False,
        start_timeout=120,
    )
    """
)

CHECK = """\
# Added by tests/test_colab.py: where this page's code and files came from.
import sys
from pathlib import Path

_site, _clone = Path({site}).resolve(), Path({clone}).resolve()
_ours = [m for n, m in list(sys.modules.items()) if n.split(".")[0] in ("bnnlib", "bnnlib_book")]
_files = [Path(m.__file__).resolve() for m in _ours if getattr(m, "__file__", None)]
_foreign = [str(f) for f in _files if _site not in f.parents]
assert not _foreign, _foreign
assert runtime.cloned and runtime.root.resolve() == _clone, runtime
assert Path.cwd().resolve() == _clone, Path.cwd()
assert not [p for p in sys.path if p and Path(p).resolve() == _clone], sys.path
print(f"colab check: {{len(_ours)}} modules from the wheel")
"""


def _outputs(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.output_type == "stream")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_as_in_colab(
    name: str, fresh_env: dict[str, Path], remote: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "content"
    folder.mkdir()
    assert REPO_ROOT not in folder.resolve().parents
    notebook = folder / f"{name}.ipynb"
    shutil.copy2(REPO_ROOT / "notebooks" / f"{name}.ipynb", notebook)
    clone = folder / remote.name
    params = remote / "params" / name / "smoke.yaml"
    output = tmp_path / "executed" / f"{name}.ipynb"
    output.parent.mkdir()
    args = {
        "notebook": str(notebook),
        "params": str(params),
        "output": str(output),
        "check": CHECK.format(
            site=json.dumps(str(fresh_env["site"])), clone=json.dumps(str(clone))
        ),
    }
    (tmp_path / "args.json").write_text(json.dumps(args))
    (tmp_path / "driver.py").write_text(DRIVER)
    proc = subprocess.run(
        [str(fresh_env["python"]), "-I", str(tmp_path / "driver.py"), str(tmp_path / "args.json")],
        cwd=folder,
        env=_env(fresh_env["home"], remote),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, f"{name} failed in a Colab-like runtime:\n{proc.stderr[-6000:]}"

    executed = nbformat.read(output, as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    setup_out = _outputs(code[0])
    assert f"(cloned of {remote.as_uri()}, branch " in setup_out, setup_out
    assert "device: " in setup_out
    assert "colab check: " in _outputs(code[-1]), _outputs(code[-1])
    for key in RECORD_DIRS:
        value = load_params(params).get(key)
        if value:
            assert list((clone / value).glob("*.json")), f"{name}: no records in {clone / value}"
