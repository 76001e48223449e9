"""The wheel is complete: built from the checkout and installed into an empty folder, both
packages work without the checkout, their package data included.

The sources (the root's files and the two package folders) are copied to a temporary folder and
the wheel is built there (the session fixture ``wheel`` of ``tests/conftest.py``, see
:func:`tests.conftest.can_build_offline`), so the build leaves no ``build/`` or ``*.egg-info`` in
the checkout and no stale ``build/lib`` leaks into the wheel. The wheel is installed with
``pip install --target`` and exercised in a subprocess started with ``-I`` (no ``PYTHONPATH``, no
working directory on ``sys.path``) from an empty folder, with the target folder first on
``sys.path`` and any editable-install finder of the environment removed; the subprocess asserts
that every ``bnnlib`` and ``bnnlib_book`` module it loaded lies under the target folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from bnnlib_book.chapters import CHAPTERS
from bnnlib_book.runner import chapter_params
from tests.conftest import PACKAGES, REPO_ROOT, install_wheel

SCRIPTS = {"bnnlib": "bnnlib.cli:main", "bnnlib-book": "bnnlib_book.cli:main"}
RUN_FILES = REPO_ROOT / "bnnlib_book" / "bayesbinn" / "runfiles"
PAPER_NUMBERS = REPO_ROOT / "bnnlib_book" / "paper_numbers"
REFERENCE_LOGS = REPO_ROOT / "bnnlib_book" / "bayesbinn" / "reference_logs"


@pytest.fixture(scope="module")
def site(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_wheel(wheel, tmp_path_factory.mktemp("wheel-site") / "site")


def test_wheel_declares_the_console_scripts(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry_points = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert len(entry_points) == 1, names
        text = zf.read(entry_points[0]).decode()
    section = text.split("[console_scripts]", 1)
    assert len(section) == 2, text
    declared = {}
    for line in section[1].splitlines():
        if line.startswith("["):
            break
        if "=" in line:
            name, target = (s.strip() for s in line.split("=", 1))
            declared[name] = target
    assert declared == SCRIPTS


def test_wheel_holds_the_packages_and_their_data_and_nothing_of_the_checkout(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert tops == set(PACKAGES)
    for package in PACKAGES:
        sources = {
            p.relative_to(REPO_ROOT).as_posix()
            for p in (REPO_ROOT / package).rglob("*.py")
            if "__pycache__" not in p.parts
        }
        assert sources <= names, sorted(sources - names)
    data = [
        *RUN_FILES.glob("*.json"),
        *REFERENCE_LOGS.iterdir(),
        *PAPER_NUMBERS.glob("*.yaml"),
        *(REPO_ROOT / "bnnlib_book" / "vendor").rglob("*"),
    ]
    data = {p.relative_to(REPO_ROOT).as_posix() for p in data if p.is_file()}
    assert data, "no package data found in the checkout"
    assert data <= names, sorted(data - names)


SUBPROCESS = textwrap.dedent(
    """
    import json
    import sys
    from pathlib import Path

    args = json.loads(Path(sys.argv[1]).read_text())
    site = Path(args["site"]).resolve()
    repo = Path(args["repo"]).resolve()
    # The environment may hold an editable install of the checkout: drop its finders and path
    # entries, and put the target first.
    sys.meta_path[:] = [
        f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")
    ]
    # The checkout's own folders go; the interpreter's (its venv may sit inside the checkout) stay.
    prefix = Path(sys.prefix).resolve()

    def outside_checkout(entry: str) -> bool:
        path = Path(entry).resolve()
        if path == prefix or prefix in path.parents:
            return True
        return path != repo and repo not in path.parents

    sys.path[:] = [p for p in sys.path if p and "__editable__" not in p and outside_checkout(p)]
    sys.path.insert(0, str(site))
    assert Path.cwd().resolve() != repo and not any(Path.cwd().iterdir())

    import importlib.metadata
    from functools import partial

    import torch

    import bnnlib
    import bnnlib_book

    for module in (bnnlib, bnnlib_book):
        assert site in Path(module.__file__).resolve().parents, module.__file__

    # the distribution's metadata is the wheel's, and its console scripts load
    dist = importlib.metadata.distribution("bnnlib")
    assert Path(dist.locate_file("")).resolve() == site, dist.locate_file("")
    scripts = {ep.name: ep for ep in dist.entry_points if ep.group == "console_scripts"}
    assert sorted(scripts) == ["bnnlib", "bnnlib-book"], sorted(scripts)
    for ep in scripts.values():
        assert callable(ep.load()), ep

    # bnnlib: a model, a routed optimizer, one step, a summary
    from bnnlib.layers import is_binary
    from bnnlib.models import create_model
    from bnnlib.optim import Bop, route

    torch.manual_seed(0)
    model = create_model("binarynet_batch", width=0.125)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    assert model(x).shape == (4, 10)
    binary = [p for p in model.parameters() if is_binary(p)]
    assert binary
    optimizer = route(
        model,
        [(is_binary, partial(Bop, threshold=0.0, gamma=1.0))],
        default=partial(torch.optim.Adam, lr=1e-2),
    )
    before = [p.detach().clone() for p in model.parameters()]
    model.train()
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    changed = [not torch.equal(a, p) for a, p in zip(before, model.parameters())]
    assert any(changed), "one optimizer step changed no parameter"
    assert any(
        c for c, p in zip(changed, model.parameters()) if is_binary(p)
    ), "Bop flipped no binary weight"
    for p in binary:
        assert set(p.detach().unique().tolist()) <= {-1.0, 1.0}
    summ = bnnlib.summary(model, (3, 32, 32))
    assert summ.total_binary == sum(p.numel() for p in binary)
    assert "1-bit params" in str(summ)

    # bnnlib_book: every seed run file (package data) read and translated
    from bnnlib.experiment.config import RunConfig
    from bnnlib.experiment.runfile import to_run_config
    from bnnlib_book.bayesbinn import design

    assert site in design.RUN_FILES.resolve().parents
    run_files = sorted(p.name for p in design.RUN_FILES.glob("*.json"))
    assert run_files == args["run_files"], run_files
    for name in run_files:
        cfg = design.seed_file(name)
        run_config = to_run_config(cfg)
        assert isinstance(run_config, RunConfig) and run_config.hparams_set == cfg.method, name

    # the BayesBiNN authors' logs: 3 data sets x 5 runs x 500 epochs
    from bnnlib_book.bayesbinn import reference

    assert site in reference.REFERENCE_DIR.resolve().parents
    assert len(reference.reference_logs()) == 3 * 5 * 500

    # the papers' reported numbers
    from bnnlib_book.papers import FOLDER, papers, reported

    assert site in FOLDER.resolve().parents
    assert papers() == args["papers"], papers()
    for paper in papers():
        assert reported(paper), paper

    # the vendored JavaScript
    from bnnlib_book.assets import VENDOR_DIR, vendored

    assert site in VENDOR_DIR.resolve().parents
    libraries = vendored()
    assert {"vega", "vega-lite", "vega-embed", "mathjax"} <= set(libraries), sorted(libraries)
    for name, entry in libraries.items():
        path = VENDOR_DIR / entry["file"]
        assert path.is_file() and path.stat().st_size > 0, (name, path)

    # the summary's grading, with explicit params and empty results folders
    from bnnlib_book.chapters import CHAPTERS, book_verdicts
    from bnnlib_book.grading import REPRODUCED, chapter_verdicts

    empty = Path(args["empty"])
    params = args["params"]
    assert sorted(params) == sorted(c.name for c in CHAPTERS if c.evaluator), sorted(params)
    results_dirs = {name: empty / name for name in params}
    verdicts = book_verdicts(results_dirs, params)
    expected = []
    for chapter in CHAPTERS:
        own = chapter_verdicts(chapter, results_dirs.get(chapter.name), params.get(chapter.name, {}))
        assert own, f"chapter {chapter.name} has no verdicts"
        expected.extend(own)
    assert verdicts == expected
    assert not [v for v in verdicts if v.status == REPRODUCED]
    assert [c.name for c in CHAPTERS] == args["chapters"]

    # nothing was loaded from anywhere but the target folder
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in ("bnnlib", "bnnlib_book"):
            file = getattr(module, "__file__", None)
            if file:
                assert site in Path(file).resolve().parents, (name, file)
            for entry in getattr(module, "__path__", []) or []:
                assert site in Path(entry).resolve().parents, (name, entry)
    print("ok", len(run_files), "run files", len(verdicts), "verdicts")
    """
)


def test_installed_wheel_works_without_the_checkout(site: Path, tmp_path: Path) -> None:
    params = {c.name: chapter_params(c.name, "smoke", REPO_ROOT) for c in CHAPTERS if c.evaluator}
    assert params, "no chapter has an evaluator"
    args = {
        "site": str(site),
        "repo": str(REPO_ROOT),
        "empty": str(tmp_path / "results"),
        "params": params,
        "run_files": sorted(p.name for p in RUN_FILES.glob("*.json")),
        "papers": sorted(p.stem for p in PAPER_NUMBERS.glob("*.yaml")),
        "chapters": [c.name for c in CHAPTERS],
    }
    assert args["run_files"] and args["papers"]
    (tmp_path / "results").mkdir()
    (tmp_path / "args.json").write_text(json.dumps(args))
    (tmp_path / "check.py").write_text(SUBPROCESS)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    proc = subprocess.run(
        [sys.executable, "-I", str(tmp_path / "check.py"), str(tmp_path / "args.json")],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        | {"OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.startswith("ok "), proc.stdout
