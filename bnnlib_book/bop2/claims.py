"""The claims of the Bop2ndOrder chapters (Suarez-Ramirez et al., 2021) and how the records of
their runs grade them, by the rules of :mod:`bnnlib_book.grading`.

The README's CIFAR-10 accuracies are compared only at the paper's scale; the section 5.1 studies
have no transcribed values, so below that scale they are "not run at this profile" with our
numbers as evidence; the first-update mass flip is a property of the update rule and is graded at
any scale; the abstract's comparison with Bop is comparative, graded over seeds
(:func:`~bnnlib_book.grading.judge_comparison`) against Bop runs at the same scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bnnlib.experiment.records import RunRecord
from bnnlib_book.bop2.design import (
    CIFAR10_TRAIN,
    SETS_CIFAR,
    VARIANTS,
    ablations_page_runs,
    cifar_page_runs,
    reported_entry,
    variants_page_runs,
)
from bnnlib_book.bop2.frames import first_update_flips
from bnnlib_book.grading import (
    MIN_SEEDS,
    NO_PAPER_VALUE,
    NOT_RUN,
    TOO_FEW_SEEDS,
    Claim,
    Comparison,
    Verdict,
    compare_number,
    judge_all_parts,
    judge_comparison,
    judge_direction,
    not_run,
    paper_scale,
    percent,
)
from bnnlib_book.runs import LabelledRun, labels_by_key, select

SEED = "001"

# Epochs of the paper's section 5.1 README commands and of the sets.
PAPER_EPOCHS = {"5.1.1": 150, "ablation": 100, "testExp": 350, "CIFAR": 500}
# A first update "flips about half" the weights when this share of them flips.
MASS_FLIP_RANGE = (0.4, 0.6)


def _claim(chapter: str, statement: str, source: str, paper: str) -> Claim:
    return Claim(SEED, chapter, statement, source, paper)


CLAIM_2X2 = _claim(
    "03_bop2_variants",
    "Biased vs unbiased Bop2ndOrder with BatchNorm and LayerNorm, BinaryNet, CIFAR-10, 150 epochs",
    "paper 5.1.1 (README command)",
    "not yet transcribed",
)
CLAIM_MASS_FLIP = _claim(
    "03_bop2_variants",
    "With gamma/sqrt(sigma) > tau the first update from +-1 weights flips about half of them",
    "spec 3a, 3f.3 (authors' code)",
    "about 50 %",
)
CLAIM_FASTER = _claim(
    "03_bop2_variants",
    "Bop2ndOrder converges faster than Bop",
    "paper abstract (spec 3e)",
    "qualitative",
)
CLAIM_ABLATION = _claim(
    "04_bop2_ablations",
    "tau, gamma and sigma of the unbiased variant around the README point, 100 epochs",
    "paper 5.1.2-5.1.3 (README command)",
    "not yet transcribed",
)
CLAIM_ROBUST = _claim(
    "04_bop2_ablations",
    "Bop2ndOrder is more robust to its hyper-parameters than Bop",
    "paper abstract (spec 3e)",
    "qualitative",
)
CLAIM_SCHEDULERS = _claim(
    "04_bop2_ablations",
    "Exponential decay (x0.1 every 100 epochs) of tau, gamma, sigma and the learning rate, "
    "350 epochs",
    "paper 5.1.4 (README commands)",
    "not yet transcribed",
)


def _cifar_claim(variant: str) -> Claim:
    entry = reported_entry(f"CIFAR-10 BinaryNet (BN), {SETS_CIFAR[variant]}")
    return _claim(
        "05_bop2_cifar_recipe",
        f"{SETS_CIFAR[variant]} ({variant}) reaches {entry.shown} top-1 on CIFAR-10",
        entry.source,
        entry.shown,
    )


def imagenet_claims() -> tuple[Claim, ...]:
    """Section 5.3, listed in the summary; ImageNet is not part of this book."""
    return tuple(
        Claim(SEED, "not in this book", f"{e.setting}: {e.shown} top-1", e.source, e.shown)
        for e in (reported_entry("ImageNet XNOR-Net"), reported_entry("ImageNet Bi-Real Net"))
    )


def _all_at_paper_scale(records: Sequence[RunRecord], epochs: int) -> bool:
    return bool(records) and all(paper_scale(r, "cifar10", epochs, CIFAR10_TRAIN) for r in records)


def _mean_test_accuracy(record: RunRecord) -> float:
    """Area under the test-accuracy curve per epoch: higher for a run that gets there sooner."""
    return sum(h["test_acc"] for h in record.history) / len(record.history)


def mass_flip_verdict(traces: Any) -> Verdict:
    """Judge :data:`CLAIM_MASS_FLIP` from :func:`first_update_flips` frames (one per run)."""
    first = traces[traces["step"] == 1]
    if first.empty:
        return Verdict(CLAIM_MASS_FLIP, NOT_RUN, "no first-update trace")
    low, high = MASS_FLIP_RANGE
    shares = ", ".join(f"{r.norm} {r.variant} {percent(r.flipped)}" for r in first.itertuples())
    holds = bool(first["flipped"].between(low, high).all())
    return judge_direction(
        CLAIM_MASS_FLIP,
        holds,
        f"first update flips {shares} of the binary weights",
        at_paper_scale=False,
        scale_free=True,
    )


def faster_verdict(
    bop: Sequence[RunRecord],
    bop2: Sequence[RunRecord],
    at_paper_scale: bool,
    runs: Sequence[LabelledRun],
) -> Verdict:
    """Judge :data:`CLAIM_FASTER`, a comparative claim: per Bop2ndOrder variant of the BatchNorm
    runs ``bop2`` (labels from ``runs``), its mean test accuracy over the epochs (the area under
    the curve, one value per seed) against the Bop runs' at the same scale by
    :func:`~bnnlib_book.grading.judge_comparison`; the claim must hold for both variants
    (:func:`~bnnlib_book.grading.judge_all_parts`). With one seed a side it is too few seeds to
    grade, the numbers shown."""
    labels = labels_by_key(runs)
    reference = tuple(_mean_test_accuracy(r) for r in bop)
    variants = sorted({labels[r.key]["variant"] for r in bop2}, key=VARIANTS.index)
    setting = bop[0].label
    parts, texts = [], []
    for variant in variants:
        own = tuple(_mean_test_accuracy(r) for r in bop2 if labels[r.key]["variant"] == variant)
        comparison = Comparison(f"Bop2ndOrder {variant}", own, "Bop", reference)
        verdict = judge_comparison(
            CLAIM_FASTER, comparison, at_paper_scale=at_paper_scale, setting=setting
        )
        parts.append((variant, verdict))
        texts.append(comparison.text())
    evidence = (
        f"mean test accuracy over {len(bop[0].history)} epochs (area under the curve): "
        f"{' | '.join(texts)}; {setting}"
    )
    if any(verdict.status == TOO_FEW_SEEDS for _, verdict in parts):
        evidence += f"; the rule needs {MIN_SEEDS} seeds a side"
    return judge_all_parts(CLAIM_FASTER, parts, evidence=evidence)


def _scale_note(records: Sequence[RunRecord], metric: str = "test_acc") -> str:
    finals = [r.final[metric] for r in records]
    return (
        f"{len(records)} runs, final test accuracy {percent(min(finals))} to "
        f"{percent(max(finals))} ({records[0].label})"
    )


def _unjudged(claim: Claim, records: Sequence[RunRecord], epochs: int) -> Verdict:
    """A claim whose paper values are not transcribed: not run below the paper's scale, and
    not comparable at it."""
    if not records:
        return Verdict(claim, NOT_RUN, "no run records")
    if not _all_at_paper_scale(records, epochs):
        return Verdict(claim, NOT_RUN, "reduced scale: " + _scale_note(records))
    return Verdict(claim, NO_PAPER_VALUE, _scale_note(records))


def variants_claims(records: list[RunRecord], params: Mapping[str, Any]) -> list[Verdict]:
    """Claims of chapter 03 on the records of the runs its ``params`` design (the summary's
    grader)."""
    return variants_verdicts(records, variants_page_runs(params))


def variants_verdicts(
    records: Sequence[RunRecord], runs: Sequence[LabelledRun], traces: Any | None = None
) -> list[Verdict]:
    """Claims of chapter 03 on the records of ``runs``. The mass flip is judged from ``traces``
    (:func:`first_update_flips` frames) or, when None, by replaying the first update of the
    recorded BatchNorm runs (a few seconds): the per-epoch records cannot show a single step."""
    core = [r for v in VARIANTS for r in select(records, runs, variant=v)]
    complete = len(core) == 2 * len(VARIANTS)
    verdicts = [_unjudged(CLAIM_2X2, core if complete else [], PAPER_EPOCHS["5.1.1"])]
    batch = [r for v in VARIANTS for r in select(records, runs, norm="BatchNorm", variant=v)]
    if traces is None and batch:
        import pandas as pd

        recorded = {r.key for r in batch}
        traces = pd.concat(
            [first_update_flips(run, steps=1) for run in runs if run.key in recorded]
        )
    if traces is None:
        verdicts.extend(not_run([CLAIM_MASS_FLIP], "no BatchNorm run recorded"))
    else:
        verdicts.append(mass_flip_verdict(traces))
    bop = select(records, runs, variant="Bop")
    if bop and len(batch) == len(VARIANTS):
        full = _all_at_paper_scale([*bop, *batch], PAPER_EPOCHS["5.1.1"])
        verdicts.append(faster_verdict(bop, batch, full, runs))
    else:
        verdicts.extend(not_run([CLAIM_FASTER], "no Bop run beside both BatchNorm variants"))
    return verdicts


def ablations_claims(records: list[RunRecord], params: Mapping[str, Any]) -> list[Verdict]:
    """Claims of chapter 04 on the records of the runs its ``params`` design (the summary's
    grader)."""
    return ablations_verdicts(records, *ablations_page_runs(params))


def ablations_verdicts(
    records: Sequence[RunRecord],
    grid_runs: Sequence[LabelledRun],
    sched_runs: Sequence[LabelledRun],
) -> list[Verdict]:
    """Claims of chapter 04: the grid and the schedulers (paper values not transcribed), and the
    abstract's robustness claim, which needs a matched Bop grid this book does not run."""
    grid = select(records, grid_runs)
    scheduled = select(records, sched_runs)
    robust_evidence = "no matched Bop grid at this profile"
    if grid:
        robust_evidence = f"Bop2ndOrder grid only: {_scale_note(grid)}; " + robust_evidence
    return [
        _unjudged(CLAIM_ABLATION, grid, PAPER_EPOCHS["ablation"]),
        Verdict(CLAIM_ROBUST, NOT_RUN, robust_evidence),
        _unjudged(CLAIM_SCHEDULERS, scheduled, PAPER_EPOCHS["testExp"]),
    ]


def cifar_claims(records: list[RunRecord], params: Mapping[str, Any]) -> list[Verdict]:
    """Claims of chapter 05 on the records of the runs its ``params`` design (the summary's
    grader)."""
    return cifar_verdicts(records, cifar_page_runs(params))


def cifar_verdicts(records: Sequence[RunRecord], runs: Sequence[LabelledRun]) -> list[Verdict]:
    """Claims of chapter 05: the README's CIFAR-10 accuracies of the two recipes."""
    verdicts = []
    for variant in VARIANTS:
        ran = select(records, runs, variant=variant)
        record = ran[0] if ran else None
        full = record is not None and _all_at_paper_scale([record], PAPER_EPOCHS["CIFAR"])
        entry = reported_entry(f"CIFAR-10 BinaryNet (BN), {SETS_CIFAR[variant]}")
        verdicts.append(
            compare_number(
                _cifar_claim(variant), record, "test_acc", entry.value, at_paper_scale=full
            )
        )
    return verdicts
