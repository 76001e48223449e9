"""The iterative-training chapter's design, frames and grading on synthetic records."""

from __future__ import annotations

import math

import pytest

from bnnlib.experiment.config import RunConfig
from bnnlib.experiment.records import RunRecord
from bnnlib_book import grading
from bnnlib_book.grading import Claim, Comparison, judge_comparison
from bnnlib_book.iterative import claims, design, frames

RELEASED = {
    "profile": "cpu",
    "dataset": "mnist",
    "model": "mlp300",
    "epochs_per_layer": None,
    "train_subset": None,
    "test_subset": None,
    "seeds": [316, 317, 318],
    "orders": ["forward", "reverse", "132"],
}


def test_the_released_budget_gives_the_command_lines_configs():
    run = design.labelled_run("mlp300", "layer", "132", 316, design.Budget("mnist"))
    cli = RunConfig(
        model="mlp300",
        dataset="mnist",
        hparams_set="layer",
        hparams={"binarize_order": "132"},
        seed=316,
    )
    assert run.key == cli.key()
    binary = design.labelled_run("mlp300", "binary", "", 316, design.Budget("mnist"))
    assert binary.config["hparams"] == {} and binary.label["run"] == "all binary"


def test_a_reduced_budget_scales_every_epoch_count():
    budget = design.Budget("cifar10-jpeg", epochs_per_layer=2, train_subset=500)
    layer = design.labelled_run("resnet20", "layer", "forward", 0, budget).config["hparams"]
    assert (layer["epochs"], layer["epochs_per_layer"], layer["lr_milestones"]) == (48, 2, [40, 44])
    assert layer["train_subset"] == 500
    sens = design.labelled_run("vgg5", "sensitivity", "2", 0, budget).config["hparams"]
    assert sens["epochs"] == sens["epochs_per_layer"] == 3  # 200 of 150 epochs, times 2/150
    assert sens["binarize_order"] == "2"
    mlp = design.labelled_run("mlp300", "float", "", 0, design.Budget("mnist", 1)).config
    assert mlp["hparams"] == {"epochs": 3, "epochs_per_layer": 1}
    RunConfig.from_dict(dict(mlp)).resolve()


def test_guided_runs_name_their_sensitivity_records_by_key():
    budget = design.Budget("cifar10-jpeg", epochs_per_layer=1)
    sens = design.sensitivity_runs("vgg5", budget, 0, range(1, 6))
    guided = design.guided_run("vgg5", "ascend", 0, budget, sens)
    assert guided.config["hparams"]["sensitivity_runs"] == [r.key for r in sens]
    with pytest.raises(ValueError, match="script kind"):
        design.labelled_run("vgg5", "search", "", 0, budget)


# -- the grading rule ---------------------------------------------------------------------------

CLAIM = Claim("004", "07_iterative_mnist", "a beats b", "test")


@pytest.mark.parametrize(
    ("a", "b", "paper_scale", "status"),
    [
        ((0.98, 0.981, 0.979), (0.97, 0.971, 0.969), True, grading.REPRODUCED),
        ((0.98, 0.981, 0.979), (0.97, 0.971, 0.969), False, grading.CONSISTENT_REDUCED),
        ((0.97, 0.971, 0.969), (0.98, 0.981, 0.979), True, grading.NOT_REPRODUCED),
        ((0.97, 0.971, 0.969), (0.98, 0.981, 0.979), False, grading.INCONSISTENT_REDUCED),
        ((0.98, 0.95, 0.99), (0.97, 0.99, 0.96), True, grading.INCONCLUSIVE),
        ((0.98, 0.99), (0.90, 0.91), True, grading.TOO_FEW_SEEDS),
        ((0.99,), (0.90,), False, grading.TOO_FEW_SEEDS),  # one seed: shown, never graded
    ],
)
def test_comparisons_are_graded_by_two_standard_errors_over_three_seeds(a, b, paper_scale, status):
    verdict = judge_comparison(
        CLAIM, Comparison("a", a, "b", b), at_paper_scale=paper_scale, setting="test runs"
    )
    assert verdict.status == status
    assert "(n=" in verdict.evidence and "test runs" in verdict.evidence


def test_the_standard_error_is_welchs():
    c = Comparison("a", (1.0, 2.0, 3.0), "b", (0.0, 0.0, 0.0, 0.0))
    assert c.difference == pytest.approx(2.0)
    assert c.standard_error == pytest.approx(math.sqrt(1.0 / 3))


# -- frames and claims on synthetic records ------------------------------------------------------


def _history(kind: str, accuracies: list[float], switches: list[int]) -> list[dict]:
    """One epoch per accuracy; layer k (fc1..) binary from epoch switches[k]."""
    out = []
    for e, acc in enumerate(accuracies, start=1):
        layers = [f"fc{k + 1}" for k, first in enumerate(switches) if first <= e]
        out.append(
            {
                "epoch": e,
                "train_acc": acc,
                "val_acc": acc,
                "test_acc": acc - 0.01,
                "binary_layers": layers,
            }
        )
    return out


def _record(run, accuracies: list[float]) -> RunRecord:
    kind = run.config["hparams_set"]
    switches = {"float": [], "binary": [1, 1, 1]}.get(kind, [1, 2, 3])
    return RunRecord(
        key=run.key,
        config=dict(run.config),
        history=_history(kind, accuracies, switches),
        final={},
        provenance={"epochs": len(accuracies)},
    )


def test_a_run_is_judged_on_its_fully_binary_epochs():
    (run,) = [r for r in claims.mnist_runs(RELEASED) if r.label["run"] == "forward"][:1]
    rec = _record(run, [0.99, 0.90, 0.95, 0.97, 0.96])  # the float-layer epoch 1 is best
    numbers = frames.run_numbers(rec)
    assert numbers["first_binary_epoch"] == 3
    assert numbers["best_val_epoch"] == 4 and numbers["test_at_best_val"] == pytest.approx(0.96)
    assert numbers["best_test"] == pytest.approx(0.96) and numbers["final_test"] == pytest.approx(
        0.95
    )


def _grid_records(gap: float) -> tuple[list, list[RunRecord]]:
    runs = claims.mnist_runs(RELEASED)
    base = {"float": 0.985, "all binary": 0.95, "forward": 0.95 + gap, "reverse": 0.93, "132": 0.94}
    records = []
    for run in runs:
        jitter = 0.001 * (int(run.label["seed"]) - 317)
        records.append(_record(run, [0.5, 0.6, base[run.label["run"]] + jitter]))
    return runs, records


def test_mnist_claims_at_the_released_recipe():
    runs, records = _grid_records(gap=0.02)
    verdicts = {v.claim: v for v in claims.mnist_claims(records, RELEASED)}
    assert verdicts[claims.ITERATIVE_BEATS_BINARY].status == grading.REPRODUCED
    assert verdicts[claims.FORWARD_BEATS_REVERSE].status == grading.REPRODUCED
    assert verdicts[claims.ORDER_MATTERS].status == grading.REPRODUCED
    assert "against 132, the best other order graded" in verdicts[claims.FORWARD_IS_BEST].evidence
    runs, records = _grid_records(gap=0.0)
    verdicts = {v.claim: v for v in claims.mnist_claims(records, RELEASED)}
    assert verdicts[claims.ITERATIVE_BEATS_BINARY].status == grading.INCONCLUSIVE
    runs, records = _grid_records(gap=-0.03)
    verdicts = {v.claim: v for v in claims.mnist_claims(records, RELEASED)}
    assert verdicts[claims.FORWARD_IS_BEST].status == grading.NOT_REPRODUCED  # 132 is better
    assert verdicts[claims.ITERATIVE_BEATS_BINARY].status == grading.NOT_REPRODUCED


def _without(order: str, gap: float) -> list[RunRecord]:
    runs, records = _grid_records(gap=gap)
    dropped = {x.key for x in runs if x.label["run"] == order}
    return [r for r in records if r.key not in dropped]


def test_claims_over_all_orders_wait_for_every_order_unless_the_graded_ones_decide():
    # forward beats reverse beyond the spread: the order matters, whatever 132 does; whether
    # forward is the best waits for 132
    verdicts = {v.claim: v for v in claims.mnist_claims(_without("132", 0.02), RELEASED)}
    assert verdicts[claims.ORDER_MATTERS].status == grading.REPRODUCED
    assert verdicts[claims.FORWARD_IS_BEST].status == grading.NOT_RUN
    assert "orders with fewer than 3 seeds: 132" in verdicts[claims.FORWARD_IS_BEST].evidence
    assert verdicts[claims.FORWARD_BEATS_REVERSE].status == grading.REPRODUCED
    # reverse beats forward beyond the spread: forward is not the best, whatever 132 does
    verdicts = {v.claim: v for v in claims.mnist_claims(_without("132", -0.03), RELEASED)}
    assert verdicts[claims.FORWARD_IS_BEST].status == grading.NOT_REPRODUCED
    assert "against reverse" in verdicts[claims.FORWARD_IS_BEST].evidence
    # forward and reverse within the spread: neither claim is decided without 132
    verdicts = {v.claim: v for v in claims.mnist_claims(_without("132", -0.02), RELEASED)}
    assert verdicts[claims.ORDER_MATTERS].status == grading.NOT_RUN
    assert verdicts[claims.FORWARD_IS_BEST].status == grading.NOT_RUN


def test_mnist_claims_without_records_are_not_run_and_reduced_budgets_say_so():
    verdicts = claims.mnist_claims([], RELEASED)
    assert {v.status for v in verdicts} == {grading.NOT_RUN}
    reduced = {**RELEASED, "epochs_per_layer": 1}
    assert not claims.at_released_recipe(reduced)


def test_tables_never_show_nan_and_timelines_follow_the_records():
    runs, records = _grid_records(gap=0.02)
    table = frames.seed_table(frames.runs_frame(records[:1], runs))
    shown = frames.shown_table(table)
    assert shown.iloc[0]["seeds"] == 1 and "±" not in shown.iloc[0][frames.SHOWN["final_test"]]
    assert not shown.isna().any().any()
    timeline = frames.timeline_frame(records, runs)
    forward = timeline[timeline["run"] == "forward"]
    assert forward["first epoch"].tolist() == [1, 2, 3]
    assert frames.seed_table(frames.runs_frame([], runs)).empty
