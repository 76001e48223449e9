"""The Bop2ndOrder study of seed 001 (CuauSuarez/Bop2ndOrder, spec section 3): its experiment
designs as run configs, chart labels for its runs, and the measurements the chapters make beside
the run records. The claims the chapters test are in :mod:`bnnlib_book.bop2.claims`.

The README gives one command per experiment; the designs below turn a chapter's parameters (data
set, width, subset sizes, epochs, grids) into the list of :class:`bnnlib.experiment.config.RunConfig` dicts
that command stands for, so the notebooks and the paper-recipe test run the same configs.

Two facts of the authors' update rule (spec 3a) shape the chapters and are computed here rather
than asserted:

- the "unbiased" score is the biased score times sqrt(sigma)/gamma, exactly, while the
  hyper-parameters are constant; so a threshold means different things in the two variants, and
  the biased variant with threshold tau flips exactly where the unbiased one does with threshold
  tau*sqrt(sigma)/gamma (:func:`equivalent_unbiased_threshold`);
- Adam's bias correction divides by 1-(1-rate)**t instead, which agrees with the authors' division
  by the rate only at t = 1 (:func:`score_scale`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bnnlib.experiment.config import RunConfig
from bnnlib.experiment.records import RunRecord

MODELS = {"BatchNorm": "binarynet_batch", "LayerNorm": "binarynet"}
NORMS = {model: norm for norm, model in MODELS.items()}
VARIANTS = ("biased", "unbiased")
SETS_5_1_1 = {"biased": "bop2ndOrder", "unbiased": "bop2ndOrder_unbiased"}
SETS_TEST_EXP = {"biased": "bop2ndOrder_testExp", "unbiased": "bop2ndOrder_unbiased_testExp"}
SETS_CIFAR = {"biased": "bop2ndOrder_CIFAR", "unbiased": "bop2ndOrder_unbiased_CIFAR"}
# The README's values for sections 5.1.1-5.1.4 (spec 3b "README overrides per section").
README_POINT = {"threshold": 1e-6, "gamma": 1e-7, "sigma": 1e-3}
AXES = ("threshold", "gamma", "sigma")
EXTRAS = ("adam_bias_correction", "equivalent_threshold", "bop")
CIFAR10_TRAIN = 50_000


@dataclass(frozen=True)
class Scale:
    """How big a chapter's runs are: the data set, the model width, the subsets and the epochs
    (None: the full set, or the hparams set's own epochs), the seed and the profile label."""

    dataset: str
    width: float = 1.0
    epochs: int | None = None
    train_subset: int | None = None
    test_subset: int | None = None
    seed: int = 0
    profile: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any], epochs_key: str = "epochs") -> Scale:
        """The scale a chapter's parameters name (fields share their names; ``epochs_key``
        picks the epochs parameter, e.g. ``scheduler_epochs``); other parameters are ignored."""
        return cls(
            dataset=params["dataset"],
            width=float(params.get("width", 1.0)),
            epochs=params.get(epochs_key),
            train_subset=params.get("train_subset"),
            test_subset=params.get("test_subset"),
            seed=params.get("seed", 0),
            profile=params.get("profile"),
        )

    def config(self, model: str, hparams_set: str, **hparams: Any) -> dict[str, Any]:
        """A RunConfig dict for ``model`` and ``hparams_set`` at this scale, plus overrides."""
        values: dict[str, Any] = {}
        if self.epochs is not None:
            values["epochs"] = self.epochs
        if self.train_subset is not None:
            values["train_subset"] = self.train_subset
        if self.test_subset is not None:
            values["test_subset"] = self.test_subset
        values |= hparams
        return {
            "model": model,
            "dataset": self.dataset,
            "hparams_set": hparams_set,
            "hparams": values,
            "model_kwargs": {"width": self.width},
            "seed": self.seed,
            "profile": self.profile,
        }


def _check_choices(name: str, given: Iterable[str], valid: Sequence[str]) -> None:
    for value in given:
        if value not in valid:
            raise ValueError(f"unknown {name} {value!r}; choose from {', '.join(valid)}")


def _point(point: Mapping[str, float]) -> dict[str, float]:
    missing = [k for k in AXES if k not in point]
    unknown = sorted(set(point) - set(AXES))
    if missing or unknown:
        raise ValueError(
            f"a base point needs exactly {', '.join(AXES)}; missing {missing}, unknown {unknown}"
        )
    return {k: float(point[k]) for k in AXES}


def equivalent_unbiased_threshold(threshold: float, gamma: float, sigma: float) -> float:
    """The threshold at which the unbiased variant flips exactly like the biased one with
    ``threshold`` (constant hyper-parameters; up to the 1e-10 epsilon): tau*sqrt(sigma)/gamma."""
    return threshold * math.sqrt(sigma) / gamma


def variant_configs(
    scale: Scale,
    point: Mapping[str, float] = README_POINT,
    norms: Sequence[str] = tuple(MODELS),
    extras: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Section 5.1.1: biased and unbiased Bop2ndOrder with BatchNorm and LayerNorm at ``point``.

    ``extras`` add BatchNorm runs that explain the comparison: ``adam_bias_correction`` (the
    biased set with Adam's correction, not in the authors' code), ``equivalent_threshold`` (the
    unbiased set at the threshold equivalent to the biased run) and ``bop`` (the seed's ``bop``
    set, tau 1e-6 and gamma 1e-3, for the abstract's comparison with Bop).
    """
    _check_choices("norm", norms, tuple(MODELS))
    _check_choices("extra", extras, EXTRAS)
    p = _point(point)
    configs = [
        scale.config(MODELS[norm], SETS_5_1_1[variant], **p)
        for norm in norms
        for variant in VARIANTS
    ]
    batch = MODELS["BatchNorm"]
    if "adam_bias_correction" in extras:
        configs.append(scale.config(batch, SETS_5_1_1["biased"], adam_bias_correction=True, **p))
    if "equivalent_threshold" in extras:
        tau = equivalent_unbiased_threshold(p["threshold"], p["gamma"], p["sigma"])
        configs.append(scale.config(batch, SETS_5_1_1["unbiased"], **(p | {"threshold": tau})))
    if "bop" in extras:
        configs.append(scale.config(batch, "bop"))
    return configs


def ablation_configs(
    scale: Scale,
    grids: Mapping[str, Sequence[float]],
    point: Mapping[str, float] = README_POINT,
    variant: str = "unbiased",
) -> list[dict[str, Any]]:
    """Sections 5.1.2-5.1.3: one axis at a time, each of tau, gamma, sigma over its grid with the
    other two at ``point`` (BatchNorm, the README's ablation command). The base point is one run."""
    _check_choices("variant", [variant], VARIANTS)
    _check_choices("axis", grids, AXES)
    p = _point(point)
    configs = [scale.config(MODELS["BatchNorm"], SETS_5_1_1[variant], **p)]
    for axis, values in grids.items():
        for value in values:
            if not math.isclose(float(value), p[axis], rel_tol=1e-12):
                configs.append(
                    scale.config(
                        MODELS["BatchNorm"], SETS_5_1_1[variant], **(p | {axis: float(value)})
                    )
                )
    return configs


def scheduler_configs(
    scale: Scale,
    epochs_decay: float,
    decay: float = 0.1,
    point: Mapping[str, float] = README_POINT,
    variants: Sequence[str] = VARIANTS,
) -> list[dict[str, Any]]:
    """Section 5.1.4: ``*_testExp`` (tau, gamma, sigma and the Adam learning rate times ``decay``
    every ``epochs_decay`` epochs) and, per variant, the same set with every decay rate 1.0: the
    constant-hyper-parameter baseline with the same batch size, epochs and initial values."""
    _check_choices("variant", variants, VARIANTS)
    p = _point(point)
    configs = []
    for variant in variants:
        for rate in (decay, 1.0):
            rates = {f"{k}_decay": rate for k in (*AXES, "lr")}
            configs.append(
                scale.config(
                    MODELS["BatchNorm"],
                    SETS_TEST_EXP[variant],
                    epochs_decay=epochs_decay,
                    **p,
                    **rates,
                )
            )
    return configs


def cifar_recipe_configs(scale: Scale, variants: Sequence[str] = VARIANTS) -> list[dict[str, Any]]:
    """Section 5.2: ``bop2ndOrder_CIFAR`` and ``bop2ndOrder_unbiased_CIFAR`` as the sets define
    them; their polynomial schedules span the run's own epochs (``poly_epochs`` = epochs)."""
    _check_choices("variant", variants, VARIANTS)
    return [scale.config(MODELS["BatchNorm"], SETS_CIFAR[v]) for v in variants]


def describe(config: Mapping[str, Any]) -> dict[str, str]:
    """Chart labels of a run config: its norm, its variant (biased, unbiased, Adam-corrected,
    Bop) and, for 5.1.4, its schedule (exponential decay or constant). Takes a RunConfig dict
    (resolved here) or a record's resolved config."""
    if "optimizer" not in config["hparams"]:
        config = RunConfig.from_dict(dict(config)).resolve().to_dict()
    hp = config["hparams"]
    if hp.get("optimizer") == "bop":
        variant = "Bop"
    elif hp.get("adam_bias_correction"):
        variant = "biased, Adam-corrected"
    else:
        variant = "unbiased" if hp.get("unbiased") else "biased"
    rate = hp.get("threshold_decay")
    if rate is None:
        schedule = "polynomial" if "threshold_end" in hp else "constant"
    else:
        schedule = (
            "constant (decay 1.0)"
            if rate == 1.0
            else f"x{rate:g} every {hp['epochs_decay']:g} epochs"
        )
    return {
        "norm": NORMS.get(config["model"], config["model"]),
        "variant": variant,
        "schedule": schedule,
    }


def run_labels(records: Sequence[RunRecord]) -> dict[str, dict[str, str]]:
    """:func:`describe` of every record by key, with one refinement: an unbiased 5.1.1 run whose
    threshold differs from the biased run of the same norm (the ``equivalent_threshold`` extra)
    is labelled with its threshold, so it never passes for the unbiased run of the 2x2 study."""
    labels = {r.key: describe(r.config) for r in records}
    reference = {
        labels[r.key]["norm"]: r.config["hparams"]["threshold"]
        for r in records
        if r.config["hparams_set"] == SETS_5_1_1["biased"] and labels[r.key]["variant"] == "biased"
    }
    for r in records:
        threshold = r.config["hparams"].get("threshold")
        ref = reference.get(labels[r.key]["norm"])
        if (
            r.config["hparams_set"] == SETS_5_1_1["unbiased"]
            and ref is not None
            and not math.isclose(threshold, ref, rel_tol=1e-9)
        ):
            labels[r.key]["variant"] = f"unbiased, tau = {threshold:.3g}"
    return labels


def label_frame(frame: Any, records: Sequence[RunRecord]) -> Any:
    """``frame`` (from :func:`bnnlib.experiment.records.records_frame`) with the :func:`run_labels` columns
    and a ``run`` column naming each run by its norm and variant."""
    labels = run_labels(records)
    out = frame.copy()
    for column in ("norm", "variant", "schedule"):
        out[column] = out["key"].map(lambda k, c=column: labels[k][c])
    out["run"] = out["norm"] + ", " + out["variant"]
    return out


def layer_flip_frame(records: Sequence[RunRecord]) -> Any:
    """Per-layer flip ratio per epoch: one row per (run, epoch, layer), with :func:`run_labels`."""
    import pandas as pd

    labels = run_labels(records)
    rows = [
        {
            "key": rec.key,
            **labels[rec.key],
            "epoch": h["epoch"],
            "layer": layer,
            "flip_ratio": ratio,
        }
        for rec in records
        for h in rec.history
        for layer, ratio in h.get("flip_ratio", {}).items()
    ]
    return pd.DataFrame(rows)


def hparam_frame(records: Sequence[RunRecord]) -> Any:
    """The hyper-parameter values the optimizer held after each epoch (what the next step uses):
    one row per (run, epoch, hyper-parameter), from the records' ``history[*]["hparams"]``."""
    import pandas as pd

    labels = run_labels(records)
    rows = [
        {
            "key": rec.key,
            **labels[rec.key],
            "epoch": h["epoch"],
            "hyper-parameter": name,
            "value": value,
        }
        for rec in records
        for h in rec.history
        for name, value in h.get("hparams", {}).items()
    ]
    return pd.DataFrame(rows)


def first_update_flips(config: Mapping[str, Any], steps: int = 5) -> Any:
    """Fraction of the binary weights that each of the first ``steps`` updates of ``config``
    flips, and the fraction of weights that are exactly +-1 before the first update.

    bnnlib binarises the weights when the model is built, so the first update already sees +-1
    weights; larq starts from real glorot weights and only binarises on its first step (spec 3a).
    """
    import pandas as pd

    from bnnlib.experiment.runs import prepare
    from bnnlib.optim import counts_flips, sub_optimizers
    from bnnlib.train.metrics import binary_fraction

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps!r}")
    prepared = prepare(dict(config), progress=False)
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
        trainer.optimizer.step(trainer.make_closure(x, y, []))
        if trainer.scheduler is not None:
            trainer.scheduler.step()
        counts = [(p.numel(), n) for opt in flippers for p, n in opt.flip_counts()]
        flipped = sum(n for _, n in counts) / sum(size for size, _ in counts)
        rows.append({"step": step, "flipped": flipped, "binary_before_first_update": before})
    return pd.DataFrame(rows).assign(**describe(config))


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


def reported_entry(setting_start: str) -> Any:
    """The entry of ``paper_numbers/bop2.yaml`` whose setting starts with ``setting_start``."""
    from bnnlib_book.papers import reported

    for entry in reported("bop2"):
        if entry.setting.startswith(setting_start):
            return entry
    raise ValueError(f"bop2.yaml has no setting starting with {setting_start!r}")
