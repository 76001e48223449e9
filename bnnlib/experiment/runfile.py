"""BayesBiNN/STE JSON run files (``train_bayesbinn.py``/``train_ste.py`` configs), parsed and built.

The format is that of the BayesBiNN reproduction (Garg & Singhal,
prateekstark/training-binary-neural-network, ``configs/*.json``): one flat JSON object with the keys
of :data:`SEED_KEYS`. Their meaning is the reproduction's; in particular ``momentum`` is the
*BatchNorm* momentum (PyTorch convention), not BayesBiNN's gradient momentum, which the paper's
image runs keep at 0. Three optional keys extend the format (the reproduction's scripts ignore
unknown keys, so the files still run there):

- ``method``: "bayesbinn" or "ste". The reproduction picks it by script; here it is explicit. When
  absent it is inferred: BayesBiNN keys (mc_steps, temperature, evaluate_steps) mean "bayesbinn",
  STE keys (grad_clip_value, weight_clip_value) mean "ste", both or neither is an error.
- ``eps``: the BatchNorm eps (the reproduction's continual-learning config carries it).
- ``trainset_scale``: N = (training examples after the validation split) x trainset_scale. The
  official code uses 10 for augmented CIFAR (the augmentation counts as a 10x larger data set); the
  reproduction uses 1 (the default).

Everything is validated in :func:`BayesBiNNConfig.from_dict` before anything is built.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bnnlib.experiment.yamlfile import read_config_text

METHODS = ("bayesbinn", "ste")
SEED_KEYS = (
    "dataset",
    "input_shape",
    "output_shape",
    "data_augmentation",
    "epochs",
    "criterion",
    "validation_split",
    "lr_scheduler",
    "batch_size",
    "lr_init",
    "lr_final",
    "drop_prob",
    "batch_affine",
    "model_architecture",
    "mc_steps",
    "temperature",
    "evaluate_steps",
    "momentum",
    "grad_clip_value",
    "weight_clip_value",
)
EXTENSION_KEYS = ("method", "eps", "trainset_scale")
VALID_KEYS = SEED_KEYS + EXTENSION_KEYS
METHOD_KEYS = {
    "bayesbinn": ("mc_steps", "temperature", "evaluate_steps"),
    "ste": ("grad_clip_value", "weight_clip_value"),
}
REQUIRED_KEYS = ("dataset", "epochs", "batch_size", "lr_init")
CRITERIA = ("crossentropy",)
LR_SCHEDULERS = ("cosine",)

# dataset -> (classes, image channels, image side)
DATASETS = {"mnist": (10, 1, 28), "cifar10": (10, 3, 32), "cifar100": (100, 3, 32)}


@dataclass(frozen=True)
class _Architecture:
    model: str  # bnnlib.models registry name
    flat_input: bool  # input_shape counts features (MLP) rather than channels (CNN)
    image_side: int | None  # the only image side the CNN accepts
    bn_momentum: float
    bn_eps: float
    dropout: bool


# The reproduction's names (BinaryConnect, ...) and the official code's (MLPBinaryConnect,
# MLP_CL_h100).
_MLP = _Architecture("mlp_binaryconnect", True, None, 0.15, 1e-4, True)
_CL_MLP = _Architecture("mlp_cl_h100", True, None, 0.15, 1e-4, False)
ARCHITECTURES = {
    "BinaryConnect": _MLP,
    "MLPBinaryConnect": _MLP,
    "SimpleBinaryConnect": _CL_MLP,
    "MLP_CL_h100": _CL_MLP,
    "VGGBinaryConnect": _Architecture("vgg_binaryconnect", False, 32, 0.2, 1e-5, False),
    "LRNetSmall": _Architecture("lrnet_small", False, 28, 0.2, 1e-5, False),
    "LRNetBig": _Architecture("lrnet_big", False, 32, 0.2, 1e-5, False),
}
_DEFAULT_ARCHITECTURE = {
    "mnist": "BinaryConnect",
    "cifar10": "VGGBinaryConnect",
    "cifar100": "VGGBinaryConnect",
}
_INT_KEYS = (
    "input_shape",
    "output_shape",
    "epochs",
    "batch_size",
    "mc_steps",
    "evaluate_steps",
    "trainset_scale",
)
_OPTIONAL_FLOAT_KEYS = ("grad_clip_value", "weight_clip_value")
_BOOL_KEYS = ("data_augmentation", "batch_affine")
_STR_KEYS = ("dataset", "criterion", "lr_scheduler", "model_architecture", "method")


@dataclass(frozen=True)
class BayesBiNNConfig:
    """One validated JSON run file; every field holds its resolved value.

    Defaults for absent keys: input/output shape, augmentation (CIFAR only) and architecture from
    the dataset; criterion "crossentropy", validation_split 0.1, lr_scheduler "cosine", lr_final
    1e-16, drop_prob 0.2 (used by BinaryConnect only; the other networks have no dropout, and the
    reproduction's CIFAR files carry it anyway), batch_affine False, mc_steps 1, temperature 1e-10,
    evaluate_steps 0 (mode prediction), BN momentum/eps the architecture's reference values,
    grad_clip_value None (the official STE; the reproduction clips at 1), weight_clip_value 1.
    ``dataset``, ``epochs``, ``batch_size`` and ``lr_init`` are required.
    """

    method: str
    dataset: str
    input_shape: int
    output_shape: int
    data_augmentation: bool
    epochs: int
    criterion: str
    validation_split: float
    lr_scheduler: str
    batch_size: int
    lr_init: float
    lr_final: float
    drop_prob: float
    batch_affine: bool
    model_architecture: str
    momentum: float
    eps: float
    trainset_scale: int
    mc_steps: int | None = None
    temperature: float | None = None
    evaluate_steps: int | None = None
    grad_clip_value: float | None = None
    weight_clip_value: float | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any], method: str | None = None) -> BayesBiNNConfig:
        """Validate a parsed run file. ``method`` overrides (and must agree with) a "method" key."""
        if not isinstance(d, dict):
            raise TypeError(f"a BayesBiNN run config is a JSON object, got {type(d).__name__}")
        for key in d:
            if key not in VALID_KEYS:
                raise ValueError(f"unknown config key {key!r}; valid keys: {', '.join(VALID_KEYS)}")
        values = {key: _typed(key, value) for key, value in d.items()}
        method = _resolve_method(values, method)
        for other, keys in METHOD_KEYS.items():
            for key in keys:
                if other != method and key in values:
                    raise ValueError(f"key {key!r} applies to method {other!r}, not {method!r}")
        for key in REQUIRED_KEYS:
            if key not in values:
                raise ValueError(f"config is missing the required key {key!r}")

        dataset = _choice("dataset", values["dataset"], tuple(DATASETS))
        classes, channels, side = DATASETS[dataset]
        arch_name = values.get("model_architecture", _DEFAULT_ARCHITECTURE[dataset])
        arch = ARCHITECTURES[_choice("model_architecture", arch_name, tuple(ARCHITECTURES))]
        if arch.image_side is not None and arch.image_side != side:
            raise ValueError(
                f"model_architecture {arch_name!r} takes {arch.image_side}x{arch.image_side}"
                f" images, dataset {dataset!r} has {side}x{side}"
            )
        features = channels * side * side if arch.flat_input else channels
        resolved = dict(
            method=method,
            dataset=dataset,
            input_shape=values.get("input_shape", features),
            output_shape=values.get("output_shape", classes),
            data_augmentation=values.get("data_augmentation", dataset != "mnist"),
            epochs=values["epochs"],
            criterion=values.get("criterion", "crossentropy"),
            validation_split=values.get("validation_split", 0.1),
            lr_scheduler=values.get("lr_scheduler", "cosine"),
            batch_size=values["batch_size"],
            lr_init=values["lr_init"],
            lr_final=values.get("lr_final", 1e-16),
            drop_prob=values.get("drop_prob", 0.2 if arch.dropout else 0.0),
            batch_affine=values.get("batch_affine", False),
            model_architecture=arch_name,
            momentum=values.get("momentum", arch.bn_momentum),
            eps=values.get("eps", arch.bn_eps),
            trainset_scale=values.get("trainset_scale", 1),
        )
        if method == "bayesbinn":
            resolved |= dict(
                mc_steps=values.get("mc_steps", 1),
                temperature=values.get("temperature", 1e-10),
                evaluate_steps=values.get("evaluate_steps", 0),
            )
        else:
            resolved |= dict(
                grad_clip_value=values.get("grad_clip_value"),
                weight_clip_value=values.get("weight_clip_value", 1.0),
            )
        cfg = cls(**resolved)
        cfg._check_values(features, classes)
        return cfg

    def _check_values(self, features: int, classes: int) -> None:
        _choice("criterion", self.criterion, CRITERIA)
        _choice("lr_scheduler", self.lr_scheduler, LR_SCHEDULERS)
        if self.input_shape != features:
            what = "features" if ARCHITECTURES[self.model_architecture].flat_input else "channels"
            raise ValueError(
                f"input_shape {self.input_shape} does not fit {self.model_architecture} on"
                f" {self.dataset}, which needs {features} input {what}"
            )
        if self.output_shape != classes:
            raise ValueError(
                f"output_shape {self.output_shape} does not match {self.dataset}'s {classes} classes"
            )
        if self.data_augmentation and self.dataset == "mnist":
            raise ValueError(
                "data_augmentation must be false for mnist: the reference pads and crops MNIST to"
                " 32x32, which no MNIST network here accepts"
            )
        _at_least("epochs", self.epochs, 1)
        _at_least("batch_size", self.batch_size, 2, "(BatchNorm needs two examples per batch)")
        _at_least("trainset_scale", self.trainset_scale, 1)
        _in_range("validation_split", self.validation_split, 0.0, 1.0)
        _in_range("drop_prob", self.drop_prob, 0.0, 1.0)
        _positive("lr_init", self.lr_init)
        _in_range("lr_final", self.lr_final, 0.0, self.lr_init, high_closed=True)
        _in_range("momentum", self.momentum, 0.0, 1.0, high_closed=True)
        _positive("eps", self.eps)
        if self.method == "bayesbinn":
            _at_least("mc_steps", self.mc_steps, 0, "(0 is the deterministic BCVI-D variant)")
            _positive("temperature", self.temperature)
            _at_least("evaluate_steps", self.evaluate_steps, 0, "(0 predicts with the mode)")
        else:
            for key in _OPTIONAL_FLOAT_KEYS:
                if getattr(self, key) is not None:
                    _positive(key, getattr(self, key))

    def to_dict(self) -> dict[str, Any]:
        """The run file's keys and values; keys of the other method are left out."""
        skip = {k for m, keys in METHOD_KEYS.items() if m != self.method for k in keys}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=4)

    @property
    def model_name(self) -> str:
        """The bnnlib.models registry name of ``model_architecture``."""
        return ARCHITECTURES[self.model_architecture].model

    def model_kwargs(self) -> dict[str, Any]:
        """Arguments for ``create_model(self.model_name, ...)``: binary weights for BayesBiNN,
        identity-STE latent weights for STE."""
        arch = ARCHITECTURES[self.model_architecture]
        kwargs: dict[str, Any] = dict(
            num_classes=self.output_shape,
            weight_mode="binary" if self.method == "bayesbinn" else "latent",
            batch_affine=self.batch_affine,
            bn_momentum=self.momentum,
            bn_eps=self.eps,
        )
        kwargs["in_features" if arch.flat_input else "in_channels"] = self.input_shape
        if arch.dropout:
            kwargs["drop_prob"] = self.drop_prob
        return kwargs

    def train_set_size(self, n_train: int) -> int:
        """BayesBiNN's N for ``n_train`` training examples left after the validation split."""
        _at_least("n_train", n_train, 1)
        return n_train * self.trainset_scale

    def eval_samples(self) -> tuple[str, int]:
        """(kind, num) for ``eval_weight_samples``: evaluate_steps 0 is the mode network, C > 0
        averages the logits of C sampled networks (not their probabilities). STE evaluates its one
        network."""
        if self.method == "bayesbinn" and self.evaluate_steps:
            return "mean", self.evaluate_steps
        return "mode", 1

    def data_settings(self) -> dict[str, Any]:
        """What the data pipeline needs: dataset, batch size, validation split, augmentation."""
        return dict(
            dataset=self.dataset,
            batch_size=self.batch_size,
            validation_split=self.validation_split,
            data_augmentation=self.data_augmentation,
        )

    def epoch_lr(self, epoch: int) -> float:
        """Learning rate for 0-based ``epoch``: see :func:`cosine_epoch_lr`."""
        return cosine_epoch_lr(epoch, self.lr_init, self.lr_final, self.epochs)


def load_bayesbinn_config(path: str | Path, method: str | None = None) -> BayesBiNNConfig:
    """Read and validate a BayesBiNN/STE JSON run file."""
    text = read_config_text(path, "run file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"run file {path}: not valid JSON ({err})") from None
    try:
        return BayesBiNNConfig.from_dict(data, method=method)
    except (TypeError, ValueError) as err:
        raise type(err)(f"run file {path}: {err}") from None


def cosine_epoch_lr(epoch: int, lr_init: float, lr_final: float, epochs: int) -> float:
    """Cosine annealing from ``lr_init`` to ``lr_final`` over ``epochs``, changed once per epoch.

    The official code steps ``CosineAnnealingLR(T_max=epochs)`` at the *start* of every epoch, so
    0-based epoch e trains with alpha(e + 1): the first epoch already below ``lr_init``, the last at
    ``lr_final`` (the reproduction steps after the epoch instead, one epoch later)."""
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch < epochs:
        raise ValueError(f"epoch must be an int in [0, {epochs}), got {epoch!r}")
    k = epoch + 1
    return lr_final + (lr_init - lr_final) * (1 + math.cos(math.pi * k / epochs)) / 2


def _typed(key: str, value: Any) -> Any:
    """Check a raw JSON value's type; ints are accepted where floats are expected."""
    if key in _BOOL_KEYS:
        if not isinstance(value, bool):
            raise TypeError(f"config key {key!r} must be true or false, got {value!r}")
        return value
    if key in _STR_KEYS:
        if not isinstance(value, str):
            raise TypeError(f"config key {key!r} must be a string, got {value!r}")
        return value
    if isinstance(value, bool):
        raise TypeError(f"config key {key!r} must be a number, got {value!r}")
    if key in _INT_KEYS:
        if not isinstance(value, int):
            raise TypeError(f"config key {key!r} must be an integer, got {value!r}")
        return value
    if value is None and key in _OPTIONAL_FLOAT_KEYS:
        return None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(f"config key {key!r} must be a finite number, got {value!r}")
    return float(value)


def _resolve_method(values: dict[str, Any], method: str | None) -> str:
    if method is not None:
        _choice("method", method, METHODS)
        if values.get("method", method) != method:
            raise ValueError(
                f"method {method!r} was requested but the config says {values['method']!r}"
            )
        return method
    if "method" in values:
        return _choice("method", values["method"], METHODS)
    found = [m for m, keys in METHOD_KEYS.items() if any(k in values for k in keys)]
    if len(found) != 1:
        raise ValueError(
            "cannot tell the method from the keys ("
            + ("both BayesBiNN and STE keys" if found else "no BayesBiNN or STE key")
            + "); pass method='bayesbinn' or 'ste' or add a \"method\" key"
        )
    return found[0]


def _choice(key: str, value: Any, valid: tuple[str, ...]) -> str:
    if value not in valid:
        raise ValueError(f"unknown {key} {value!r}; choose one of {', '.join(valid)}")
    return value


def _at_least(key: str, value: int, low: int, why: str = "") -> None:
    if value < low:
        raise ValueError(f"{key} must be >= {low}{' ' + why if why else ''}, got {value!r}")


def _positive(key: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{key} must be > 0, got {value!r}")


def _in_range(key: str, value: float, low: float, high: float, high_closed: bool = False) -> None:
    ok = low <= value <= high if high_closed else low <= value < high
    if not ok:
        bracket = "]" if high_closed else ")"
        raise ValueError(f"{key} must be in [{low}, {high}{bracket}, got {value!r}")


def to_run_config(
    cfg: BayesBiNNConfig,
    *,
    dataset: str | None = None,
    seed: int = 0,
    device: str = "auto",
    profile: str | None = None,
):  # noqa: ANN201 - returns bnnlib.experiment.config.RunConfig (imported lazily)
    """The same run as a :class:`bnnlib.experiment.config.RunConfig`, so a JSON run file goes
    through the one trainer, the run-record cache and the sweeps like every other recipe.
    ``dataset`` replaces the file's (e.g. the offline ``cifar10-jpeg`` for ``cifar10``)."""
    from bnnlib.experiment.config import RunConfig

    name = dataset or cfg.dataset
    family = name.split("-")[0]
    if family != cfg.dataset:
        raise ValueError(f"dataset {name!r} does not hold the config's {cfg.dataset!r} images")
    if family == "mnist":
        preprocess = "mnist_standardize"
    else:
        preprocess = f"bayesbinn_{family}" + ("" if cfg.data_augmentation else "_plain")
    hparams: dict[str, Any] = {
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr_init,
        "lr_end": cfg.lr_final,
        "validation_split": cfg.validation_split,
        "trainset_scale": cfg.trainset_scale,
    }
    if cfg.method == "bayesbinn":
        kind, num = cfg.eval_samples()
        hparams |= {
            "temperature": cfg.temperature,
            "num_samples": cfg.mc_steps,
            "eval_kind": kind,
            "eval_samples": num if kind == "mean" else 0,
        }
    else:
        hparams.pop("trainset_scale")
        hparams |= {"weight_clip": cfg.weight_clip_value, "grad_clip": cfg.grad_clip_value}
    kwargs = cfg.model_kwargs()
    kwargs.pop("weight_mode")
    return RunConfig(
        model=cfg.model_name,
        dataset=name,
        hparams_set=cfg.method,
        hparams=hparams,
        model_kwargs=kwargs,
        preprocess_fn=preprocess,
        seed=seed,
        device=device,
        profile=profile,
    )
