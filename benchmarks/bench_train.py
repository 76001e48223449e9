"""Training-step time of a binary network against the float network of the same architecture.

Each architecture is built three times, with the same layers, norms and batch:

- ``binary``: +-1 weights and ste_sign activations, trained by the recipe's Router (Bop on the
  binary kernels, Adam on the norms), exactly as ``bnnlib.experiment.recipes`` builds it for training;
- ``latent``: the STE baseline: real latent weights seen through ste_sign, clipped Adam;
- ``float``: ``weight_mode="real"`` and every ste_sign input quantizer replaced by hardtanh (the
  function whose gradient ste_sign passes), Adam(foreach) on every parameter.

A step is forward (model and loss), backward, and optimizer (step and zero_grad), each timed on
its own, so the page can say where a binary step's extra time goes. The inputs are fixed random
tensors (no data loading). Cases run in interleaved rounds so that a shared machine's load hits
them alike; the JSON holds medians after warm-up.

    python benchmarks/bench_train.py [--out benchmarks/results/train.json] [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from bench_optim import machine
from torch import nn

VARIANTS = ("binary", "latent", "float")
PHASES = ("forward", "backward", "optimizer")


@dataclass(frozen=True)
class Architecture:
    """One network of the comparison and the seed recipe its binary version trains with."""

    name: str
    model: str
    dataset: str
    input_shape: tuple[int, ...]
    batch_size: int
    binary_set: str
    latent_set: str
    width: float = 1.0


ARCHITECTURES = (
    Architecture("binary_mlp", "binary_mlp", "mnist", (1, 28, 28), 100, "bop", "default"),
    Architecture(
        "binarynet_batch (width 0.25)",
        "binarynet_batch",
        "cifar10",
        (3, 32, 32),
        100,
        "bop",
        "default",
        width=0.25,
    ),
)


def float_twin(model: nn.Module) -> nn.Module:
    """``model`` (built with ``weight_mode="real"``) with every activation quantizer replaced by
    hardtanh, so the float network keeps one element-wise non-linearity where the binary one
    binarises its input."""
    for module in model.modules():
        if getattr(module, "input_quantizer", None) is not None:
            module.input_quantizer = F.hardtanh
    return model


@dataclass
class Built:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module


def build(arch: Architecture, variant: str, device: torch.device) -> Built:
    """The model and optimizer of ``variant``, through the same recipe code training uses."""
    from bnnlib.experiment.config import RunConfig
    from bnnlib.experiment.recipes import build_model, build_recipe
    from bnnlib.models import create_model

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    hp_set = arch.binary_set if variant == "binary" else arch.latent_set
    hparams = {"width": arch.width} if arch.width != 1.0 else {}
    cfg = RunConfig(arch.model, arch.dataset, hp_set, hparams=hparams, device=str(device)).resolve()
    if variant == "float":
        kwargs = {**cfg.model_kwargs, "weight_mode": "real"}
        model = float_twin(create_model(cfg.model, **kwargs))
    else:
        model = build_model(cfg)
    model = model.to(device)
    recipe = build_recipe(cfg, model, train_samples=50_000, device=device)
    return Built(model, recipe.optimizer, recipe.loss_fn)


def describe_optimizer(optimizer: torch.optim.Optimizer) -> str:
    """E.g. "Bop [compiled] on 5,824,512 + Adam on 8,212": what each sub-optimizer steps."""
    from bnnlib.optim import Bop, Bop2ndOrder, sub_optimizers
    from bnnlib.optim._flip import COMPILE_MIN_NUMEL, compiler_available

    parts = []
    for opt in sub_optimizers(optimizer):
        params = [p for g in opt.param_groups for p in g["params"]]
        numel = sum(p.numel() for p in params)
        name = type(opt).__name__
        if isinstance(opt, (Bop, Bop2ndOrder)):
            impl = opt.impl
            if impl is None:
                auto = numel >= COMPILE_MIN_NUMEL and compiler_available(params[0].device.type)
                impl = "compiled" if auto else "foreach"
            name += f" [{impl}]"
        elif getattr(opt, "defaults", {}).get("foreach"):
            name += " [foreach]"
        parts.append(f"{name} on {numel:,}")
    return " + ".join(parts)


@dataclass
class Case:
    arch: Architecture
    variant: str
    built: Built
    x: torch.Tensor
    y: torch.Tensor
    times: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PHASES})
    first_step_s: float = 0.0

    def step(self, sync: Callable[[], None]) -> tuple[float, float, float]:
        """One training step; returns (forward, backward, optimizer) seconds."""
        b = self.built
        sync()
        t0 = time.perf_counter()
        loss = b.loss_fn(b.model(self.x), self.y)
        sync()
        t1 = time.perf_counter()
        loss.backward()
        sync()
        t2 = time.perf_counter()
        b.optimizer.step()
        b.optimizer.zero_grad(set_to_none=False)
        sync()
        t3 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results/train.json")
    parser.add_argument("--rounds", type=int, default=30, help="timed steps per case")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per case")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared machine two OpenMP threads wait on each "
        "other; 0 keeps torch's default)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--quick", action="store_true", help="2 rounds, 1 warm-up step: checks the script only"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.warmup = 2, 1
    if args.rounds < 1 or args.warmup < 1:
        parser.error("--rounds and --warmup must be >= 1 (the first step compiles)")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    gen = torch.Generator().manual_seed(0)
    cases = []
    for arch in ARCHITECTURES:
        x = torch.randn(arch.batch_size, *arch.input_shape, generator=gen).to(device)
        y = torch.randint(0, 10, (arch.batch_size,), generator=gen).to(device)
        for variant in VARIANTS:
            torch.manual_seed(0)
            cases.append(Case(arch, variant, build(arch, variant, device), x, y))
    for case in cases:
        case.built.model.train()
        start = time.perf_counter()
        case.step(sync)
        case.first_step_s = time.perf_counter() - start
        for _ in range(args.warmup - 1):
            case.step(sync)
    for _ in range(args.rounds):
        for case in cases:
            for phase, seconds in zip(PHASES, case.step(sync), strict=True):
                case.times[phase].append(seconds)

    report = {
        "benchmark": "train",
        "quick": args.quick,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "settings": {"device": str(device), "rounds": args.rounds, "warmup": args.warmup},
        "architectures": [
            _arch_report(arch, [c for c in cases if c.arch is arch]) for arch in ARCHITECTURES
        ],
    }
    _print_table(report)
    from bnnlib.atomic import write_json

    write_json(args.out, report)  # atomic: a reader never sees half a result file
    print(f"wrote {args.out}")
    return report


def _arch_report(arch: Architecture, cases: list[Case]) -> dict[str, Any]:
    from bnnlib.layers import is_binary

    rows = []
    for case in cases:
        totals = [sum(t) for t in zip(*(case.times[p] for p in PHASES), strict=True)]
        total = statistics.median(totals)
        params = list(case.built.model.parameters())
        rows.append(
            {
                "variant": case.variant,
                "optimizer": describe_optimizer(case.built.optimizer),
                "binary_params": sum(p.numel() for p in params if is_binary(p)),
                "float_params": sum(p.numel() for p in params if not is_binary(p)),
                **{f"{p}_ms": statistics.median(case.times[p]) * 1e3 for p in PHASES},
                "total_ms": total * 1e3,
                "min_total_ms": min(totals) * 1e3,
                "images_per_s": arch.batch_size / total,
                "first_step_s": case.first_step_s,
            }
        )
    by_variant = {r["variant"]: r for r in rows}
    float_ms = by_variant["float"]["total_ms"]
    return {
        "name": arch.name,
        "model": arch.model,
        "width": arch.width,
        "batch_size": arch.batch_size,
        "input_shape": list(arch.input_shape),
        "binary_recipe": f"{arch.model}/{arch.binary_set}",
        "latent_recipe": f"{arch.model}/{arch.latent_set}",
        "variants": rows,
        "ratio_binary_float": by_variant["binary"]["total_ms"] / float_ms,
        "ratio_latent_float": by_variant["latent"]["total_ms"] / float_ms,
        "overhead_ms": {
            p: by_variant["binary"][f"{p}_ms"] - by_variant["float"][f"{p}_ms"] for p in PHASES
        },
    }


def _print_table(report: dict[str, Any]) -> None:
    m, s = report["machine"], report["settings"]
    print(
        f"{m['cpu']} | {m['torch_threads']} torch threads | torch {m['torch']} | "
        f"median of {s['rounds']} steps after {s['warmup']} warm-up"
        + (" | QUICK (script check only)" if report["quick"] else "")
    )
    for arch in report["architectures"]:
        print(f"\n{arch['name']}, batch {arch['batch_size']}")
        print(
            f"{'variant':<8}{'forward':>9}{'backward':>10}{'optim':>8}{'total ms':>10}"
            f"{'img/s':>8}  optimizer"
        )
        for r in arch["variants"]:
            print(
                f"{r['variant']:<8}{r['forward_ms']:>9.1f}{r['backward_ms']:>10.1f}"
                f"{r['optimizer_ms']:>8.1f}{r['total_ms']:>10.1f}{r['images_per_s']:>8.0f}  "
                f"{r['optimizer']}"
            )
        print(
            f"binary / float = {arch['ratio_binary_float']:.2f}, "
            f"latent / float = {arch['ratio_latent_float']:.2f}"
        )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
