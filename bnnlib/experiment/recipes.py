"""From a resolved config to the model, optimizer and hyper-parameter schedules it names.

The papers' Keras code builds its optimizers the same way (larq's CaseOptimizer): binary tensors go
to the flip optimizer (Bop or Bop2ndOrder), everything else to Adam. Latent-weight sets
(``default``, ``bnn``) send every tensor to Adam and clip the latent binary kernels to [-1, 1]
(Keras ``weight_clip``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bnnlib.experiment.config import ResolvedConfig
from bnnlib.layers import is_binary
from bnnlib.models import create_model
from bnnlib.optim import (
    SCHEDULED_KEYS,
    CosineDecay,
    ExponentialDecay,
    HyperparameterScheduler,
    MultiStep,
    PerEpoch,
    PolynomialDecay,
    route,
)
from bnnlib.optim.registry import create_optimizer, get_optimizer_entry


@dataclass
class Recipe:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: HyperparameterScheduler | None
    loss_fn: nn.Module


def build_model(cfg: ResolvedConfig) -> nn.Module:
    return create_model(cfg.model, **cfg.model_kwargs)


def build_recipe(
    cfg: ResolvedConfig, model: nn.Module, train_samples: int, device: torch.device | str = "cpu"
) -> Recipe:
    """Optimizer and schedules for ``model``; ``train_samples`` turns epochs into steps."""
    hp = cfg.hparams
    steps_per_epoch = max(train_samples // hp["batch_size"], 1)
    name = hp["optimizer"]
    if get_optimizer_entry(name).whole_model:
        # Every tensor of the model is a Bernoulli variable, as in both released codes
        # (team-approx-bayes/BayesBiNN and its reproduction by Garg & Singhal).
        optimizer: torch.optim.Optimizer = create_optimizer(
            name,
            model.parameters(),
            **hp,
            train_set_size=train_samples * hp.get("trainset_scale", 1),
            generator=torch.Generator(device=device).manual_seed(cfg.seed + 104729),
        )
        schedules = _schedules(hp, train_samples, steps_per_epoch)
        scheduler = HyperparameterScheduler(optimizer, schedules) if schedules else None
        return Recipe(model, optimizer, scheduler, nn.CrossEntropyLoss())
    adam_kw = dict(betas=(hp["beta_1"], hp["beta_2"]), eps=hp["adam_eps"])
    float_lr = hp.get("float_lr", hp["lr"])

    def adam(params: list[nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=float_lr, foreach=True, **adam_kw)

    def binary(params: list[nn.Parameter]) -> torch.optim.Optimizer:
        return create_optimizer(name, params, **hp)

    has_binary = any(is_binary(p) for p in model.parameters())
    cases = [(is_binary, binary)] if has_binary else []
    optimizer = route(model, cases, default=adam)
    schedules = _schedules(hp, train_samples, steps_per_epoch)
    scheduler = HyperparameterScheduler(optimizer, schedules) if schedules else None
    loss_fn: nn.Module = nn.MSELoss() if hp["loss"] == "mse" else nn.CrossEntropyLoss()
    return Recipe(model, optimizer, scheduler, loss_fn)


def _schedules(hp: dict[str, Any], train_samples: int, steps_per_epoch: int = 1) -> dict[str, Any]:
    """Keras schedules in optimizer steps, as the released Keras code computes them from epochs;
    or BayesBiNN's cosine, changed at the start of every epoch (epoch e uses the value of e + 1,
    as the authors' code does); or torch's MultiStepLR over epochs."""
    if hp["lr_schedule"] == "cosine_epoch":
        cosine = CosineDecay(hp["lr"], hp["epochs"], hp["lr_end"])
        return {"lr": PerEpoch(cosine, steps_per_epoch, offset=1)}
    if hp["lr_schedule"] == "multistep_epoch":
        # torch MultiStepLR stepped before each 1-based epoch: epoch e uses the value of e.
        steps = MultiStep(hp["lr"], tuple(hp["lr_milestones"]), hp.get("lr_gamma", 0.1))
        return {"lr": PerEpoch(steps, steps_per_epoch, offset=1)}
    samples = hp["train_samples"] or train_samples
    out: dict[str, Any] = {}
    for key in SCHEDULED_KEYS:
        if key not in hp:
            continue
        initial = hp[key]
        if f"{key}_decay" in hp:
            steps = int(hp["epochs_decay"] * samples // hp["batch_size"])
            out[key] = ExponentialDecay(initial, steps, hp[f"{key}_decay"], staircase=True)
        elif f"{key}_end" in hp:
            epochs = hp.get("poly_epochs", hp["epochs"])
            steps = int(epochs * samples // hp["batch_size"])
            out[key] = PolynomialDecay(initial, steps, hp[f"{key}_end"])
    return out
