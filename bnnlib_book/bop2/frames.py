"""Bop2ndOrder's run records as tables, labelled by the design: accuracy, per-layer flips and
hyper-parameter traces per epoch, the first updates replayed, and the variants' score scale."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bnnlib.experiment.records import RunRecord
from bnnlib_book.runs import LabelledRun, labels_by_key


def label_frame(frame: Any, runs: Sequence[LabelledRun]) -> Any:
    """``frame`` (one row per record or epoch, with a ``key`` column) joined by key with the labels
    of ``runs`` (norm, variant, schedule), and a ``run`` column naming each run by its norm and
    variant. Rows of records that are not in ``runs`` are dropped."""
    labels = labels_by_key(runs)
    out = frame[frame["key"].isin(labels)].copy()
    for column in ("norm", "variant", "schedule"):
        out[column] = out["key"].map(lambda k, c=column: labels[k][c])
    out["run"] = out["norm"] + ", " + out["variant"]
    return out


def _per_epoch_dict_frame(
    records: Sequence[RunRecord],
    runs: Sequence[LabelledRun],
    field: str,
    name: str,
    value: str,
) -> Any:
    """One row per (run, epoch, entry) of the dict ``history[*][field]``, with the labels of the
    record's run in ``runs``; the entry's name and value go to the columns ``name`` and
    ``value``. Records of no run in ``runs`` are left out."""
    import pandas as pd

    labels = labels_by_key(runs)
    rows = [
        {"key": rec.key, **labels[rec.key], "epoch": h["epoch"], name: k, value: v}
        for rec in records
        if rec.key in labels
        for h in rec.history
        for k, v in h.get(field, {}).items()
    ]
    return pd.DataFrame(rows)


def layer_flip_frame(records: Sequence[RunRecord], runs: Sequence[LabelledRun]) -> Any:
    """Per-layer flip ratio per epoch: one row per (run, epoch, layer)."""
    return _per_epoch_dict_frame(records, runs, "flip_ratio", "layer", "flip_ratio")


def hparam_frame(records: Sequence[RunRecord], runs: Sequence[LabelledRun]) -> Any:
    """The hyper-parameter values the optimizer held after each epoch (what the next step uses):
    one row per (run, epoch, hyper-parameter), from the records' ``history[*]["hparams"]``."""
    return _per_epoch_dict_frame(records, runs, "hparams", "hyper-parameter", "value")


def first_update_flips(run: LabelledRun, steps: int = 5) -> Any:
    """Fraction of the binary weights that each of the first ``steps`` updates of ``run`` flips
    (one row per step, with the run's labels), and the fraction of weights that are exactly +-1
    before the first update.

    bnnlib binarises the weights when the model is built, so the first update already sees +-1
    weights; larq starts from real glorot weights and only binarises on its first step.
    """
    import pandas as pd

    from bnnlib.experiment.runs import prepare
    from bnnlib.optim import counts_flips, sub_optimizers
    from bnnlib.train.metrics import binary_fraction

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps!r}")
    config = dict(run.config)
    prepared = prepare(config, progress=False)
    trainer = prepared.trainer
    flippers = [opt for opt in sub_optimizers(trainer.optimizer) if counts_flips(opt)]
    if not flippers:
        raise ValueError(f"config {config['hparams_set']!r} trains no binary weights by flips")
    before = binary_fraction(prepared.model)
    trainer.model.train()
    batches = _endless(prepared.data.train)
    rows = []
    for step in range(1, steps + 1):
        x, y = next(batches)
        for opt in flippers:
            opt.reset_flip_counts()
        trainer.train_step(x, y)
        counts = [(p.numel(), n) for opt in flippers for p, n in opt.flip_counts()]
        flipped = sum(n for _, n in counts) / sum(size for size, _ in counts)
        rows.append({"step": step, "flipped": flipped, "binary_before_first_update": before})
    return pd.DataFrame(rows).assign(**run.label)


def _endless(loader: Any) -> Any:
    """The loader's batches, epoch after epoch (a trace may outlast a tiny training set)."""
    epoch = 1
    while True:
        loader.set_epoch(epoch)
        yield from loader
        epoch += 1


def score_scale(gamma: float, sigma: float, steps: Sequence[int]) -> Any:
    """How much each variant multiplies the biased score m/sqrt(v) at step t: the authors'
    "unbiased" division by the rates, sqrt(sigma)/gamma at every t, and Adam's bias correction,
    sqrt(1-(1-sigma)**t) / (1-(1-gamma)**t). Both are 1/ (gamma/sqrt(sigma)) at t = 1."""
    import pandas as pd

    rows = []
    for t in steps:
        if t < 1:
            raise ValueError(f"steps must be >= 1, got {t!r}")
        adam = math.sqrt(-math.expm1(t * math.log1p(-sigma))) / -math.expm1(t * math.log1p(-gamma))
        rows.append(
            {"step": t, "correction": "authors' unbiased", "factor": math.sqrt(sigma) / gamma}
        )
        rows.append({"step": t, "correction": "Adam bias correction", "factor": adam})
    return pd.DataFrame(rows)
