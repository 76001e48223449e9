"""Seed 001's chapters (notebooks 03-05, Bop2ndOrder): the paper profile is the README's recipe
and every one of its configs takes an optimizer step; the facts the pages compute (equivalent
thresholds, the first-update mass flip, the schedules) hold; claims are graded by their rules."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from bnnlib.data import DatasetNotFoundError, check_dataset
from bnnlib.experiment.config import RunConfig
from bnnlib.experiment.recipes import build_recipe
from bnnlib.experiment.records import RunRecord
from bnnlib.experiment.runs import dry_run
from bnnlib.models import create_model
from bnnlib.optim import Bop2ndOrder
from bnnlib_book.bop2 import claims as bop2_claims
from bnnlib_book.bop2 import design as study
from bnnlib_book.bop2 import frames
from bnnlib_book.chapters import CHAPTERS, book_verdicts
from bnnlib_book.grading import (
    CONSISTENT_REDUCED,
    FAILING,
    INCONCLUSIVE,
    INCONSISTENT_REDUCED,
    NO_PAPER_VALUE,
    NOT_REPRODUCED,
    NOT_RUN,
    REPRODUCED,
    TOO_FEW_SEEDS,
    Chapter,
    Claim,
    Verdict,
    chapter_verdicts,
    compare_number,
    judge_direction,
    status_counts,
)
from bnnlib_book.runner import chapter_params, notebook_parameters
from bnnlib_book.runs import LabelledRun, configs, labels_by_key
from tests.conftest import needs_cifar_png

VARIANTS_NB, ABLATIONS_NB, CIFAR_NB = (
    "03_bop2_variants",
    "04_bop2_ablations",
    "05_bop2_cifar_recipe",
)

REPO_ROOT = Path(__file__).resolve().parents[2]
README = {"threshold": 1e-6, "gamma": 1e-7, "sigma": 1e-3}


def profile_params(notebook: str, profile: str) -> dict[str, Any]:
    """What papermill would run: the parameters cell overridden by the profile's file."""
    return chapter_params(notebook, profile, REPO_ROOT)


def chapter_configs(profile: str) -> dict[str, list[dict[str, Any]]]:
    """The configs each notebook builds from its parameters (the calls of its run cell)."""
    p = profile_params(VARIANTS_NB, profile)
    variants = configs(study.variants_page_runs(p))
    p = profile_params(ABLATIONS_NB, profile)
    grid_runs, sched_runs = study.ablations_page_runs(p)
    grid, sched = configs(grid_runs), configs(sched_runs)
    cifar = configs(study.cifar_page_runs(profile_params(CIFAR_NB, profile)))
    return {"variants": variants, "grid": grid, "schedulers": sched, "cifar": cifar}


def resolved(configs: list[dict[str, Any]]) -> list[Any]:
    return [RunConfig.from_dict(c).resolve() for c in configs]


def offline(config: dict[str, Any]) -> dict[str, Any]:
    """True CIFAR-10 when present, else its exact PNG subset (the test's only substitution)."""
    try:
        check_dataset(config["dataset"])
    except DatasetNotFoundError:
        return {**config, "dataset": "cifar10-png-subset"}
    return config


PAPER = chapter_configs("paper")


def test_scale_fields_are_notebook_parameters() -> None:
    for notebook in (VARIANTS_NB, ABLATIONS_NB, CIFAR_NB):
        names = set(notebook_parameters(REPO_ROOT / "notebooks" / f"{notebook}.py"))
        assert {"dataset", "width", "epochs", "train_subset", "test_subset", "seed"} <= names


def test_paper_variants_are_the_readme_5_1_1_commands() -> None:
    runs = resolved(PAPER["variants"])
    core = [r for r in runs if r.hparams_set in study.SETS_5_1_1.values()]
    assert sorted((r.model, r.hparams_set) for r in core if r.hparams["threshold"] == 1e-6) == [
        ("binarynet", "bop2ndOrder"),
        ("binarynet", "bop2ndOrder_unbiased"),
        ("binarynet_batch", "bop2ndOrder"),
        ("binarynet_batch", "bop2ndOrder"),  # the adam_bias_correction extra
        ("binarynet_batch", "bop2ndOrder_unbiased"),
    ]
    for r in runs:
        assert r.dataset == "cifar10" and r.preprocess_fn == "resize_and_flip"
        assert r.model_kwargs["width"] == 1.0 and r.hparams["train_subset"] is None
        assert (r.hparams["epochs"], r.hparams["batch_size"]) == (150, 100)
    for r in core:
        assert (r.hparams["gamma"], r.hparams["sigma"]) == (1e-7, 1e-3)
    equivalent = [r for r in core if r.hparams["threshold"] != 1e-6]
    assert len(equivalent) == 1 and equivalent[0].hparams["unbiased"]
    assert equivalent[0].hparams["threshold"] == pytest.approx(1e-6 * math.sqrt(1e-3) / 1e-7)
    bop = [r for r in runs if r.hparams["optimizer"] == "bop"]
    assert [(r.hparams["threshold"], r.hparams["gamma"]) for r in bop] == [(1e-6, 1e-3)]


def test_paper_ablations_and_schedulers_are_the_readme_commands() -> None:
    grid = resolved(PAPER["grid"])
    p = profile_params(ABLATIONS_NB, "paper")
    sizes = [len(p["thresholds"]), len(p["gammas"]), len(p["sigmas"])]
    assert len({r.key() for r in grid}) == 1 + sum(n - 1 for n in sizes)
    for r in grid:
        assert (r.model, r.hparams_set) == ("binarynet_batch", "bop2ndOrder_unbiased")
        assert (r.hparams["epochs"], r.hparams["batch_size"], r.dataset) == (100, 100, "cifar10")
        off = [k for k in study.AXES if not math.isclose(r.hparams[k], README[k])]
        assert len(off) <= 1
    sched = resolved(PAPER["schedulers"])
    assert sorted(r.hparams_set for r in sched) == sorted(list(study.SETS_TEST_EXP.values()) * 2)
    for r in sched:
        assert (r.hparams["epochs"], r.hparams["batch_size"], r.hparams["epochs_decay"]) == (
            350,
            50,
            100.0,
        )
        rates = {r.hparams[f"{k}_decay"] for k in ("threshold", "gamma", "sigma", "lr")}
        assert rates in ({0.1}, {1.0})


def test_paper_cifar_recipes_are_the_sets() -> None:
    runs = resolved(PAPER["cifar"])
    assert [r.hparams_set for r in runs] == ["bop2ndOrder_CIFAR", "bop2ndOrder_unbiased_CIFAR"]
    for r in runs:
        assert (r.hparams["epochs"], r.hparams["batch_size"], r.dataset) == (500, 50, "cifar10")
        assert (r.hparams["sigma"], r.hparams["sigma_end"]) == (1e-7, 1e-2)


@needs_cifar_png
@pytest.mark.data
@pytest.mark.parametrize(
    "config",
    [c for configs in PAPER.values() for c in configs],
    ids=lambda c: f"{c['model']}-{c['hparams_set']}-{RunConfig.from_dict(c).key()}",
)
def test_every_paper_config_takes_a_step(config: dict[str, Any]) -> None:
    out = dry_run(offline(config))
    batch = RunConfig.from_dict(config).resolve().hparams["batch_size"]
    assert out["batch_shape"] == [batch, 3, 32, 32]
    assert math.isfinite(out["loss"])


def _schedules(config: dict[str, Any], train_samples: int = 50_000) -> dict[str, Any]:
    cfg = RunConfig.from_dict(config).resolve()
    model = create_model(cfg.model, width=0.125)
    recipe = build_recipe(cfg, model, train_samples)
    assert recipe.scheduler is not None
    return recipe.scheduler.schedules


def test_paper_schedules_match_the_spec_vectors() -> None:
    biased_exp = next(
        c
        for c in PAPER["schedulers"]
        if c["hparams_set"] == "bop2ndOrder_testExp" and c["hparams"]["threshold_decay"] == 0.1
    )
    tv_exp = {"threshold": 1e-7, "gamma": 1e-8, "sigma": 1e-4, "lr": 1e-3}  # TV-sched-exp
    got = {k: s(150_000) for k, s in _schedules(biased_exp).items()}
    assert got == pytest.approx(tv_exp, rel=1e-9)
    constant = next(
        c
        for c in PAPER["schedulers"]
        if c["hparams_set"] == "bop2ndOrder_testExp" and c["hparams"]["threshold_decay"] == 1.0
    )
    assert {k: s(150_000) for k, s in _schedules(constant).items()} == pytest.approx(
        README | {"lr": 0.01}, rel=1e-12
    )
    tv_poly = {"gamma": 0.005005, "sigma": 0.00500005, "threshold": 5.005e-6, "lr": 0.0055}
    poly = _schedules(PAPER["cifar"][0])
    assert {k: s(250_000) for k, s in poly.items()} == pytest.approx(tv_poly, rel=1e-9)
    ends = {"gamma": 1e-5, "sigma": 1e-2, "threshold": 1e-8, "lr": 1e-3}
    assert {k: s(600_000) for k, s in poly.items()} == pytest.approx(ends, rel=1e-9)


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_small_profiles_keep_the_readme_point_and_compress_the_decays(profile: str) -> None:
    configs = chapter_configs(profile)
    for name, runs in configs.items():
        for r in resolved(runs):
            assert r.dataset == "cifar10-jpeg" and r.model_kwargs["width"] == 0.125, name
            assert r.hparams["train_subset"] is not None and r.hparams["test_subset"] is not None
    base = [
        r for r in resolved(configs["grid"]) if all(r.hparams[k] == v for k, v in README.items())
    ]
    assert len(base) == 1
    p = profile_params(ABLATIONS_NB, profile)
    # Three decays inside the shortened run, as in 350 / 100 epochs (smoke: one, in 2 epochs).
    minimum = 2 if profile == "smoke" else 3
    assert p["scheduler_epochs"] / p["epochs_decay"] >= minimum


def _flip_trajectory(unbiased: bool, threshold: float, grads: torch.Tensor) -> list[torch.Tensor]:
    w = torch.nn.Parameter(torch.where(torch.arange(grads.shape[1]) % 2 == 0, 1.0, -1.0).double())
    opt = Bop2ndOrder(
        [w], threshold=threshold, gamma=0.05, sigma=0.2, unbiased=unbiased, impl="reference"
    )
    states = []
    for g in grads:
        w.grad = g.clone()
        opt.step()
        states.append(w.detach().clone())
    return states


def test_biased_threshold_has_an_exact_unbiased_equivalent() -> None:
    gen = torch.Generator().manual_seed(0)
    drift = torch.randn(64, generator=gen, dtype=torch.float64)
    grads = drift + 2.0 * torch.randn(40, 64, generator=gen, dtype=torch.float64)
    tau = 0.05
    biased = _flip_trajectory(False, tau, grads)
    equivalent = _flip_trajectory(True, study.equivalent_unbiased_threshold(tau, 0.05, 0.2), grads)
    same_tau = _flip_trajectory(True, tau, grads)
    assert all(torch.equal(a, b) for a, b in zip(biased, equivalent, strict=True))
    flips = sum(int((a != b).sum()) for a, b in zip(biased, biased[1:], strict=False))
    assert 0 < flips < 64 * 39
    assert any(not torch.equal(a, b) for a, b in zip(biased, same_tau, strict=True))


def test_score_scale_agrees_at_step_one_only() -> None:
    frame = frames.score_scale(1e-7, 1e-3, [1, 10, 1000, 10**6, 10**9])
    authors = frame[frame["correction"] == "authors' unbiased"]["factor"].tolist()
    adam = frame[frame["correction"] == "Adam bias correction"]["factor"].tolist()
    assert authors == pytest.approx([math.sqrt(1e-3) / 1e-7] * 5)
    assert adam[0] == pytest.approx(authors[0], rel=1e-9)
    assert all(a > b for a, b in zip(adam, adam[1:], strict=False))
    assert adam[-1] == pytest.approx(1.0, rel=1e-3)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        frames.score_scale(1e-7, 1e-3, [0])


def test_designs_reject_unknown_choices() -> None:
    scale = study.Scale("cifar10-jpeg", 0.125, 1, 200, 100)
    with pytest.raises(ValueError, match="unknown extra 'adam'.*bop"):
        study.variant_runs(scale, extras=["adam"])
    with pytest.raises(ValueError, match="unknown axis 'lr'"):
        study.ablation_runs(scale, {"lr": [1e-3]})
    with pytest.raises(ValueError, match="missing \\['sigma'\\]"):
        study.ablation_runs(scale, {"gamma": [1e-3]}, {"threshold": 1e-6, "gamma": 1e-7})
    with pytest.raises(ValueError, match="unknown variant 'adam'"):
        study.cifar_recipe_runs(scale, ["adam"])


def fake_record(
    config: dict[str, Any],
    test_acc: list[float],
    *,
    train_size: int = 5000,
    dataset_label: str = "CIFAR-10 (JPEG re-encoded)",
) -> RunRecord:
    cfg = RunConfig.from_dict(config).resolve()
    history = [{"epoch": i + 1, "test_acc": a} for i, a in enumerate(test_acc)]
    return RunRecord(
        key=cfg.key(),
        config=cfg.to_dict(),
        history=history,
        final={"test_acc": test_acc[-1]},
        provenance={
            "dataset_label": dataset_label,
            "train_size": train_size,
            "test_size": 1000,
            "epochs": len(test_acc),
            "hardware": "test",
        },
    )


def test_run_labels_keep_the_equivalent_threshold_run_apart() -> None:
    scale = study.Scale("cifar10-jpeg", 0.125, 2, 200, 100, profile="smoke")
    runs = study.variant_runs(scale, extras=["equivalent_threshold", "bop"])
    labels = labels_by_key(runs)
    assert len(labels) == len(runs) == 6
    variants = sorted(v["variant"] for v in labels.values())
    assert variants == ["Bop", "biased", "biased", "unbiased", "unbiased", "unbiased, tau = 0.316"]
    assert {v["norm"] for v in labels.values()} == {"BatchNorm", "LayerNorm"}
    records = [fake_record(dict(r.config), [0.1, 0.2]) for r in runs]
    assert [r.key for r in records] == [r.key for r in runs]
    frame = frames.label_frame(pd.DataFrame({"key": [r.key for r in records] + ["other"]}), runs)
    assert frame["run"].tolist()[:2] == ["BatchNorm, biased", "BatchNorm, unbiased"]
    assert "other" not in set(frame["key"])  # a record of no designed run is not labelled


def test_labels_of_one_key_must_agree() -> None:
    scale = study.Scale("cifar10-jpeg", 0.125, 2, 200, 100)
    run = study.variant_runs(scale, norms=["BatchNorm"])[0]
    with pytest.raises(ValueError, match="two labels"):
        labels_by_key([run, LabelledRun({**run.label, "variant": "other"}, run.config)])


def test_variants_claims_grade_bop_against_both_batchnorm_runs() -> None:
    scale = study.Scale("cifar10-jpeg", 0.125, 3, 200, 100, profile="smoke")
    runs = study.variant_runs(scale, extras=["bop"])
    curves = {"biased": [0.3, 0.4, 0.5], "unbiased": [0.2, 0.2, 0.3], "Bop": [0.25, 0.3, 0.35]}
    records = [fake_record(dict(r.config), curves.get(r.label["variant"], [0.1] * 3)) for r in runs]
    traces = pd.DataFrame([{"step": 1, "flipped": 0.5, "norm": "BatchNorm", "variant": "biased"}])
    verdicts = {v.claim: v for v in bop2_claims.variants_verdicts(records, runs, traces)}
    # "faster than Bop" is comparative: one seed a side is shown, not graded
    faster = verdicts[bop2_claims.CLAIM_FASTER]
    assert faster.status == TOO_FEW_SEEDS
    assert "Bop2ndOrder biased 40.00 % (n=1) vs Bop 30.00 % (n=1)" in faster.evidence
    assert "Bop2ndOrder unbiased 23.33 % (n=1)" in faster.evidence
    assert "the rule needs 3 seeds a side" in faster.evidence
    assert verdicts[bop2_claims.CLAIM_2X2].status == NOT_RUN  # reduced scale
    assert verdicts[bop2_claims.CLAIM_MASS_FLIP].status == REPRODUCED  # a property of the rule
    traces["flipped"] = 0.05
    assert bop2_claims.mass_flip_verdict(traces).status == NOT_REPRODUCED


@pytest.mark.parametrize(
    ("unbiased_lead", "expected"),
    [(0.05, CONSISTENT_REDUCED), (-0.05, INCONSISTENT_REDUCED), (0.0, INCONCLUSIVE)],
)
def test_faster_than_bop_is_graded_over_three_seeds_for_both_variants(
    unbiased_lead: float, expected: str
) -> None:
    runs = [
        run
        for seed in (0, 1, 2)
        for run in study.variant_runs(
            study.Scale("cifar10-jpeg", 0.125, 3, 200, 100, seed=seed),
            norms=["BatchNorm"],
            extras=["bop"],
        )
    ]
    lead = {"biased": 0.05, "unbiased": unbiased_lead, "Bop": 0.0}

    def curve(run: LabelledRun) -> list[float]:
        jitter = 0.002 * run.config["seed"]  # the seeds spread a little
        return [0.3 + lead[run.label["variant"]] + jitter] * 3

    records = [fake_record(dict(r.config), curve(r)) for r in runs]
    bop = [r for r, run in zip(records, runs, strict=True) if run.label["variant"] == "Bop"]
    bop2 = [r for r, run in zip(records, runs, strict=True) if run.label["variant"] != "Bop"]
    verdict = bop2_claims.faster_verdict(bop, bop2, False, runs)
    assert verdict.status == expected
    assert "Bop2ndOrder biased 35.20 +- 0.20 % (n=3) vs Bop 30.20 +- 0.20 % (n=3)" in (
        verdict.evidence
    )
    assert ("fails: unbiased" in verdict.evidence) is (expected in FAILING)
    at_scale = bop2_claims.faster_verdict(bop, bop2, True, runs).status
    assert at_scale == {CONSISTENT_REDUCED: REPRODUCED, INCONSISTENT_REDUCED: NOT_REPRODUCED}.get(
        expected, expected
    )


def test_accuracy_compared_only_at_the_paper_scale() -> None:
    claim = Claim("001", "x", "reaches 91.9 %", "README", "91.9 %")
    config = dict(study.cifar_recipe_runs(study.Scale("cifar10", 1.0, 500))[0].config)
    record = fake_record(config, [0.912], train_size=50_000)
    assert compare_number(claim, record, "test_acc", 91.9, at_paper_scale=False).status == NOT_RUN
    assert compare_number(claim, None, "test_acc", 91.9, at_paper_scale=True).status == NOT_RUN
    close = compare_number(claim, record, "test_acc", 91.9, at_paper_scale=True)
    assert close.status == REPRODUCED and "-0.70 % from the paper" in close.evidence
    # one tolerance (1 point), no middle band: 1.3 points away is not reproduced
    assert (
        compare_number(claim, record, "test_acc", 92.5, at_paper_scale=True).status
        == NOT_REPRODUCED
    )
    far = compare_number(claim, record, "test_acc", 95.0, at_paper_scale=True)
    assert far.status == NOT_REPRODUCED
    blank = compare_number(claim, record, "test_acc", None, at_paper_scale=True)
    assert blank.status == NO_PAPER_VALUE
    with pytest.raises(ValueError, match="metric 'test_psnr_peak1'"):
        compare_number(claim, record, "test_psnr_peak1", 9.3, at_paper_scale=True)


def test_qualitative_claims_and_statuses() -> None:
    claim = Claim("001", "x", "faster", "abstract")
    assert (
        judge_direction(claim, None, "", at_paper_scale=False, scale_free=False).status == NOT_RUN
    )
    # at a reduced scale a qualitative claim is consistent or inconsistent, never (not) reproduced
    assert (
        judge_direction(claim, True, "", at_paper_scale=False, scale_free=False).status
        == CONSISTENT_REDUCED
    )
    assert (
        judge_direction(claim, False, "", at_paper_scale=False, scale_free=False).status
        == INCONSISTENT_REDUCED
    )
    assert (
        judge_direction(claim, False, "", at_paper_scale=False, scale_free=True).status
        == NOT_REPRODUCED
    )
    assert (
        judge_direction(claim, True, "", at_paper_scale=True, scale_free=False).status == REPRODUCED
    )
    assert (
        judge_direction(claim, True, "", at_paper_scale=False, scale_free=True).status == REPRODUCED
    )
    assert (
        judge_direction(claim, False, "", at_paper_scale=True, scale_free=False).status
        == NOT_REPRODUCED
    )
    with pytest.raises(ValueError, match="unknown claim status 'partially'"):
        Verdict(claim, "partially", "")
    planned = Chapter("009", "later", "Later", claims=(claim,), why="planned")
    assert [v.status for v in chapter_verdicts(planned, None, {})] == [NOT_RUN]


def test_book_verdicts_without_records_reproduce_nothing(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="unknown chapter 'nope'"):
        book_verdicts({"nope": tmp_path}, {})
    written = [c.name for c in CHAPTERS if c.evaluator is not None]
    params = {name: chapter_params(name, "smoke", REPO_ROOT) for name in written}
    with pytest.raises(ValueError, match="needs its parameters"):
        book_verdicts({}, {name: params[name] for name in written[1:]})
    verdicts = book_verdicts({name: tmp_path / name for name in written}, params)
    counts = status_counts(verdicts)
    assert counts[REPRODUCED] == counts[CONSISTENT_REDUCED] == counts[NOT_REPRODUCED] == 0
    seeds = {v.claim.seed for v in verdicts}
    assert {"000", "001", "002", "003", "004"} <= seeds
    assert {c.seed for c in CHAPTERS} == seeds


@needs_cifar_png
@pytest.mark.data
def test_first_update_flips_about_half_of_the_binarised_weights() -> None:
    scale = study.Scale("cifar10-png-subset", 0.125, 1, 200, 100)
    for run in study.variant_runs(scale, norms=["BatchNorm"]):
        trace = frames.first_update_flips(run, steps=3)
        assert trace["binary_before_first_update"].tolist() == [1.0, 1.0, 1.0]
        first, later = trace["flipped"].iloc[0], trace["flipped"].iloc[1:]
        assert 0.4 <= first <= 0.6
        assert (later < first / 2).all()
