"""Wall time of building the book: from a fresh checkout, again with nothing changed, and forced.

The files a clone would hold (``git ls-files``: tracked and untracked-but-not-ignored) are copied
to a temporary folder, and the book is built there in a subprocess, as ``bnnlib-book build --profile
smoke`` builds it in a checkout (``bnnlib_book.build.build_book`` with that folder as root):

1. cold: no ``_build`` at all, so every notebook runs and trains its smoke runs;
2. rebuild with nothing changed (``--rebuilds`` times, median): every notebook is skipped by its
   inputs digest and Sphinx finds nothing to write;
3. forced (``--force``): every notebook re-executes, its runs loaded from the records of step 1.

The dataset cache (``BNNLIB_CACHE_DIR``) and the installed packages are whatever the environment
has: this measures the book, not the download of MNIST or CIFAR-10.

    python benchmarks/bench_book.py [--out benchmarks/results/book.json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BUILD = """
import json, sys
from bnnlib_book.build import build_book
r = build_book(sys.argv[1], force=sys.argv[2] == "1", root=sys.argv[3], out=sys.argv[4])
runs = [{"name": n.name, "seconds": n.seconds, "executed": n.executed} for n in r.notebooks]
print(json.dumps({"notebooks": runs, "sphinx_s": r.sphinx_seconds, "total_s": r.total_seconds}))
"""


def checkout_files(repo: Path) -> list[str]:
    """What a clone of ``repo`` with its uncommitted work would hold."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (repo / name).is_file()]


def copy_checkout(repo: Path, target: Path) -> None:
    for name in checkout_files(repo):
        dest = target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, dest)


def reduce_to_first_chapter(root: Path) -> None:
    """``--quick``: cut the copy's book to a stub root page and the toc's first chapter (the
    real root page cites and links pages that would then be missing)."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    first = toc["parts"][0]
    toc["parts"] = [{**first, "chapters": first["chapters"][:1]}]
    (root / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    (root / f"{toc['root']}.md").write_text("# Benchmark build\n\nThe first chapter only.\n")


def build(root: Path, profile: str, force: bool) -> dict[str, Any]:
    """One ``build_book`` in a fresh interpreter; wall time includes its start-up."""
    command = [sys.executable, "-c", BUILD, profile, "1" if force else "0", str(root)]
    command.append(str(root / "_build"))
    start = time.perf_counter()
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, env=os.environ)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"book build failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, **result}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results/book.json")
    parser.add_argument("--profile", default="smoke", choices=("smoke", "cpu"))
    parser.add_argument("--rebuilds", type=int, default=3, help="no-change rebuilds (median)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only the first chapter, 1 rebuild: checks the script only",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary checkout")
    args = parser.parse_args(argv)
    if args.quick:
        args.rebuilds = 1
    if args.rebuilds < 1:
        parser.error("--rebuilds must be >= 1")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from bench_optim import machine

    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench_book_"))
    root = workdir / "repo"
    try:
        copy_checkout(REPO, root)
        if args.quick:
            reduce_to_first_chapter(root)
        cold = build(root, args.profile, force=False)
        rebuilds = [build(root, args.profile, force=False) for _ in range(args.rebuilds)]
        forced = build(root, args.profile, force=True)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report = {
        "benchmark": "book",
        "quick": args.quick,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {**machine(), "torch_threads": "torch's default (notebook kernels)"},
        "settings": {
            "profile": args.profile,
            "rebuilds": args.rebuilds,
            "notebooks": [n["name"] for n in cold["notebooks"]],
        },
        "cold": cold,
        "rebuild_wall_s": statistics.median(r["wall_s"] for r in rebuilds),
        "rebuild_walls_s": [r["wall_s"] for r in rebuilds],
        "rebuild_executed": sorted(
            {n["name"] for r in rebuilds for n in r["notebooks"] if n["executed"]}
        ),
        "forced": forced,
    }
    _print_table(report)
    from bnnlib.atomic import write_json

    write_json(args.out, report)  # atomic: a reader never sees half a result file
    print(f"wrote {args.out}")
    return report


def _print_table(report: dict[str, Any]) -> None:
    s = report["settings"]
    print(
        f"bnnlib-book build --profile {s['profile']}: {len(s['notebooks'])} notebooks"
        + (" | QUICK (first chapter only)" if report["quick"] else "")
    )
    cold, forced = report["cold"], report["forced"]
    print(
        f"cold (fresh checkout)        {cold['wall_s']:>7.1f} s (sphinx {cold['sphinx_s']:.1f} s)"
    )
    print(f"rebuild, nothing changed     {report['rebuild_wall_s']:>7.1f} s (median)")
    print(
        f"--force (runs cached)        {forced['wall_s']:>7.1f} s (sphinx {forced['sphinx_s']:.1f} s)"
    )
    for n in cold["notebooks"]:
        print(f"  {n['name']:<36}{n['seconds']:>7.1f} s cold")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
