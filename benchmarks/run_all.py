"""Run every benchmark, one fresh process each, and write benchmarks/results/summary.json.

    python benchmarks/run_all.py [--quick] [--threads 1] [--only optim train ...]

Each benchmark writes its own ``<results>/<name>.json``; the summary adds the machine, the date,
the git commit, the load average around each benchmark (the machine may be shared: a high load
makes the numbers noise) and the headline numbers against the issue's goals. ``--quick`` runs
every benchmark at a size that only checks it works; its files say ``"quick": true`` and the
Performance page then warns that its numbers are not measurements.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BENCHMARKS = ("optim", "train", "memory", "bayesbinn", "book")
# Quick settings per benchmark (bench_optim has no --quick: fewer rounds, a short budget).
QUICK_ARGS = {
    "optim": ["--rounds", "3", "--warmup", "1", "--budget", "5"],
    "train": ["--quick"],
    "memory": ["--quick"],
    "bayesbinn": ["--quick"],
    "book": ["--quick"],
}
BOP_GOAL = 1.2
BAYESBINN_GOAL = 1.3
BINARY_FLOAT_EXPLAIN_ABOVE = 1.15


def command(name: str, out: Path, threads: int, quick: bool) -> list[str]:
    args = [sys.executable, str(HERE / f"bench_{name}.py"), "--out", str(out)]
    if name != "book":  # the book's notebooks run in their own kernels
        args += ["--threads", str(threads)]
    return args + (QUICK_ARGS[name] if quick else [])


def _optim(r: dict[str, Any]) -> dict[str, Any]:
    rows = {row["name"]: row for row in r["results"]}

    def ratio(name: str) -> float | None:
        return rows[name]["ratio_to_floor"] if name in rows else None

    return {
        "bop_compiled_ratio_to_floor": ratio("Bop [compiled]"),
        "bop_compiled_track_flips_ratio_to_floor": ratio("Bop [compiled, track_flips]"),
        "bop2_biased_compiled_ratio_to_floor": ratio("Bop2ndOrder biased [compiled]"),
        "bop2_unbiased_compiled_ratio_to_floor": ratio("Bop2ndOrder unbiased [compiled]"),
        "bayesbinn_ratio_to_floor": ratio("BayesBiNN [S=1]"),
        "bop_goal": BOP_GOAL,
    }


def _train(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "ratio_binary_float": {a["name"]: a["ratio_binary_float"] for a in r["architectures"]},
        "explain_above": BINARY_FLOAT_EXPLAIN_ABOVE,
    }


def _memory(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "step_peak_over_baseline_mib": {
            c["case"]: c["step_peak_over_baseline_mib"] for c in r["cases"]
        },
        "deployed_mib": r["deployed"]["memory_bytes"] / 2**20,
        "float32_mib": r["deployed"]["float_memory_bytes"] / 2**20,
    }


def _bayesbinn(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "ratio_epoch": r["ratio_epoch"],
        "ratio_step_median": r["ratio_step_median"],
        "test_acc": {m["method"]: m["test_acc"] for m in r["methods"]},
        "goal": BAYESBINN_GOAL,
    }


def _book(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "cold_s": r["cold"]["wall_s"],
        "rebuild_s": r["rebuild_wall_s"],
        "forced_s": r["forced"]["wall_s"],
    }


HEADLINES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "optim": _optim,
    "train": _train,
    "memory": _memory,
    "bayesbinn": _bayesbinn,
    "book": _book,
}


def git_commit() -> str | None:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="check the scripts, measure nothing")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per benchmark (default 1: on a shared 2-core machine two threads "
        "wait on each other's preempted partner and the medians measure the neighbours)",
    )
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument("--results", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))
    from bench_optim import machine

    args.results.mkdir(parents=True, exist_ok=True)
    summary_path = args.results / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    benchmarks = summary.get("benchmarks", {})
    failed = []
    started = time.perf_counter()
    for name in args.only:
        out = args.results / f"{name}.json"
        print(f"\n=== {name} ===", flush=True)
        load_before = os.getloadavg()
        began = time.perf_counter()
        done = subprocess.run(command(name, out, args.threads, args.quick), cwd=REPO)
        entry: dict[str, Any] = {
            "file": out.name,
            "quick": args.quick,
            "wall_s": time.perf_counter() - began,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "status": "ok" if done.returncode == 0 else f"failed (exit {done.returncode})",
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if done.returncode == 0:
            entry["headline"] = HEADLINES[name](json.loads(out.read_text()))
        else:
            failed.append(name)
        benchmarks[name] = entry

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    summary = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "quick": any(b["quick"] for b in benchmarks.values()),
        "threads": args.threads,
        "git_commit": git_commit(),
        "machine": machine(),
        "last_run_s": time.perf_counter() - started,
        "benchmarks": {name: benchmarks[name] for name in BENCHMARKS if name in benchmarks},
    }
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nwrote {summary_path}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
