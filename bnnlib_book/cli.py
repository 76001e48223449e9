"""``bnnlib-book build|run|setup-cells``: execute the book's notebooks with papermill and build the
HTML; write every notebook's setup cell from ``_config.yml``.

The book is the checkout's ``notebooks/``, ``params/``, ``book/``, ``_config.yml`` and ``_toc.yml``;
``--root`` names that folder (default: the current directory). Bad input prints one line naming it
and exits with status 2 before anything is executed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input found before any work started."""


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (the command, the error, a pointer to --help)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bnnlib-book", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=Path, default=Path("."), help="the book's folder (default: current)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="execute every notebook with a profile, then build")
    build.add_argument("--profile", default="cpu", help="smoke (CI), cpu (default) or paper")
    build.add_argument("--force", action="store_true", help="re-execute every notebook")

    nb = sub.add_parser("run", help="execute one notebook with a params file")
    nb.add_argument(
        "notebook", help="name (01_bop_ablation) or path (notebooks/01_bop_ablation.py)"
    )
    nb.add_argument("-f", "--params", type=Path, help="params YAML (default: its --profile file)")
    nb.add_argument("--profile", default="cpu")
    nb.add_argument(
        "--output", type=Path, help="executed notebook (default: _build/run/NAME.ipynb)"
    )

    cells = sub.add_parser(
        "setup-cells",
        help="write every notebook's setup cell from _config.yml's repository url and branch",
    )
    cells.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 when a notebook differs"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        root = args.root.resolve()
        if not (root / "_toc.yml").is_file():
            raise UsageError(f"--root {args.root} has no _toc.yml: run from the book's checkout")
        return _COMMANDS[args.command](args, root)
    except UsageError as exc:
        print(f"bnnlib-book {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _cmd_build(args: argparse.Namespace, root: Path) -> int:
    from .build import BookBuildError, build_book

    try:
        report = build_book(args.profile, root=root, force=args.force)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    except BookBuildError as exc:
        print(f"bnnlib-book build: failed: {exc}", file=sys.stderr)
        return 1
    for nb in report.notebooks:
        state = "executed" if nb.executed else "unchanged"
        print(f"{nb.name}: {state} ({nb.seconds:.1f} s)")
    print(
        f"book ({args.profile}): {report.html_dir} in {report.total_seconds:.1f} s "
        f"(sphinx {report.sphinx_seconds:.1f} s)"
    )
    return 0


def _cmd_run(args: argparse.Namespace, root: Path) -> int:
    from .build import params_path
    from .runner import resolve_notebook, run_notebook

    try:
        path = resolve_notebook(args.notebook, root)
        params = args.params or params_path(root, path.stem, args.profile)
        if not Path(params).exists():
            raise ValueError(f"params file {params} does not exist")
        output = args.output or root / "_build" / "run" / f"{path.stem}.ipynb"
        print(run_notebook(path, params, output))
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    return 0


def _cmd_setup_cells(args: argparse.Namespace, root: Path) -> int:
    from .setup_cell import check_setup_cells, write_setup_cells

    try:
        if args.check:
            problems = check_setup_cells(root)
            for problem in problems:
                print(f"bnnlib-book setup-cells: {problem}", file=sys.stderr)
            if problems:
                print("run: bnnlib-book setup-cells", file=sys.stderr)
                return 1
            return 0
        for path in write_setup_cells(root):
            print(f"wrote {path.relative_to(root)} and its .ipynb")
        problems = check_setup_cells(root)
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    for problem in problems:  # e.g. a second cell that still installs bnnlib: fix by hand
        print(f"bnnlib-book setup-cells: {problem}", file=sys.stderr)
    return 1 if problems else 0


_COMMANDS = {"build": _cmd_build, "run": _cmd_run, "setup-cells": _cmd_setup_cells}

if __name__ == "__main__":
    raise SystemExit(main())
