"""The claims of iterative training by layer binarization (Lan, 2021), graded on the records.

The paper's result tables are not transcribed (spec B.8 has its abstract only, and no copy of the
body was found), so every claim here is a qualitative one from the abstract, graded by the book's
rule for comparisons over seeds (:func:`bnnlib_book.grading.judge_comparison`: difference of
means beyond two standard errors, at least three seeds a side) on the test accuracy of the fully
binary network at its best validation epoch (:func:`bnnlib_book.iterative.frames.run_numbers`).
At the released recipe (full MNIST, 450 epochs, full width) a graded claim is reproduced or not;
at a reduced budget it can only be consistent or inconsistent at reduced scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from bnnlib.experiment.records import RunRecord
from bnnlib_book.grading import (
    MIN_SEEDS,
    NOT_RUN,
    Claim,
    Comparison,
    Verdict,
    judge_all_parts,
    judge_comparison,
)
from bnnlib_book.iterative import design
from bnnlib_book.iterative.frames import runs_frame
from bnnlib_book.runs import LabelledRun

SOURCE = "Lan (2021), arXiv 2111.07046, abstract"
METRIC = "test_at_best_val"
NOT_TRANSCRIBED = "not available (result tables not transcribed)"

ORDER_MATTERS = Claim(
    "004",
    "07_iterative_mnist",
    "The order in which layers are binarized changes the accuracy of the binary MLP (best vs "
    "worst of the six orders)",
    SOURCE,
    NOT_TRANSCRIBED,
)
ITERATIVE_BEATS_BINARY = Claim(
    "004",
    "07_iterative_mnist",
    "Starting from partially binary weights (forward order) reaches a better fully binary MLP "
    "than training it binary from the start",
    SOURCE,
    NOT_TRANSCRIBED,
)
FORWARD_BEATS_REVERSE = Claim(
    "004",
    "07_iterative_mnist",
    "Binarizing in the forward order (input to output) beats the reverse order",
    SOURCE,
    NOT_TRANSCRIBED,
)
FORWARD_IS_BEST = Claim(
    "004",
    "07_iterative_mnist",
    "The forward order beats every other of the six fixed orders",
    SOURCE,
    NOT_TRANSCRIBED,
)
MNIST_CLAIMS = (ORDER_MATTERS, ITERATIVE_BEATS_BINARY, FORWARD_BEATS_REVERSE, FORWARD_IS_BEST)


def mnist_runs(params: Mapping[str, Any]) -> list[LabelledRun]:
    """The grid of the MNIST page: float, all binary and every order, for every seed."""
    budget = design.Budget.from_params(params)
    return design.grid_runs(params["model"], budget, params["seeds"], params["orders"])


def at_released_recipe(params: Mapping[str, Any]) -> bool:
    """Full MNIST (55,000 / 5,000 / 10,000), the released epochs and full width."""
    return (
        params["dataset"] == "mnist"
        and params.get("epochs_per_layer") is None
        and params.get("train_subset") is None
        and params.get("test_subset") is None
    )


def setting_label(params: Mapping[str, Any], frame: pd.DataFrame) -> str:
    epochs = ", ".join(str(e) for e in sorted(set(frame["epochs"]))) if len(frame) else "?"
    scale = "released recipe" if at_released_recipe(params) else "reduced budget"
    return f"{params['model']} on {params['dataset']}, {epochs} epochs ({scale}), profile {params['profile']}"


def _values(frame: pd.DataFrame, run: str) -> tuple[float, ...]:
    return tuple(frame.loc[frame["run"] == run, METRIC])


def _comparison(frame: pd.DataFrame, a: str, b: str) -> Comparison | None:
    va, vb = _values(frame, a), _values(frame, b)
    return Comparison(a, va, b, vb) if va and vb else None


def order_means(frame: pd.DataFrame, orders: Sequence[str]) -> pd.Series:
    """Mean of the metric per order present in ``frame``, best first."""
    present = frame[frame["run"].isin(orders)]
    return present.groupby("run")[METRIC].mean().sort_values(ascending=False)


def mnist_verdicts(
    records: Sequence[RunRecord], runs: Sequence[LabelledRun], params: Mapping[str, Any]
) -> list[Verdict]:
    frame = runs_frame(records, runs)
    setting = setting_label(params, frame)
    scale = at_released_recipe(params)
    orders = list(params["orders"])
    graded = order_means(frame, [o for o in orders if len(_values(frame, o)) >= MIN_SEEDS])
    # A claim over all six orders waits for every order with MIN_SEEDS seeds, unless the orders
    # already graded decide it: one pair beyond the spread shows the order matters, and one
    # order beyond the spread above forward shows forward is not the best.
    short = [o for o in orders if o not in graded.index]
    incomplete = f"orders with fewer than {MIN_SEEDS} seeds: {', '.join(short)}" if short else ""
    verdicts = []
    spread = _comparison(frame, graded.index[0], graded.index[-1]) if len(graded) >= 2 else None
    verdicts.append(_over_orders(ORDER_MATTERS, spread, scale, setting, incomplete, decides=True))
    verdicts.append(
        judge_comparison(
            ITERATIVE_BEATS_BINARY,
            _comparison(frame, "forward", "all binary"),
            at_paper_scale=scale,
            setting=setting,
        )
    )
    verdicts.append(
        judge_comparison(
            FORWARD_BEATS_REVERSE,
            _comparison(frame, "forward", "reverse"),
            at_paper_scale=scale,
            setting=setting,
        )
    )
    against: dict[str, Comparison] = {}
    if "forward" in graded.index:
        against = {o: _comparison(frame, "forward", o) for o in graded.index if o != "forward"}
    # The first order graded above forward beyond the spread, else the best other order.
    beaten = [o for o, c in against.items() if c.holds() is False]
    other = (beaten or list(against) or [None])[0]
    verdicts.append(
        _over_orders(
            FORWARD_IS_BEST,
            against.get(other),
            scale,
            setting + (f"; against {other}, the best other order graded" if other else ""),
            incomplete,
            decides=False,
        )
    )
    return verdicts


def _over_orders(
    claim: Claim,
    comparison: Comparison | None,
    scale: bool,
    setting: str,
    incomplete: str,
    *,
    decides: bool,
) -> Verdict:
    """A claim over all the orders, graded on the orders with enough seeds: with orders still
    missing only a comparison that comes out ``decides`` (holds for True, the other way for
    False) settles it; otherwise it waits for them."""
    verdict = judge_comparison(claim, comparison, at_paper_scale=scale, setting=setting)
    if incomplete and comparison is not None and comparison.holds() is not decides:
        return Verdict(claim, NOT_RUN, f"{verdict.evidence}; not graded, {incomplete}")
    return verdict


def mnist_claims(records: list[RunRecord], params: Mapping[str, Any]) -> list[Verdict]:
    """The MNIST page's verdicts from its records and parameters (the summary's grader)."""
    return mnist_verdicts(records, mnist_runs(params), params)


# -- CIFAR-10: VGG-5, VGG-9 and ResNet-20 ---------------------------------------------------------

CIFAR_CHAPTER = "08_iterative_cifar"
# The CIFAR networks of the released scripts, shallow to deep, and their binarizable layers.
CIFAR_MODELS = ("vgg5", "vgg9", "resnet20")
CIFAR_LAYERS = {"vgg5": 5, "vgg9": 9, "resnet20": 20}
MODEL_NAMES = {"vgg5": "VGG-5", "vgg9": "VGG-9", "resnet20": "ResNet-20"}


def _cifar_claim(statement: str) -> Claim:
    return Claim("004", CIFAR_CHAPTER, statement, SOURCE, NOT_TRANSCRIBED)


ITERATIVE_BEATS_BINARY_CIFAR = {
    model: _cifar_claim(
        f"{name} on CIFAR-10: iterative training in the forward order reaches a better fully "
        "binary network than training it binary from the start"
    )
    for model, name in MODEL_NAMES.items()
}
ADVANTAGE_GROWS_WITH_DEPTH = _cifar_claim(
    "The advantage of iterative (forward) over all-binary training grows with depth: VGG-5 < "
    "VGG-9 < ResNet-20"
)
FORWARD_BEATS_REVERSE_CIFAR = {
    model: _cifar_claim(f"{name} on CIFAR-10: the forward order beats the reverse order")
    for model, name in MODEL_NAMES.items()
}
ASCEND_BEATS_FORWARD = {
    model: _cifar_claim(
        f"{name} on CIFAR-10: the sensitivity-guided order (ascend) improves on the forward order"
    )
    for model, name in MODEL_NAMES.items()
}
CIFAR_CLAIMS = (
    *ITERATIVE_BEATS_BINARY_CIFAR.values(),
    ADVANTAGE_GROWS_WITH_DEPTH,
    *FORWARD_BEATS_REVERSE_CIFAR.values(),
    *ASCEND_BEATS_FORWARD.values(),
)
GUIDED_ORDERS = ("ascend", "descend")


def cifar_budget(params: Mapping[str, Any], model: str) -> design.Budget:
    """The budget of ``model``'s runs: the page's data sizes and that model's epochs per layer
    (a model absent from ``epochs_per_layer`` trains the released epochs)."""
    return design.Budget(
        dataset=params["dataset"],
        epochs_per_layer=params["epochs_per_layer"].get(model),
        train_subset=params.get("train_subset"),
        test_subset=params.get("test_subset"),
        profile=params.get("profile"),
        validation_split=params.get("validation_split"),
    )


def cifar_sensitivity_runs(params: Mapping[str, Any]) -> list[LabelledRun]:
    """One sensitivity run per layer of every model in ``sensitivity_models``, at ``seed``."""
    runs: list[LabelledRun] = []
    for model in params["sensitivity_models"]:
        layers = range(1, CIFAR_LAYERS[model] + 1)
        runs += design.sensitivity_runs(model, cifar_budget(params, model), params["seed"], layers)
    return runs


def cifar_runs(params: Mapping[str, Any]) -> list[LabelledRun]:
    """Every run of the CIFAR page, sensitivity runs first (the guided orders read their records):
    per model in ``models``, all binary and the orders in ``seeded_orders`` at each of
    ``seeds[model]``, the float baseline and the other ``orders[model]`` at ``seed``;
    ``ascend``/``descend`` ranked by that model's sensitivity runs at ``seed`` (so the model must
    be in ``sensitivity_models``)."""
    sensitivity = cifar_sensitivity_runs(params)
    runs = list(sensitivity)
    seed = params["seed"]
    for model in params["models"]:
        budget = cifar_budget(params, model)
        seeds = list(params["seeds"].get(model, [seed]))
        runs.append(design.labelled_run(model, "float", "", seed, budget))
        runs += [design.labelled_run(model, "binary", "", s, budget) for s in seeds]
        for order in params["orders"][model]:
            order_seeds = seeds if order in params["seeded_orders"] else [seed]
            if order in GUIDED_ORDERS:
                own = [r for r in sensitivity if r.label["model"] == model]
                if len(own) != CIFAR_LAYERS[model]:
                    raise ValueError(
                        f"order {order!r} of {model} is ranked by its sensitivity runs; add "
                        f"{model} to sensitivity_models"
                    )
                runs += [design.guided_run(model, order, s, budget, own) for s in order_seeds]
            else:
                runs += [design.labelled_run(model, "layer", order, s, budget) for s in order_seeds]
    return runs


def cifar_at_released_recipe(params: Mapping[str, Any], model: str) -> bool:
    """True CIFAR-10 with the 45,000 / 5,000 split, the full test set and the released epochs."""
    return (
        params["dataset"] == "cifar10"
        and params["epochs_per_layer"].get(model) is None
        and params.get("train_subset") is None
        and params.get("test_subset") is None
        and params.get("validation_split") is None
    )


def cifar_setting(
    records: Sequence[RunRecord], frame: pd.DataFrame, model: str, params: Mapping[str, Any]
) -> str:
    """What a verdict's numbers come from: data, images, epochs, model, hardware, scale."""
    keys = set(frame.loc[frame["model"] == model, "key"])
    prov = [r.provenance for r in records if r.key in keys]
    scale = "released recipe" if cifar_at_released_recipe(params, model) else "reduced budget"
    if not prov:
        return f"{MODEL_NAMES[model]} on {params['dataset']} ({scale}), profile {params['profile']}"
    p = prov[0]
    epochs = ", ".join(str(e) for e in sorted({q["epochs"] for q in prov}))
    return (
        f"{MODEL_NAMES[model]} on {p['dataset_label']}, {p['train_size']:,} train / "
        f"{p['val_size']:,} validation / {p['test_size']:,} test images, {epochs} epochs, "
        f"{p['hardware']} ({scale}, profile {params['profile']})"
    )


def _model_comparison(frame: pd.DataFrame, model: str, a: str, b: str) -> Comparison | None:
    return _comparison(frame[frame["model"] == model], a, b)


def advantage(frame: pd.DataFrame, model: str) -> tuple[float, ...]:
    """Per seed with both runs: forward minus all binary (the metric, as a fraction)."""
    own = frame[frame["model"] == model]
    forward = dict(
        zip(
            own.loc[own["run"] == "forward", "seed"],
            own.loc[own["run"] == "forward", METRIC],
            strict=True,
        )
    )
    binary = dict(
        zip(
            own.loc[own["run"] == "all binary", "seed"],
            own.loc[own["run"] == "all binary", METRIC],
            strict=True,
        )
    )
    return tuple(forward[s] - binary[s] for s in forward if s in binary)


def depth_verdict(
    frame: pd.DataFrame, records: Sequence[RunRecord], params: Mapping[str, Any]
) -> Verdict:
    """The rule of :data:`ADVANTAGE_GROWS_WITH_DEPTH`: the per-seed advantage (forward minus all
    binary, same seed) of each deeper network against the next shallower one (VGG-9 against
    VGG-5, ResNet-20 against VGG-9), each pair by :func:`judge_comparison`; both pairs must hold
    (:func:`~bnnlib_book.grading.judge_all_parts`: a pair the other way decides, then a pair not
    run or with too few seeds, then one within the spread)."""
    pairs = []
    for shallow, deep in zip(CIFAR_MODELS, CIFAR_MODELS[1:], strict=False):
        a, b = advantage(frame, deep), advantage(frame, shallow)
        comparison = (
            Comparison(f"{MODEL_NAMES[deep]} advantage", a, f"{MODEL_NAMES[shallow]} advantage", b)
            if a and b
            else None
        )
        scale = cifar_at_released_recipe(params, deep) and cifar_at_released_recipe(params, shallow)
        setting = f"{cifar_setting(records, frame, deep, params)}; {cifar_setting(records, frame, shallow, params)}"
        verdict = judge_comparison(
            ADVANTAGE_GROWS_WITH_DEPTH, comparison, at_paper_scale=scale, setting=setting
        )
        pairs.append((f"{MODEL_NAMES[deep]} over {MODEL_NAMES[shallow]}", verdict))
    evidence = " | ".join(verdict.evidence for _, verdict in pairs)
    return judge_all_parts(ADVANTAGE_GROWS_WITH_DEPTH, pairs, evidence=evidence)


def cifar_verdicts(
    records: Sequence[RunRecord], runs: Sequence[LabelledRun], params: Mapping[str, Any]
) -> list[Verdict]:
    """The CIFAR page's verdicts, each graded by :func:`judge_comparison` on :data:`METRIC`."""
    frame = runs_frame(records, runs)
    frame = frame[frame["kind"] != "sensitivity"]
    verdicts = []

    def judge(claim: Claim, model: str, a: str, b: str) -> Verdict:
        return judge_comparison(
            claim,
            _model_comparison(frame, model, a, b),
            at_paper_scale=cifar_at_released_recipe(params, model),
            setting=cifar_setting(records, frame, model, params),
        )

    for model in CIFAR_MODELS:
        verdicts.append(judge(ITERATIVE_BEATS_BINARY_CIFAR[model], model, "forward", "all binary"))
    verdicts.append(depth_verdict(frame, records, params))
    for model in CIFAR_MODELS:
        verdicts.append(judge(FORWARD_BEATS_REVERSE_CIFAR[model], model, "forward", "reverse"))
    for model in CIFAR_MODELS:
        verdicts.append(judge(ASCEND_BEATS_FORWARD[model], model, "ascend", "forward"))
    return verdicts


def cifar_claims(records: list[RunRecord], params: Mapping[str, Any]) -> list[Verdict]:
    """The CIFAR page's verdicts from its records and parameters (the summary's grader)."""
    return cifar_verdicts(records, cifar_runs(params), params)


# The released code's stored ``ascend`` orders (spec B.3, translated from module indices to layer
# numbers); ``descend`` is their reverse. Ours are ranked from our own sensitivity runs.
RELEASED_ASCEND = {
    "vgg5": "L5,L4,L1,L3,L2",
    "vgg9": "L8,L9,L1,L7,L6,L3,L5,L2,L4",
    "resnet20": "L19,L6,L5,L7,L1,L9,L12,L4,L8,L3,L14,L11,L15,L18,L2,L13,L10,L16,L17,L20",
}
# The released ``random`` orders (one stored permutation each); bnnlib's ``random`` is drawn
# from ``order_seed`` instead.
RELEASED_RANDOM = {
    "vgg5": "L2,L5,L1,L3,L4",
    "vgg9": "L3,L8,L1,L5,L6,L9,L2,L4,L7",
    "resnet20": "L4,L14,L10,L11,L13,L6,L9,L2,L15,L8,L17,L7,L18,L16,L20,L5,L1,L19,L12,L3",
}


def layer_numbers(model: str) -> dict[str, str]:
    """Layer name -> its number in the forward order (``conv1`` -> ``L1``), from the model
    built on the meta device (nothing allocated)."""
    import torch

    from bnnlib.methods.layerwise import layer_names
    from bnnlib.models import create_model

    with torch.device("meta"):
        names = layer_names(create_model(model))
    return {name: f"L{k}" for k, name in enumerate(names, start=1)}


def recorded_order(timeline: pd.DataFrame, model: str, run: str) -> str:
    """The order a run binarized its layers in, as its record has it (``timeline`` as
    :func:`bnnlib_book.iterative.frames.timeline_frame` makes it), in layer numbers; "" if the
    run is not in ``timeline``."""
    own = timeline[(timeline["model"] == model) & (timeline["run"] == run)].sort_values("turn")
    numbers = layer_numbers(model)
    return ",".join(numbers[name] for name in own["layer"])
