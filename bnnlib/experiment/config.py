"""The typed run configuration: one value names everything a run depends on.

A :class:`RunConfig` is what a YAML config, a sweep grid, Python code and the CLI all produce. It is
validated in full by :meth:`RunConfig.resolve` before any data is read or any file is written, and
its :meth:`key` (a hash of the resolved values) names the run record, so a changed value is a new
run and an unchanged one is found in the cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from bnnlib.experiment import PROFILES
from bnnlib.experiment.hparams import get_hparams, validate_hparams

# Model kwargs the released code passes through --hparams (the reproducibility study of Bop:
# norm_layer="BatchNormalization").
MODEL_HPARAM_KEYS = ("norm_layer", "width")
DENOISING_MODELS = ("autoencoder", "binaryae")
DEFAULT_PREPROCESS = {
    "mnist": "pm1",
    "autoencoder": "AE",
    "binaryae": "AE",
    # BayesBiNN's models come with the reference's normalisation (team-approx-bayes/BayesBiNN).
    "mlp_binaryconnect": "mnist_standardize",
    "mlp_cl_h100": "mnist_standardize",
    "mlp300": "mnist_standardize",
    "mlp784": "mnist_standardize",
    "vgg5": "iterative_cifar10",
    "vgg9": "iterative_cifar10",
    "resnet20": "iterative_cifar10",
}


def default_preprocess(model: str, dataset: str) -> str:
    """The released code's preprocessing for a model and dataset when none is named."""
    family = dataset.split("-")[0]  # cifar10-jpeg is CIFAR-10 for preprocessing
    if model == "vgg_binaryconnect" and family in ("cifar10", "cifar100"):
        return f"bayesbinn_{family}"
    return DEFAULT_PREPROCESS.get(model, DEFAULT_PREPROCESS.get(family, "resize_and_flip"))


@dataclass
class RunConfig:
    """What to train: model, data, the named hparams set and its overrides, seed."""

    model: str
    dataset: str
    hparams_set: str = "default"
    hparams: dict[str, Any] = field(default_factory=dict)
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    preprocess_fn: str | None = None
    seed: int = 0
    device: str = "auto"
    profile: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(
                f"unknown run config key {unknown[0]!r}; valid keys: {', '.join(sorted(names))}"
            )
        missing = [k for k in ("model", "dataset") if k not in d]
        if missing:
            raise ValueError(f"run config is missing {missing[0]!r}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def resolve(self) -> ResolvedConfig:
        """Validate every field against the registries and expand the hparams set."""
        from bnnlib.data import dataset_info, get_preprocess
        from bnnlib.models import list_models

        _expect(self.model, str, "model")
        _expect(self.dataset, str, "dataset")
        _expect(self.seed, int, "seed")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"run config seed={self.seed}: must be an int in 0..{2**32 - 1}")
        if self.model not in list_models():
            raise ValueError(
                f"unknown model {self.model!r}; choose one of {', '.join(list_models())}"
            )
        dataset_info(self.dataset)
        if self.profile is not None and self.profile not in PROFILES:
            raise ValueError(
                f"unknown profile {self.profile!r}; choose one of {', '.join(PROFILES)}"
            )
        if self.device != "auto" and not _valid_device(self.device):
            raise ValueError(
                f"device {self.device!r} is not a torch device (cpu, cuda, cuda:0, mps, auto)"
            )
        hp = get_hparams(self.model, self.hparams_set)
        model_kwargs = dict(self.model_kwargs)
        for key, value in self.hparams.items():
            if key in MODEL_HPARAM_KEYS:
                model_kwargs[key] = value
            elif key == "opt_param":
                hp |= _opt_param(value)
            elif key not in hp and key not in _OPTIONAL_KEYS:
                from bnnlib.experiment.hparams import HPARAM_TYPES

                valid = sorted(set(HPARAM_TYPES) | set(MODEL_HPARAM_KEYS) | {"opt_param"})
                raise ValueError(f"unknown hparams key {key!r}; valid keys: {', '.join(valid)}")
            else:
                hp[key] = _coerce(key, value, hp.get(key))
        validate_hparams(hp)
        model_kwargs.setdefault("weight_mode", hp["weight_mode"])
        if hp["weight_mode"] == "real":
            model_kwargs.pop("weight_mode")
        preprocess = self.preprocess_fn or default_preprocess(self.model, self.dataset)
        get_preprocess(preprocess)
        task = "denoising" if self.model in DENOISING_MODELS else "classification"
        return ResolvedConfig(
            model=self.model,
            model_kwargs=model_kwargs,
            dataset=self.dataset,
            preprocess_fn=preprocess,
            hparams_set=self.hparams_set,
            hparams=hp,
            seed=self.seed,
            task=task,
            device=self.device,
            profile=self.profile,
        )

    def key(self) -> str:
        return self.resolve().key()


# Keys a set may leave out but a user may add (schedules and bookkeeping).
_OPTIONAL_KEYS = {
    "epochs_decay",
    "poly_epochs",
    "threshold_decay",
    "gamma_decay",
    "sigma_decay",
    "lr_decay",
    "threshold_end",
    "gamma_end",
    "sigma_end",
    "lr_end",
    "sigma",
    "float_lr",
    "temperature",
    "num_samples",
    "grad_momentum",
    "trainset_scale",
    "stop_after_epochs",
    "max_loss",
    "validation_tail",
    "sensitivity_runs",
}


@dataclass(frozen=True)
class ResolvedConfig:
    """A validated run: every hyper-parameter explicit. Its :meth:`key` names the run record."""

    model: str
    model_kwargs: dict[str, Any]
    dataset: str
    preprocess_fn: str
    hparams_set: str
    hparams: dict[str, Any]
    seed: int
    task: str
    device: str = "auto"
    profile: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """The fields that change results. The device and profile label are not among them, so a
        run recorded on one machine serves every profile that asks for the same values."""
        d = self.to_dict()
        d.pop("device")
        d.pop("profile")
        return d

    def key(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, default=repr)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _expect(value: Any, typ: type, name: str) -> None:
    if not isinstance(value, typ) or isinstance(value, bool):
        raise TypeError(f"run config {name}={value!r}: expected {typ.__name__}")


def _valid_device(device: str) -> bool:
    import torch

    try:
        torch.device(device)
    except (RuntimeError, TypeError):
        return False
    return True


def _coerce(key: str, value: Any, current: Any) -> Any:
    """Accept ints where the set holds floats (``threshold=0``); keep everything else as given."""
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _opt_param(value: Any) -> dict[str, Any]:
    """The reproducibility study's ``opt_param="{'threshold':5e-7, 'gamma':1e-4}"``, parsed
    without eval."""
    import ast

    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise ValueError(
                f"opt_param={value!r} is not a dict literal like {{'threshold': 1e-8}}"
            ) from None
    if not isinstance(value, dict):
        raise TypeError(f"opt_param must be a dict, got {type(value).__name__}")
    allowed = {"threshold", "gamma", "sigma"}
    for k in value:
        if k not in allowed:
            raise ValueError(
                f"unknown opt_param key {k!r}; valid keys: {', '.join(sorted(allowed))}"
            )
    return {k: float(v) for k, v in value.items()}
