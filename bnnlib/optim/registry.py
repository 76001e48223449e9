"""Optimizer registry: a recipe's ``optimizer`` name -> the builder of that optimizer.

A builder is a plain function ``builder(params, **hparams) -> Optimizer`` that takes the
hyper-parameters it needs by their hparams-set names (``threshold``, ``beta_1``, ...) and ignores
the others, so a recipe hands it the whole resolved set. ``@register_optimizer("name")`` records
it; ``whole_model=True`` says the optimizer takes every parameter of the model (BayesBiNN keeps a
Bernoulli posterior over all of them), otherwise it takes the binary tensors and a recipe routes
the rest to Adam. :func:`create_optimizer` builds by name, :func:`list_optimizers` names them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch.optim import Optimizer

from bnnlib.registry import Registry

from .bayesbinn import BayesBiNN
from .bop import Bop
from .bop2 import Bop2ndOrder
from .latent import ClippedAdam

OptimizerBuilder = Callable[..., Optimizer]
BuilderT = TypeVar("BuilderT", bound=OptimizerBuilder)


@dataclass(frozen=True)
class OptimizerEntry:
    name: str
    builder: OptimizerBuilder
    whole_model: bool = False


_OPTIMIZERS: Registry[OptimizerEntry] = Registry("optimizer")


def register_optimizer(name: str, *, whole_model: bool = False) -> Callable[[BuilderT], BuilderT]:
    """Register the decorated builder under ``name``. Registering a name twice raises ValueError:
    silently replacing a builder would make a config train with another optimizer than it says."""

    def decorate(builder: BuilderT) -> BuilderT:
        _OPTIMIZERS.add(name, OptimizerEntry(name, builder, whole_model), builder)
        return builder

    return decorate


def list_optimizers() -> list[str]:
    """Names of all registered optimizers, in registration order."""
    return _OPTIMIZERS.names()


def get_optimizer_entry(name: str) -> OptimizerEntry:
    """The entry registered as ``name``; ValueError listing the known names otherwise."""
    return _OPTIMIZERS.get(name)


def create_optimizer(
    name: str, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]], **hparams: Any
) -> Optimizer:
    """Build the optimizer registered as ``name`` over ``params`` from ``hparams``."""
    return get_optimizer_entry(name).builder(params, **hparams)


# -- bnnlib's optimizers, under the names the hparams sets use --------------------------------


@register_optimizer("bop")
def _bop(params: Any, *, threshold: float, gamma: float, **_: Any) -> Optimizer:
    return Bop(params, threshold=threshold, gamma=gamma, track_flips=True)


@register_optimizer("bop2ndOrder")
def _bop2nd_order(
    params: Any,
    *,
    threshold: float,
    gamma: float,
    sigma: float,
    unbiased: bool,
    adam_bias_correction: bool,
    **_: Any,
) -> Optimizer:
    return Bop2ndOrder(
        params,
        threshold=threshold,
        gamma=gamma,
        sigma=sigma,
        unbiased=unbiased,
        adam_bias_correction=adam_bias_correction,
        track_flips=True,
    )


@register_optimizer("adam")
def _latent_adam(
    params: Any,
    *,
    lr: float,
    weight_clip: float | None,
    grad_clip: float | None,
    beta_1: float,
    beta_2: float,
    adam_eps: float,
    **_: Any,
) -> Optimizer:
    return ClippedAdam(
        params,
        lr=lr,
        weight_clip=weight_clip,
        grad_clip=grad_clip,
        betas=(beta_1, beta_2),
        eps=adam_eps,
    )


@register_optimizer("bayesbinn", whole_model=True)
def _bayesbinn(
    params: Any,
    *,
    lr: float,
    train_set_size: int,
    temperature: float,
    num_samples: int,
    grad_momentum: float,
    generator: torch.Generator | None = None,
    **_: Any,
) -> Optimizer:
    return BayesBiNN(
        params,
        lr=lr,
        train_set_size=train_set_size,
        temperature=temperature,
        num_samples=num_samples,
        betas=grad_momentum,
        generator=generator,
    )


@register_optimizer("sgd", whole_model=True)
def _sgd(
    params: Any, *, lr: float, momentum: float = 0.0, weight_decay: float = 0.0, **_: Any
) -> Optimizer:
    """torch SGD over every tensor of the model (weight decay on all of them, as torch applies
    it when given ``model.parameters()``)."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
