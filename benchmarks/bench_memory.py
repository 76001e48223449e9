"""Peak memory of one BinaryNet training step (full width, batch 100), binary against float.

Each case runs in a fresh subprocess, so no case sees another's memory:

- ``binary (Bop)``, ``binary (Bop2ndOrder)``: ``binarynet_batch`` with the seed's ``bop`` /
  ``bop2ndOrder`` recipe (Router: the flip optimizer on the binary kernels, Adam on the norms);
- ``latent (STE, Adam)``: the latent-weight baseline (``default`` recipe, clipped Adam);
- ``float (Adam)``: the float twin of ``bench_train`` (real weights, hardtanh), Adam.

What is measured, on CPU (Linux): the resident set size from ``/proc/self/status``. ``VmRSS``
after building model, optimizer and batch is the baseline; then ``--warmup`` steps (they allocate
the optimizer state and, for Bop at this size, compile its kernel); then the high-water mark
``VmHWM`` is reset (``/proc/self/clear_refs``) and ``--steps`` steady steps run. The step peak is
that high-water mark minus the baseline: gradients, optimizer state, activations saved for
backward, temporaries, and allocator slack. glibc is told to map every block of 64 KiB or more
directly (``MALLOC_MMAP_THRESHOLD_``), so freed tensors leave the resident set at once and the
high-water mark follows live memory. On CUDA the same points use ``torch.cuda.memory_allocated``
and ``max_memory_allocated`` instead.

Exact byte counts of the tensors involved come with it (independent of the allocator):
parameters, gradients, optimizer state (per binary weight too), and the activations autograd
saves for backward (``saved_tensors_hooks``, unique storages, parameters excluded); and
``bnnlib.summary``'s deployed size: 1-bit weights packed 8 per byte against float32.

    python benchmarks/bench_memory.py [--out benchmarks/results/memory.json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CASES = {
    "binary (Bop)": ("binary", "bop"),
    "binary (Bop2ndOrder)": ("binary", "bop2ndOrder"),
    "latent (STE, Adam)": ("latent", "bop"),
    "float (Adam)": ("float", "bop"),
}
MIB = 2**20
# Blocks this large or larger are mmapped by glibc and unmapped on free.
MMAP_THRESHOLD = 65536


def proc_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in bytes."""
    text = Path("/proc/self/status").read_text()
    return {
        k: int(re.search(rf"{k}:\s+(\d+) kB", text).group(1)) * 1024 for k in ("VmRSS", "VmHWM")
    }


def reset_high_water_mark() -> bool:
    """Set VmHWM to the current VmRSS (Linux >= 4.0); False if the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    status = proc_status()
    return status["VmHWM"] <= status["VmRSS"] + MIB


def tensor_bytes(tensors: Any) -> int:
    """Bytes of the distinct storages among ``tensors``."""
    import torch

    seen: dict[int, int] = {}
    for t in tensors:
        if isinstance(t, torch.Tensor):
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def optimizer_state(optimizer: Any) -> tuple[int, dict[str, int]]:
    """(total state bytes, {sub-optimizer: bytes per weight it steps}) of a (Router) optimizer.

    Flip optimizers that count flips also keep two int8 sign snapshots per weight outside
    ``state``; they are real memory of the step and are counted."""
    from bnnlib.optim import sub_optimizers

    total = 0
    per_weight = {}
    for opt in sub_optimizers(optimizer):
        tensors = [t for s in opt.state.values() for t in s.values()]
        tensors += [t for pair in getattr(opt, "_snapshots", {}).values() for t in pair]
        nbytes = tensor_bytes(tensors)
        numel = sum(p.numel() for g in opt.param_groups for p in g["params"])
        total += nbytes
        per_weight[type(opt).__name__] = nbytes / numel
    return total, per_weight


def saved_activation_bytes(built: Any, x: Any, y: Any) -> int:
    """Bytes autograd keeps for backward in one forward pass (parameters excluded)."""
    import torch

    params = {p.untyped_storage().data_ptr() for p in built.model.parameters()}
    saved: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.untyped_storage().data_ptr() not in params:
            saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = built.loss_fn(built.model(x), y)
    nbytes = tensor_bytes(saved)
    loss.backward()
    built.optimizer.zero_grad(set_to_none=False)
    return nbytes


def child(args: argparse.Namespace) -> dict[str, Any]:
    """Measure one case in this (fresh) process."""
    import torch
    from bench_train import Architecture, build, describe_optimizer

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    variant, binary_set = CASES[args.child]
    name = "binarynet_batch"
    shape = (3, 32, 32)
    arch = Architecture(name, name, "cifar10", shape, args.batch, binary_set, "default", args.width)
    rss_start = proc_status()["VmRSS"]
    torch.manual_seed(0)
    built = build(arch, variant, device)
    built.model.train()
    x = torch.randn(args.batch, *arch.input_shape, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)

    def step() -> None:
        loss = built.loss_fn(built.model(x), y)
        loss.backward()
        built.optimizer.step()
        built.optimizer.zero_grad(set_to_none=False)
        if cuda:
            torch.cuda.synchronize(device)

    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = proc_status()["VmRSS"]
    start = time.perf_counter()
    for _ in range(args.warmup):
        step()
    warmup_s = time.perf_counter() - start
    if cuda:
        first_peak = torch.cuda.max_memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        reset = True
    else:
        first_peak = proc_status()["VmHWM"]
        reset = reset_high_water_mark()
        before = proc_status()["VmRSS"]
    for _ in range(args.steps):
        step()
    peak = torch.cuda.max_memory_allocated(device) if cuda else proc_status()["VmHWM"]

    params = list(built.model.parameters())
    state_total, state_per_weight = optimizer_state(built.optimizer)
    return {
        "case": args.child,
        "optimizer": describe_optimizer(built.optimizer),
        "measure": "torch.cuda.memory_allocated" if cuda else "RSS (/proc/self/status)",
        "high_water_mark_reset": reset,
        "process_start_mib": rss_start / MIB if not cuda else None,
        "baseline_mib": base / MIB,
        "first_steps_peak_over_baseline_mib": (first_peak - base) / MIB,
        "before_steady_step_mib": before / MIB,
        "steady_peak_mib": peak / MIB,
        "step_peak_over_baseline_mib": (peak - base) / MIB,
        "step_peak_over_before_step_mib": (peak - before) / MIB,
        "params_mib": tensor_bytes(params) / MIB,
        "grads_mib": tensor_bytes(p.grad for p in params) / MIB,
        "optimizer_state_mib": state_total / MIB,
        "optimizer_state_bytes_per_weight": state_per_weight,
        "saved_activations_mib": saved_activation_bytes(built, x, y) / MIB,
        "warmup_s": warmup_s,
    }


def deployed_size(width: float) -> dict[str, Any]:
    """``bnnlib.summary`` totals of the binary BinaryNet (no rows)."""
    from bnnlib import summary
    from bnnlib.models import create_model

    s = summary(create_model("binarynet_batch", width=width)).to_dict()
    s.pop("rows")
    return s


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results/memory.json")
    parser.add_argument("--width", type=float, default=1.0, help="BinaryNet width multiplier")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=1, help="steps before the measured ones")
    parser.add_argument("--steps", type=int, default=2, help="measured steady steps")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--quick", action="store_true", help="width 0.25, 1 measured step: checks the script only"
    )
    parser.add_argument("--child", choices=list(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.width, args.steps = 0.25, 1
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be >= 1 (the first step allocates the state)")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return {}
    from bench_optim import machine

    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD)}
    rows = []
    for name in CASES:
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            name,
            *("--width", str(args.width), "--batch", str(args.batch)),
            *("--warmup", str(args.warmup), "--steps", str(args.steps)),
            *("--threads", str(args.threads), "--device", args.device),
        ]
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"case {name!r} failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    report = {
        "benchmark": "memory",
        "quick": args.quick,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {**machine(), "torch_threads": args.threads or "torch's default"},
        "settings": {
            "model": "binarynet_batch",
            "width": args.width,
            "batch_size": args.batch,
            "input_shape": [3, 32, 32],
            "warmup_steps": args.warmup,
            "measured_steps": args.steps,
            "device": args.device,
            "malloc_mmap_threshold": MMAP_THRESHOLD,
        },
        "deployed": deployed_size(args.width),
        "cases": rows,
    }
    _print_table(report)
    from bnnlib.atomic import write_json

    write_json(args.out, report)  # atomic: a reader never sees half a result file
    print(f"wrote {args.out}")
    return report


def _print_table(report: dict[str, Any]) -> None:
    s, d = report["settings"], report["deployed"]
    print(
        f"{s['model']} width {s['width']}, batch {s['batch_size']} on {s['device']}: "
        f"peak over the memory after construction, {s['measured_steps']} steady step(s)"
        + (" | QUICK (script check only)" if report["quick"] else "")
    )
    print(
        f"{'case':<22}{'peak MiB':>9}{'params':>8}{'grads':>7}{'state':>7}{'saved act':>10}"
        f"{'state B/w':>10}  optimizer"
    )
    for r in report["cases"]:
        per_weight = next(iter(r["optimizer_state_bytes_per_weight"].values()))
        print(
            f"{r['case']:<22}{r['step_peak_over_baseline_mib']:>9.0f}{r['params_mib']:>8.1f}"
            f"{r['grads_mib']:>7.1f}{r['optimizer_state_mib']:>7.1f}"
            f"{r['saved_activations_mib']:>10.1f}{per_weight:>10.1f}  {r['optimizer']}"
        )
    print(
        f"deployed: {d['memory_bytes'] / MIB:.2f} MiB (1-bit packed) vs "
        f"{d['float_memory_bytes'] / MIB:.2f} MiB float32, ratio {d['compression_ratio']:.1f}"
    )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
