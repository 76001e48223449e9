"""The study's claims, graded by explicit rules on the run records: a status on the page follows
the records, and the rule that produced it is printed next to it.

Each claim's check measures its parts on our records (:class:`Finding`); :func:`grade` turns
them into a status by the book-wide rules of :mod:`bnnlib_book.grading`. Most of the study's
claims are comparative (a gamma that climbs faster, ends lower or is best among the others, two
settings that are indistinguishable, one norm better than the other): those are graded only over
:data:`~bnnlib_book.grading.MIN_SEEDS` seeds per setting, and the design trains every setting
at one seed, so they are "too few seeds to grade", with the parts shown on that seed. The
reported 92.15 % is a number, compared only at the study's scale.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bnnlib.experiment.config import RunConfig
from bnnlib.experiment.records import RunRecord
from bnnlib_book.bop.design import (
    STUDY_COMPARE_EPOCHS,
    STUDY_SCALE,
    AblationDesign,
    DenoisingDesign,
    close,
    reported_entry,
    reported_value,
)
from bnnlib_book.bop.frames import AblationResults, at_value, final_rows, history_comparison_row
from bnnlib_book.bop2.design import CIFAR10_TRAIN
from bnnlib_book.charts import format_value as _fmt
from bnnlib_book.grading import (
    ACCURACY_TOLERANCE,
    MIN_SEEDS,
    NOT_RUN,
    PSNR_TOLERANCE,
    TOO_FEW_SEEDS,
    Claim,
    Verdict,
    compare_number,
    judge_all_parts,
    judge_direction,
    paper_scale,
)
from bnnlib_book.papers import reported

# Rule thresholds, in percentage points of training accuracy.
TIE_POINTS = 2.0  # two final accuracies this close count as "the same"
PLATEAU_POINTS = 2.0  # a run gaining less than this over its second half has plateaued
DROP_POINTS = 2.0  # a run never losing more than this from one epoch to the next is stable
PLATEAU_BAND = 10.0  # "near 40 %" means within this many points of the reported plateau
SLIGHT_POINTS = 5.0  # "slightly better" means better by more than 0 and at most this
MIN_CURVE_EPOCHS = 4  # claims about the shape of a curve need at least this many epochs
# AblationDesign trains every setting at its one ``seed``: a comparative claim here has one seed
# a side, fewer than grading.MIN_SEEDS, so it is shown and not graded.
SEEDS_PER_SETTING = 1
METRIC_PLATEAU = "train accuracy plateau (approximately)"
BEST_SETTING = "binaryvgg + Bop, BatchNorm, tau 1e-8, gamma 1e-5"
PLATEAU_SETTING = "binaryvgg + Bop, BatchNorm, tau 1e-8, gamma 1e-2"
SOURCE = "Nayak et al., reproducibility report, tau/gamma ablation [report]"

# -- the study's claims, graded -------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One part of a claim's rule and whether our records show it."""

    name: str
    holds: bool


@dataclass(frozen=True)
class Finding:
    """What our records show for one claim: the text of the numbers, the parts of its rule that
    could be measured (none: the runs it needs are missing or too short, so it is not run), and
    whether those runs are at the study's scale (None: the scale of the page's runs)."""

    ours: str
    parts: tuple[Part, ...] = ()
    at_study_scale: bool | None = None

    @property
    def failing(self) -> list[str]:
        return [p.name for p in self.parts if not p.holds]


@dataclass(frozen=True)
class AblationClaim:
    """A claim of the study, where it is made, the rule that grades it, the grader, and whether
    it is comparative (graded only over grading.MIN_SEEDS seeds per setting)."""

    claim: str
    source: str
    rule: str
    check: Callable[[AblationResults], Finding]
    comparative: bool


def _finals(frame: pd.DataFrame, by: str) -> pd.Series:
    """Final training accuracy per value of ``by`` (gamma or threshold), sorted by that value."""
    last = final_rows(frame)
    return last.set_index(by)["train_acc"].sort_index()


def _value(series: pd.Series, key: float) -> float | None:
    for k, v in series.items():
        if close(float(k), key):
            return float(v)
    return None


def _curve(frame: pd.DataFrame, column: str, value: float) -> pd.DataFrame:
    run = frame[at_value(frame[column], value)] if len(frame) else frame
    return run.sort_values("epoch")


def _too_short(epochs: int) -> Finding:
    return Finding(
        f"runs of {epochs} epoch(s); a claim about the shape of a curve needs "
        f"at least {MIN_CURVE_EPOCHS}"
    )


def _check_high_gamma(res: AblationResults) -> Finding:
    sweep = res.gamma_sweep("BN")
    run = _curve(sweep, "gamma", 1e-2)
    if not len(run) or sweep["key"].nunique() < 2:
        return Finding("no BN run at gamma 1e-2 beside another gamma at tau 1e-8")
    epochs = int(run["epoch"].max())
    if epochs < MIN_CURVE_EPOCHS:
        return _too_short(epochs)
    plateau_level = reported_value(
        "binaryvgg + Bop, BatchNorm, tau 1e-8, gamma 1e-2", METRIC_PLATEAU
    )
    acc = run.set_index("epoch")["train_acc"]
    final, middle = float(acc.iloc[-1]), float(acc.loc[epochs // 2])
    first = sweep[sweep["epoch"] == 1].set_index("gamma")["train_acc"]
    rank = int((first > _value(first, 1e-2)).sum()) + 1
    parts = [
        Part("leads after epoch 1", rank == 1),
        Part("flat over its second half", final - middle < PLATEAU_POINTS),
    ]
    level = f"; the reported {plateau_level:g} % is a study number, not compared below its scale"
    if res.at_study_scale:
        parts.append(Part("near the reported 40 %", abs(final - plateau_level) <= PLATEAU_BAND))
        level = ""
    return Finding(
        f"{final:.1f} % after {epochs} epochs; {final - middle:+.1f} points over the last "
        f"{epochs - epochs // 2} epochs; rank {rank} of {len(first)} gammas after epoch 1{level}",
        tuple(parts),
    )


def _check_low_gamma(res: AblationResults) -> Finding:
    sweep = res.gamma_sweep("BN")
    run = _curve(sweep, "gamma", 1e-6)
    if not len(run) or sweep["key"].nunique() < 2:
        return Finding("no BN run at gamma 1e-6 beside another gamma at tau 1e-8")
    epochs = int(run["epoch"].max())
    if epochs < MIN_CURVE_EPOCHS:
        return _too_short(epochs)
    acc = run["train_acc"].to_numpy()
    worst_drop = float(max(0.0, np.max(acc[:-1] - acc[1:])))
    best = float(_finals(sweep, "gamma").max())
    final, gain = float(acc[-1]), float(acc[-1] - acc[0])
    return Finding(
        f"{final:.1f} % after {epochs} epochs (best gamma: {best:.1f} %); largest fall between "
        f"epochs {worst_drop:.1f} points; {gain:+.1f} points since epoch 1",
        (
            Part("stable", worst_drop <= DROP_POINTS),
            Part("slower than the best gamma", best - final >= TIE_POINTS),
            Part("learns", gain >= TIE_POINTS),
        ),
    )


def _bn_grid_finals(res: AblationResults) -> pd.DataFrame:
    grid = pd.concat([res.gamma_sweep("BN"), res.tau_sweep("BN")]).drop_duplicates(
        subset=["key", "epoch"]
    )
    return final_rows(grid)


def _best_point(res: AblationResults) -> pd.DataFrame:
    last = _bn_grid_finals(res)
    if not len(last):
        return last
    return last[at_value(last["threshold"], 1e-8) & at_value(last["gamma"], 1e-5)]


def _check_best_point(res: AblationResults) -> Finding:
    last = _bn_grid_finals(res)
    point = _best_point(res)
    if not len(point) or len(last) < 2:
        return Finding("no BN run at tau 1e-8, gamma 1e-5 beside other grid points")
    ours = float(point["train_acc"].iloc[0])
    top = last.loc[last["train_acc"].idxmax()]
    gap = float(top["train_acc"]) - ours
    return Finding(
        f"{ours:.1f} %; best of {len(last)} BN grid runs: tau {_fmt(top['threshold'])}, "
        f"gamma {_fmt(top['gamma'])} with {top['train_acc']:.1f} %",
        (Part("highest of the BN grid", gap <= 0),),
    )


def _at_study_scale(row: pd.Series) -> bool:
    return (
        row["dataset"] == STUDY_SCALE["dataset"]
        and row["train_size"] == STUDY_SCALE["train_size"]
        and close(float(row["width"]), STUDY_SCALE["width"])
        and int(row["epochs"]) == STUDY_SCALE["epochs"]
    )


def _check_best_value(res: AblationResults) -> Finding:
    point = _best_point(res)
    if not len(point):
        return Finding("no BN run at tau 1e-8, gamma 1e-5")
    row = point.iloc[0]
    ours = float(row["train_acc"])
    paper = reported_value(BEST_SETTING, "train accuracy")
    scale = (
        f"{row['dataset']}, {row['train_size']} images, width {row['width']:g}, "
        f"{row['epochs']} epochs"
    )
    if not _at_study_scale(row):
        return Finding(f"{ours:.1f} % at {scale}: not the study's scale, not compared")
    gap = ours - paper
    return Finding(
        f"{ours:.1f} % at {scale}; {gap:+.2f} points from the study's {paper:g} %",
        (
            Part(
                f"within {ACCURACY_TOLERANCE:g} point of {paper:g} %",
                abs(gap) <= ACCURACY_TOLERANCE,
            ),
        ),
        at_study_scale=True,
    )


def _tau_spread(res: AblationResults, norm: str) -> tuple[pd.Series, float] | None:
    finals = _finals(res.tau_sweep(norm), "threshold")
    near = finals[[1e-9 * (1 - 1e-9) <= t <= 1e-7 * (1 + 1e-9) for t in finals.index]]
    if len(near) < 2:
        return None
    return near, float(near.max() - near.min())


def _check_tau_plateau(res: AblationResults) -> Finding:
    spread = _tau_spread(res, "BN")
    if spread is None:
        return Finding("fewer than two BN runs with tau in [1e-9, 1e-7] at gamma 1e-4")
    near, width = spread
    values = ", ".join(f"{_fmt(t)}: {a:.1f} %" for t, a in near.items())
    return Finding(
        f"spread {width:.1f} points ({values})",
        (Part(f"spread at most {TIE_POINTS:g} points", width <= TIE_POINTS),),
    )


def _check_layer_norm(res: AblationResults) -> Finding:
    parts, seen = [], []
    finals = _finals(res.gamma_sweep("LN"), "gamma")
    at_best = _value(finals, 1e-5)
    if at_best is not None and len(finals) >= 2:
        best_gamma = float(finals.idxmax())
        parts.append(Part("gamma 1e-5 near the best", float(finals.max()) - at_best <= TIE_POINTS))
        seen.append(
            f"LN best gamma {_fmt(best_gamma)} ({finals.max():.1f} %), gamma 1e-5 {at_best:.1f} %"
        )
    spread = _tau_spread(res, "LN")
    if spread is not None:
        parts.append(Part("tau spread small", spread[1] <= TIE_POINTS))
        seen.append(f"LN tau spread over [1e-9, 1e-7] {spread[1]:.1f} points")
    if not parts:
        return Finding("no LN gamma sweep with gamma 1e-5 and no LN tau sweep near 1e-8")
    return Finding("; ".join(seen), tuple(parts))


def _check_bn_vs_ln(res: AblationResults) -> Finding:
    last = final_rows(res.comparison()).set_index("norm")
    if not {"BN", "LN"} <= set(last.index):
        return Finding("no BN and LN pair at the comparison point")
    bn, ln = float(last.loc["BN", "train_acc"]), float(last.loc["LN", "train_acc"])
    d = ln - bn
    bn_test, ln_test = float(last.loc["BN", "test_acc"]), float(last.loc["LN", "test_acc"])
    epochs = int(last.loc["BN", "epochs"])
    return Finding(
        f"after {epochs} of the study's {STUDY_COMPARE_EPOCHS} epochs: training accuracy BN "
        f"{bn:.1f} %, LN {ln:.1f} % (LN - BN {d:+.1f} points); test accuracy (shown, not "
        f"graded) BN {bn_test:.1f} %, LN {ln_test:.1f} % (LN - BN {ln_test - bn_test:+.1f} points)",
        (Part("LN slightly above BN in training accuracy", 0 < d <= SLIGHT_POINTS),),
    )


COMPARATIVE = (
    f"Comparative: graded only over {MIN_SEEDS} seeds per setting (grading.judge_comparison); "
    "this design runs one, so the parts are shown on that seed, not graded."
)

CLAIMS: tuple[AblationClaim, ...] = (
    AblationClaim(
        "gamma = 1e-2 climbs fast, then plateaus near 40 % training accuracy (BN, tau = 1e-8)",
        SOURCE,
        f"{COMPARATIVE} Parts: after epoch 1 gamma 1e-2 leads the gamma sweep (a ranking "
        f"against the other gammas); it gains less than {PLATEAU_POINTS:g} points over the "
        f"second half of its epochs; at the study's scale only, it ends within "
        f"{PLATEAU_BAND:g} points of the reported 40 % (a study number). Needs at least "
        f"{MIN_CURVE_EPOCHS} epochs.",
        _check_high_gamma,
        comparative=True,
    ),
    AblationClaim(
        "gamma = 1e-6 is stable but slow (BN, tau = 1e-8)",
        SOURCE,
        f"{COMPARATIVE} Parts: its training accuracy never falls by more than "
        f"{DROP_POINTS:g} points from one epoch to the next (stable); it ends at least "
        f"{TIE_POINTS:g} points below the best gamma (slow, a ranking against the other "
        f"gammas); it gains at least {TIE_POINTS:g} points after epoch 1 (it does learn).",
        _check_low_gamma,
        comparative=True,
    ),
    AblationClaim(
        "the best setting is tau = 1e-8, gamma = 1e-5 (BN)",
        SOURCE,
        f"{COMPARATIVE} Part: the final training accuracy of tau 1e-8, gamma 1e-5 is the "
        "highest of every BN run of both sweeps.",
        _check_best_point,
        comparative=True,
    ),
    AblationClaim(
        "tau = 1e-8, gamma = 1e-5 reaches 92.15 % training accuracy after 100 epochs (BN)",
        SOURCE,
        "A number, compared only at the study's scale (true CIFAR-10, all 50,000 training "
        "images, full width, 100 epochs), else not run at this profile with our number shown: "
        f"within {ACCURACY_TOLERANCE:g} point of 92.15 %: reproduced; otherwise not reproduced.",
        _check_best_value,
        comparative=False,
    ),
    AblationClaim(
        "runs with tau around 1e-8 are nearly indistinguishable (BN, gamma = 1e-4)",
        SOURCE,
        f"{COMPARATIVE} Part: the spread (max - min) of the final training accuracies of the "
        f"BN runs with tau in [1e-9, 1e-7] is at most {TIE_POINTS:g} points. Needs two such "
        "runs.",
        _check_tau_plateau,
        comparative=True,
    ),
    AblationClaim(
        "the LayerNorm sweeps give the same conclusions (best gamma = 1e-5)",
        SOURCE,
        f"{COMPARATIVE} Parts, on the LN runs that were run: gamma 1e-5 ends within "
        f"{TIE_POINTS:g} points of the best gamma; the tau spread over [1e-9, 1e-7] is at most "
        f"{TIE_POINTS:g} points.",
        _check_layer_norm,
        comparative=True,
    ),
    AblationClaim(
        "LayerNorm is slightly better than BatchNorm (tau = 1e-8, gamma = 1e-5, 250 epochs)",
        "Nayak et al., reproducibility report, BN vs LN figure (no number) [report]",
        f"{COMPARATIVE} Part, on final training accuracy (the study's figures plot training "
        f"curves; test accuracy is shown beside it): d = LN - BN with 0 < d <= "
        f"{SLIGHT_POINTS:g} points.",
        _check_bn_vs_ln,
        comparative=True,
    ),
)


def grade(claim: AblationClaim, finding: Finding, at_study_scale: bool) -> Verdict:
    """The status of ``claim`` from its ``finding`` by the rules of :mod:`bnnlib_book.grading`:
    no parts measured: not run; a comparative claim with fewer than MIN_SEEDS seeds per setting:
    too few seeds to grade, its parts shown; otherwise every part is a qualitative check
    (:func:`~bnnlib_book.grading.judge_direction`) and must hold
    (:func:`~bnnlib_book.grading.judge_all_parts`): reproduced or not reproduced at the study's
    scale (``finding.at_study_scale``, else ``at_study_scale``), consistent or inconsistent at
    reduced scale below it, the failing parts named."""
    verdict_claim = Claim("000", "01_bop_ablation", claim.claim, claim.source, "")
    if not finding.parts:
        return Verdict(verdict_claim, NOT_RUN, finding.ours)
    shown = ", ".join(f"{p.name}: {'yes' if p.holds else 'no'}" for p in finding.parts)
    if claim.comparative and SEEDS_PER_SETTING < MIN_SEEDS:
        return Verdict(
            verdict_claim,
            TOO_FEW_SEEDS,
            f"{finding.ours}; on the one seed ({shown}); comparative, shown not graded: the rule "
            f"needs {MIN_SEEDS} seeds per setting",
        )
    scale = at_study_scale if finding.at_study_scale is None else finding.at_study_scale
    parts = [
        (
            p.name,
            judge_direction(verdict_claim, p.holds, "", at_paper_scale=scale, scale_free=False),
        )
        for p in finding.parts
    ]
    return judge_all_parts(verdict_claim, parts, evidence=f"{finding.ours} ({shown})")


def ablation_claims(results: AblationResults) -> pd.DataFrame:
    """The study's ablation claims with what our records show and the status :func:`grade`
    gives them."""
    rows = []
    for claim in CLAIMS:
        verdict = grade(claim, claim.check(results), results.at_study_scale)
        rows.append(
            {
                "claim": claim.claim,
                "source": claim.source,
                "rule": claim.rule,
                "ours": verdict.evidence,
                "status": verdict.status,
            }
        )
    return pd.DataFrame(rows)


def ablation_comparison(results: AblationResults) -> list[dict[str, Any]]:
    """Comparison-table rows for the study's two ablation numbers (92.15 % at gamma 1e-5, the
    plateau near 40 % at gamma 1e-2, both BN at tau 1e-8) and our matching grid runs."""
    rows = []
    for gamma, setting, metric in (
        (1e-5, BEST_SETTING, "train accuracy"),
        (1e-2, PLATEAU_SETTING, METRIC_PLATEAU),
    ):
        record = results.grid_record("BN", 1e-8, gamma)
        if record is None:
            continue
        entry = reported_entry(setting, metric)
        rows.append(
            history_comparison_row(
                f"{entry.setting}: {entry.metric} (%)",
                record,
                "train_acc",
                entry.value,
                f"{entry.source} [{entry.tag}]",
                scale=100.0,
            )
        )
    return rows


# -- the chapters' verdicts for the summary ------------------------------------------------------


def bop_ablation_claims(records: list[RunRecord], params: Mapping[str, Any]) -> list[Verdict]:
    """Chapter 01's claims as its page grades them (:func:`ablation_claims`
    on the design of the chapter's ``params``)."""
    design = AblationDesign.from_params(params)
    keys = {RunConfig.from_dict(c).key() for c in design.configs()}
    return ablation_verdicts(AblationResults(design, [r for r in records if r.key in keys]))


def ablation_verdicts(results: AblationResults) -> list[Verdict]:
    """:func:`ablation_claims` as verdicts (what the page's "what we found" box and the summary
    list)."""
    return [
        Verdict(Claim("000", "01_bop_ablation", row.claim, row.source, ""), row.status, row.ours)
        for row in ablation_claims(results).itertuples()
    ]


def denoising_claims(records: list[RunRecord], params: Mapping[str, Any]) -> list[Verdict]:
    """Chapter 02's reported test PSNRs (max = 1 convention) against its records; comparable
    only at the study's scale (true CIFAR-10, 50,000 training images, 100 epochs)."""
    design = DenoisingDesign.from_params(params)
    by_key = {r.key: r for r in records}
    verdicts = []
    for label, config in design.configs().items():
        entry = next(
            e
            for e in reported("rethinking_bnn")
            if e.setting.startswith(f"{label} (") and e.metric.startswith("test PSNR")
        )
        claim = Claim(
            "000",
            "02_denoising_ae",
            f"{label} reaches a test PSNR of {entry.shown} (max = 1 convention)",
            f"{entry.source} [{entry.tag}]",
            entry.shown,
        )
        record = by_key.get(RunConfig.from_dict(config).key())
        full = record is not None and paper_scale(record, "cifar10", 100, CIFAR10_TRAIN)
        verdicts.append(
            compare_number(
                claim,
                record,
                "test_psnr_peak1",
                entry.value,
                at_paper_scale=full,
                tolerance=PSNR_TOLERANCE,
                scale=1.0,
                unit="dB",
            )
        )
    return verdicts
