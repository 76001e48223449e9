"""Seed 000's chapters (notebooks 01_bop_ablation, 02_denoising_ae): the paper profile is the
study's recipe and every one of its configs takes an optimizer step; the claim rules grade
records as their text says; the PSNR tables keep both conventions apart."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bnnlib.data import DatasetNotFoundError, check_dataset
from bnnlib.experiment.config import RunConfig
from bnnlib.experiment.records import RunRecord
from bnnlib.experiment.runs import dry_run
from bnnlib.train.metrics import PEAK2_OFFSET_DB
from bnnlib_book.bop.claims import (
    CLAIMS,
    Finding,
    Part,
    ablation_claims,
    grade,
)
from bnnlib_book.bop.design import AblationDesign, DenoisingDesign
from bnnlib_book.bop.frames import AblationResults, psnr_table, vispics_table
from bnnlib_book.grading import (
    CONSISTENT_REDUCED,
    FAILING,
    INCONSISTENT_REDUCED,
    NOT_REPRODUCED,
    NOT_RUN,
    REPRODUCED,
    TOO_FEW_SEEDS,
)
from bnnlib_book.papers import reported
from bnnlib_book.runner import chapter_params, notebook_parameters
from tests.conftest import needs_cifar_png

REPO_ROOT = Path(__file__).resolve().parents[2]

ABLATION = "01_bop_ablation"
DENOISING = "02_denoising_ae"
# Spec 2a (report Fig. 1 and Fig. 3): the study's grids.
BN_GAMMAS = [1e-6, 1e-5, 1e-4, 5e-4, 1e-3, 1e-2]
LN_GAMMAS = [1e-6, 1e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2]
TAUS = [1e-10, 1e-9, 5e-8, 1e-8, 1e-7, 5e-7, 1e-6]


def profile_params(notebook: str, profile: str) -> dict[str, Any]:
    """What papermill would run: the parameters cell overridden by the profile's file."""
    return chapter_params(notebook, profile, REPO_ROOT)


def offline(config: dict[str, Any]) -> dict[str, Any]:
    """True CIFAR-10 when present, else its exact PNG subset (the test's only substitution)."""
    try:
        check_dataset(config["dataset"])
    except DatasetNotFoundError:
        return {**config, "dataset": "cifar10-png-subset"}
    return config


def paper_configs() -> list[tuple[str, dict[str, Any]]]:
    ablation = AblationDesign.from_params(profile_params(ABLATION, "paper")).configs()
    denoising = DenoisingDesign.from_params(profile_params(DENOISING, "paper")).configs()
    return [(ABLATION, c) for c in ablation] + [(DENOISING, c) for c in denoising.values()]


def test_design_fields_are_notebook_parameters() -> None:
    for notebook, design in ((ABLATION, AblationDesign), (DENOISING, DenoisingDesign)):
        names = set(notebook_parameters(REPO_ROOT / "notebooks" / f"{notebook}.py"))
        fields = set(design.__dataclass_fields__)
        assert fields <= names, f"{notebook}: {sorted(fields - names)} are not parameters"


def test_paper_ablation_is_the_study_grid() -> None:
    design = AblationDesign.from_params(profile_params(ABLATION, "paper"))
    assert design.dataset == "cifar10" and design.profile == "paper"
    assert design.gammas == {"BatchNormalization": BN_GAMMAS, "LayerNormalization": LN_GAMMAS}
    assert design.thresholds == TAUS
    assert (design.gamma_sweep_threshold, design.tau_sweep_gamma) == (1e-8, 1e-4)
    assert design.compare == {"threshold": 1e-8, "gamma": 1e-5, "epochs": 250}
    resolved = [RunConfig.from_dict(c).resolve() for c in design.configs()]
    bop = [r for r in resolved if r.hparams["optimizer"] == "bop"]
    assert {r.model for r in bop} == {"binaryvgg"}
    assert {r.hparams["batch_size"] for r in bop} == {64}
    assert {r.model_kwargs.get("width", 1.0) for r in resolved} == {1.0}
    assert sorted({r.hparams["epochs"] for r in bop}) == [100, 250]
    assert [r.hparams["train_subset"] for r in resolved] == [None] * len(resolved)
    # 6 + 7 (BN) and 7 + 7 (LN) grid points share (1e-8, 1e-4) once per norm; 2 comparison runs;
    # one latent-weight run.
    assert len({r.key() for r in resolved}) == (6 + 7 - 1) + (7 + 7 - 1) + 2 + 1


def test_paper_denoising_is_the_readme_recipe() -> None:
    configs = DenoisingDesign.from_params(profile_params(DENOISING, "paper")).configs()
    resolved = {k: RunConfig.from_dict(c).resolve() for k, c in configs.items()}
    assert {k: (r.model, r.hparams_set) for k, r in resolved.items()} == {
        "AE + Adam": ("autoencoder", "traditional"),
        "BAE + Adam": ("binaryae", "bnn"),
        "BAE + Bop": ("binaryae", "bop"),
    }
    for r in resolved.values():
        assert r.dataset == "cifar10" and r.preprocess_fn == "AE" and r.task == "denoising"
        assert (r.hparams["epochs"], r.hparams["batch_size"], r.hparams["loss"]) == (100, 64, "mse")
        assert r.model_kwargs["norm_layer"] == "BatchNormalization"
    bop = resolved["BAE + Bop"].hparams
    assert (bop["threshold"], bop["gamma"], bop["lr"]) == (1e-8, 1e-5, 0.01)
    assert resolved["BAE + Adam"].hparams["beta_1"] == 0.99


@needs_cifar_png
@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize(
    ("notebook", "config"),
    paper_configs(),
    ids=lambda v: v if isinstance(v, str) else RunConfig.from_dict(v).key(),
)
def test_every_paper_config_takes_a_step(notebook: str, config: dict[str, Any]) -> None:
    out = dry_run(offline(config))
    batch = RunConfig.from_dict(config).resolve().hparams["batch_size"]
    assert out["batch_shape"] == [batch, 3, 32, 32]
    assert math.isfinite(out["loss"])


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_small_profiles_keep_the_ends_and_best_point(profile: str) -> None:
    design = AblationDesign.from_params(profile_params(ABLATION, profile))
    assert design.compare["threshold"] == 1e-8 and design.compare["gamma"] == 1e-5
    for norm in design.norms:
        assert 1e-5 in design.gammas[norm]
        assert set(design.gammas[norm]) <= set(BN_GAMMAS) | set(LN_GAMMAS)
    assert set(design.thresholds) <= set(TAUS) and 1e-8 in design.thresholds
    if profile == "cpu":
        assert design.hparams["width"] == 0.125 and design.dataset == "cifar10-jpeg"
        for norm in design.norms:
            assert {1e-6, 1e-2} <= set(design.gammas[norm])
        assert {1e-10, 1e-6} <= set(design.thresholds)
        assert design.compare["epochs"] > design.grid_epochs


# -- the claim rules on synthetic records ---------------------------------------------------------

GRID_EPOCHS = 6


def design(**changes: Any) -> AblationDesign:
    values: dict[str, Any] = {
        "dataset": "cifar10-jpeg",
        "hparams": {"epochs": GRID_EPOCHS, "width": 0.125},
        "norms": ["BatchNormalization", "LayerNormalization"],
        "gammas": {"BatchNormalization": [1e-6, 1e-5, 1e-2], "LayerNormalization": [1e-5, 1e-2]},
        "gamma_sweep_threshold": 1e-8,
        "thresholds": [1e-9, 1e-8, 1e-7],
        "tau_sweep_gamma": 1e-4,
        "compare": {"threshold": 1e-8, "gamma": 1e-5, "epochs": 2 * GRID_EPOCHS},
    }
    return AblationDesign(**(values | changes))


def record(
    norm: str,
    tau: float,
    gamma: float,
    accs: list[float],
    *,
    dataset: str = "cifar10-jpeg",
    width: float = 0.125,
    train_size: int = 4000,
) -> RunRecord:
    """The record of the design's binaryvgg Bop run at (``norm``, ``tau``, ``gamma``) that ran
    ``len(accs)`` epochs on ``dataset`` at ``width``, with training accuracy (%) per epoch
    ``accs``; its key is the run key the design gives that run."""
    config = design(dataset=dataset, hparams={"epochs": len(accs), "width": width}).bop_config(
        norm, tau, gamma
    )
    resolved = RunConfig.from_dict(config).resolve()
    return RunRecord(
        key=resolved.key(),
        config=resolved.to_dict(),
        history=[
            {"epoch": i + 1, "train_acc": a / 100, "train_loss": 1.0, "test_acc": a / 100}
            for i, a in enumerate(accs)
        ],
        final={},
        provenance={"train_size": train_size},
    )


def finding(records: list[RunRecord], claim_start: str, **changes: Any) -> Finding:
    """What a claim's check measures on ``records`` (its parts on the one seed)."""
    (claim,) = [c for c in CLAIMS if c.claim.startswith(claim_start)]
    return claim.check(AblationResults(design(**changes), records))


def parts(records: list[RunRecord], claim_start: str, **changes: Any) -> dict[str, bool]:
    return {p.name: p.holds for p in finding(records, claim_start, **changes).parts}


def graded(records: list[RunRecord], claim_start: str, **changes: Any) -> tuple[str, str]:
    """The status and evidence the claim gets on the page (its check, then :func:`grade`)."""
    (claim,) = [c for c in CLAIMS if c.claim.startswith(claim_start)]
    results = AblationResults(design(**changes), records)
    verdict = grade(claim, claim.check(results), results.at_study_scale)
    return verdict.status, verdict.evidence


BN, LN = "BatchNormalization", "LayerNormalization"
RISING = [20, 35, 50, 60, 66, 70]
STUDY = {"dataset": "cifar10", "width": 1.0, "train_size": 50_000}
STUDY_DESIGN = {
    "dataset": "cifar10",
    "hparams": {"epochs": 100, "width": 1.0},
    "compare": {"threshold": 1e-8, "gamma": 1e-5, "epochs": 250},
}


@pytest.mark.parametrize(("best_final", "highest"), [(70.0, True), (71.5, False), (75.0, False)])
def test_best_point_rule(best_final: float, highest: bool) -> None:
    other = [*RISING[:-1], best_final]
    records = [record(BN, 1e-8, 1e-5, RISING), record(BN, 1e-9, 1e-4, other)]
    assert parts(records, "the best setting") == {"highest of the BN grid": highest}
    # "the best setting" ranks the settings: with one seed each it is shown, never graded
    status, evidence = graded(records, "the best setting")
    assert status == TOO_FEW_SEEDS
    assert f"highest of the BN grid: {'yes' if highest else 'no'}" in evidence
    assert "needs 3 seeds per setting" in evidence


def test_a_claim_without_its_runs_is_not_run() -> None:
    records = [record(BN, 1e-8, 1e-2, RISING)]
    for claim in ("the best setting", "gamma = 1e-6", "runs with tau", "LayerNorm is slightly"):
        assert finding(records, claim).parts == ()
        assert graded(records, claim)[0] == NOT_RUN


def test_high_gamma_plateau_rule() -> None:
    fast_flat_40 = [38, 40, 41, 41, 41, 41]
    slow = [10, 15, 20, 30, 40, 50]
    records = [record(BN, 1e-8, 1e-2, fast_flat_40), record(BN, 1e-8, 1e-5, slow)]
    expected = {"leads after epoch 1": True, "flat over its second half": True}
    assert parts(records, "gamma = 1e-2") == expected
    # the 40 % level is a study number: below the study's scale it is shown, not a part
    fast_flat_80 = [70, 79, 80, 80, 80, 80]
    records = [record(BN, 1e-8, 1e-2, fast_flat_80), record(BN, 1e-8, 1e-5, slow)]
    assert parts(records, "gamma = 1e-2") == expected
    assert "not compared below its scale" in finding(records, "gamma = 1e-2").ours
    status, evidence = graded(records, "gamma = 1e-2")
    assert status == TOO_FEW_SEEDS and "rank 1 of 2 gammas" in evidence
    short = [record(BN, 1e-8, 1e-2, [38, 40]), record(BN, 1e-8, 1e-5, [10, 15])]
    assert graded(short, "gamma = 1e-2", hparams={"epochs": 2, "width": 0.125})[0] == NOT_RUN


def test_high_gamma_level_is_a_part_at_the_study_scale() -> None:
    long_slow = [10.0 + 0.5 * e for e in range(100)]
    comparison = [record(n, 1e-8, 1e-5, [50.0] * 250, **STUDY) for n in (BN, LN)]
    for plateau, near in ((41.0, True), (80.0, False)):
        high = record(BN, 1e-8, 1e-2, [plateau] * 100, **STUDY)
        records = [high, record(BN, 1e-8, 1e-5, long_slow, **STUDY), *comparison]
        results = AblationResults(design(**STUDY_DESIGN), records)
        assert results.at_study_scale
        shown = parts(records, "gamma = 1e-2", **STUDY_DESIGN)
        assert shown["near the reported 40 %"] is near
        # still one seed per setting: a comparative claim is not graded at any scale
        assert graded(records, "gamma = 1e-2", **STUDY_DESIGN)[0] == TOO_FEW_SEEDS


def test_low_gamma_stable_but_slow_rule() -> None:
    best = record(BN, 1e-8, 1e-5, RISING)
    stable_slow = record(BN, 1e-8, 1e-6, [10, 12, 14, 16, 18, 20])
    assert set(parts([best, stable_slow], "gamma = 1e-6").values()) == {True}
    unstable = record(BN, 1e-8, 1e-6, [10, 30, 12, 16, 18, 20])
    assert finding([best, unstable], "gamma = 1e-6").failing == ["stable"]
    assert graded([best, unstable], "gamma = 1e-6")[0] == TOO_FEW_SEEDS


@pytest.mark.parametrize(("spread", "small"), [(1.0, True), (4.0, False), (9.0, False)])
def test_tau_spread_rule(spread: float, small: bool) -> None:
    records = [
        record(BN, tau, 1e-4, [*RISING[:-1], 70 + offset])
        for tau, offset in ((1e-9, 0.0), (1e-8, spread / 2), (1e-7, spread))
    ]
    assert parts(records, "runs with tau") == {"spread at most 2 points": small}
    status, evidence = graded(records, "runs with tau")
    assert status == TOO_FEW_SEEDS and f"spread {spread:.1f} points" in evidence


@pytest.mark.parametrize(
    ("ln_minus_bn", "slightly"), [(1.0, True), (8.0, False), (-0.5, False), (-3.0, False)]
)
def test_bn_versus_ln_rule(ln_minus_bn: float, slightly: bool) -> None:
    long = 2 * GRID_EPOCHS
    bn = [50.0] * long
    ln = [50.0] * (long - 1) + [50.0 + ln_minus_bn]
    records = [record(BN, 1e-8, 1e-5, bn), record(LN, 1e-8, 1e-5, ln)]
    (part,) = parts(records, "LayerNorm is slightly").values()
    assert part is slightly
    status, evidence = graded(records, "LayerNorm is slightly")
    assert status == TOO_FEW_SEEDS
    # the claim's metric (training accuracy) and the other one (test), after how many epochs
    assert f"after {long} of the study's 250 epochs: training accuracy BN 50.0 %" in evidence
    assert f"(LN - BN {ln_minus_bn:+.1f} points); test accuracy (shown, not graded)" in evidence


def test_layer_norm_conclusions_rule() -> None:
    ln_best_1e5 = [record(LN, 1e-8, 1e-5, RISING), record(LN, 1e-8, 1e-2, [40] * GRID_EPOCHS)]
    assert parts(ln_best_1e5, "the LayerNorm sweeps") == {"gamma 1e-5 near the best": True}
    ln_best_1e2 = [record(LN, 1e-8, 1e-5, RISING), record(LN, 1e-8, 1e-2, [80] * GRID_EPOCHS)]
    assert parts(ln_best_1e2, "the LayerNorm sweeps") == {"gamma 1e-5 near the best": False}
    assert graded(ln_best_1e2, "the LayerNorm sweeps")[0] == TOO_FEW_SEEDS


def test_every_claim_but_the_number_is_comparative() -> None:
    comparative = {c.claim for c in CLAIMS if c.comparative}
    assert comparative == {c.claim for c in CLAIMS} - {
        "tau = 1e-8, gamma = 1e-5 reaches 92.15 % training accuracy after 100 epochs (BN)"
    }


def test_one_seed_per_setting_leaves_every_comparative_claim_ungraded() -> None:
    records = [
        record(BN, 1e-8, 1e-2, [38, 40, 41, 41, 41, 41]),
        record(BN, 1e-8, 1e-6, [10, 30, 12, 16, 18, 20]),  # not stable
        record(BN, 1e-8, 1e-5, RISING),
        record(BN, 1e-9, 1e-4, [*RISING[:-1], 80.0]),  # beats the "best" setting
        record(BN, 1e-7, 1e-4, [*RISING[:-1], 60.0]),
        record(LN, 1e-8, 1e-5, RISING),
        record(LN, 1e-8, 1e-2, [80] * GRID_EPOCHS),  # LN's best gamma is not 1e-5
        record(LN, 1e-8, 1e-5, [50.0] * (2 * GRID_EPOCHS)),
        record(BN, 1e-8, 1e-5, [55.0] * (2 * GRID_EPOCHS)),  # BN ahead of LN
    ]
    table = ablation_claims(AblationResults(design(), records)).set_index("claim")
    for claim in CLAIMS:
        row = table.loc[claim.claim]
        if claim.comparative:
            assert row["status"] == TOO_FEW_SEEDS, claim.claim
            assert "on the one seed (" in row["ours"]
        assert row["status"] not in (REPRODUCED, *FAILING), claim.claim


@pytest.mark.parametrize(
    ("holds", "at_scale", "expected"),
    [
        ((True, True), False, CONSISTENT_REDUCED),
        ((True, False), False, INCONSISTENT_REDUCED),
        ((True, True), True, REPRODUCED),
        ((False, True), True, NOT_REPRODUCED),
    ],
)
def test_a_non_comparative_claim_of_parts_needs_every_part(
    holds: tuple[bool, bool], at_scale: bool, expected: str
) -> None:
    claim = dataclasses.replace(CLAIMS[1], comparative=False)
    found = Finding("ours", (Part("stable", holds[0]), Part("learns", holds[1])))
    verdict = grade(claim, found, at_scale)
    assert verdict.status == expected
    failing = [name for name, h in zip(("stable", "learns"), holds, strict=True) if not h]
    assert ("fails: " + ", ".join(failing) in verdict.evidence) is bool(failing)
    # a reduced-scale qualitative claim is never "not reproduced"
    if not at_scale:
        assert verdict.status not in (REPRODUCED, NOT_REPRODUCED)


def test_reported_accuracy_is_graded_only_at_the_study_scale() -> None:
    paper = next(
        e.value
        for e in reported("rethinking_bnn")
        if "gamma 1e-5" in e.setting and e.metric == "train accuracy"
    )
    claim = "tau = 1e-8, gamma = 1e-5 reaches"
    accs = [*[50.0] * 99, paper - 0.5]
    small = record(BN, 1e-8, 1e-5, accs)
    hundred = {"hparams": {"epochs": 100, "width": 0.125}}
    status, evidence = graded([small], claim, **hundred)
    assert status == NOT_RUN and f"{paper - 0.5:.1f} %" in evidence
    hundred = {"dataset": "cifar10", "hparams": {"epochs": 100, "width": 1.0}}
    for gap, expected in ((-0.5, REPRODUCED), (-1.5, NOT_REPRODUCED), (-10.0, NOT_REPRODUCED)):
        full = record(BN, 1e-8, 1e-5, [*[50.0] * 99, paper + gap], **STUDY)
        # the compare runs are not at the study's 250 epochs: the number's own run decides
        status, evidence = graded([full], claim, **hundred)
        assert status == expected, gap
        assert f"{gap:+.2f} points from the study's" in evidence


# -- designs reject bad parameters ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "pieces"),
    [
        ({"norms": ["GroupNorm"]}, ["'GroupNorm'", "BatchNormalization", "LayerNormalization"]),
        ({"gammas": {"BatchNormalization": [1e-5]}}, ["gammas", "'LayerNormalization'"]),
        ({"hparams": {"threshold": 1e-7}}, ["'threshold'", "per run"]),
        ({"thresholds": []}, ["thresholds", "non-empty"]),
        ({"compare": {"threshold": 1e-8, "gamma": 1e-5}}, ["compare", "epochs"]),
    ],
)
def test_ablation_design_names_the_bad_parameter(changes: dict, pieces: list[str]) -> None:
    with pytest.raises(ValueError) as raised:
        design(**changes)
    for piece in pieces:
        assert piece in str(raised.value)


def test_denoising_design_names_the_bad_parameter() -> None:
    with pytest.raises(ValueError, match="'sigma'"):
        DenoisingDesign("cifar10", {}, {"threshold": 1e-8, "gamma": 1e-5, "sigma": 1e-3})
    with pytest.raises(ValueError, match="'InstanceNorm'"):
        DenoisingDesign(
            "cifar10", {}, {"threshold": 1e-8, "gamma": 1e-5}, norm_layer="InstanceNorm"
        )


# -- the denoising tables -------------------------------------------------------------------------


def ae_record(model_psnr: float, noisy_psnr: float) -> RunRecord:
    grey = np.full((32, 32, 3), 128, dtype=np.uint8)
    last = {
        "epoch": 1,
        "train_psnr_peak1": model_psnr,
        "train_psnr_peak2": model_psnr + PEAK2_OFFSET_DB,
        "test_psnr_peak1": model_psnr,
        "test_psnr_peak2": model_psnr + PEAK2_OFFSET_DB,
        "test_noisy_psnr_peak1": noisy_psnr,
        "test_noisy_psnr_peak2": noisy_psnr + PEAK2_OFFSET_DB,
    }
    picks = {
        "best": {"index": 3, "clean": grey, "noisy": grey + 4, "output": grey + 2},
    }
    return RunRecord("k", {}, [last], {}, {}, extras={"reconstructions": picks})


def test_psnr_table_has_both_conventions_and_the_noisy_baseline() -> None:
    table = psnr_table({"AE + Adam": ae_record(18.0, 20.0), "BAE + Bop": ae_record(9.0, 22.0)})
    noisy = table.loc["noisy input (no model)"]
    assert noisy["test, max 1 (ours)"] == pytest.approx(21.0)
    assert noisy["test, peak-to-peak 2 (ours)"] - noisy["test, max 1 (ours)"] == pytest.approx(
        20 * math.log10(2)
    )
    assert table.loc["AE + Adam", "test, max 1 (study)"] == next(
        e.value
        for e in reported("rethinking_bnn")
        if e.setting.startswith("AE + Adam") and e.metric.startswith("test PSNR")
    )
    assert math.isnan(noisy["train, max 1 (ours)"])


def test_vispics_table_scores_against_clean_and_noisy() -> None:
    row = vispics_table({"AE + Adam": ae_record(18.0, 20.0)}).loc[("AE + Adam", "best (#3)")]
    level = 1 / 127.5  # one 8-bit step on [-1, 1]
    assert row["output vs clean (denoising)"] == pytest.approx(-20 * math.log10(2 * level))
    assert row["output vs noisy input (vispics target)"] == pytest.approx(
        -20 * math.log10(2 * level)
    )
    assert row["noisy input vs clean"] == pytest.approx(-20 * math.log10(4 * level))


def test_paper_numbers_files_load_with_valid_tags() -> None:
    for paper in ("bop", "rethinking_bnn"):
        entries = reported(paper)
        assert entries
        for e in entries:
            assert (e.value is None) == (e.tag == "n/a"), e
    assert Path(REPO_ROOT / "bnnlib_book" / "paper_numbers" / "bop.yaml").is_file()


def test_records_join_the_design_by_run_key() -> None:
    inside = record(BN, 1e-8, 1e-2, RISING)
    outside = record(BN, 1e-8, 1e-3, RISING)  # gamma 1e-3 is in no sweep of the design
    results = AblationResults(design(), [inside, outside])
    assert set(results.gamma_sweep("BN")["key"]) == {inside.key}
    assert results.tau_sweep().empty and results.comparison().empty
    assert results.grid_record("BN", 1e-8, 1e-2).key == inside.key
    assert results.grid_record("BN", 1e-8, 1e-3) is None
    roles = {
        r.key: r.label["roles"] for r in design(thresholds=[1e-8], tau_sweep_gamma=1e-2).runs()
    }
    assert roles[inside.key] == "gamma sweep, tau sweep"  # the point both sweeps share, run once
