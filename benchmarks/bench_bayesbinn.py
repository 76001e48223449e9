"""BayesBiNN against the STE baseline: one MNIST epoch of the paper's MLP, same machine.

The paper's MLP (``mlp_binaryconnect``: 784-2048-2048-2048-10, dropout 0.2, batch 100) is
trained for one epoch with each method, through the path every run takes
(``bnnlib.experiment.runs.prepare`` and ``Trainer.train_epoch``), on MNIST with the seed's 10 %
validation split (54,000 training images; ``--train-subset`` trains on fewer). The recipes keep
their 500-epoch cosine schedule, so this epoch is exactly the first epoch of the paper's run.
Reported per method: the epoch's wall time, the test accuracy after it, and the median time of
single training steps taken afterwards in interleaved rounds (robust to a shared machine's load;
times the steps per epoch it estimates the epoch). The goal: BayesBiNN's epoch at most 1.3 times
STE's.

This module also holds the BayesBiNN cases of ``bench_optim.py`` (:data:`OPTIMIZER_CASES`).

    python benchmarks/bench_bayesbinn.py [--out benchmarks/results/bayesbinn.json] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench_optim import Case, floor_case, machine, optimizer_case

METHODS = ("ste", "bayesbinn")
FLOOR_NAME = "floor BayesBiNN (r g,l,mu; w l,mu,m,w)"
GOAL_RATIO = 1.3


def _bayesbinn_factory(params: list) -> Any:
    """BayesBiNN over private copies of ``params`` sharing their gradients: it re-points its
    parameters at its flat weight vector, which must not reach the other cases' tensors."""
    import torch

    from bnnlib.optim import BayesBiNN

    own = []
    for p in params:
        q = torch.nn.Parameter(p.detach().clone())
        q.grad = p.grad
        own.append(q)
    gen = torch.Generator(device=params[0].device).manual_seed(0)
    return BayesBiNN(own, lr=1e-4, train_set_size=50_000, generator=gen)


def _loss_closure(params: list) -> Any:
    """The gradients are already in place: the closure only returns a loss."""
    import torch

    zero = torch.zeros((), device=params[0].device)
    return lambda: zero


def floor() -> Case:
    """BayesBiNN (S=1, beta=0) must read g, lamda, mu and write lamda, mu, momentum and the
    relaxed weights: 7 streams, as many as this floor kernel moves (r g,s1,s2,w; w s1,s2,w)."""
    return floor_case(FLOOR_NAME, 2)


def step() -> Case:
    return optimizer_case("BayesBiNN [S=1]", _bayesbinn_factory, FLOOR_NAME, closure=_loss_closure)


def noise() -> Case:
    """The logistic noise alone (uniform_ then logit_ over all weights): work BayesBiNN needs on
    top of the floor's bytes, shown without a floor."""
    import torch

    def make(params: list) -> tuple[torch.Tensor, torch.Generator]:
        numel = sum(p.numel() for p in params)
        gen = torch.Generator(device=params[0].device).manual_seed(0)
        return torch.empty(numel, device=params[0].device), gen

    def run(built: tuple[torch.Tensor, torch.Generator]) -> None:
        buf, gen = built
        buf.uniform_(0.0, 1.0, generator=gen).logit_()

    return Case("BayesBiNN noise alone (uniform_+logit_)", make, run)


OPTIMIZER_CASES = (floor, step, noise)


def _prepare(method: str, args: argparse.Namespace) -> Any:
    from bnnlib.experiment.config import RunConfig
    from bnnlib.experiment.runs import prepare

    hparams = {}
    if args.train_subset is not None:
        hparams["train_subset"] = args.train_subset
    if args.test_subset is not None:
        hparams["test_subset"] = args.test_subset
    config = RunConfig(
        "mlp_binaryconnect", "mnist", method, hparams=hparams, seed=0, device=args.device
    )
    return prepare(config, progress=False)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results/bayesbinn.json")
    parser.add_argument(
        "--train-subset", type=int, default=None, help="training images (default: all 54,000)"
    )
    parser.add_argument(
        "--test-subset", type=int, default=None, help="test images (default: all 10,000)"
    )
    parser.add_argument("--rounds", type=int, default=30, help="timed single steps per method")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2,000 training and 1,000 test images, 3 rounds: checks the script only",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.train_subset = args.train_subset or 2000
        args.test_subset = args.test_subset or 1000
        args.rounds = 3
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    prepared = {m: _prepare(m, args) for m in METHODS}
    rows = {}
    for method, p in prepared.items():
        start = time.perf_counter()
        metrics = p.trainer.train_epoch(p.data.train, 1)
        wall = time.perf_counter() - start
        test = p.trainer.evaluate(p.data.test)
        rows[method] = {
            "method": method,
            "optimizer": type(p.trainer.optimizer).__name__,
            "epoch_s": metrics["epoch_time_s"],
            "epoch_wall_s": wall,
            "train_acc": metrics["train_acc"],
            "test_acc": test["test_acc"],
            "steps_per_epoch": len(p.data.train),
            "train_size": p.data.train.num_samples,
            "test_size": p.data.test.num_samples,
            "dataset_label": p.data.info.label,
            "step_times": [],
        }
        print(f"{method}: epoch {metrics['epoch_time_s']:.1f} s, test acc {test['test_acc']:.4f}")

    batches = {m: next(iter(p.data.train)) for m, p in prepared.items()}
    for _ in range(args.rounds):
        for method, p in prepared.items():
            x, y = batches[method]
            p.trainer.model.train()
            closure = p.trainer.make_closure(x, y, [])
            if p.device.type == "cuda":
                torch.cuda.synchronize(p.device)
            start = time.perf_counter()
            p.trainer.optimizer.step(closure)
            if p.device.type == "cuda":
                torch.cuda.synchronize(p.device)
            rows[method]["step_times"].append(time.perf_counter() - start)
    for row in rows.values():
        times = row.pop("step_times")
        row["step_median_ms"] = statistics.median(times) * 1e3
        row["step_min_ms"] = min(times) * 1e3
        row["epoch_from_median_s"] = statistics.median(times) * row["steps_per_epoch"]

    ste, bayes = rows["ste"], rows["bayesbinn"]
    report = {
        "benchmark": "bayesbinn",
        "quick": args.quick,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "settings": {
            "model": "mlp_binaryconnect",
            "dataset": "mnist",
            "batch_size": prepared["ste"].config.hparams["batch_size"],
            "train_subset": args.train_subset,
            "test_subset": args.test_subset,
            "rounds": args.rounds,
            "device": args.device,
        },
        "methods": [ste, bayes],
        "ratio_epoch": bayes["epoch_s"] / ste["epoch_s"],
        "ratio_step_median": bayes["step_median_ms"] / ste["step_median_ms"],
        "goal_ratio": GOAL_RATIO,
    }
    _print_table(report)
    from bnnlib.atomic import write_json

    write_json(args.out, report)  # atomic: a reader never sees half a result file
    print(f"wrote {args.out}")
    return report


def _print_table(report: dict[str, Any]) -> None:
    s = report["settings"]
    first = report["methods"][0]
    print(
        f"{s['model']} on {first['dataset_label']}: {first['train_size']:,} training images, "
        f"batch {s['batch_size']}, {s['device']}"
        + (" | QUICK (script check only)" if report["quick"] else "")
    )
    print(f"{'method':<11}{'epoch s':>9}{'step ms':>9}{'est. epoch s':>14}{'test acc':>10}")
    for r in report["methods"]:
        print(
            f"{r['method']:<11}{r['epoch_s']:>9.1f}{r['step_median_ms']:>9.1f}"
            f"{r['epoch_from_median_s']:>14.1f}{r['test_acc']:>10.4f}"
        )
    print(
        f"BayesBiNN / STE: epoch {report['ratio_epoch']:.2f}, median step "
        f"{report['ratio_step_median']:.2f} (goal <= {report['goal_ratio']})"
    )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
