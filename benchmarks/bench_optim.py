"""Step time of the flip optimizers on BinaryNet's binary tensors, against a memory floor.

The floor is what no update of these tensors can beat: in the same process, a torch.compile'd
kernel that streams exactly the bytes the update must touch (Bop: read g, m, w and write m, w;
Bop2ndOrder: read g, m, v, w and write m, v, w) with trivial arithmetic, over the same nine
separate tensors (about 10.35M weights). Cases are timed in interleaved rounds so that the load
of a shared machine hits them alike; the table shows medians after warm-up.

    python benchmarks/bench_optim.py [--out benchmarks/results/optim.json] [--threads 1]

Compile time (first call minus a warm step) is reported separately. By default inductor gets a
fresh cache directory, so it is the cold compile time; ``--warm-cache`` keeps the user's cache.
Another optimizer joins the table through ``main(extra_cases=...)`` (see :func:`optimizer_case`
and :func:`floor_case`).
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Conv 3x3: 3->128, 128->128, 128->256, 256->256, 256->512, 512->512; dense 4608->1024,
# 1024->1024, 1024->10 (plumerai's BinaryNet, every kernel binary).
BINARYNET_SHAPES = [
    (128, 3, 3, 3),
    (128, 128, 3, 3),
    (256, 128, 3, 3),
    (256, 256, 3, 3),
    (512, 256, 3, 3),
    (512, 512, 3, 3),
    (1024, 4608),
    (1024, 1024),
    (10, 1024),
]


@dataclass
class Case:
    """One timed thing: ``make(params)`` builds it, ``run(obj)`` performs one step."""

    name: str
    make: Callable
    run: Callable
    floor: str | None = None
    compiled: bool = False
    times: list[float] = field(default_factory=list)
    first_call: float = 0.0


def optimizer_case(
    name: str,
    factory: Callable,
    floor: str | None = None,
    compiled: bool = False,
    closure: Callable | None = None,
) -> Case:
    """A case that steps ``factory(params)``; ``closure(params)``, if given, builds the
    closure passed to ``step`` (optimizers such as BayesBiNN evaluate it themselves)."""

    def make(params):
        opt = factory(params)
        return opt, (closure(params) if closure is not None else None)

    def run(built):
        opt, step_closure = built
        if step_closure is None:
            opt.step()
        else:
            opt.step(step_closure)

    return Case(name, make, run, floor=floor, compiled=compiled)


def _floor(ws, gs, *slots):
    """Reads g, every slot and w, writes every slot and w, with one add per stream."""
    for i, (w, g) in enumerate(zip(ws, gs, strict=True)):
        total = w
        for slot in slots:
            new = slot[i] + g
            slot[i].copy_(new)
            total = total + new
        w.copy_(total)


def floor_case(name: str, slots: int) -> Case:
    """The memory floor of an update that keeps ``slots`` state tensors per weight tensor."""
    import torch

    kernel = torch.compile(_floor, fullgraph=True)

    def make(params):
        state = [[torch.zeros_like(p) for p in params] for _ in range(slots)]
        return [p.detach() for p in params], [p.grad for p in params], state

    def run(built):
        ws, gs, state = built
        with torch.no_grad():
            kernel(ws, gs, *state)

    return Case(name, make, run, compiled=True)


def default_cases() -> list[Case]:
    import torch

    from bnnlib.optim import Bop, Bop2ndOrder

    floor_bop = floor_case("floor Bop (r g,m,w; w m,w)", 1)
    floor_bop2 = floor_case("floor Bop2 (r g,m,v,w; w m,v,w)", 2)
    cases = [floor_bop, floor_bop2]
    for impl in ("reference", "foreach", "compiled"):
        factory = functools.partial(Bop, impl=impl)
        cases.append(optimizer_case(f"Bop [{impl}]", factory, floor_bop.name, impl == "compiled"))
    factory = functools.partial(Bop, impl="compiled", track_flips=True)
    cases.append(optimizer_case("Bop [compiled, track_flips]", factory, floor_bop.name, True))
    for unbiased in (False, True):
        variant = "unbiased" if unbiased else "biased"
        for impl in ("reference", "foreach", "compiled"):
            factory = functools.partial(Bop2ndOrder, unbiased=unbiased, impl=impl)
            name = f"Bop2ndOrder {variant} [{impl}]"
            cases.append(optimizer_case(name, factory, floor_bop2.name, impl == "compiled"))
    adam = functools.partial(torch.optim.Adam, foreach=True)
    cases.append(optimizer_case("torch Adam (foreach=True)", adam))
    return cases


def machine() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def main(argv: list[str] | None = None, extra_cases: Sequence[Callable[[], Case]] = ()) -> dict:
    """Run :func:`default_cases` plus ``extra_cases`` (functions returning a :class:`Case`,
    called after torch is imported, e.g. one building BayesBiNN with :func:`optimizer_case`
    and its own :func:`floor_case`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results/optim.json")
    parser.add_argument("--rounds", type=int, default=30, help="timed steps per case")
    parser.add_argument(
        "--budget",
        type=float,
        default=90.0,
        help="stop timing after this many seconds (>= 5 rounds)",
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per case")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared machine two OpenMP threads wait on each "
        "other and the medians measure the neighbours; 0 keeps torch's default)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--warm-cache", action="store_true", help="keep inductor's usual cache")
    args = parser.parse_args(argv)

    if not args.warm_cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench_optim_inductor_")
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    gen = torch.Generator().manual_seed(0)
    params = []
    for shape in BINARYNET_SHAPES:
        p = torch.nn.Parameter(
            (torch.randint(0, 2, shape, generator=gen) * 2 - 1).float().to(device)
        )
        p.grad = (torch.randn(shape, generator=gen) * 1e-3).to(device)
        params.append(p)
    numel = sum(p.numel() for p in params)

    cases = default_cases() + [make_case() for make_case in extra_cases]
    built = {}
    for case in cases:
        obj = case.make(params)
        sync()
        start = time.perf_counter()
        case.run(obj)
        sync()
        case.first_call = time.perf_counter() - start
        for _ in range(args.warmup):
            case.run(obj)
        built[case.name] = obj
    deadline = time.perf_counter() + args.budget
    for done in range(args.rounds):
        if done >= 5 and time.perf_counter() > deadline:
            break
        for case in cases:
            sync()
            start = time.perf_counter()
            case.run(built[case.name])
            sync()
            case.times.append(time.perf_counter() - start)

    medians = {c.name: statistics.median(c.times) for c in cases}
    times = {c.name: c.times for c in cases}
    rows = []
    for case in cases:
        med = medians[case.name]
        rows.append(
            {
                "name": case.name,
                "median_ms": med * 1e3,
                "min_ms": min(case.times) * 1e3,
                "floor": case.floor,
                "ratio_to_floor": med / medians[case.floor] if case.floor else None,
                "min_ratio_to_floor": (
                    min(case.times) / min(times[case.floor]) if case.floor else None
                ),
                "compile_s": case.first_call - med if case.compiled else None,
            }
        )
    report = {
        "machine": machine(),
        "settings": {
            "device": str(device),
            "rounds": len(cases[0].times),
            "warmup": args.warmup,
            "tensors": [list(s) for s in BINARYNET_SHAPES],
            "numel": numel,
            "inductor_cache": "warm (user cache)" if args.warm_cache else "cold (fresh directory)",
        },
        "results": rows,
    }
    _print_table(report)
    from bnnlib.atomic import write_json

    write_json(args.out, report)  # atomic: a reader never sees half a result file
    print(f"wrote {args.out}")
    return report


def _print_table(report: dict) -> None:
    m, s = report["machine"], report["settings"]
    print(
        f"{m['cpu']} | {m['logical_cores']} cores, {m['torch_threads']} torch threads | "
        f"torch {m['torch']} | load {m['load_average_at_start']}"
    )
    print(
        f"{s['numel']:,} weights in {len(s['tensors'])} tensors on {s['device']}, "
        f"median of {s['rounds']} steps, inductor cache {s['inductor_cache']}"
    )
    print(
        f"{'case':<38}{'median ms':>10}{'min ms':>9}{'/ floor':>9}{'min/min':>9}{'compile s':>11}"
    )
    for r in report["results"]:
        ratio = f"{r['ratio_to_floor']:.2f}" if r["ratio_to_floor"] else "-"
        min_ratio = f"{r['min_ratio_to_floor']:.2f}" if r["min_ratio_to_floor"] else "-"
        compile_s = f"{r['compile_s']:.1f}" if r["compile_s"] is not None else "-"
        print(
            f"{r['name']:<38}{r['median_ms']:>10.2f}{r['min_ms']:>9.2f}{ratio:>9}{min_ratio:>9}"
            f"{compile_s:>11}"
        )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench_bayesbinn import OPTIMIZER_CASES

    main(extra_cases=OPTIMIZER_CASES)
