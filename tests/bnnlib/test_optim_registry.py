"""The optimizer registry: recipes build their optimizer by name."""

from __future__ import annotations

import pytest
import torch

from bnnlib.experiment.hparams import get_hparams, validate_hparams
from bnnlib.optim import (
    BayesBiNN,
    Bop,
    Bop2ndOrder,
    ClippedAdam,
    create_optimizer,
    list_optimizers,
    register_optimizer,
    registry,
)


def _params() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.ones(3, 2))]


def test_the_hparams_names_are_registered() -> None:
    assert list_optimizers() == ["bop", "bop2ndOrder", "adam", "bayesbinn", "sgd"]


@pytest.mark.parametrize(
    ("model", "hset", "cls"),
    [
        ("binary_mlp", "bop", Bop),
        ("binary_mlp", "bop2ndOrder_unbiased", Bop2ndOrder),
        ("binary_mlp", "default", ClippedAdam),
        ("mlp_binaryconnect", "bayesbinn", BayesBiNN),
    ],
)
def test_create_optimizer_takes_a_whole_hparams_set(model: str, hset: str, cls: type) -> None:
    hp = get_hparams(model, hset)
    opt = create_optimizer(hp["optimizer"], _params(), **hp, train_set_size=10)
    assert type(opt) is cls
    group = opt.param_groups[0]
    for key in ("threshold", "gamma", "sigma", "unbiased", "temperature", "num_samples"):
        if key in group and key in hp:
            assert group[key] == hp[key], key
    if cls is ClippedAdam:
        assert group["lr"] == hp["lr"] and group["betas"] == (hp["beta_1"], hp["beta_2"])
        assert group["eps"] == hp["adam_eps"] and group["weight_clip"] == hp["weight_clip"]
    if cls in (Bop, Bop2ndOrder):
        assert opt.track_flips


def test_unknown_optimizer_names_the_known_ones() -> None:
    with pytest.raises(
        ValueError, match="unknown optimizer 'lamb'; choose one of bop, bop2ndOrder"
    ):
        create_optimizer("lamb", _params())
    hp = get_hparams("binary_mlp", "bop") | {"optimizer": "lamb"}
    with pytest.raises(ValueError, match="choose one of bop, bop2ndOrder, adam, bayesbinn, sgd"):
        validate_hparams(hp)


def test_a_registered_optimizer_is_valid_in_hparams_and_a_name_is_taken_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry, "_OPTIMIZERS", registry._OPTIMIZERS.copy())

    @register_optimizer("test_sgd")
    def _sgd(params, *, lr: float, **_):  # noqa: ANN001, ANN202
        return torch.optim.SGD(params, lr=lr)

    hp = get_hparams("binary_mlp", "bop") | {"optimizer": "test_sgd"}
    validate_hparams(hp)
    assert type(create_optimizer("test_sgd", _params(), **hp)) is torch.optim.SGD
    with pytest.raises(ValueError, match="'test_sgd' is already registered"):
        register_optimizer("test_sgd")(_sgd)
