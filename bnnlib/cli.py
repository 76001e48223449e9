"""``bnnlib train|test|summary|sweep|iterative``: the commands of the papers' released code (``bnno train``
of Bop2ndOrder, ``classify.py train`` of the Bop reproducibility study, ``train_bayesbinn.py`` of
the BayesBiNN reproduction, ...), one entry point.

Every command validates its whole input first: a wrong name, key, type or value prints one line
naming it (with the valid choices) and exits with status 2 before anything is read or written.

Exit status of ``train``: 0 done; 2 bad input (also a corrupt record or weights file ``test`` is
asked to use); 3 another process is training the same run in the same folder (one line naming the
run key and the pid; see :mod:`bnnlib.experiment.locks`); 4 training diverged (NaN, infinite, or
above ``max_loss``: the last good checkpoint is kept); 130 Ctrl-C and 143 SIGTERM (a resumable
checkpoint is saved; the same command resumes).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bnnlib.experiment import PROFILES, RESULTS_DIR
from bnnlib.experiment.locks import EXIT_LOCKED, RunLocked

EXIT_USAGE = 2
EXIT_DIVERGED = 4  # 3 is taken by "another process trains this run" (the run lock)


class UsageError(Exception):
    """Bad input found before any work started."""


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (the command, the error, a pointer to --help)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parse_hparams(text: str | None) -> dict[str, Any]:
    """``k=v,k2=v2`` as the released code's ``--hparams`` takes it. Values are literals (numbers,
    booleans, quoted strings, dicts) read with ``ast.literal_eval``, never ``eval``; a bare word is
    a string."""
    if not text:
        return {}
    out: dict[str, Any] = {}
    for item in _split_top_level(text):
        if not item.strip():
            continue
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--hparams item {item!r} is not key=value")
        out[key] = _literal(raw.strip())
    return out


def _split_top_level(text: str) -> list[str]:
    parts, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "{[(":
            depth += 1
        elif ch in "}])":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    if quote or depth:
        raise UsageError(f"--hparams {text!r} has an unclosed quote or bracket")
    parts.append("".join(cur))
    return parts


def _literal(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw
    return value


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bnnlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def run_args(p: argparse.ArgumentParser, logdir_help: str) -> None:
        p.add_argument(
            "model", nargs="?", help="registered model name (see `bnnlib summary --list`)"
        )
        p.add_argument(
            "--dataset", help="mnist, cifar10, cifar10-jpeg, cifar10-png-subset, cifar100"
        )
        p.add_argument("--preprocess-fn", dest="preprocess_fn", help="resize_and_flip, AE, ...")
        p.add_argument("--hparams-set", dest="hparams_set", default="default")
        p.add_argument(
            "--hparams",
            default="",
            help="overrides: k=v,k2=v2 (epochs, batch_size, train_subset, ...)",
        )
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--device", default="auto")
        p.add_argument("--logdir", default=RESULTS_DIR, help=logdir_help)

    train = sub.add_parser("train", help="train a model (like the released code's `train` command)")
    run_args(train, "results folder; records go to LOGDIR/<dataset>/<model>/<key>.json")
    train.add_argument(
        "--config", type=Path, help="a JSON run file of the BayesBiNN reproduction, not MODEL"
    )
    train.add_argument(
        "--tasks", type=int, help="continual learning: this many permuted-MNIST tasks in sequence"
    )
    train.add_argument(
        "--no-prior",
        action="store_true",
        help="continual learning without the previous task's prior",
    )
    train.add_argument("--tensorboard", nargs="?", const=True, default=False, type=_bool)
    train.add_argument(
        "--dry-run", action="store_true", help="build everything, one batch, write nothing"
    )
    train.add_argument("--force", action="store_true", help="re-train even if the record exists")
    train.add_argument("--profile", choices=PROFILES, help="label stored in the record")

    test = sub.add_parser("test", help="evaluate a trained run on the test set")
    run_args(test, "the training LOGDIR, its <dataset>/<model> folder, or a record .json")

    summ = sub.add_parser("summary", help="per-layer 1-bit/32-bit parameters and memory")
    summ.add_argument("model", nargs="?")
    summ.add_argument("--hparams", default="", help="model options, e.g. norm_layer=...,width=0.25")
    summ.add_argument("--input-shape", default=None, help="e.g. 3,32,32 to show output shapes")
    summ.add_argument("--list", action="store_true", help="list registered models")

    it = sub.add_parser(
        "iterative",
        help="layer-by-layer binarization, one command per released script (float, binary, "
        "layer, sensitivity)",
        description="Layer-by-layer binarization (Lan, 2021) the way its scripts run it: "
        "`bnnlib iterative layer mlp300 132 --lr 0.1 --seed 316` is `layer.sh full 132 0.1 316`.",
    )
    it.add_argument("kind", choices=("float", "binary", "layer", "sensitivity"))
    it.add_argument("model", help="mlp300, mlp784, vgg5, vgg9, resnet20 or resnet21")
    it.add_argument(
        "order",
        nargs="?",
        help="layer: forward, reverse, ascend, descend, random, 132, L5,L4,L1,...; sensitivity: "
        "the layer to binarize alone (a number, or an order whose first layer it is: forward, "
        "231, reverse)",
    )
    it.add_argument("--lr", type=float, help="learning rate (default: the set's, 0.1 or 0.01)")
    it.add_argument("--seed", type=int, default=0)
    it.add_argument("--dataset", help="default: mnist for the MLPs, cifar10 otherwise")
    it.add_argument("--epochs-per-layer", dest="epochs_per_layer", type=int)
    it.add_argument(
        "--sensitivity-runs",
        dest="sensitivity_runs",
        help="ascend/descend: the run keys of the sensitivity runs, comma separated",
    )
    it.add_argument(
        "--reset-latent-to-sign",
        action="store_true",
        help="the released MNIST/CIFAR code's evaluation quirk (latent weights reset to sign)",
    )
    it.add_argument("--hparams", default="", help="further overrides: k=v,k2=v2")
    it.add_argument("--device", default="auto")
    it.add_argument("--logdir", default=RESULTS_DIR, help="records go to LOGDIR/<dataset>/<model>")
    it.add_argument("--dry-run", action="store_true", help="build, one batch, write nothing")
    it.add_argument("--force", action="store_true", help="re-train even if the record exists")
    it.add_argument("--profile", choices=PROFILES, help="label stored in the record")

    sw = sub.add_parser("sweep", help="run a parameter grid, skipping recorded runs")
    sw.add_argument("grid", type=Path)
    sw.add_argument("--workers", type=int, default=1)
    sw.add_argument("--results-dir", dest="results_dir", type=Path)
    sw.add_argument("--force", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"bnnlib {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RunLocked as exc:
        print(f"bnnlib {args.command}: {exc}", file=sys.stderr)
        return EXIT_LOCKED


def _run_config(args: argparse.Namespace, profile: str | None = None):  # noqa: ANN202
    from bnnlib.data import DatasetNotFoundError
    from bnnlib.experiment.config import RunConfig

    try:
        if getattr(args, "config", None) is not None:
            cfg = _json_run_config(args, profile)
        else:
            if not args.model:
                raise UsageError("MODEL is required (or --config FILE.json)")
            if not args.dataset:
                raise UsageError("--dataset is required")
            cfg = RunConfig(
                model=args.model,
                dataset=args.dataset,
                hparams_set=args.hparams_set,
                hparams=parse_hparams(args.hparams),
                preprocess_fn=args.preprocess_fn,
                seed=args.seed,
                device=args.device,
                profile=profile,
            )
        resolved = cfg.resolve()
    except (ValueError, TypeError, DatasetNotFoundError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    return resolved


def _check_inputs(cfg, logdir: Path | None = None) -> None:  # noqa: ANN001
    """What the run needs besides a valid config (device, model, sizes, data, cache folder and,
    for training, the results folder), checked before anything is read or written."""
    from bnnlib.experiment.preflight import check_run

    try:
        check_run(cfg, logdir, label="--logdir")
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None


def _json_run_config(args: argparse.Namespace, profile: str | None):  # noqa: ANN202
    """A BayesBiNN/STE JSON run file; --dataset may name an offline copy, --hparams may override."""
    from bnnlib.experiment.runfile import load_bayesbinn_config, to_run_config

    if args.model:
        raise UsageError("give either MODEL or --config FILE.json, not both")
    cfg = to_run_config(
        load_bayesbinn_config(args.config),
        dataset=args.dataset,
        seed=args.seed,
        device=args.device,
        profile=profile,
    )
    cfg.hparams |= parse_hparams(args.hparams)
    return cfg


def _cmd_train(args: argparse.Namespace) -> int:
    return _train(args, _run_config(args, args.profile), tensorboard=args.tensorboard)


def _train(args: argparse.Namespace, cfg, *, tensorboard: bool = False) -> int:  # noqa: ANN001
    """Check, then dry-run or train ``cfg`` into LOGDIR/<dataset>/<model> and print its record:
    what `train` and `iterative` share once their config is built."""
    from bnnlib.experiment.runs import dry_run, run
    from bnnlib.train.trainer import TrainingDiverged

    results_dir = Path(args.logdir) / cfg.dataset / cfg.model
    _check_inputs(cfg, None if args.dry_run else results_dir)
    if args.dry_run:
        print(json.dumps(dry_run(cfg), indent=1))
        return 0
    if getattr(args, "tasks", None) is not None:
        return _train_continual(args, cfg, results_dir)
    try:
        record = run(
            cfg, results_dir, force=args.force, tensorboard=tensorboard, on_epoch=_print_epoch
        )
    except (TrainingDiverged, KeyboardInterrupt) as exc:
        return _stopped(exc)
    print(f"run record: {record.path}")
    print(json.dumps(record.final, indent=1))
    return 0


def _cmd_iterative(args: argparse.Namespace) -> int:
    from bnnlib.experiment.config import RunConfig

    hp = parse_hparams(args.hparams)
    try:
        hp |= _iterative_order(args)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    if args.lr is not None:
        hp["lr"] = args.lr
    if args.epochs_per_layer is not None:
        hp["epochs_per_layer"] = args.epochs_per_layer
        if args.kind == "sensitivity":
            hp.setdefault("epochs", args.epochs_per_layer)
    if args.reset_latent_to_sign:
        hp["reset_latent_to_sign"] = True
    if args.sensitivity_runs:
        hp["sensitivity_runs"] = [k.strip() for k in args.sensitivity_runs.split(",") if k.strip()]
    dataset = args.dataset or ("mnist" if args.model.startswith("mlp") else "cifar10")
    try:
        cfg = RunConfig(
            model=args.model,
            dataset=dataset,
            hparams_set=args.kind,
            hparams=hp,
            seed=args.seed,
            device=args.device,
            profile=args.profile,
        ).resolve()
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    return _train(args, cfg)


def _iterative_order(args: argparse.Namespace) -> dict[str, Any]:
    """The order a script kind takes: none for float/binary, the order for layer, and for
    sensitivity the one layer binarized alone (the first of the order given, as the scripts'
    rotations ``forward``, ``231``, ``reverse`` name layers 1, 2 and 3)."""
    if args.kind in ("float", "binary"):
        if args.order:
            raise UsageError(f"`{args.kind}` takes no order (got {args.order!r})")
        return {}
    if not args.order:
        raise UsageError(f"`{args.kind}` needs an ORDER (forward, reverse, 132, ...)")
    if args.kind == "layer":
        return {"binarize_order": args.order}
    import torch

    from bnnlib.methods.layerwise import layer_names, resolve_order, single_layer_order
    from bnnlib.models import create_model

    with torch.device("meta"):
        names = layer_names(create_model(args.model))
    if args.order.isdigit() and 1 <= int(args.order) <= len(names):  # a layer number, as "12"
        number = int(args.order)
    else:
        first = resolve_order(args.order, names)[:1]
        if not first:
            raise UsageError(f"sensitivity order {args.order!r} names no layer")
        number = names.index(first[0]) + 1
    return {"binarize_order": single_layer_order(number, len(names))}


def _train_continual(args: argparse.Namespace, cfg, results_dir: Path) -> int:  # noqa: ANN001
    from bnnlib.methods.continual import run_continual

    if args.tasks < 1:
        raise UsageError(f"--tasks {args.tasks} must be >= 1")
    from bnnlib.train.trainer import TrainingDiverged

    try:
        record = run_continual(
            cfg, args.tasks, use_prior=not args.no_prior, results_dir=results_dir, force=args.force
        )
    except (TrainingDiverged, KeyboardInterrupt) as exc:
        return _stopped(exc)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    print(f"run record: {record.path}")
    print(json.dumps(record.final, indent=1))
    return 0


def _stopped(exc: BaseException) -> int:
    """One line and the exit status for a run that diverged or was interrupted."""
    from bnnlib.train.trainer import TrainingInterrupted

    if isinstance(exc, TrainingInterrupted):
        print(f"bnnlib train: stopped: {exc}", file=sys.stderr)
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        print(
            "bnnlib train: interrupted outside the training loop; checkpoints already written are "
            "kept and the same command resumes from them",
            file=sys.stderr,
        )
        return 130
    print(f"bnnlib train: diverged: {exc}", file=sys.stderr)
    return EXIT_DIVERGED


def _print_epoch(m: dict[str, Any]) -> None:
    shown = {k: round(v, 4) for k, v in m.items() if isinstance(v, float) and not k.endswith("_s")}
    print(f"epoch {m['epoch']}: " + ", ".join(f"{k}={v}" for k, v in shown.items()), flush=True)


def _cmd_test(args: argparse.Namespace) -> int:
    from bnnlib.atomic import CorruptFileError, load_checkpoint
    from bnnlib.experiment.records import RunRecord
    from bnnlib.experiment.runs import CHECKPOINTS, MODEL_FILE, prepare

    cfg = _run_config(args)
    _check_inputs(cfg)
    logdir = Path(args.logdir)
    key = cfg.key()
    candidates = (
        [logdir]
        if logdir.suffix == ".json"
        else [
            logdir / f"{key}.json",
            logdir / cfg.dataset / cfg.model / f"{key}.json",
        ]
    )
    found = next((p for p in candidates if p.exists()), None)
    if found is None:
        raise UsageError(
            f"no run record for this config (key {key}) in {logdir}; train it first with the same "
            "MODEL, --dataset, --hparams-set and --hparams"
        )
    retrain = "re-train with `bnnlib train` and --force"
    try:
        record = RunRecord.load(found)
        weights = found.parent / CHECKPOINTS / record.key / MODEL_FILE
        if not weights.exists():
            raise UsageError(f"{found} has no saved weights at {weights}; {retrain}")
        state, digest = load_checkpoint(weights, what="weights file", legacy=_is_state_dict)
        expected = record.provenance.get("model_sha256")
        if expected is not None and digest != expected:
            raise CorruptFileError(weights, "weights file is not the one this run record saved")
    except CorruptFileError as exc:
        raise UsageError(f"{exc}; nothing was evaluated, {retrain}") from None
    prepared = prepare(cfg, progress=False)
    try:
        prepared.model.load_state_dict(state)
    except RuntimeError as exc:  # keys or shapes of another model
        first = str(exc).strip().splitlines()[0]
        raise UsageError(f"{weights}: does not fit this model ({first}); {retrain}") from None
    metrics = prepared.trainer.evaluate(prepared.data.test)
    print(json.dumps({"record": str(found), **metrics}, indent=1))
    return 0


def _is_state_dict(obj: Any) -> bool:
    """Weights saved before weights files carried a content hash: a plain state dict."""
    import torch

    return isinstance(obj, dict) and all(torch.is_tensor(v) for v in obj.values())


def _cmd_summary(args: argparse.Namespace) -> int:
    from bnnlib.models import check_model_args, create_model, list_models
    from bnnlib.summary import summary

    if args.list or not args.model:
        print("\n".join(list_models()))
        return 0 if args.list else EXIT_USAGE
    kwargs = parse_hparams(args.hparams)
    shape = _input_shape(args.input_shape)
    try:
        check_model_args(args.model, kwargs, shape)
        model = create_model(args.model, **kwargs)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc).replace("input shape", "--input-shape", 1)) from None
    print(summary(model, shape))
    return 0


def _input_shape(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        shape = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise UsageError(f"--input-shape {text!r} is not like 3,32,32") from None
    if any(d < 1 for d in shape):
        raise UsageError(f"--input-shape {text!r}: every size must be >= 1, like 3,32,32")
    return shape


def _cmd_sweep(args: argparse.Namespace) -> int:
    from bnnlib.experiment.sweep import sweep

    try:
        report = sweep(
            args.grid, workers=args.workers, results_dir=args.results_dir, force=args.force
        )
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    print(
        f"{report.total} configs: {len(report.ran)} ran, {len(report.skipped)} already recorded, "
        f"{len(report.failed)} failed ({report.seconds:.0f} s)"
    )
    for key, error in report.failed.items():
        print(f"FAILED {key}: {error.strip().splitlines()[-1]}", file=sys.stderr)
    return 0 if report.ok else 1


_COMMANDS = {
    "iterative": _cmd_iterative,
    "train": _cmd_train,
    "test": _cmd_test,
    "summary": _cmd_summary,
    "sweep": _cmd_sweep,
}

if __name__ == "__main__":
    raise SystemExit(main())
