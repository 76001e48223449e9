"""The continual-learning claim of the BayesBiNN chapter, graded over seeds."""

from __future__ import annotations

from bnnlib_book import grading
from bnnlib_book.bayesbinn.claims import CONTINUAL_CLAIM, prior_verdict


def evals(*averages: float) -> list[dict[str, float]]:
    return [{"task": 5, "avg_acc": a} for a in averages]


def test_a_worse_prior_over_three_seeds_is_inconsistent_at_reduced_scale() -> None:
    verdict = prior_verdict(
        {"with prior": evals(0.36, 0.35, 0.37), "without prior": evals(0.41, 0.42, 0.40)},
        "3 tasks x 3 epochs",
    )
    assert verdict.claim == CONTINUAL_CLAIM
    assert verdict.status == grading.INCONSISTENT_REDUCED
    assert "(n=3)" in verdict.evidence and "3 tasks x 3 epochs" in verdict.evidence


def test_a_better_prior_at_reduced_scale_is_never_reproduced() -> None:
    verdict = prior_verdict(
        {"with prior": evals(0.60, 0.61, 0.62), "without prior": evals(0.40, 0.41, 0.42)}, ""
    )
    assert verdict.status not in (grading.REPRODUCED, grading.NOT_REPRODUCED)
    assert verdict.status != grading.INCONSISTENT_REDUCED


def test_one_seed_is_shown_not_graded_and_no_seed_is_not_run() -> None:
    one = prior_verdict({"with prior": evals(0.36), "without prior": evals(0.41)}, "")
    assert one.status == grading.TOO_FEW_SEEDS and "36.00" in one.evidence
    none = prior_verdict({"with prior": [], "without prior": []}, "")
    assert none.status == grading.NOT_RUN
