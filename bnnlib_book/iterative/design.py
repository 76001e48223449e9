"""Iterative training by layer binarization (Lan, 2021, arXiv 2111.07046; code
rakutentech/iterative_training): the released scripts as labelled runs.

Each script kind is one hparams set of the library (``float``, ``binary``, ``layer``,
``sensitivity``); a run is a kind, an order and a seed at a :class:`Budget`. At the released
budget the configs are exactly those of ``bnnlib iterative KIND MODEL ORDER --seed S``, so a
record trained from the command line serves the page and the other way round. A reduced budget
scales the epochs per layer and everything counted in epochs with it (the total epochs, the
sensitivity runs' epochs and the ResNets' learning-rate milestones).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from bnnlib.experiment.hparams import get_hparams
from bnnlib.methods.layerwise import single_layer_order
from bnnlib_book.runs import LabelledRun

KINDS = ("float", "binary", "layer", "sensitivity")
# The MNIST scripts' orders (all six permutations of three layers) and the CIFAR scripts' ones.
MLP_ORDERS = ("forward", "reverse", "132", "213", "231", "312")
CIFAR_ORDERS = ("forward", "reverse", "ascend", "descend", "random")
# The released seed of the full-training scripts (`--seed 316`).
RELEASED_SEED = 316


@dataclass(frozen=True)
class Budget:
    """How big a page's runs are. ``epochs_per_layer`` None is the released E (and every epoch
    count of the set); subsets None are the full splits; ``validation_split`` None is the set's
    held-out fraction (CIFAR-10: 5,000 of the 50,000 training images), a smaller one makes the
    evaluation of every epoch cheaper."""

    dataset: str
    epochs_per_layer: int | None = None
    train_subset: int | None = None
    test_subset: int | None = None
    profile: str | None = None
    validation_split: float | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Budget:
        return cls(
            dataset=params["dataset"],
            epochs_per_layer=params.get("epochs_per_layer"),
            train_subset=params.get("train_subset"),
            test_subset=params.get("test_subset"),
            profile=params.get("profile"),
            validation_split=params.get("validation_split"),
        )

    def hparams(self, model: str, kind: str) -> dict[str, Any]:
        """The overrides this budget puts on ``model``'s ``kind`` set (none at the released
        budget, so its configs are the command line's)."""
        out: dict[str, Any] = {}
        if self.train_subset is not None:
            out["train_subset"] = self.train_subset
        if self.test_subset is not None:
            out["test_subset"] = self.test_subset
        if self.validation_split is not None:
            out["validation_split"] = self.validation_split
        if self.epochs_per_layer is None:
            return out
        released = get_hparams(model, "layer")["epochs_per_layer"]
        own = get_hparams(model, kind)
        factor = self.epochs_per_layer / released

        def scaled(epochs: int) -> int:
            return max(1, round(epochs * factor))

        out["epochs"] = scaled(own["epochs"])
        out["epochs_per_layer"] = out["epochs"] if kind == "sensitivity" else self.epochs_per_layer
        if "lr_milestones" in own:
            out["lr_milestones"] = sorted({scaled(m) for m in own["lr_milestones"]})
        return out


def run_name(kind: str, order: str) -> str:
    """How a page names a run: float, all binary, the order, or the layer a sensitivity run
    binarizes alone."""
    if kind == "float":
        return "float"
    if kind == "binary":
        return "all binary"
    if kind == "sensitivity":
        return f"only L{order}"
    return order


@cache
def layer_count(model: str) -> int:
    """How many switchable layers ``model`` has (built on the meta device: nothing allocated)."""
    import torch

    from bnnlib.methods.layerwise import layer_names
    from bnnlib.models import create_model

    with torch.device("meta"):
        return len(layer_names(create_model(model)))


def sensitivity_order(model: str, layer: str) -> str:
    """The order of the run with only layer number ``layer`` binary, written as the command
    line writes it (:func:`bnnlib.methods.layerwise.single_layer_order`)."""
    return single_layer_order(int(layer), layer_count(model))


def labelled_run(
    model: str,
    kind: str,
    order: str,
    seed: int,
    budget: Budget,
    **hparams: Any,
) -> LabelledRun:
    """One run of a script kind; ``order`` is the layer number for a sensitivity run, ignored
    (use "") for float and binary. Extra ``hparams`` (the reset quirk) join the label."""
    if kind not in KINDS:
        raise ValueError(f"unknown script kind {kind!r}; choose one of {', '.join(KINDS)}")
    hp = budget.hparams(model, kind)
    if kind == "layer":
        hp["binarize_order"] = order
    elif kind == "sensitivity":
        hp["binarize_order"] = sensitivity_order(model, order)
    hp |= hparams
    name = run_name(kind, order)
    if hparams.get("reset_latent_to_sign"):
        name += ", reset to sign"
    label = {"model": model, "kind": kind, "order": order, "run": name, "seed": str(seed)}
    config = {
        "model": model,
        "dataset": budget.dataset,
        "hparams_set": kind,
        "hparams": hp,
        "seed": seed,
        "profile": budget.profile,
    }
    return LabelledRun(label, config)


def grid_runs(
    model: str,
    budget: Budget,
    seeds: Sequence[int],
    orders: Iterable[str],
    *,
    baselines: bool = True,
) -> list[LabelledRun]:
    """Float, all-binary and one layer run per order, for every seed."""
    runs: list[LabelledRun] = []
    for seed in seeds:
        if baselines:
            runs += [labelled_run(model, k, "", seed, budget) for k in ("float", "binary")]
        runs += [labelled_run(model, "layer", order, seed, budget) for order in orders]
    return runs


def sensitivity_runs(
    model: str, budget: Budget, seed: int, layers: Iterable[int]
) -> list[LabelledRun]:
    """One run per layer number with only that layer binary."""
    return [labelled_run(model, "sensitivity", str(k), seed, budget) for k in layers]


def guided_run(
    model: str, order: str, seed: int, budget: Budget, sensitivity: Sequence[LabelledRun]
) -> LabelledRun:
    """An ``ascend``/``descend`` run whose ranking reads ``sensitivity``'s records (by key)."""
    return labelled_run(
        model, "layer", order, seed, budget, sensitivity_runs=[r.key for r in sensitivity]
    )
