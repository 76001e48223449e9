"""Seed 002's JSON run files: parsing, validation, the LR schedule and what gets built."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from bnnlib.experiment.recipes import build_model, build_recipe
from bnnlib.experiment.runfile import (
    SEED_KEYS,
    BayesBiNNConfig,
    cosine_epoch_lr,
    load_bayesbinn_config,
    to_run_config,
)
from bnnlib.layers import is_binary
from bnnlib.optim import ClippedAdam, Router
from bnnlib.optim.bayesbinn import BayesBiNN

PARAMS = Path(__file__).resolve().parents[2] / "bnnlib_book" / "bayesbinn" / "runfiles"

# The two example configs of seed 002's README, verbatim.
SEED_BAYESBINN = {
    "dataset": "cifar10",
    "input_shape": 3,
    "output_shape": 10,
    "data_augmentation": True,
    "epochs": 500,
    "criterion": "crossentropy",
    "validation_split": 0.1,
    "lr_scheduler": "cosine",
    "batch_size": 50,
    "lr_init": 3e-4,
    "lr_final": 1e-16,
    "drop_prob": 0.2,
    "batch_affine": False,
    "model_architecture": "VGGBinaryConnect",
    "mc_steps": 1,
    "temperature": 1e-10,
    "evaluate_steps": 0,
    "momentum": 0.2,
}
SEED_STE = {
    "dataset": "cifar10",
    "input_shape": 3,
    "output_shape": 10,
    "data_augmentation": True,
    "epochs": 500,
    "criterion": "crossentropy",
    "validation_split": 0.1,
    "lr_scheduler": "cosine",
    "batch_size": 50,
    "lr_init": 0.01,
    "lr_final": 1e-16,
    "batch_affine": False,
    "model_architecture": "VGGBinaryConnect",
    "momentum": 0.2,
    "grad_clip_value": 1,
    "weight_clip_value": 1,
}
SMALL = {"dataset": "mnist", "epochs": 4, "batch_size": 8, "lr_init": 1e-3}


def test_seed_readme_examples_parse_with_the_inferred_method():
    bb = BayesBiNNConfig.from_dict(SEED_BAYESBINN)
    assert bb.method == "bayesbinn"
    assert (bb.mc_steps, bb.temperature, bb.evaluate_steps) == (1, 1e-10, 0)
    assert bb.momentum == 0.2 and bb.model_name == "vgg_binaryconnect"
    ste = BayesBiNNConfig.from_dict(SEED_STE)
    assert ste.method == "ste"
    assert (ste.grad_clip_value, ste.weight_clip_value) == (1.0, 1.0)
    assert set(SEED_BAYESBINN) | set(SEED_STE) == set(SEED_KEYS)


def test_params_files_include_the_readme_examples_verbatim():
    assert json.loads((PARAMS / "seed_readme_bayesbinn.json").read_text()) == SEED_BAYESBINN
    assert json.loads((PARAMS / "seed_readme_ste.json").read_text()) == SEED_STE


@pytest.mark.parametrize("path", sorted(PARAMS.glob("*.json")), ids=lambda p: p.name)
def test_every_params_file_loads_and_round_trips(path):
    cfg = load_bayesbinn_config(path)
    again = BayesBiNNConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg
    assert json.loads(again.to_json()) == json.loads(cfg.to_json())


def test_named_settings_follow_spec_a6():
    mnist = load_bayesbinn_config(PARAMS / "mnist_bayesbinn.json")
    assert (mnist.lr_init, mnist.batch_size, mnist.temperature, mnist.drop_prob) == (
        1e-4,
        100,
        1e-10,
        0.2,
    )
    assert mnist.train_set_size(54_000) == 54_000
    c100 = load_bayesbinn_config(PARAMS / "cifar100_bayesbinn.json")
    assert (c100.temperature, c100.lr_init, c100.output_shape) == (1e-8, 3e-4, 100)
    assert c100.train_set_size(45_000) == 450_000  # the official x10 for augmentation (P-A3)
    ste = load_bayesbinn_config(PARAMS / "cifar10_ste.json")
    assert (ste.lr_init, ste.grad_clip_value, ste.weight_clip_value) == (1e-2, None, 1.0)
    cl = load_bayesbinn_config(PARAMS / "permuted_mnist_cl_bayesbinn.json")
    assert cl.eval_samples() == ("mean", 100) and cl.model_name == "mlp_cl_h100"


def test_defaults_fill_absent_keys():
    cfg = BayesBiNNConfig.from_dict(SMALL, method="bayesbinn")
    assert cfg.model_architecture == "BinaryConnect"
    assert (cfg.input_shape, cfg.output_shape, cfg.data_augmentation) == (784, 10, False)
    assert (cfg.momentum, cfg.eps, cfg.drop_prob) == (0.15, 1e-4, 0.2)
    assert (cfg.mc_steps, cfg.temperature, cfg.evaluate_steps) == (1, 1e-10, 0)
    assert cfg.to_dict()["method"] == "bayesbinn" and "grad_clip_value" not in cfg.to_dict()
    ste = BayesBiNNConfig.from_dict(SMALL | {"method": "ste"})
    assert (ste.grad_clip_value, ste.weight_clip_value) == (None, 1.0)
    assert "temperature" not in ste.to_dict()


def test_method_inference_and_conflicts():
    with pytest.raises(ValueError, match="method"):
        BayesBiNNConfig.from_dict(SMALL)  # no key of either method
    with pytest.raises(ValueError, match="both"):
        BayesBiNNConfig.from_dict(SMALL | {"temperature": 1e-10, "grad_clip_value": 1})
    with pytest.raises(ValueError, match="'temperature' applies to method 'bayesbinn'"):
        BayesBiNNConfig.from_dict(SMALL | {"temperature": 1e-10}, method="ste")
    with pytest.raises(ValueError, match="config says 'ste'"):
        BayesBiNNConfig.from_dict(SMALL | {"method": "ste"}, method="bayesbinn")
    with pytest.raises(ValueError, match="bayesbinn, ste"):
        BayesBiNNConfig.from_dict(SMALL, method="sgd")


def test_unknown_key_is_named_with_the_valid_keys():
    with pytest.raises(ValueError) as err:
        BayesBiNNConfig.from_dict(SEED_BAYESBINN | {"temprature": 1e-10})
    msg = str(err.value)
    assert "'temprature'" in msg and "valid keys" in msg and "temperature" in msg


@pytest.mark.parametrize(
    ("change", "error", "needle"),
    [
        ({"epochs": -5}, ValueError, "epochs"),
        ({"epochs": "500"}, TypeError, "epochs"),
        ({"epochs": 500.0}, TypeError, "epochs"),
        ({"epochs": True}, TypeError, "epochs"),
        ({"batch_affine": 0}, TypeError, "batch_affine"),
        ({"lr_init": "3e-4"}, TypeError, "lr_init"),
        ({"validation_split": 1.0}, ValueError, "validation_split"),
        ({"validation_split": -0.1}, ValueError, "validation_split"),
        ({"temperature": 0.0}, ValueError, "temperature"),
        ({"temperature": -1e-10}, ValueError, "temperature"),
        ({"mc_steps": -1}, ValueError, "mc_steps"),
        ({"evaluate_steps": -1}, ValueError, "evaluate_steps"),
        ({"dataset": "imagenet"}, ValueError, "cifar10, cifar100"),
        ({"model_architecture": "ResNet"}, ValueError, "VGGBinaryConnect"),
        ({"lr_scheduler": "step"}, ValueError, "lr_scheduler 'step'; choose one of cosine"),
        ({"criterion": "mse"}, ValueError, "criterion 'mse'; choose one of crossentropy"),
        ({"lr_final": 1.0}, ValueError, "lr_final"),
        ({"drop_prob": 1.0}, ValueError, "drop_prob"),
        ({"momentum": 1.5}, ValueError, "momentum"),
        ({"batch_size": 1}, ValueError, "batch_size"),
        ({"input_shape": 784}, ValueError, "input_shape"),
        ({"output_shape": 100}, ValueError, "output_shape"),
        ({"model_architecture": "LRNetSmall"}, ValueError, "28x28"),
    ],
)
def test_bad_values_are_named(change, error, needle):
    with pytest.raises(error, match=needle):
        BayesBiNNConfig.from_dict(SEED_BAYESBINN | change)


def test_bad_ste_and_mnist_values():
    with pytest.raises(ValueError, match="grad_clip_value"):
        BayesBiNNConfig.from_dict(SEED_STE | {"grad_clip_value": 0})
    with pytest.raises(ValueError, match="data_augmentation"):
        BayesBiNNConfig.from_dict(SMALL | {"data_augmentation": True}, method="bayesbinn")
    with pytest.raises(ValueError, match="missing the required key 'lr_init'"):
        BayesBiNNConfig.from_dict({"dataset": "mnist", "epochs": 1, "batch_size": 2}, "ste")
    with pytest.raises(TypeError, match="JSON object"):
        BayesBiNNConfig.from_dict([1, 2])


def test_load_reports_invalid_json(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_bayesbinn_config(bad)


@pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")
def test_cosine_lr_follows_the_official_before_epoch_stepping():
    # Spec A.7 values for T = 500, alpha0 = 1e-4.
    assert cosine_epoch_lr(0, 1e-4, 1e-16, 500) == pytest.approx(9.9999013e-5, rel=1e-7)
    assert cosine_epoch_lr(249, 1e-4, 1e-16, 500) == pytest.approx(5.0e-5, rel=1e-12)
    assert cosine_epoch_lr(498, 1e-4, 1e-16, 500) == pytest.approx(9.8696e-10, rel=1e-4)
    assert cosine_epoch_lr(499, 1e-4, 1e-16, 500) == pytest.approx(1e-16, rel=1e-6)
    # Independent oracle: torch's CosineAnnealingLR stepped at the start of every epoch.
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=3e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=1e-16)
    for epoch in range(10):
        sched.step()
        expected = opt.param_groups[0]["lr"]
        assert cosine_epoch_lr(epoch, 3e-4, 1e-16, 10) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="epoch"):
        cosine_epoch_lr(10, 3e-4, 1e-16, 10)


def _recipe(cfg: BayesBiNNConfig, train_samples: int):
    """What a run file builds: its RunConfig's model and recipe."""
    resolved = to_run_config(cfg).resolve()
    model = build_model(resolved)
    return model, build_recipe(resolved, model, train_samples)


def test_build_bayesbinn_from_config():
    cfg = BayesBiNNConfig.from_dict(
        SMALL | {"model_architecture": "SimpleBinaryConnect", "temperature": 1e-2, "mc_steps": 2}
    )
    model, recipe = _recipe(cfg, train_samples=900)
    opt = recipe.optimizer
    assert isinstance(opt, BayesBiNN) and opt.generator is not None
    group = opt.param_groups[0]
    assert (group["train_set_size"], group["temperature"], group["num_samples"]) == (900, 1e-2, 2)
    assert group["betas"] == 0.0
    # The per-epoch cosine: epoch e trains with cosine_epoch_lr(e), set at the epoch's first step.
    lr = recipe.scheduler.schedules["lr"]
    steps_per_epoch = 900 // 8
    assert group["lr"] == pytest.approx(cosine_epoch_lr(0, 1e-3, 1e-16, 4), rel=1e-12)
    assert lr(3 * steps_per_epoch) == pytest.approx(1e-16)
    assert all(is_binary(p) for p in model.parameters())
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss.detach()

    before = opt.lamda.clone()
    assert torch.isfinite(opt.step(closure))
    assert not torch.equal(before, opt.lamda)


def test_build_ste_from_config_clamps_only_binary_weights():
    mnist = {
        "dataset": "mnist",
        "input_shape": 784,
        "data_augmentation": False,
        "model_architecture": "BinaryConnect",
    }
    cfg = BayesBiNNConfig.from_dict(SEED_STE | mnist)
    model, recipe = _recipe(cfg, train_samples=100)
    (opt,) = recipe.optimizer.optimizers
    assert isinstance(opt, ClippedAdam)
    assert opt.param_groups[0]["weight_clip"] == 1.0 and opt.param_groups[0]["grad_clip"] == 1.0
    assert model.fc1.weight_mode == "latent"

    affine = BayesBiNNConfig.from_dict(
        SMALL | {"batch_affine": True, "model_architecture": "BinaryConnect"}, method="ste"
    )
    model, recipe = _recipe(affine, train_samples=100)
    assert isinstance(recipe.optimizer, Router)
    clips = {
        is_binary(p): g.get("weight_clip")
        for g in recipe.optimizer.param_groups
        for p in g["params"]
    }
    assert clips == {True: 1.0, False: None}
    assert cfg.eval_samples() == ("mode", 1)
    assert cfg.data_settings() == {
        "dataset": "mnist",
        "batch_size": 50,
        "validation_split": 0.1,
        "data_augmentation": False,
    }


def test_model_kwargs_carry_bn_settings():
    cfg = BayesBiNNConfig.from_dict(SEED_BAYESBINN)
    kwargs = cfg.model_kwargs()
    assert kwargs == {
        "num_classes": 10,
        "weight_mode": "binary",
        "batch_affine": False,
        "bn_momentum": 0.2,
        "bn_eps": 1e-5,
        "in_channels": 3,
    }
    assert math.isclose(cfg.epoch_lr(0), cosine_epoch_lr(0, 3e-4, 1e-16, 500))
