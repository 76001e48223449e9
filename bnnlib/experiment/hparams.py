"""The named hyper-parameter sets (``--hparams-set``) of the papers' released code, per model.

Values follow the authors' code: plumerai/rethinking-bnn-optimization for Bop (Helwegen et al.,
2019), nancy-nayak/rethinking-bnn for the reproducibility study of Bop (Nayak et al.),
CuauSuarez/Bop2ndOrder for Bop2ndOrder (Suarez-Ramirez et al., 2021) and team-approx-bayes/BayesBiNN
for BayesBiNN (Meng, Bachmann & Khan, 2020). A set is a flat dict; schedules are written the way
the Keras code writes them:

- ``<key>_decay`` with ``epochs_decay``: Keras ``ExponentialDecay(staircase=True)`` every
  ``epochs_decay`` epochs (``bop_testExp``, ``*_testExp``, ``bop_sec52``).
- ``<key>_end``: Keras ``PolynomialDecay(power=1)`` from the value to ``<key>_end`` over
  ``poly_epochs`` epochs of ``train_samples`` samples (``*_testPoly``, ``*_CIFAR``); it may increase.

``train_samples`` defaults to the size of the training set actually used; the sets that the
authors wrote with ImageNet's 1,281,167 samples on CIFAR-10 keep that quirk (their decay then
runs about 25.6 times longer than the training).
"""

from __future__ import annotations

import copy
import math
from typing import Any

from bnnlib.optim.bayesbinn import EVAL_KINDS
from bnnlib.optim.registry import list_optimizers
from bnnlib.optim.schedules import SCHEDULED_KEYS
from bnnlib.train.tasks import EVAL_AVERAGES

IMAGENET_TRAIN_SAMPLES = 1_281_167

# Keys every set may carry, with their types. Anything else given by the user is an error.
HPARAM_TYPES: dict[str, type | tuple[type, ...]] = {
    "optimizer": str,  # bop | bop2ndOrder | adam
    "unbiased": bool,
    "adam_bias_correction": bool,
    "epochs": int,
    "batch_size": int,
    "train_subset": (int, type(None)),
    "test_subset": (int, type(None)),
    "validation_split": (int, float),
    "threshold": (int, float),
    "gamma": (int, float),
    "sigma": (int, float),
    "lr": (int, float),
    "beta_1": (int, float),
    "beta_2": (int, float),
    "adam_eps": (int, float),
    "float_lr": (int, float),
    "weight_clip": (int, float, type(None)),
    "epochs_decay": (int, float),
    "poly_epochs": (int, float),
    "train_samples": (int, type(None)),
    # <key>_decay and <key>_end of every scheduled key
    **{f"{key}_{kind}": (int, float) for kind in ("decay", "end") for key in SCHEDULED_KEYS},
    "weight_mode": str,
    "loss": str,
    # BayesBiNN (Meng et al., 2020) and its STE baseline
    "lr_schedule": str,  # keras: the *_decay / *_end keys; cosine_epoch: BayesBiNN's per-epoch cosine
    "temperature": (int, float),
    "num_samples": int,
    "grad_momentum": (int, float),
    "trainset_scale": int,
    "eval_kind": str,
    "eval_samples": int,
    "eval_average": str,
    "grad_clip": (int, float, type(None)),
    # Stop the run after this many epochs while every schedule still spans `epochs` (the
    # BayesBiNN paper's MNIST number after epoch 1 of its 500-epoch cosine).
    "stop_after_epochs": int,
    # A loss above this is divergence (absent: the trainer's default ceiling, 1e30).
    "max_loss": (int, float),
    # Hold out the last N training images, in file order, as the validation set.
    "validation_tail": int,
    # SGD and an epoch-indexed MultiStepLR (lr_schedule "multistep_epoch")
    "momentum": (int, float),
    "weight_decay": (int, float),
    "lr_milestones": (list, tuple),
    "lr_gamma": (int, float),
    # Layer-by-layer binarization (bnnlib.methods.layerwise) of models with switchable layers
    "binarize_order": str,
    "epochs_per_layer": int,
    "reset_latent_to_sign": bool,
    "order_seed": int,
    "sensitivity_runs": (list, tuple),
}

LR_SCHEDULES = ("keras", "cosine_epoch", "multistep_epoch")
# Choices of the string-valued keys, each defined where it is used.
_CHOICES = {"lr_schedule": LR_SCHEDULES, "eval_kind": EVAL_KINDS, "eval_average": EVAL_AVERAGES}

_COMMON: dict[str, Any] = {
    "train_subset": None,
    "test_subset": None,
    "validation_split": 0.0,
    "train_samples": None,
    "beta_1": 0.9,
    "beta_2": 0.999,
    "adam_eps": 1e-7,  # Keras Adam epsilon (PyTorch's is 1e-8)
    "weight_clip": 1.0,
    "unbiased": False,
    "adam_bias_correction": False,
    "loss": "cross_entropy",
    "lr_schedule": "keras",
    "eval_kind": "mode",
    "eval_samples": 0,
    "eval_average": "logits",
    "grad_clip": None,
}


def _bop(threshold: float, gamma: float, epochs: int, batch_size: int, lr: float = 0.01, **kw: Any):
    return {
        "optimizer": "bop",
        "weight_mode": "binary",
        "threshold": threshold,
        "gamma": gamma,
        "lr": lr,
        "epochs": epochs,
        "batch_size": batch_size,
        **kw,
    }


def _bop2(
    threshold: float,
    gamma: float,
    sigma: float,
    epochs: int,
    batch_size: int,
    unbiased: bool,
    lr: float = 0.01,
    **kw: Any,
):
    return {
        "optimizer": "bop2ndOrder",
        "weight_mode": "binary",
        "threshold": threshold,
        "gamma": gamma,
        "sigma": sigma,
        "unbiased": unbiased,
        "lr": lr,
        "epochs": epochs,
        "batch_size": batch_size,
        **kw,
    }


def _latent_adam(lr: float, epochs: int, batch_size: int, **kw: Any):
    return {
        "optimizer": "adam",
        "weight_mode": "latent",
        "lr": lr,
        "epochs": epochs,
        "batch_size": batch_size,
        **kw,
    }


def _exp_all(keys: tuple[str, ...], every: float = 100, rate: float = 0.1) -> dict[str, Any]:
    return {"epochs_decay": every, **{f"{k}_decay": rate for k in keys}}


def _binarynet_sets(layer_norm: bool) -> dict[str, dict[str, Any]]:
    """Bop2ndOrder's sets (CuauSuarez/Bop2ndOrder) for ``binarynet`` (LayerNorm) and
    ``binarynet_batch`` (BatchNorm)."""
    sets: dict[str, dict[str, Any]] = {
        # Latent-weight baseline; binarynet_batch's own `default` defines no optimizer (a latent
        # bug of the released code),
        # so both use binarynet's Adam(5e-3).
        "default": _latent_adam(5e-3, 100, 256),
        "bop": _bop(1e-6, 1e-3, 100, 100),
        "bop2ndOrder": _bop2(1e-6 if layer_norm else 1e-5, 1e-7, 1e-3, 100, 100, False),
        "bop2ndOrder_unbiased": _bop2(1e-6 if layer_norm else 1e-5, 1e-7, 1e-3, 100, 100, True),
        "bop_sec52": _bop(1e-8, 1e-4, 500, 50, epochs_decay=100, gamma_decay=0.1),
        "bop_testExp": _bop(1e-6, 1e-7, 100, 50, **_exp_all(("threshold", "gamma", "lr"))),
        "bop_testPoly": _bop(
            1e-6,
            1e-7,
            100,
            50,
            lr=2.5e-3,
            threshold_end=1e-8,
            gamma_end=1e-8,
            lr_end=5e-6,
            train_samples=IMAGENET_TRAIN_SAMPLES,
        ),
    }
    if layer_norm:
        exp = _exp_all(("threshold", "gamma", "sigma", "lr"))
        poly = dict(
            lr=2.5e-3,
            threshold_end=1e-7,
            gamma_end=1e-8,
            sigma_end=1e-5,
            lr_end=5e-6,
            train_samples=IMAGENET_TRAIN_SAMPLES,
        )
        sets |= {
            "bop2ndOrder_testExp": _bop2(1e-5, 1e-7, 1e-3, 300, 50, False, **exp),
            "bop2ndOrder_unbiased_testExp": _bop2(1e-5, 1e-7, 1e-3, 300, 50, True, **exp),
            "bop2ndOrder_testPoly": _bop2(1e-5, 1e-7, 1e-3, 300, 50, False, **poly),
            "bop2ndOrder_unbiased_testPoly": _bop2(1e-5, 1e-7, 1e-3, 300, 100, True, **poly),
        }
    else:
        exp = _exp_all(("threshold", "gamma", "sigma", "lr"))
        cifar = dict(threshold_end=1e-8, gamma_end=1e-5, sigma_end=1e-2, lr_end=1e-3)
        sets |= {
            "bop2ndOrder_testExp": _bop2(1e-6, 1e-7, 1e-3, 350, 50, False, **exp),
            "bop2ndOrder_unbiased_testExp": _bop2(1e-6, 1e-7, 1e-3, 350, 50, True, **exp),
            "bop2ndOrder_testPoly": _bop2(1e-5, 1e-2, 1e-7, 500, 50, False, **cifar),
            "bop2ndOrder_unbiased_testPoly": _bop2(1e-5, 1e-2, 1e-7, 500, 50, True, **cifar),
        }
        sets["bop2ndOrder_CIFAR"] = copy.deepcopy(sets["bop2ndOrder_testPoly"])
        sets["bop2ndOrder_unbiased_CIFAR"] = copy.deepcopy(sets["bop2ndOrder_unbiased_testPoly"])
    return sets


_AE_ADAM = dict(lr=1e-3, beta_1=0.99, beta_2=0.999, epochs=100, batch_size=64, loss="mse")

HPARAM_SETS: dict[str, dict[str, dict[str, Any]]] = {
    "binarynet": _binarynet_sets(layer_norm=True),
    "binarynet_batch": _binarynet_sets(layer_norm=False),
    # The reproducibility study of Bop (nancy-nayak/rethinking-bnn): batch 64, 250 epochs,
    # Adam(0.01) for floats.
    "binaryvgg": {"bop": _bop(1e-6, 1e-3, 250, 64)},
    # Its denoising auto-encoder: the repository's README overrides the bop set's 1e-6/1e-3 with
    # threshold 1e-8, gamma 1e-5.
    "autoencoder": {
        "traditional": {"optimizer": "adam", "weight_mode": "real", **_AE_ADAM},
    },
    "binaryae": {
        "bnn": {"optimizer": "adam", "weight_mode": "latent", **_AE_ADAM},
        "bop": _bop(1e-6, 1e-3, 100, 64, loss="mse"),
    },
    # bnnlib's own MNIST set (no released code has one): binary weights and activations, one epoch.
    "binary_mlp": {
        "bop": _bop(1e-8, 1e-4, 1, 100),  # larq defaults; 1e-6/1e-3 also passes 93 % (95.3 %)
        "bop2ndOrder": _bop2(1e-6, 1e-5, 1e-3, 1, 100, False),
        "bop2ndOrder_unbiased": _bop2(10.0, 1e-3, 1e-3, 1, 100, True),
        "default": _latent_adam(1e-3, 1, 100),
    },
}


def _bayesbinn(lr: float, batch_size: int, temperature: float, trainset_scale: int, **kw: Any):
    """BayesBiNN's image-classification sets (Meng et al., 2020): cosine from lr to 1e-16
    over 500 epochs, one MC sample, mode prediction."""
    return {
        "optimizer": "bayesbinn",
        "weight_mode": "binary",
        "lr": lr,
        "lr_end": 1e-16,
        "lr_schedule": "cosine_epoch",
        "epochs": 500,
        "batch_size": batch_size,
        "validation_split": 0.1,
        "temperature": temperature,
        "num_samples": 1,
        "grad_momentum": 0.0,
        "trainset_scale": trainset_scale,
        **kw,
    }


def _ste(batch_size: int, **kw: Any):
    """The STE baseline of Meng et al. (2020): identity STE, Adam 1e-2 cosine to 1e-16, weights
    clipped to [-1, 1]; the official code clips no gradient (set grad_clip=1 for Garg & Singhal's
    re-implementation)."""
    return {
        "optimizer": "adam",
        "weight_mode": "latent",
        "lr": 1e-2,
        "lr_end": 1e-16,
        "lr_schedule": "cosine_epoch",
        "epochs": 500,
        "batch_size": batch_size,
        "validation_split": 0.1,
        "adam_eps": 1e-8,
        **kw,
    }


HPARAM_SETS |= {
    "mlp_binaryconnect": {"bayesbinn": _bayesbinn(1e-4, 100, 1e-10, 1), "ste": _ste(100)},
    "vgg_binaryconnect": {
        "bayesbinn": _bayesbinn(3e-4, 50, 1e-10, 10),
        "bayesbinn_cifar100": _bayesbinn(3e-4, 50, 1e-8, 10),
        "ste": _ste(50),
    },
    # The LR-net comparison networks of Meng et al. (2020), no validation split.
    "lrnet_small": {
        "bayesbinn": _bayesbinn(1e-4, 100, 1e-10, 1, epochs=190, validation_split=0.0),
        "ste": _ste(100, epochs=190, validation_split=0.0),
    },
    "lrnet_big": {
        "bayesbinn": _bayesbinn(3e-4, 50, 1e-10, 10, epochs=290, validation_split=0.0),
        "ste": _ste(50, epochs=290, validation_split=0.0),
    },
    # Continual learning (Meng et al., 2020): per task, cosine 1e-3 -> 1e-16 over 100 epochs,
    # C = 100 sampled networks.
    "mlp_cl_h100": {
        "bayesbinn": _bayesbinn(
            1e-3, 100, 1e-2, 1, epochs=100, validation_split=0.0, eval_kind="mean", eval_samples=100
        ),
    },
}


def _layerwise(
    optimizer: str,
    lr: float,
    epochs_per_layer: int,
    epochs: int,
    batch_size: int,
    sensitivity: dict[str, Any],
    **kw: Any,
) -> dict[str, dict[str, Any]]:
    """The released scripts of layer-by-layer binarization (Lan, 2021; arXiv 2111.07046) for one
    network: ``float`` (no layer binary), ``binary`` (every layer binary from epoch 1) and
    ``layer`` (one more layer binary every ``epochs_per_layer`` epochs, forward order), all over
    the same ``epochs``; and ``sensitivity`` (only layer 1 binary, ``L1``; name another layer
    with binarize_order), over ``sensitivity``'s epochs. lr is the README's example value (the
    paper's chosen values are not transcribed)."""
    base: dict[str, Any] = {
        "optimizer": optimizer,
        "weight_mode": "real",
        "lr": lr,
        "epochs": epochs,
        "epochs_per_layer": epochs_per_layer,
        "batch_size": batch_size,
        "reset_latent_to_sign": False,
        "order_seed": 0,
        "adam_eps": 1e-8,  # torch Adam
        **kw,
    }
    return {
        "float": {**base, "binarize_order": "none"},
        "binary": {**base, "binarize_order": "all"},
        "layer": {**base, "binarize_order": "forward"},
        "sensitivity": {**base, "binarize_order": "L1", **sensitivity},
    }


def _sgd_resnet(milestones: list[int]) -> dict[str, Any]:
    return {
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "lr_schedule": "multistep_epoch",
        "lr_milestones": milestones,
        "lr_gamma": 0.1,
    }


def _only(epochs: int, **kw: Any) -> dict[str, Any]:
    """A sensitivity run of ``epochs`` epochs: E = epochs, so no second layer ever turns binary."""
    return {"epochs": epochs, "epochs_per_layer": epochs, **kw}


HPARAM_SETS |= {
    # MNIST: Adam, batch 100, 3 layers x 150 epochs; the last 5,000 training images validate.
    "mlp300": _layerwise("adam", 0.1, 150, 450, 100, _only(150), validation_tail=5000),
    "mlp784": _layerwise("adam", 0.1, 150, 450, 100, _only(150), validation_tail=5000),
    # CIFAR-10: Adam, batch 100, 45,000 / 5,000 (a seeded split: the authors' index file is
    # not public).
    "vgg5": _layerwise("adam", 0.1, 150, 750, 100, _only(200), validation_split=0.1),
    "vgg9": _layerwise("adam", 0.1, 150, 1350, 100, _only(450), validation_split=0.1),
    # ResNet-20: SGD momentum 0.9, wd 1e-4, batch 128, 1,200 epochs (E = 50: all binary from
    # epoch 951), lr x0.1 at epochs 1,000 and 1,100 (the scheduler is stepped before the epoch).
    "resnet20": _layerwise(
        "sgd",
        0.1,
        50,
        1200,
        128,
        _only(300, lr_milestones=[200, 250]),
        validation_split=0.1,
        **_sgd_resnet([1000, 1100]),
    ),
    # ResNet-21 on ImageNet: SGD lr 0.01, batch 256, E = 2 (all binary from epoch 41), 67
    # epochs; the released code's 0-based epochs 40, 42 and 57 are epochs 41, 43 and 58 here.
    "resnet21": _layerwise(
        "sgd", 0.01, 2, 67, 256, _only(20, lr_milestones=[21]), **_sgd_resnet([43, 58])
    ),
}


# binaryvgg and binarynet_batch share Bop2ndOrder's optimizer sets beyond the reproducibility
# study's `bop`.
for _name, _set in _binarynet_sets(layer_norm=False).items():
    if _name != "bop":
        HPARAM_SETS["binaryvgg"].setdefault(_name, copy.deepcopy(_set))


def hparams_sets(model: str) -> dict[str, dict[str, Any]]:
    """All sets defined for ``model`` (error naming the model when it has none)."""
    try:
        return HPARAM_SETS[model]
    except KeyError:
        raise ValueError(
            f"model {model!r} has no hparams sets; models with sets: {', '.join(sorted(HPARAM_SETS))}"
        ) from None


def get_hparams(model: str, name: str) -> dict[str, Any]:
    """A fresh copy of set ``name`` of ``model`` with the common keys filled in."""
    sets = hparams_sets(model)
    if name not in sets:
        raise ValueError(
            f"unknown hparams set {name!r} for model {model!r}; choose one of {', '.join(sorted(sets))}"
        )
    return {**copy.deepcopy(_COMMON), **copy.deepcopy(sets[name])}


def validate_hparams(hp: dict[str, Any]) -> None:
    """Check types and ranges of a resolved set; the message names the key and value."""
    for key, value in hp.items():
        if key not in HPARAM_TYPES:
            raise ValueError(
                f"unknown hparams key {key!r}; valid keys: {', '.join(sorted(HPARAM_TYPES))}"
            )
        expected = HPARAM_TYPES[key]
        if isinstance(value, bool) and expected not in (bool, str) and bool not in _tuple(expected):
            raise TypeError(f"hparams {key}={value!r}: expected a number, got a bool")
        if not isinstance(value, expected):
            names = " or ".join(t.__name__ for t in _tuple(expected))
            raise TypeError(
                f"hparams {key}={value!r}: expected {names}, got {type(value).__name__}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"hparams {key}={value!r}: must be a finite number")
    if hp["optimizer"] not in list_optimizers():
        raise ValueError(
            f"hparams optimizer={hp['optimizer']!r}; choose one of {', '.join(list_optimizers())}"
        )
    for key, choices in _CHOICES.items():
        if key in hp and hp[key] not in choices:
            raise ValueError(f"hparams {key}={hp[key]!r}; choose one of {', '.join(choices)}")
    _check(hp, "epochs", lambda v: v >= 1, ">= 1")
    _check(
        hp, "stop_after_epochs", lambda v: 1 <= v <= hp["epochs"], f"in [1, epochs={hp['epochs']}]"
    )
    _check(hp, "max_loss", lambda v: 0 < v < float("inf"), "a finite number > 0")
    _check(hp, "batch_size", lambda v: v >= 1, ">= 1")
    _check(hp, "train_subset", lambda v: v is None or v >= 1, ">= 1")
    _check(hp, "test_subset", lambda v: v is None or v >= 1, ">= 1")
    _check(hp, "validation_split", lambda v: 0 <= v < 1, "in [0, 1)")
    _check(hp, "validation_tail", lambda v: v >= 0, ">= 0")
    _check(hp, "epochs_per_layer", lambda v: v >= 1, ">= 1")
    _check(hp, "order_seed", lambda v: v >= 0, ">= 0")
    _check(hp, "momentum", lambda v: 0 <= v < 1, "in [0, 1)")
    _check(hp, "weight_decay", lambda v: v >= 0, ">= 0")
    _check(hp, "lr_gamma", lambda v: v > 0, "> 0")
    if hp.get("lr_schedule") == "multistep_epoch" and "lr_milestones" not in hp:
        raise ValueError("hparams lr_schedule='multistep_epoch' needs lr_milestones (epochs)")
    for key in ("lr_milestones", "sensitivity_runs"):
        _check_list(hp, key)
    _check(hp, "threshold", lambda v: v >= 0, ">= 0")
    _check(hp, "threshold_end", lambda v: v >= 0, ">= 0")
    for key in ("gamma", "sigma", "gamma_end", "sigma_end"):
        _check(hp, key, lambda v: 0 < v <= 1, "in (0, 1]")
    for key in ("lr", "lr_end", "adam_eps", "weight_clip", "epochs_decay", "poly_epochs"):
        _check(hp, key, lambda v: v > 0, "> 0")
    for key in ("beta_1", "beta_2"):
        _check(hp, key, lambda v: 0 <= v < 1, "in [0, 1)")
    for key in SCHEDULED_KEYS:
        _check(hp, f"{key}_decay", lambda v: v > 0, "> 0")
    if any(f"{k}_decay" in hp for k in SCHEDULED_KEYS) and "epochs_decay" not in hp:
        raise ValueError("hparams: a *_decay key needs epochs_decay (epochs between decays)")
    if hp.get("unbiased") and hp.get("adam_bias_correction"):
        raise ValueError(
            "hparams: unbiased and adam_bias_correction are two different corrections; set one"
        )


def _check_list(hp: dict[str, Any], key: str) -> None:
    """lr_milestones: increasing epoch numbers >= 1; sensitivity_runs: run keys (strings)."""
    if key not in hp:
        return
    items = list(hp[key])
    if key == "lr_milestones":
        if any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in items) or (
            items != sorted(items)
        ):
            raise ValueError(f"hparams lr_milestones={hp[key]!r}: must be increasing ints >= 1")
    elif not items or any(not isinstance(k, str) or not k for k in items):
        raise ValueError(f"hparams sensitivity_runs={hp[key]!r}: must be a list of run keys")


def _tuple(t: type | tuple[type, ...]) -> tuple[type, ...]:
    return t if isinstance(t, tuple) else (t,)


def _check(hp: dict[str, Any], key: str, ok, what: str) -> None:  # noqa: ANN001
    if key in hp and hp[key] is not None and not ok(hp[key]):
        raise ValueError(f"hparams {key}={hp[key]!r} is out of range: must be {what}")
