"""Claims of the reproduced works, the statuses our runs give them, and the one rule set by which
every chapter grades them (the summary page prints :data:`STATUS_RULES`).

A chapter states the claims it tests as :class:`Claim` values and turns its run records into a
:class:`Verdict` per claim with the helpers here. A claim's *setting* is its data set, model (at
full width), training budget (training-set size and epochs) and the metric it states; a run at a
labelled smaller setting is at *reduced scale*. Each claim is of one kind, graded by one helper:

- **a reported number** (:func:`compare_number`, :func:`gap_status`): compared with the paper's
  only at the paper's setting: reproduced within the stated tolerance (:data:`ACCURACY_TOLERANCE`,
  1 point of accuracy; :data:`PSNR_TOLERANCE`, 0.5 dB), else not reproduced. Below the setting
  it is not run at this profile, and our number is shown; a value not yet transcribed leaves
  it "no paper value to compare".
- **a qualitative, non-comparative claim** (a direction, the shape of a curve, a property;
  :func:`judge_direction`): at the paper's setting reproduced or not reproduced; at a reduced
  scale consistent or inconsistent at reduced scale, never reproduced or not reproduced, unless
  it is a property of the update rule that does not depend on scale (``scale_free``).
- **a comparative claim** (one setting or method beats, equals or is the best among others;
  :class:`Comparison`, :func:`judge_comparison`): graded only with :data:`MIN_SEEDS` (3) seeds
  a side, by the difference of the means against :data:`SE_FACTOR` (2) Welch standard errors of
  that difference, with mean +- std and n shown. Beyond them in the claim's direction:
  reproduced (consistent at reduced scale); the other way: not reproduced (inconsistent at
  reduced scale); within them: inconclusive. With fewer seeds: too few seeds to grade, the
  numbers shown. A single-seed result is shown, never graded.
- **a claim of several parts** (:func:`judge_all_parts`): every part is graded by its kind's
  rule and must hold; a failing part decides (not reproduced, or inconsistent at reduced scale)
  and is named; otherwise a part that could not be graded (not run, no paper value, too few
  seeds) leaves the claim ungraded, then a part within the seeds' spread leaves it
  inconclusive; when every part holds the claim takes the weaker of its parts' statuses
  (consistent at reduced scale below reproduced).
- **epoch-matched** (:func:`judge_epoch_matched`): our runs (3 seeds) of a reference
  implementation's own recipe, stopped after their first epochs, set beside that implementation's
  published per-epoch logs: inside the logged runs' band at every epoch judged is
  "epoch-matched", outside at some epoch "inconsistent at reduced scale", with the epochs named.
  It covers the epochs run, never the recipe's final number.

The book's summary page collects the verdicts of every chapter through
:data:`bnnlib_book.chapters.CHAPTERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bnnlib.experiment.records import RunRecord, load_records

REPRODUCED = "reproduced"
EPOCH_MATCHED = "epoch-matched"
CONSISTENT_REDUCED = "consistent at reduced scale"
INCONSISTENT_REDUCED = "inconsistent at reduced scale"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive (within the seed spread)"
TOO_FEW_SEEDS = "too few seeds to grade"
NOT_RUN = "not run at this profile"
NO_PAPER_VALUE = "no paper value to compare"
STATUSES = (
    REPRODUCED,
    EPOCH_MATCHED,
    CONSISTENT_REDUCED,
    INCONSISTENT_REDUCED,
    NOT_REPRODUCED,
    INCONCLUSIVE,
    TOO_FEW_SEEDS,
    NOT_RUN,
    NO_PAPER_VALUE,
)
MIN_SEEDS = 3
# A difference of means counts when it exceeds this many standard errors of the difference.
SE_FACTOR = 2.0

# The gap within which a run at the paper's setting reproduces a reported number (our choice,
# one per metric): top-1 or training accuracy in percentage points, PSNR in dB.
ACCURACY_TOLERANCE = 1.0
PSNR_TOLERANCE = 0.5

# The epoch-matched band is the reference runs' min-max widened by this many points on each side
# (accuracy in %). The range of 5 runs is a narrow estimate of their spread: a sixth run of the
# same distribution falls inside the range of five with probability (5-1)/(5+1) = 2/3 only. 0.1
# points is 10 of MNIST's 10,000 test images, about the gap between neighbouring reference runs.
EPOCH_MARGIN = 0.1

# One sentence per status: the rule that gives it. The summary page prints this list.
STATUS_RULES = {
    REPRODUCED: (
        "at the claim's own setting (data, model, training budget, metric), a reported number "
        f"within the stated tolerance ({ACCURACY_TOLERANCE:g} point of accuracy, "
        f"{PSNR_TOLERANCE:g} dB of PSNR), a qualitative claim that holds, or a comparison that "
        f"holds by more than {SE_FACTOR:g} standard errors over at least {MIN_SEEDS} seeds a "
        "side; a property of the update rule that does not depend on scale counts at any scale."
    ),
    EPOCH_MATCHED: (
        f"our runs ({MIN_SEEDS} seeds or more) of a reference implementation's own recipe, "
        "stopped after their first epochs, have their mean within that implementation's "
        f"published runs' min-max (widened by {EPOCH_MARGIN:g} points) at every epoch named; "
        "it covers those epochs only, never the recipe's final number."
    ),
    CONSISTENT_REDUCED: (
        "at a labelled smaller setting, a qualitative claim holds (every part of it), or a "
        f"comparison holds by more than {SE_FACTOR:g} standard errors over at least "
        f"{MIN_SEEDS} seeds a side; a smaller setting never confirms a paper number."
    ),
    INCONSISTENT_REDUCED: (
        "at a labelled smaller setting, a qualitative claim (or a named part of it) fails, a "
        f"comparison comes out the other way by more than {SE_FACTOR:g} standard errors over "
        f"at least {MIN_SEEDS} seeds a side, or a reference recipe's first epochs fall outside "
        "its published runs' band at the epochs named; a smaller setting never refutes a paper "
        "number."
    ),
    NOT_REPRODUCED: (
        "only at the claim's own setting: a reported number outside the stated tolerance, a "
        "qualitative claim (or a named part of it) that fails, or a comparison that comes out "
        f"the other way by more than {SE_FACTOR:g} standard errors over at least {MIN_SEEDS} "
        "seeds a side."
    ),
    INCONCLUSIVE: (
        f"a comparison over at least {MIN_SEEDS} seeds a side whose difference of means is "
        f"within {SE_FACTOR:g} standard errors."
    ),
    TOO_FEW_SEEDS: (
        "a comparative claim (one setting or method beats, equals or is the best among "
        f"others) with fewer than {MIN_SEEDS} seeds a side: its numbers are shown "
        "(mean +- std and n), not graded."
    ),
    NOT_RUN: (
        "the claim's setting was not run at this profile: a reported number measured at a "
        "smaller setting (shown as evidence only), runs missing or too short for the claim's "
        "rule, or a chapter planned or outside the book (ImageNet)."
    ),
    NO_PAPER_VALUE: (
        "the setting was run at the paper's scale but the paper's value is not yet transcribed."
    ),
}

# How a claim of several parts takes its status from its parts' (judge_all_parts), the first of
# this order among them: a failing part decides, then one that could not be graded, then one
# within the seeds' spread; a claim whose parts all hold takes the weaker holding status.
PARTS_ORDER = (
    NOT_REPRODUCED,
    INCONSISTENT_REDUCED,
    NOT_RUN,
    NO_PAPER_VALUE,
    TOO_FEW_SEEDS,
    INCONCLUSIVE,
    CONSISTENT_REDUCED,
    REPRODUCED,
)
FAILING = (NOT_REPRODUCED, INCONSISTENT_REDUCED)

FRAME_COLUMNS = ("seed", "chapter", "claim", "source", "paper", "status", "evidence")


@dataclass(frozen=True)
class Claim:
    """One statement of a paper or repository that a chapter tests."""

    seed: str
    chapter: str
    statement: str
    source: str
    paper: str = ""


@dataclass(frozen=True)
class Verdict:
    """The status our runs give a claim, what they measured, and which runs (their labels)."""

    claim: Claim
    status: str
    evidence: str

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown claim status {self.status!r}; choose one of {STATUSES}")


@dataclass(frozen=True)
class Chapter:
    """A chapter of the book and the function that judges its claims from its run records.

    ``evaluator`` is ``function(records, params) -> list[Verdict]``, called with the chapter's run
    records and the parameters its page ran with.
    A chapter without one (planned, or outside the book) lists its ``claims`` as not run and
    says ``why``.
    """

    seed: str
    name: str
    title: str
    evaluator: Callable[[list[RunRecord], Mapping[str, Any]], list[Verdict]] | None = None
    claims: tuple[Claim, ...] = ()
    why: str = ""


def paper_scale(record: RunRecord, dataset: str, epochs: int, train_size: int) -> bool:
    """Whether ``record`` ran the paper's setting: its data set, training-set size and epochs,
    at full width (the model's default width 1.0)."""
    p = record.provenance
    width = record.config.get("model_kwargs", {}).get("width", 1.0)
    return (
        record.config.get("dataset") == dataset
        and p.get("train_size") == train_size
        and p.get("epochs") == epochs
        and float(width) == 1.0
    )


def percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def compare_number(
    claim: Claim,
    record: RunRecord | None,
    metric: str,
    paper: float | None,
    *,
    at_paper_scale: bool,
    tolerance: float = ACCURACY_TOLERANCE,
    scale: float = 100.0,
    unit: str = "%",
) -> Verdict:
    """Verdict for a reported number ``paper`` against ``record.final[metric] * scale``, by
    :func:`gap_status`. Missing record: not run. Reduced scale: not run, with our number for
    reference."""
    if record is None:
        return Verdict(claim, NOT_RUN, "no run record")
    if metric not in record.final:
        raise ValueError(
            f"metric {metric!r} is not in the record's final metrics: {sorted(record.final)}"
        )
    ours = scale * record.final[metric]
    measured = f"ours {ours:.2f} {unit} ({record.label})"
    if not at_paper_scale:
        return Verdict(claim, NOT_RUN, f"reduced-scale run, not comparable: {measured}")
    if paper is None:
        return Verdict(claim, NO_PAPER_VALUE, measured)
    gap = ours - paper
    return Verdict(
        claim, gap_status(gap, tolerance), f"{measured}; {gap:+.2f} {unit} from the paper"
    )


def gap_status(gap: float, tolerance: float = ACCURACY_TOLERANCE) -> str:
    """A number measured at the paper's setting, ``gap`` away from the paper's: within
    ``tolerance`` reproduced, else not reproduced."""
    return REPRODUCED if abs(gap) <= tolerance else NOT_REPRODUCED


def judge_direction(
    claim: Claim, holds: bool | None, evidence: str, *, at_paper_scale: bool, scale_free: bool
) -> Verdict:
    """Verdict for a qualitative, non-comparative claim. ``holds`` None means the runs needed
    are missing (not run). At the paper's setting, or for a ``scale_free`` property of the update
    rule: reproduced or not reproduced; at a reduced scale: consistent or inconsistent at reduced
    scale (it can neither confirm nor refute the paper)."""
    if holds is None:
        return Verdict(claim, NOT_RUN, evidence)
    if at_paper_scale or scale_free:
        return Verdict(claim, REPRODUCED if holds else NOT_REPRODUCED, evidence)
    return Verdict(claim, CONSISTENT_REDUCED if holds else INCONSISTENT_REDUCED, evidence)


@dataclass(frozen=True)
class Comparison:
    """Two groups of per-seed values (accuracies as fractions) and the difference of their
    means against its standard error, sqrt(s_a^2/n_a + s_b^2/n_b) (Welch)."""

    a: str
    values_a: tuple[float, ...]
    b: str
    values_b: tuple[float, ...]

    @staticmethod
    def _stats(values: tuple[float, ...]) -> tuple[float, float]:
        n = len(values)
        mean = sum(values) / n
        var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else float("nan")
        return mean, var**0.5

    @property
    def difference(self) -> float:
        return self._stats(self.values_a)[0] - self._stats(self.values_b)[0]

    @property
    def standard_error(self) -> float:
        (_, sa), (_, sb) = self._stats(self.values_a), self._stats(self.values_b)
        return (sa**2 / len(self.values_a) + sb**2 / len(self.values_b)) ** 0.5

    def holds(self) -> bool | None:
        """a > b beyond SE_FACTOR standard errors: True; b > a beyond them: False; else None."""
        limit = SE_FACTOR * self.standard_error
        if self.difference > limit:
            return True
        if -self.difference > limit:
            return False
        return None

    def text(self) -> str:
        (ma, sa), (mb, sb) = self._stats(self.values_a), self._stats(self.values_b)

        def group(name: str, mean: float, std: float, n: int) -> str:
            spread = f" +- {100 * std:.2f}" if n > 1 else ""
            return f"{name} {100 * mean:.2f}{spread} % (n={n})"

        se = self.standard_error
        spread = (
            f"{SE_FACTOR:g} SE = {100 * SE_FACTOR * se:.2f}"
            if se == se  # NaN with one seed a side: no spread to state
            else "no standard error with one seed"
        )
        return (
            f"{group(self.a, ma, sa, len(self.values_a))} vs "
            f"{group(self.b, mb, sb, len(self.values_b))}: difference "
            f"{100 * self.difference:+.2f} points, {spread}"
        )


def judge_comparison(
    claim: Claim,
    comparison: Comparison | None,
    *,
    at_paper_scale: bool,
    setting: str,
    min_seeds: int = MIN_SEEDS,
) -> Verdict:
    """Verdict for the claim "a beats b", by the rule of :class:`Comparison`: graded only with
    ``min_seeds`` seeds per side (else too few seeds to grade, the numbers shown). At the
    paper's setting the claim is reproduced or not reproduced; at a reduced scale it is
    consistent or inconsistent at reduced scale (it can neither confirm nor refute the paper); a
    difference within the spread is inconclusive. ``setting`` labels the runs in the
    evidence."""
    if comparison is None:
        return Verdict(claim, NOT_RUN, f"no runs ({setting})")
    evidence = f"{comparison.text()}; {setting}"
    if min(len(comparison.values_a), len(comparison.values_b)) < min_seeds:
        return Verdict(claim, TOO_FEW_SEEDS, f"{evidence}; the rule needs {min_seeds} seeds")
    holds = comparison.holds()
    if holds is None:
        return Verdict(claim, INCONCLUSIVE, evidence)
    if holds:
        return Verdict(claim, REPRODUCED if at_paper_scale else CONSISTENT_REDUCED, evidence)
    return Verdict(claim, NOT_REPRODUCED if at_paper_scale else INCONSISTENT_REDUCED, evidence)


def judge_all_parts(
    claim: Claim, parts: Sequence[tuple[str, Verdict]], *, evidence: str | None = None
) -> Verdict:
    """Verdict for a claim that holds only when every one of its ``parts`` (name, the part's
    verdict by its own kind's rule) holds: the first status of :data:`PARTS_ORDER` among the
    parts, so a failing part decides, then an ungraded one, then one within the spread. The
    evidence is ``evidence`` (default: each part's, by name) with the failing parts named."""
    if not parts:
        raise ValueError(f"claim {claim.statement!r} has no parts to judge")
    unknown = sorted({v.status for _, v in parts} - set(PARTS_ORDER))
    if unknown:
        raise ValueError(f"part statuses {unknown} cannot be combined; use {PARTS_ORDER}")
    status = min((v.status for _, v in parts), key=PARTS_ORDER.index)
    text = evidence if evidence is not None else " | ".join(f"{n}: {v.evidence}" for n, v in parts)
    failing = [name for name, v in parts if v.status in FAILING]
    if failing:
        text += f"; fails: {', '.join(failing)}"
    return Verdict(claim, status, text)


def _epochs_text(epochs: Sequence[int]) -> str:
    return ", ".join(str(e) for e in epochs)


def band_position(mean: float, low: float, high: float, margin: float = EPOCH_MARGIN) -> str:
    """Where ``mean`` lies against the band ``[low, high]`` widened by ``margin``: "inside",
    "inside the margin, x points above the max" (or below the min), or "OUTSIDE, x points ..."."""
    beyond = (
        f"{low - mean:.2f} points below the min"
        if mean < low
        else f"{mean - high:.2f} points above the max"
    )
    if low <= mean <= high:
        return "inside"
    if low - margin <= mean <= high + margin:
        return f"inside the margin, {beyond}"
    return f"OUTSIDE, {beyond}"


def judge_epoch_matched(
    claim: Claim,
    ours: Mapping[int, Sequence[float]],
    reference: Mapping[int, Sequence[float]],
    *,
    same_recipe: bool,
    setting: str,
    margin: float = EPOCH_MARGIN,
    min_seeds: int = MIN_SEEDS,
    unit: str = "%",
) -> Verdict:
    """Verdict for "our runs follow the reference implementation's curve over the epochs run".

    ``ours`` and ``reference`` map an epoch (1-based) to the per-run values there (our seeds; the
    reference's logged runs), in the same unit (accuracy in %). The rule: at every epoch we ran
    that the reference logs, the mean of our runs lies within the reference runs' min-max at that
    epoch widened by ``margin`` on each side (:data:`EPOCH_MARGIN`, 0.1 points). Then the claim
    is "epoch-matched" at those epochs (named; epochs the reference did not log are named as not
    judged); outside at any epoch, "inconsistent at reduced scale", with the epochs outside named
    (a run stopped after its first epochs is a reduced budget: it cannot refute the recipe's
    final number). The evidence gives every epoch's numbers and, outside the band, how far beyond
    the reference min or max our mean is.

    Graded only when ``same_recipe`` (our runs trained the reference's recipe: data, model,
    width, optimizer settings, schedule length; else "not run at this profile", not comparable,
    numbers shown) and with ``min_seeds`` of our runs at every epoch judged (else "too few seeds
    to grade"). No run: "not run"; no reference at any epoch we ran: "no paper value".
    ``setting`` labels the runs in the evidence. Epoch-matched is never "reproduced": it covers
    the epochs run only, not the recipe's final accuracy."""
    epochs = sorted(e for e, values in ours.items() if len(values))
    if not epochs:
        return Verdict(claim, NOT_RUN, f"no runs ({setting})")

    def ours_text(e: int) -> str:
        values = [float(v) for v in ours[e]]
        mean = sum(values) / len(values)
        if len(values) > 1:
            std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
            return f"{mean:.2f} +- {std:.2f} {unit} (n={len(values)})"
        return f"{mean:.2f} {unit} (n=1)"

    judged = [e for e in epochs if len(reference.get(e, ())) > 0]
    unlogged = [e for e in epochs if e not in judged]
    if not same_recipe:
        shown = "; ".join(f"epoch {e} ours {ours_text(e)}" for e in epochs)
        return Verdict(
            claim, NOT_RUN, f"not comparable, not the reference recipe: {setting}; {shown}"
        )
    if not judged:
        return Verdict(
            claim,
            NO_PAPER_VALUE,
            f"the reference logs no epoch we ran (epochs {_epochs_text(epochs)}); {setting}",
        )
    parts = []
    inside = []
    for e in judged:
        values = [float(v) for v in ours[e]]
        mean = sum(values) / len(values)
        ref = [float(v) for v in reference[e]]
        low, high = min(ref), max(ref)
        band = (
            f"reference {sum(ref) / len(ref):.2f}, min {low:.2f}, max {high:.2f} ({len(ref)} runs)"
        )
        where = band_position(mean, low, high, margin)
        if where.startswith("inside"):
            inside.append(e)
        parts.append(f"epoch {e}: ours {ours_text(e)} vs {band}: {where}")
    evidence = "; ".join(parts)
    evidence += f" (band = min-max +- {margin:g} points); {setting}"
    if unlogged:
        evidence += f"; epochs {_epochs_text(unlogged)} not in the reference logs, not judged"
    if min(len(ours[e]) for e in judged) < min_seeds:
        return Verdict(claim, TOO_FEW_SEEDS, f"{evidence}; the rule needs {min_seeds} seeds")
    if len(inside) == len(judged):
        return Verdict(
            claim, EPOCH_MATCHED, f"epochs {_epochs_text(judged)} all inside: {evidence}"
        )
    outside = [e for e in judged if e not in inside]
    return Verdict(
        claim,
        INCONSISTENT_REDUCED,
        f"outside at epochs {_epochs_text(outside)} of {_epochs_text(judged)}: {evidence}",
    )


def not_run(claims: Iterable[Claim], why: str) -> list[Verdict]:
    return [Verdict(c, NOT_RUN, why) for c in claims]


def chapter_verdicts(
    chapter: Chapter, results_dir: str | Path | None, params: Mapping[str, Any]
) -> list[Verdict]:
    """The verdicts of ``chapter`` from the records in ``results_dir`` (None or a missing folder:
    no records)."""
    if chapter.evaluator is None:
        return not_run(chapter.claims, chapter.why)
    folder = Path(results_dir) if results_dir is not None else None
    records = load_records(folder) if folder is not None and folder.is_dir() else []
    return chapter.evaluator(records, params)


def verdict_frame(verdicts: Sequence[Verdict]) -> Any:
    """One row per claim with the columns of :data:`FRAME_COLUMNS` (a pandas DataFrame)."""
    import pandas as pd

    rows = [
        {
            "seed": v.claim.seed,
            "chapter": v.claim.chapter,
            "claim": v.claim.statement,
            "source": v.claim.source,
            "paper": v.claim.paper,
            "status": v.status,
            "evidence": v.evidence,
        }
        for v in verdicts
    ]
    return pd.DataFrame(rows, columns=list(FRAME_COLUMNS))


def findings(verdicts: Sequence[Verdict]) -> str:
    """A chapter's "what we found" box: one Markdown line per claim, its status first, then the
    claim and the first clause of its evidence (the claims section has the rest)."""
    return "\n".join(
        f"- **{v.status}**: {v.claim.statement} ({v.evidence.split(';')[0].strip()})"
        for v in verdicts
    )


def claims_table(verdicts: Sequence[Verdict]) -> Any:
    """A chapter's claims as its page shows them: :func:`verdict_frame` without the seed and
    chapter columns (the page is the chapter) and without the row numbers (a pandas Styler)."""
    frame = verdict_frame(verdicts).drop(columns=["seed", "chapter"])
    return frame.style.hide(axis="index").set_properties(
        **{"text-align": "left", "vertical-align": "top"}
    )


def status_counts(verdicts: Sequence[Verdict]) -> dict[str, int]:
    """How many claims have each status, in :data:`STATUSES` order."""
    return {s: sum(v.status == s for v in verdicts) for s in STATUSES}
