"""The library stands alone: bnnlib never imports the book, its dependencies or the checkout.

Every module under ``bnnlib/`` is parsed with :mod:`ast` (nothing is imported or executed) and
checked for:

* an import of ``bnnlib_book`` in any form: ``import``, ``from ... import``, a relative import
  that climbs out of ``bnnlib``, ``importlib.import_module``/``__import__`` with a literal, or a
  string literal that is a ``bnnlib_book`` module name (``importlib.resources.files(...)``);
* an import of one of the book's dependencies (:data:`BOOK_ONLY`), anywhere in the module: at
  module level or lazily inside a function. Code that needs them belongs to ``bnnlib_book``;
* a path into the checkout's ``notebooks/``, ``params/`` or ``runs/`` folders: a string literal
  with one of those names as a path component next to a separator (``"params/x.yaml"``), or the
  bare name used in a path expression (``Path("params")``, ``root / "notebooks"``,
  ``os.path.join(root, "runs")``). Docstrings are prose and are not checked. One exception:
  ``runs`` as a *default value* (``results_dir="runs"``, ``add_argument(..., default="runs")``) is
  the conventional output folder relative to the caller's working directory, which the library
  writes, never reads from a checkout; ``notebooks`` and ``params`` are inputs that exist only
  in the checkout and are reported everywhere;
* ``Path(__file__)`` (or ``os.path.dirname(__file__)``) climbing above ``bnnlib/``;
* the layering rules of :data:`LAYERS`.

:func:`check_package` returns the findings as ``file:line: message`` strings;
``test_checker_reports_a_bad_package`` runs it on a deliberately bad package tree, so these tests
can fail.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "bnnlib"
BOOK = "bnnlib_book"
BOOK_ONLY = (
    "altair",
    "pandas",
    "ipywidgets",
    "papermill",
    "jupytext",
    "nbformat",
    "sphinx",
    "jupyter_book",
)
LAYOUT_DIRS = ("notebooks", "params", "runs")
OUTPUT_DIRS = ("runs",)  # allowed as a default value (cwd-relative output folder)
_SEPARATOR = re.compile(r"[/\\]")
_BOOK_NAME = re.compile(rf"^{BOOK}(\.\w+)*(:\w+)?$")


@dataclass(frozen=True)
class Layer:
    """Modules named ``modules`` (a module or a package and everything below it) may import of
    ``bnnlib`` only ``only`` (when given), and never anything in ``forbidden``."""

    modules: tuple[str, ...]
    forbidden: tuple[str, ...] = ()
    only: tuple[str, ...] | None = None


LAYERS = (
    Layer(("bnnlib.quantizers", "bnnlib.layers"), only=("bnnlib.quantizers",)),
    Layer(
        ("bnnlib.optim",),
        forbidden=("bnnlib.models", "bnnlib.data", "bnnlib.train", "bnnlib.experiment"),
    ),
    Layer(
        ("bnnlib.models",),
        forbidden=("bnnlib.optim", "bnnlib.data", "bnnlib.train", "bnnlib.experiment"),
    ),
    Layer(("bnnlib.train",), forbidden=("bnnlib.cli",)),
)


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _module_name(path: Path, root: Path) -> tuple[str, bool]:
    """Dotted name of the module at ``path`` and whether it is a package ``__init__``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def _docstring_ids(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                ids.add(id(body[0].value))
    return ids


def _default_ids(tree: ast.AST) -> set[int]:
    """String constants that are default values: of parameters, or a ``default=`` keyword."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arguments):
            ids |= {id(d) for d in [*node.defaults, *node.kw_defaults] if d is not None}
        elif isinstance(node, ast.keyword) and node.arg == "default":
            ids.add(id(node.value))
    return ids


def _call_name(func: ast.expr) -> str:
    """``a.b.c`` of a call's function, or its last attribute when the base is not a name."""
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


_PATH_CALLS = {"Path", "PurePath", "PosixPath", "pathlib.Path", "pathlib.PurePath", "open"}
_PATH_METHODS = {"joinpath", "glob", "rglob", "with_name"}


def _path_operands(tree: ast.AST) -> set[int]:
    """Expressions used as parts of a path: arguments of Path()/open()/os.path.*(),
    operands of ``/`` and arguments of path methods such as ``joinpath``."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            ids |= {id(node.left), id(node.right)}
        elif isinstance(node, ast.Call):
            name = _call_name(node.func)
            last = name.rsplit(".", 1)[-1]
            if (
                name in _PATH_CALLS
                or name.startswith("os.path.")
                or (isinstance(node.func, ast.Attribute) and last in _PATH_METHODS)
            ):
                ids |= {id(a) for a in node.args}
    return ids


def _ups(node: ast.AST) -> float | None:
    """How many folders above ``__file__`` the expression ``node`` reaches, or None when it is
    not a path derived from ``__file__`` (``inf`` for an index that is not a literal)."""
    if isinstance(node, ast.Name):
        return 0 if node.id == "__file__" else None
    if isinstance(node, ast.Call):
        name = _call_name(node.func)
        last = name.rsplit(".", 1)[-1]
        if name in _PATH_CALLS - {"open"} or name in ("os.path.abspath", "os.path.realpath"):
            return _ups(node.args[0]) if node.args else None
        if name == "os.path.dirname":
            inner = _ups(node.args[0]) if node.args else None
            return None if inner is None else inner + 1
        if isinstance(node.func, ast.Attribute) and last in ("resolve", "absolute", "expanduser"):
            return _ups(node.func.value)
        return None
    if isinstance(node, ast.Attribute) and node.attr == "parent":
        inner = _ups(node.value)
        return None if inner is None else inner + 1
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "parents"
    ):
        inner = _ups(node.value.value)
        if inner is None:
            return None
        index = node.slice
        if isinstance(index, ast.Constant) and isinstance(index.value, int) and index.value >= 0:
            return inner + index.value + 1
        return math.inf
    return None


def _import_targets(node: ast.AST, module: str, is_package: bool) -> list[str] | None:
    """Dotted names ``node`` imports (``from a import b`` gives ``a.b``), resolving relative
    imports against ``module``; None when ``node`` is no import."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            parts = module.split(".") if is_package else module.split(".")[:-1]
            keep = len(parts) - (node.level - 1)
            if keep < 0:
                return ["<beyond the top level>"]
            base = ".".join(parts[:keep])
        else:
            base = ""
        prefix = ".".join(p for p in (base, node.module or "") if p)
        return [".".join(p for p in (prefix, a.name) if p and p != "*") for a in node.names]
    if isinstance(node, ast.Call) and _call_name(node.func) in (
        "importlib.import_module",
        "import_module",
        "__import__",
    ):
        first = node.args[0] if node.args else None
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return [first.value]
    return None


def _layer_findings(module: str, target: str) -> list[str]:
    found = []
    for layer in LAYERS:
        if not any(_within(module, m) for m in layer.modules):
            continue
        if layer.only is not None and _within(target, PACKAGE):
            if not any(_within(target, allowed) for allowed in (*layer.only, module)):
                found.append(
                    f"{module} imports {target}; it may import of {PACKAGE} only "
                    f"{', '.join(layer.only)}"
                )
        for forbidden in layer.forbidden:
            if _within(target, forbidden):
                found.append(f"{module} imports {target}; {forbidden} is above its layer")
    return found


def check_module(path: Path, root: Path) -> list[str]:
    """Findings in one module, as ``<path relative to root>:<line>: <message>``."""
    rel = path.relative_to(root).as_posix()
    module, is_package = _module_name(path, root)
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = _docstring_ids(tree)
    defaults = _default_ids(tree)
    path_operands = _path_operands(tree)
    max_ups = len(path.relative_to(root).parts) - 1  # up to the package folder itself
    found: set[tuple[int, str]] = set()

    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        targets = _import_targets(node, module, is_package)
        for target in targets or ():
            if target == "<beyond the top level>":
                found.add((line, "relative import beyond the top-level package"))
                continue
            if _within(target, BOOK):
                found.add((line, f"imports {target}: {PACKAGE} must not import {BOOK}"))
            top = target.split(".")[0]
            if top in BOOK_ONLY:
                found.add(
                    (
                        line,
                        f"imports {target}, a dependency of {BOOK} only: move the code that "
                        f"needs it to {BOOK}",
                    )
                )
            for message in _layer_findings(module, target):
                found.add((line, message))

        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) in docstrings:
                continue
            text = node.value
            if _BOOK_NAME.match(text.strip()):
                found.add((line, f"names the module {text!r}: {PACKAGE} must not load {BOOK}"))
            parts = [p for p in _SEPARATOR.split(text)]
            for folder in LAYOUT_DIRS:
                if folder not in parts:
                    continue
                as_path = len(parts) > 1 or id(node) in path_operands
                if not as_path:
                    continue
                if folder in OUTPUT_DIRS and id(node) in defaults:
                    continue
                found.add(
                    (
                        line,
                        f"the path {text!r} reaches the checkout's {folder}/ folder: "
                        f"{PACKAGE} must not depend on the repository layout",
                    )
                )

        ups = _ups(node) if isinstance(node, ast.Attribute | ast.Subscript | ast.Call) else None
        if ups is not None and ups > max_ups:
            found.add(
                (
                    line,
                    f"{ast.unparse(node)} climbs above the {PACKAGE}/ package "
                    f"({ups} folders up from {rel}, at most {max_ups})",
                )
            )
    return [f"{rel}:{line}: {message}" for line, message in sorted(found)]


def check_package(root: Path, package: str = PACKAGE) -> list[str]:
    """Findings in every module of ``<root>/<package>``."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        found.extend(check_module(path, root))
    return found


# -- the tests -----------------------------------------------------------------------------------


def test_bnnlib_imports_neither_the_book_nor_its_dependencies_nor_the_checkout() -> None:
    modules = sorted((REPO_ROOT / PACKAGE).rglob("*.py"))
    assert len(modules) > 20, "bnnlib/ not found"
    findings = check_package(REPO_ROOT)
    assert not findings, "\n".join(findings)


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


BAD = {
    "bnnlib/__init__.py": "",
    "bnnlib/bad.py": (
        "import os\n"  # 1
        "from pathlib import Path\n"  # 2
        "import bnnlib_book\n"  # 3
        "from bnnlib_book.params import find_number_strings\n"  # 4
        "from . import quantizers\n"  # 5 (fine)
        "from .. import bnnlib_book as book\n"  # 6
        "import pandas as pd\n"  # 7
        "def frame():\n"  # 8
        "    import altair\n"  # 9
        "    from sphinx.application import Sphinx\n"  # 10
        "ROOT = Path(__file__).resolve().parents[1]\n"  # 11
        "UP = Path(__file__).parent.parent.parent\n"  # 12
        "DEFAULTS = Path('notebooks/00_quickstart.py')\n"  # 13
        "PARAMS = ROOT / 'params'\n"  # 14
        "RUNS = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'runs')\n"  # 15
        "def load(name, folder='params/smoke'):\n"  # 16
        "    import importlib\n"  # 17
        "    return importlib.import_module('bnnlib_book.chapters')\n"  # 18
        "FILES = 'bnnlib_book.bayesbinn'\n"  # 19
    ),
    "bnnlib/quantizers.py": "import torch\n",
    "bnnlib/layers.py": (
        "from bnnlib.quantizers import sign\n"  # 1 (fine)
        "from bnnlib.optim import Bop\n"  # 2
        "from bnnlib import __version__\n"  # 3
    ),
    "bnnlib/models/__init__.py": "from . import net\n",
    "bnnlib/models/net.py": (
        "from ..layers import BinaryLinear\n"  # 1 (fine)
        "from ..data import load_dataset\n"  # 2
        "from bnnlib import optim\n"  # 3
    ),
    "bnnlib/optim/__init__.py": "",
    "bnnlib/optim/opt.py": (
        "from bnnlib import experiment\n"  # 1
        "import bnnlib.models.registry\n"  # 2
        "from ..train.trainer import Trainer\n"  # 3
        "from ..quantizers import sign\n"  # 4 (fine)
    ),
    "bnnlib/train/__init__.py": "",
    "bnnlib/train/loop.py": (
        "def main():\n"  # 1
        "    from bnnlib.cli import main as cli_main\n"  # 2
        "    import bnnlib.cli\n"  # 3
    ),
}

EXPECTED = {
    "bnnlib/bad.py": [3, 4, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19],
    "bnnlib/layers.py": [2, 3],
    "bnnlib/models/net.py": [2, 3],
    "bnnlib/optim/opt.py": [1, 2, 3],
    "bnnlib/train/loop.py": [2, 3],
}

GOOD = '''"""A docstring may mention notebooks/00_quickstart.py, params/ and runs/ and bnnlib_book."""
from pathlib import Path

VENDOR = Path(__file__).resolve().parent / "vendor"
PACKAGE_ROOT = Path(__file__).parents[1]


def step(optimizer, results_dir="runs", other="runs/continual"):
    for group in optimizer.param_groups:
        print(group["params"], "see the params cell")
    return [k for k in optimizer.defaults if k != "params"]


def parse(p):
    p.add_argument("--logdir", default="runs")
    from bnnlib.quantizers import sign
    return sign
'''


def test_checker_reports_a_bad_package(tmp_path: Path) -> None:
    for rel, text in BAD.items():
        _write(tmp_path, rel, text)
    findings = check_package(tmp_path)
    lines: dict[str, set[int]] = {}
    for finding in findings:
        rel, line, _ = finding.split(":", 2)
        lines.setdefault(rel, set()).add(int(line))
    report = "\n".join(findings)
    for rel, expected in EXPECTED.items():
        assert lines.get(rel, set()) == set(expected), f"{rel}:\n{report}"
    assert set(lines) == set(EXPECTED), report
    # the messages name what is wrong
    assert "bnnlib/bad.py:3: imports bnnlib_book" in report
    assert "bnnlib/bad.py:9: imports altair" in report
    assert "bnnlib/bad.py:13: the path 'notebooks/00_quickstart.py'" in report
    assert "bnnlib/bad.py:11: Path(__file__).resolve().parents[1] climbs above" in report
    assert "bnnlib/layers.py:2: bnnlib.layers imports bnnlib.optim.Bop" in report
    assert "bnnlib/train/loop.py:2: bnnlib.train.loop imports bnnlib.cli.main" in report


def test_checker_accepts_a_clean_module(tmp_path: Path) -> None:
    _write(tmp_path, "bnnlib/__init__.py", "")
    _write(tmp_path, "bnnlib/sub/__init__.py", "")
    _write(tmp_path, "bnnlib/sub/good.py", GOOD)
    assert check_package(tmp_path) == []
