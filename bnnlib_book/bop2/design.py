"""Bop2ndOrder (Suarez-Ramirez et al., 2021; code CuauSuarez/Bop2ndOrder): its experiment designs
as labelled runs. The frames its pages draw are in :mod:`bnnlib_book.bop2.frames`, the claims
they test in :mod:`bnnlib_book.bop2.claims`.

The README gives one command per experiment; the designs below turn a chapter's parameters (data
set, width, subset sizes, epochs, grids) into the labelled runs that command stands for, so the
notebooks, the summary's grader and the paper-recipe test use the same configs.

Two facts of the authors' update rule shape the chapters and are computed here rather
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
from bnnlib_book.runs import LabelledRun

MODELS = {"BatchNorm": "binarynet_batch", "LayerNorm": "binarynet"}
MODEL_NORMS = {model: norm for norm, model in MODELS.items()}
VARIANTS = ("biased", "unbiased")
SETS_5_1_1 = {"biased": "bop2ndOrder", "unbiased": "bop2ndOrder_unbiased"}
SETS_TEST_EXP = {"biased": "bop2ndOrder_testExp", "unbiased": "bop2ndOrder_unbiased_testExp"}
SETS_CIFAR = {"biased": "bop2ndOrder_CIFAR", "unbiased": "bop2ndOrder_unbiased_CIFAR"}
# The README's values for the paper's sections 5.1.1-5.1.4 (its per-section overrides).
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


def _run(config: dict[str, Any], variant: str) -> LabelledRun:
    """``config`` labelled with its norm (from its model), ``variant`` (which the design knows)
    and its schedule (from its resolved hparams set: exponential decay, polynomial or constant)."""
    hp = RunConfig.from_dict(config).resolve().to_dict()["hparams"]
    rate = hp.get("threshold_decay")
    if rate is None:
        schedule = "polynomial" if "threshold_end" in hp else "constant"
    elif rate == 1.0:
        schedule = "constant (decay 1.0)"
    else:
        schedule = f"x{rate:g} every {hp['epochs_decay']:g} epochs"
    label = {"norm": MODEL_NORMS[config["model"]], "variant": variant, "schedule": schedule}
    return LabelledRun(label, config)


def variant_runs(
    scale: Scale,
    point: Mapping[str, float] = README_POINT,
    norms: Sequence[str] = tuple(MODELS),
    extras: Sequence[str] = (),
) -> list[LabelledRun]:
    """Section 5.1.1: biased and unbiased Bop2ndOrder with BatchNorm and LayerNorm at ``point``.

    ``extras`` add BatchNorm runs that explain the comparison: ``adam_bias_correction`` (the
    biased set with Adam's correction, not in the authors' code), ``equivalent_threshold`` (the
    unbiased set at the threshold equivalent to the biased run, labelled with that threshold so
    it never passes for the unbiased run of the 2x2 study) and ``bop`` (the ``bop`` set, tau 1e-6
    and gamma 1e-3, for the abstract's comparison with Bop).
    """
    _check_choices("norm", norms, tuple(MODELS))
    _check_choices("extra", extras, EXTRAS)
    p = _point(point)
    runs = [
        _run(scale.config(MODELS[norm], SETS_5_1_1[variant], **p), variant)
        for norm in norms
        for variant in VARIANTS
    ]
    batch = MODELS["BatchNorm"]
    if "adam_bias_correction" in extras:
        config = scale.config(batch, SETS_5_1_1["biased"], adam_bias_correction=True, **p)
        runs.append(_run(config, "biased, Adam-corrected"))
    if "equivalent_threshold" in extras:
        tau = equivalent_unbiased_threshold(p["threshold"], p["gamma"], p["sigma"])
        config = scale.config(batch, SETS_5_1_1["unbiased"], **(p | {"threshold": tau}))
        runs.append(_run(config, f"unbiased, tau = {tau:.3g}"))
    if "bop" in extras:
        runs.append(_run(scale.config(batch, "bop"), "Bop"))
    return runs


def ablation_runs(
    scale: Scale,
    grids: Mapping[str, Sequence[float]],
    point: Mapping[str, float] = README_POINT,
    variant: str = "unbiased",
) -> list[LabelledRun]:
    """Sections 5.1.2-5.1.3: one axis at a time, each of tau, gamma, sigma over its grid with the
    other two at ``point`` (BatchNorm, the README's ablation command). The base point is one run."""
    _check_choices("variant", [variant], VARIANTS)
    _check_choices("axis", grids, AXES)
    p = _point(point)
    model, hparams_set = MODELS["BatchNorm"], SETS_5_1_1[variant]
    runs = [_run(scale.config(model, hparams_set, **p), variant)]
    for axis, values in grids.items():
        for value in values:
            if not math.isclose(float(value), p[axis], rel_tol=1e-12):
                config = scale.config(model, hparams_set, **(p | {axis: float(value)}))
                runs.append(_run(config, variant))
    return runs


def scheduler_runs(
    scale: Scale,
    epochs_decay: float,
    decay: float = 0.1,
    point: Mapping[str, float] = README_POINT,
    variants: Sequence[str] = VARIANTS,
) -> list[LabelledRun]:
    """Section 5.1.4: ``*_testExp`` (tau, gamma, sigma and the Adam learning rate times ``decay``
    every ``epochs_decay`` epochs) and, per variant, the same set with every decay rate 1.0: the
    constant-hyper-parameter baseline with the same batch size, epochs and initial values."""
    _check_choices("variant", variants, VARIANTS)
    p = _point(point)
    runs = []
    for variant in variants:
        for rate in (decay, 1.0):
            rates = {f"{k}_decay": rate for k in (*AXES, "lr")}
            config = scale.config(
                MODELS["BatchNorm"],
                SETS_TEST_EXP[variant],
                epochs_decay=epochs_decay,
                **p,
                **rates,
            )
            runs.append(_run(config, variant))
    return runs


def cifar_recipe_runs(scale: Scale, variants: Sequence[str] = VARIANTS) -> list[LabelledRun]:
    """Section 5.2: ``bop2ndOrder_CIFAR`` and ``bop2ndOrder_unbiased_CIFAR`` as the sets define
    them; their polynomial schedules span the run's own epochs (``poly_epochs`` = epochs)."""
    _check_choices("variant", variants, VARIANTS)
    return [_run(scale.config(MODELS["BatchNorm"], SETS_CIFAR[v]), v) for v in variants]


def _point_of(params: Mapping[str, Any]) -> dict[str, float]:
    return {k: params[k] for k in AXES}


def variants_page_runs(params: Mapping[str, Any]) -> list[LabelledRun]:
    """The runs of the 5.1.1 page from its parameters (what its claims are graded on)."""
    return variant_runs(Scale.from_params(params), _point_of(params), extras=params["extras"])


def ablations_page_runs(params: Mapping[str, Any]) -> tuple[list[LabelledRun], list[LabelledRun]]:
    """The grid runs and the scheduler runs of the 5.1.2-5.1.4 page from its parameters."""
    grids = {
        "threshold": params["thresholds"],
        "gamma": params["gammas"],
        "sigma": params["sigmas"],
    }
    grid = ablation_runs(Scale.from_params(params), grids, _point_of(params))
    sched_scale = Scale.from_params(params, epochs_key="scheduler_epochs")
    sched = scheduler_runs(sched_scale, params["epochs_decay"], params["decay"], _point_of(params))
    return grid, sched


def cifar_page_runs(params: Mapping[str, Any]) -> list[LabelledRun]:
    """The runs of the 5.2 page from its parameters."""
    return cifar_recipe_runs(Scale.from_params(params))


def reported_entry(setting_start: str) -> Any:
    """The entry of ``paper_numbers/bop2.yaml`` whose setting starts with ``setting_start``."""
    from bnnlib_book.papers import reported

    for entry in reported("bop2"):
        if entry.setting.startswith(setting_start):
            return entry
    raise ValueError(f"bop2.yaml has no setting starting with {setting_start!r}")
