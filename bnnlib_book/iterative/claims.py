"""The claims of iterative training by layer binarization (Lan, 2021), graded on the records.

The paper's result tables are not transcribed (spec B.8 has its abstract only, and no copy of the
body was found), so every claim here is a qualitative one from the abstract, graded by the book's
rule for comparisons over seeds (:func:`bnnlib_book.grading.judge_comparison`: difference of
means beyond two standard errors, at least three seeds a side) on the test accuracy of the fully
binary network at its best validation epoch (:func:`bnnlib_book.iterative.frames.run_numbers`).
At the released recipe (full MNIST, 450 epochs, full width) a graded claim is reproduced or not;
at a reduced budget it can only be consistent (partially) or inconsistent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from bnnlib.experiment.records import RunRecord
from bnnlib_book.grading import Claim, Comparison, Verdict, judge_comparison
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
    means = order_means(frame, params["orders"])
    verdicts = []
    if len(means) >= 2:
        best, worst = means.index[0], means.index[-1]
        spread = _comparison(frame, best, worst)
    else:
        spread = None
    verdicts.append(judge_comparison(ORDER_MATTERS, spread, at_paper_scale=scale, setting=setting))
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
    others = [o for o in means.index if o != "forward"]
    verdicts.append(
        judge_comparison(
            FORWARD_IS_BEST,
            _comparison(frame, "forward", others[0]) if others and "forward" in means else None,
            at_paper_scale=scale,
            setting=setting + (f"; against the best other order, {others[0]}" if others else ""),
        )
    )
    return verdicts


def mnist_claims(records: list[RunRecord], params: Mapping[str, Any]) -> list[Verdict]:
    """The MNIST page's verdicts from its records and parameters (the summary's grader)."""
    return mnist_verdicts(records, mnist_runs(params), params)
