"""Seed 004's CIFAR-10 chapter (notebook 08): the cpu budget's configs, the paper profile's
released recipes, and the claims graded by the three-seed rule on synthetic records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bnnlib.data import DatasetNotFoundError, check_dataset
from bnnlib.experiment.config import RunConfig
from bnnlib.experiment.preflight import check_run
from bnnlib.experiment.records import RunRecord
from bnnlib.experiment.runs import dry_run
from bnnlib.methods.layerwise import layer_names
from bnnlib.models import create_model
from bnnlib_book import grading
from bnnlib_book.iterative import claims, design, frames
from bnnlib_book.runner import chapter_params

NOTEBOOK = "08_iterative_cifar"
REPO_ROOT = Path(__file__).resolve().parents[2]


def profile_params(profile: str) -> dict[str, Any]:
    """What papermill would run: the parameters cell overridden by the profile's file."""
    return chapter_params(NOTEBOOK, profile, REPO_ROOT)


def by_label(runs) -> dict[tuple[str, str, str], Any]:
    return {(r.label["model"], r.label["run"], r.label["seed"]): r for r in runs}


def test_layer_counts_are_the_models():
    for model, count in claims.CIFAR_LAYERS.items():
        assert len(layer_names(create_model(model))) == count
    assert claims.layer_numbers("vgg5") == {
        "conv1": "L1",
        "conv2": "L2",
        "fc1": "L3",
        "fc2": "L4",
        "fc3": "L5",
    }


def test_the_cpu_budget_builds_the_runs_the_page_shows():
    params = profile_params("cpu")
    runs = claims.cifar_runs(params)
    assert [r.label["kind"] for r in runs[:5]] == ["sensitivity"] * 5  # trained first
    runs_of = by_label(runs)
    assert len(runs_of) == len(runs) == 24
    for seed in ("316", "317", "318"):
        assert ("vgg5", "forward", seed) in runs_of and ("vgg5", "all binary", seed) in runs_of
    assert ("vgg5", "reverse", "317") not in runs_of and ("vgg5", "float", "317") not in runs_of
    for model in ("vgg9", "resnet20"):
        assert {k[1] for k in runs_of if k[0] == model} == {
            "float",
            "all binary",
            "forward",
            "reverse",
        }
    hp = {k: RunConfig.from_dict(dict(r.config)).resolve().hparams for k, r in runs_of.items()}
    vgg5 = hp["vgg5", "forward", "316"]
    assert (vgg5["epochs"], vgg5["epochs_per_layer"]) == (10, 2)
    assert (vgg5["train_subset"], vgg5["test_subset"], vgg5["validation_split"]) == (
        1000,
        1000,
        0.01,
    )
    assert (hp["vgg9", "forward", "316"]["epochs"], hp["vgg9", "reverse", "316"]["epochs"]) == (
        9,
        9,
    )
    resnet = hp["resnet20", "all binary", "316"]
    assert (resnet["epochs"], resnet["lr_milestones"], resnet["optimizer"]) == (24, [20, 22], "sgd")
    sens = hp["vgg5", "only L3", "316"]
    assert (sens["epochs"], sens["epochs_per_layer"], sens["binarize_order"]) == (3, 3, "3")
    sensitivity_keys = [r.key for r in runs[:5]]
    for order in ("ascend", "descend"):
        guided = hp["vgg5", order, "316"]
        assert guided["binarize_order"] == order
        assert list(guided["sensitivity_runs"]) == sensitivity_keys
    assert "sensitivity_runs" not in hp["vgg5", "random", "316"]
    for run in runs:
        assert run.config["dataset"] == "cifar10-jpeg" and run.config["profile"] == "cpu"


def test_a_guided_order_needs_its_models_sensitivity_runs():
    params = {**profile_params("cpu"), "sensitivity_models": []}
    with pytest.raises(ValueError, match="add vgg5 to sensitivity_models"):
        claims.cifar_runs(params)


def test_the_cpu_records_are_the_cpu_runs():
    """The committed records are the cpu profile's runs (the page loads them, never trains)."""
    params = profile_params("cpu")
    folder = REPO_ROOT / params["results_dir"]
    if not folder.is_dir():
        pytest.skip("no committed records")
    from bnnlib_book.runs import recorded

    found, missing = recorded(claims.cifar_runs(params), folder)
    assert not missing and len(found) == 24
    for rec in found:
        assert rec.provenance["dataset_label"] == "CIFAR-10 (JPEG re-encoded)"
        assert (rec.provenance["train_size"], rec.provenance["test_size"]) == (1000, 1000)


# -- the paper profile: the released scripts ------------------------------------------------------

PAPER = profile_params("paper")
RELEASED = {  # epochs, E, lr milestones, optimizer, batch; sensitivity epochs
    "vgg5": (750, 150, None, "adam", 100, 200),
    "vgg9": (1350, 150, None, "adam", 100, 450),
    "resnet20": (1200, 50, [1000, 1100], "sgd", 128, 300),
}


def test_the_paper_profile_is_the_released_scripts():
    runs = claims.cifar_runs(PAPER)
    assert sum(r.label["kind"] == "sensitivity" for r in runs) == 5 + 9 + 20
    for run in runs:
        cfg = RunConfig.from_dict(dict(run.config)).resolve()
        hp = cfg.hparams
        epochs, e, milestones, optimizer, batch, sens_epochs = RELEASED[cfg.model]
        assert cfg.dataset == "cifar10" and cfg.seed == 316
        assert cfg.preprocess_fn == "iterative_cifar10"
        assert (hp["train_subset"], hp["test_subset"], hp["validation_split"]) == (None, None, 0.1)
        assert (hp["optimizer"], hp["lr"], hp["batch_size"]) == (optimizer, 0.1, batch)
        if run.label["kind"] == "sensitivity":
            assert hp["epochs"] == hp["epochs_per_layer"] == sens_epochs
        else:
            assert (hp["epochs"], hp["epochs_per_layer"]) == (epochs, e)
            if milestones:
                assert hp["lr_milestones"] == milestones
        # everything a run checks before work but the data (true CIFAR-10 is not offline) and
        # the sensitivity records (read where the guided run trains)
        check_run(cfg, None, check_data=False)
    labels = {(r.label["model"], r.label["run"]) for r in runs}
    for model in claims.CIFAR_MODELS:
        for run in ("float", "all binary", "forward", "reverse", "ascend", "descend", "random"):
            assert (model, run) in labels


@pytest.mark.parametrize("model", claims.CIFAR_MODELS)
def test_a_paper_config_takes_a_step(model):
    """One optimizer step of each network's released forward run, on true CIFAR-10 when present,
    else on the offline JPEG copy (the only substitution)."""
    (run,) = [
        r
        for r in claims.cifar_runs(PAPER)
        if r.label["model"] == model and r.label["run"] == "forward"
    ]
    config = dict(run.config)
    try:
        check_dataset("cifar10")
    except DatasetNotFoundError:
        try:
            check_dataset("cifar10-jpeg")
        except DatasetNotFoundError:
            pytest.skip("neither CIFAR-10 nor its offline JPEG copy is here")
        config["dataset"] = "cifar10-jpeg"
    result = dry_run(config)
    assert result["train_samples"] == 45000 and result["batch_shape"][1:] == [3, 32, 32]


# -- claims on synthetic records ------------------------------------------------------------------

SYNTH = {
    "profile": "cpu",
    "dataset": "cifar10-jpeg",
    "train_subset": 1000,
    "test_subset": 1000,
    "validation_split": 0.01,
    "epochs_per_layer": {"vgg5": 1, "vgg9": 1, "resnet20": 1},
    "models": ["vgg5", "vgg9", "resnet20"],
    "orders": {m: ["forward", "reverse", "ascend"] for m in claims.CIFAR_MODELS},
    "seed": 316,
    "seeds": {m: [316, 317, 318] for m in claims.CIFAR_MODELS},
    "seeded_orders": ["forward", "reverse", "ascend"],
    "sensitivity_models": ["vgg5", "vgg9", "resnet20"],
}
PROVENANCE = {
    "dataset_label": "CIFAR-10 (JPEG re-encoded)",
    "train_size": 1000,
    "val_size": 500,
    "test_size": 1000,
    "hardware": "test CPU",
}


def _record(run, accuracy: float) -> RunRecord:
    """Two epochs, the second fully binary with the given validation and test accuracy."""
    model, kind = run.config["model"], run.config["hparams_set"]
    names = list(claims.layer_numbers(model))
    binary = {"float": [[], []], "binary": [names, names]}.get(kind, [names[:1], names])
    if kind == "sensitivity":
        binary = [names[:1], names[:1]]
    history = [
        {"epoch": e, "train_acc": acc, "val_acc": acc, "test_acc": acc, "binary_layers": layers}
        for e, (acc, layers) in enumerate(zip((0.3, accuracy), binary, strict=True), start=1)
    ]
    return RunRecord(
        key=run.key,
        config=dict(run.config),
        history=history,
        final={},
        provenance={**PROVENANCE, "epochs": 2},
    )


def _records(params, accuracy) -> tuple[list, list[RunRecord]]:
    runs = claims.cifar_runs(params)
    out = [r for r in runs if r.label["kind"] != "sensitivity"]
    return runs, [
        _record(r, accuracy(r.label["model"], r.label["run"], int(r.label["seed"]))) for r in out
    ]


def _by_claim(verdicts) -> dict:
    return {v.claim: v for v in verdicts}


ADVANTAGE = {"vgg5": 0.01, "vgg9": 0.03, "resnet20": 0.06}


def _accuracy(model, run, seed, *, advantage=ADVANTAGE, ascend=0.02, reverse=-0.02):
    jitter = 0.001 * (seed - 317)
    forward = 0.5 + advantage[model]
    base = {
        "float": 0.7,
        "all binary": 0.5 + 3 * jitter,  # so the per-seed advantages spread too
        "forward": forward,
        "reverse": forward + reverse,
        "ascend": forward + ascend,
        "descend": forward,
        "random": forward,
    }
    return base[run] + jitter


def test_claims_are_consistent_at_a_reduced_budget():
    runs, records = _records(SYNTH, _accuracy)
    verdicts = _by_claim(claims.cifar_verdicts(records, runs, SYNTH))
    assert len(verdicts) == len(claims.CIFAR_CLAIMS)
    for model in claims.CIFAR_MODELS:
        assert (
            verdicts[claims.ITERATIVE_BEATS_BINARY_CIFAR[model]].status
            == grading.CONSISTENT_REDUCED
        )
        assert (
            verdicts[claims.FORWARD_BEATS_REVERSE_CIFAR[model]].status == grading.CONSISTENT_REDUCED
        )
    # ascend and reverse differ from forward by 2 points over 3 seeds
    assert verdicts[claims.ASCEND_BEATS_FORWARD["vgg5"]].status == grading.CONSISTENT_REDUCED
    depth = verdicts[claims.ADVANTAGE_GROWS_WITH_DEPTH]
    assert depth.status == grading.CONSISTENT_REDUCED
    assert "VGG-9 advantage" in depth.evidence and "ResNet-20 advantage" in depth.evidence
    evidence = verdicts[claims.ITERATIVE_BEATS_BINARY_CIFAR["vgg5"]].evidence
    assert "CIFAR-10 (JPEG re-encoded), 1,000 train / 500 validation / 1,000 test" in evidence
    assert "reduced budget" in evidence and "test CPU" in evidence


def test_claims_at_the_released_recipe_are_reproduced_or_not():
    released = {
        **SYNTH,
        "dataset": "cifar10",
        "train_subset": None,
        "test_subset": None,
        "validation_split": None,
        "epochs_per_layer": {},
    }
    runs, records = _records(released, lambda m, r, s: _accuracy(m, r, s, ascend=-0.02))
    verdicts = _by_claim(claims.cifar_verdicts(records, runs, released))
    assert verdicts[claims.ITERATIVE_BEATS_BINARY_CIFAR["vgg9"]].status == grading.REPRODUCED
    assert verdicts[claims.ASCEND_BEATS_FORWARD["vgg5"]].status == grading.NOT_REPRODUCED
    assert verdicts[claims.ADVANTAGE_GROWS_WITH_DEPTH].status == grading.REPRODUCED


def test_a_flat_or_reversed_depth_trend_is_not_consistent():
    flat = {"vgg5": 0.03, "vgg9": 0.03, "resnet20": 0.06}
    runs, records = _records(SYNTH, lambda m, r, s: _accuracy(m, r, s, advantage=flat))
    verdicts = _by_claim(claims.cifar_verdicts(records, runs, SYNTH))
    assert verdicts[claims.ADVANTAGE_GROWS_WITH_DEPTH].status == grading.INCONCLUSIVE
    shrinking = {"vgg5": 0.06, "vgg9": 0.03, "resnet20": 0.06}
    runs, records = _records(SYNTH, lambda m, r, s: _accuracy(m, r, s, advantage=shrinking))
    verdicts = _by_claim(claims.cifar_verdicts(records, runs, SYNTH))
    depth = verdicts[claims.ADVANTAGE_GROWS_WITH_DEPTH]
    assert depth.status == grading.INCONSISTENT_REDUCED
    assert depth.evidence.endswith("; fails: VGG-9 over VGG-5")
    # a reversed ascend at a reduced budget cannot refute the paper
    runs, records = _records(SYNTH, lambda m, r, s: _accuracy(m, r, s, ascend=-0.02))
    verdicts = _by_claim(claims.cifar_verdicts(records, runs, SYNTH))
    assert verdicts[claims.ASCEND_BEATS_FORWARD["vgg5"]].status == grading.INCONSISTENT_REDUCED
    # within the seeds' spread
    runs, records = _records(SYNTH, lambda m, r, s: _accuracy(m, r, s, reverse=0.0))
    verdicts = _by_claim(claims.cifar_verdicts(records, runs, SYNTH))
    assert verdicts[claims.FORWARD_BEATS_REVERSE_CIFAR["vgg9"]].status == grading.INCONCLUSIVE


def test_a_depth_pair_the_other_way_decides_over_a_pair_with_too_few_seeds():
    # VGG-9's advantage below VGG-5's over three seeds; ResNet-20 at one seed only
    params = {**SYNTH, "seeds": {**SYNTH["seeds"], "resnet20": [316]}}
    shrinking = {"vgg5": 0.06, "vgg9": 0.03, "resnet20": 0.09}
    runs, records = _records(params, lambda m, r, s: _accuracy(m, r, s, advantage=shrinking))
    verdicts = _by_claim(claims.cifar_verdicts(records, runs, params))
    depth = verdicts[claims.ADVANTAGE_GROWS_WITH_DEPTH]
    assert depth.status == grading.INCONSISTENT_REDUCED
    assert "no standard error with one seed" in depth.evidence  # the ungraded pair is shown
    assert depth.evidence.endswith("; fails: VGG-9 over VGG-5")
    resnet = verdicts[claims.ITERATIVE_BEATS_BINARY_CIFAR["resnet20"]]
    assert resnet.status == grading.TOO_FEW_SEEDS


def test_one_seed_is_too_few_and_missing_runs_are_not_run():
    params = profile_params("cpu")
    runs, records = _records(params, _accuracy)
    verdicts = _by_claim(claims.cifar_claims(records, params))
    assert (
        verdicts[claims.ITERATIVE_BEATS_BINARY_CIFAR["vgg5"]].status == grading.CONSISTENT_REDUCED
    )
    for model in ("vgg9", "resnet20"):  # one seed each at the cpu budget
        verdict = verdicts[claims.ITERATIVE_BEATS_BINARY_CIFAR[model]]
        assert verdict.status == grading.TOO_FEW_SEEDS
        assert "no standard error with one seed" in verdict.evidence
    assert verdicts[claims.ASCEND_BEATS_FORWARD["vgg5"]].status == grading.TOO_FEW_SEEDS
    assert verdicts[claims.ASCEND_BEATS_FORWARD["vgg9"]].status == grading.NOT_RUN
    assert verdicts[claims.ADVANTAGE_GROWS_WITH_DEPTH].status == grading.TOO_FEW_SEEDS
    assert {v.status for v in claims.cifar_claims([], params)} == {grading.NOT_RUN}


def test_tables_and_orders_read_the_records():
    runs, records = _records(SYNTH, _accuracy)
    grid = [r for r in runs if r.label["kind"] != "sensitivity"]
    table = frames.shown_table(frames.seed_table(frames.runs_frame(records[:1], grid)))
    assert not table.isna().any().any() and table.iloc[0]["seeds"] == 1
    timeline = frames.timeline_frame(records, grid)
    assert claims.recorded_order(timeline, "vgg5", "forward") == "L1,L2,L3,L4,L5"
    assert claims.recorded_order(timeline, "vgg5", "random") == ""


def test_sensitivity_runs_of_a_deep_network_name_their_layer():
    """ResNet-20 has 20 layers: its layer 12 is ``L12`` (the digits ``12`` would be L1 and L2,
    and the library refuses digit orders on a model of more than 9 layers)."""
    budget = design.Budget("cifar10-jpeg", epochs_per_layer=1)
    (deep,) = design.sensitivity_runs("resnet20", budget, 0, [12])
    assert deep.config["hparams"]["binarize_order"] == "L12" and deep.label["run"] == "only L12"
    (shallow,) = design.sensitivity_runs("vgg5", budget, 0, [2])
    assert shallow.config["hparams"]["binarize_order"] == "2"  # the command line's form
    check_run(RunConfig.from_dict(dict(deep.config)).resolve(), None, check_data=False)
