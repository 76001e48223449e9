"""The book-wide rule set of bnnlib_book.grading: one rule per status, printed on the summary
page; numbers, qualitative claims, comparisons and claims of several parts map to the statuses
the rules state."""

from __future__ import annotations

from pathlib import Path

import pytest

from bnnlib_book import grading
from bnnlib_book.grading import (
    ACCURACY_TOLERANCE,
    CONSISTENT_REDUCED,
    INCONCLUSIVE,
    INCONSISTENT_REDUCED,
    NO_PAPER_VALUE,
    NOT_REPRODUCED,
    NOT_RUN,
    PSNR_TOLERANCE,
    REPRODUCED,
    STATUS_RULES,
    STATUSES,
    TOO_FEW_SEEDS,
    Claim,
    Comparison,
    Verdict,
    gap_status,
    judge_all_parts,
    judge_comparison,
    judge_direction,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CLAIM = Claim("000", "test", "a claim", "test")


def test_the_summary_page_prints_the_rules_of_the_code() -> None:
    summary = (REPO_ROOT / "notebooks" / "99_summary.py").read_text()
    assert "STATUS_RULES[status]" in summary
    # the page holds no list of its own that could drift from the code's
    for status in STATUSES:
        assert f"# {status}\n" not in summary


def test_every_status_has_one_rule() -> None:
    assert list(STATUS_RULES) == list(STATUSES)
    for status, rule in STATUS_RULES.items():
        assert rule.endswith(".") and len(rule) > 40, status
    assert "partially reproduced" not in STATUSES and not hasattr(grading, "PARTIALLY")
    with pytest.raises(ValueError, match="unknown claim status 'partially reproduced'"):
        Verdict(CLAIM, "partially reproduced", "")


def test_no_partially_reproduced_is_left_in_the_book() -> None:
    book = REPO_ROOT / "bnnlib_book"
    sources = [*book.glob("*.py"), *book.glob("*/*.py"), *(REPO_ROOT / "notebooks").glob("*.py")]
    for path in sources:
        if "vendor" in path.relative_to(REPO_ROOT).parts:
            continue
        text = path.read_text().lower()
        assert "partially reproduced" not in text and '"partially"' not in text, path


@pytest.mark.parametrize(
    ("gap", "tolerance", "expected"),
    [
        (0.9, ACCURACY_TOLERANCE, REPRODUCED),
        (-1.0, ACCURACY_TOLERANCE, REPRODUCED),
        (-1.1, ACCURACY_TOLERANCE, NOT_REPRODUCED),  # no middle band
        (2.9, ACCURACY_TOLERANCE, NOT_REPRODUCED),
        (0.4, PSNR_TOLERANCE, REPRODUCED),
        (0.6, PSNR_TOLERANCE, NOT_REPRODUCED),
    ],
)
def test_a_number_at_the_paper_setting_is_reproduced_within_one_tolerance(
    gap: float, tolerance: float, expected: str
) -> None:
    assert gap_status(gap, tolerance) == expected


@pytest.mark.parametrize("holds", [True, False])
def test_a_qualitative_claim_at_reduced_scale_is_never_reproduced_or_not(holds: bool) -> None:
    verdict = judge_direction(CLAIM, holds, "e", at_paper_scale=False, scale_free=False)
    assert verdict.status == (CONSISTENT_REDUCED if holds else INCONSISTENT_REDUCED)
    at_scale = judge_direction(CLAIM, holds, "e", at_paper_scale=True, scale_free=False)
    assert at_scale.status == (REPRODUCED if holds else NOT_REPRODUCED)


@pytest.mark.parametrize("scale", [True, False])
def test_a_comparison_with_one_seed_is_shown_not_graded(scale: bool) -> None:
    verdict = judge_comparison(
        CLAIM, Comparison("a", (0.9,), "b", (0.5,)), at_paper_scale=scale, setting="s"
    )
    assert verdict.status == TOO_FEW_SEEDS
    assert "a 90.00 % (n=1) vs b 50.00 % (n=1)" in verdict.evidence


def _part(status: str) -> tuple[str, Verdict]:
    return (status.split()[0], Verdict(CLAIM, status, status))


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ((REPRODUCED, REPRODUCED), REPRODUCED),
        ((REPRODUCED, CONSISTENT_REDUCED), CONSISTENT_REDUCED),
        ((CONSISTENT_REDUCED, INCONCLUSIVE), INCONCLUSIVE),
        ((INCONCLUSIVE, TOO_FEW_SEEDS), TOO_FEW_SEEDS),
        ((TOO_FEW_SEEDS, NOT_RUN), NOT_RUN),
        ((NO_PAPER_VALUE, CONSISTENT_REDUCED), NO_PAPER_VALUE),
        # a failing part decides, even beside a part that could not be graded
        ((TOO_FEW_SEEDS, INCONSISTENT_REDUCED), INCONSISTENT_REDUCED),
        ((NOT_RUN, INCONSISTENT_REDUCED), INCONSISTENT_REDUCED),
        ((INCONSISTENT_REDUCED, NOT_REPRODUCED), NOT_REPRODUCED),
    ],
)
def test_a_claim_of_parts_needs_every_part(statuses: tuple[str, str], expected: str) -> None:
    verdict = judge_all_parts(CLAIM, [_part(s) for s in statuses])
    assert verdict.status == expected
    failing = [s.split()[0] for s in statuses if s in grading.FAILING]
    assert verdict.evidence.endswith(f"; fails: {', '.join(failing)}") is bool(failing)


def test_a_claim_of_parts_rejects_what_it_cannot_combine() -> None:
    with pytest.raises(ValueError, match="no parts"):
        judge_all_parts(CLAIM, [])
    with pytest.raises(ValueError, match="cannot be combined"):
        judge_all_parts(CLAIM, [_part(grading.EPOCH_MATCHED)])
