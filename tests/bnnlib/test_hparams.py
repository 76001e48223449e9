"""The seeds' named hparams sets, overrides and the schedules they imply (spec §1b, §2, §3b, §3g)."""

from __future__ import annotations

import math

import pytest

from bnnlib.experiment.config import RunConfig
from bnnlib.experiment.hparams import HPARAM_SETS, get_hparams
from bnnlib.experiment.recipes import _schedules

SEED_SETS = {
    # seed 000 (rethinking-bnn reproducibility study)
    "binaryvgg": ["bop"],
    "autoencoder": ["traditional"],
    "binaryae": ["bnn", "bop"],
    # seed 001 (Bop2ndOrder) README commands and spec §3b tables
    "binarynet_batch": [
        "default",
        "bop",
        "bop_sec52",
        "bop_testExp",
        "bop_testPoly",
        "bop2ndOrder",
        "bop2ndOrder_unbiased",
        "bop2ndOrder_testExp",
        "bop2ndOrder_unbiased_testExp",
        "bop2ndOrder_testPoly",
        "bop2ndOrder_unbiased_testPoly",
        "bop2ndOrder_CIFAR",
        "bop2ndOrder_unbiased_CIFAR",
    ],
    "binarynet": [
        "default",
        "bop",
        "bop_sec52",
        "bop_testExp",
        "bop_testPoly",
        "bop2ndOrder",
        "bop2ndOrder_unbiased",
        "bop2ndOrder_testExp",
        "bop2ndOrder_unbiased_testExp",
        "bop2ndOrder_testPoly",
        "bop2ndOrder_unbiased_testPoly",
    ],
}


@pytest.mark.parametrize("model,name", [(m, s) for m, sets in SEED_SETS.items() for s in sets])
def test_every_seed_set_exists_and_validates(model: str, name: str) -> None:
    cfg = RunConfig(model=model, dataset="cifar10-png-subset", hparams_set=name).resolve()
    assert cfg.hparams["epochs"] >= 1


def test_values_from_the_spec_tables() -> None:
    hp = get_hparams("binarynet_batch", "bop2ndOrder_unbiased")
    assert (hp["threshold"], hp["gamma"], hp["sigma"], hp["unbiased"]) == (1e-5, 1e-7, 1e-3, True)
    assert get_hparams("binarynet", "bop2ndOrder")["threshold"] == 1e-6  # LN differs from BN
    assert get_hparams("binarynet", "bop2ndOrder_unbiased_testPoly")["batch_size"] == 100
    vgg = get_hparams("binaryvgg", "bop")
    assert (vgg["batch_size"], vgg["epochs"], vgg["lr"]) == (64, 250, 0.01)
    ae = get_hparams("autoencoder", "traditional")
    assert (ae["lr"], ae["beta_1"], ae["loss"]) == (1e-3, 0.99, "mse")
    assert get_hparams("binaryae", "bnn")["weight_mode"] == "latent"


def test_seed000_opt_param_is_parsed_without_eval() -> None:
    cfg = RunConfig(
        model="binaryvgg",
        dataset="cifar10-png-subset",
        hparams_set="bop",
        hparams={
            "norm_layer": "LayerNormalization",
            "opt_param": "{'threshold':5e-7, 'gamma':1e-4}",
            "epochs": 100,
        },
    ).resolve()
    assert (
        cfg.hparams["threshold"] == 5e-7
        and cfg.hparams["gamma"] == 1e-4
        and cfg.hparams["epochs"] == 100
    )
    assert cfg.model_kwargs["norm_layer"] == "LayerNormalization"
    with pytest.raises(ValueError, match="opt_param"):
        RunConfig(
            model="binaryvgg",
            dataset="mnist",
            hparams_set="bop",
            hparams={"opt_param": "__import__('os').system('true')"},
        ).resolve()


@pytest.mark.parametrize(
    "hparams,match",
    [
        ({"threshold": -1.0}, "threshold"),
        ({"gamma": 0.0}, "gamma"),
        ({"gamma": 1.5}, "gamma"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": 1.5}, "epochs"),
        ({"batch_size": "64"}, "batch_size"),
        ({"tresh": 1e-6}, "tresh"),
        ({"train_subset": 0}, "train_subset"),
        ({"eval_kind": "median"}, "eval_kind='median'; choose one of mode, mean"),
        ({"eval_average": "votes"}, "eval_average='votes'; choose one of logits, probs"),
        ({"lr_schedule": "step"}, "lr_schedule='step'; choose one of keras, cosine_epoch"),
    ],
)
def test_bad_hparams_name_the_problem(hparams: dict, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        RunConfig(
            model="binarynet_batch", dataset="mnist", hparams_set="bop", hparams=hparams
        ).resolve()


def test_unknown_names_list_the_choices() -> None:
    with pytest.raises(ValueError, match="binarynet_batch"):
        RunConfig(model="binarynet_bacth", dataset="mnist").resolve()
    with pytest.raises(ValueError, match="bop_sec52"):
        RunConfig(model="binarynet_batch", dataset="mnist", hparams_set="bop_sec5").resolve()
    with pytest.raises(ValueError, match="cifar10"):
        RunConfig(model="binarynet_batch", dataset="cifar11").resolve()


def test_key_follows_values_not_labels() -> None:
    base = dict(model="binarynet_batch", dataset="cifar10-png-subset", hparams_set="bop")
    k = RunConfig(**base).key()
    assert RunConfig(**base, profile="cpu", device="cpu").key() == k
    assert RunConfig(**base, hparams={"threshold": 1e-7}).key() != k
    assert RunConfig(**base, seed=1).key() != k


def _at(schedule, step: int) -> float:
    return float(schedule(step))


def test_bop_sec52_staircase() -> None:
    """TV-sched: gamma 1e-4, x0.1 every 100 epochs of 1000 steps (50,000 images, batch 50)."""
    s = _schedules(get_hparams("binarynet_batch", "bop_sec52"), 50_000)["gamma"]
    assert math.isclose(_at(s, 99_999), 1e-4, rel_tol=1e-6)
    assert math.isclose(_at(s, 100_000), 1e-5, rel_tol=1e-6)
    assert math.isclose(_at(s, 450_000), 1e-8, rel_tol=1e-6)


def test_bop2ndorder_cifar_poly() -> None:
    """TV-sched-poly: D = 500,000; half way and past the end; sigma increases."""
    s = _schedules(get_hparams("binarynet_batch", "bop2ndOrder_CIFAR"), 50_000)
    mid = {k: _at(v, 250_000) for k, v in s.items()}
    assert math.isclose(mid["gamma"], 0.005005, rel_tol=1e-6)
    assert math.isclose(mid["sigma"], 0.00500005, rel_tol=1e-6)
    assert math.isclose(mid["threshold"], 5.005e-6, rel_tol=1e-6)
    assert math.isclose(mid["lr"], 0.0055, rel_tol=1e-6)
    end = {k: _at(v, 600_000) for k, v in s.items()}
    assert end == pytest.approx(
        {"gamma": 1e-5, "sigma": 1e-2, "threshold": 1e-8, "lr": 1e-3}, rel=1e-6
    )


def test_bop2ndorder_testexp() -> None:
    """TV-sched-exp: D = 100,000; at step 150,000 every value has decayed once."""
    s = _schedules(get_hparams("binarynet_batch", "bop2ndOrder_testExp"), 50_000)
    got = {k: _at(v, 150_000) for k, v in s.items()}
    assert got == pytest.approx(
        {"threshold": 1e-7, "gamma": 1e-8, "sigma": 1e-4, "lr": 1e-3}, rel=1e-6
    )


def test_testpoly_keeps_the_imagenet_sample_count_quirk() -> None:
    """spec §3f.5: bop_testPoly decays over ImageNet's sample count, so on CIFAR it barely moves."""
    s = _schedules(get_hparams("binarynet_batch", "bop_testPoly"), 50_000)["gamma"]
    end_of_run = 100 * 50_000 // 50
    moved = (1e-7 - _at(s, end_of_run)) / (1e-7 - 1e-8)
    assert moved == pytest.approx(50_000 / 1_281_167, rel=1e-3)


def test_every_set_is_valid() -> None:
    for model, sets in HPARAM_SETS.items():
        for name in sets:
            RunConfig(model=model, dataset="mnist", hparams_set=name).resolve()


@pytest.mark.parametrize("kind", ["decay", "end"])
def test_every_scheduled_key_can_be_scheduled(kind: str) -> None:
    """Each key of SCHEDULED_KEYS takes a ``<key>_decay`` / ``<key>_end`` and gets a schedule."""
    from bnnlib.experiment.hparams import validate_hparams
    from bnnlib.optim import SCHEDULED_KEYS

    hp = get_hparams("binarynet_batch", "bop2ndOrder")
    hp |= {f"{key}_{kind}": 0.5 for key in SCHEDULED_KEYS}
    if kind == "decay":
        hp["epochs_decay"] = 1
    validate_hparams(hp)
    assert set(_schedules(hp, 1000)) == set(SCHEDULED_KEYS)
