"""BayesBiNN and STE (Meng, Bachmann & Khan, 2020, and its reproduction by Garg & Singhal): the
chapter's experiments as run configs built from the reproduction's own JSON run files.

Every config starts from one of the reference code's run files, shipped in ``runfiles/`` (read with
:func:`bnnlib.experiment.runfile.load_bayesbinn_config` and translated with
:func:`~bnnlib.experiment.runfile.to_run_config`), so the chapter runs what the reproduction's scripts run;
a :class:`Scale` then shrinks it (subsets, width, epochs). Shrinking ``epochs`` shrinks the cosine
learning-rate schedule with it, because the schedule's length is the run's length.

The paper reports mean +- std over 5 seeds with the *population* std (ddof=0), so
:func:`bnnlib_book.bayesbinn.frames.seed_summary` does the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bnnlib.experiment.records import RunRecord
from bnnlib.experiment.runfile import METHODS, BayesBiNNConfig, load_bayesbinn_config, to_run_config

RUN_FILES = Path(__file__).resolve().parent / "runfiles"
# method label -> hparams set of its runs (the run files' two methods)
METHOD_SETS = dict(zip(("BayesBiNN", "STE"), METHODS, strict=True))
CLASSIFICATION_FILES = {
    "mnist": {"BayesBiNN": "mnist_bayesbinn.json", "STE": "mnist_ste.json"},
    "cifar10": {"BayesBiNN": "cifar10_bayesbinn.json", "STE": "cifar10_ste.json"},
    "cifar100": {"BayesBiNN": "cifar100_bayesbinn.json", "STE": "cifar100_ste.json"},
}
CONTINUAL_FILE = "permuted_mnist_cl_bayesbinn.json"


@dataclass(frozen=True)
class Scale:
    """How big a chapter's runs are. ``None`` keeps the run file's value (full set, its epochs)."""

    width: float = 1.0
    epochs: int | None = None
    train_subset: int | None = None
    test_subset: int | None = None
    profile: str | None = None
    # Train only this many epochs of the file's schedule (the paper's first epochs), instead of
    # compressing the whole schedule into a short run.
    stop_after_epochs: int | None = None


def seed_file(file: str) -> BayesBiNNConfig:
    """One of the reference code's JSON run files (package data), validated."""
    return load_bayesbinn_config(RUN_FILES / file)


def seed_file_config(
    file: str, scale: Scale, seed: int = 0, dataset: str | None = None, **hparams: Any
) -> dict[str, Any]:
    """A RunConfig dict for a seed-002 run file at ``scale`` (``dataset`` replaces the file's,
    e.g. an offline stand-in); ``hparams`` override the translated values last."""
    cfg = seed_file(file)
    run = to_run_config(cfg, dataset=dataset, seed=seed, profile=scale.profile).to_dict()
    sized = {
        "epochs": scale.epochs,
        "stop_after_epochs": scale.stop_after_epochs,
        "train_subset": scale.train_subset,
        "test_subset": scale.test_subset,
    }
    run["hparams"] |= {k: v for k, v in sized.items() if v is not None} | hparams
    run["model_kwargs"]["width"] = float(scale.width)
    return run


def classification_configs(
    family: str,
    scale: Scale,
    seeds: Sequence[int],
    methods: Sequence[str] = tuple(METHOD_SETS),
    dataset: str | None = None,
) -> list[dict[str, Any]]:
    """BayesBiNN and STE on ``family`` ("mnist", "cifar10", "cifar100"), one run per seed."""
    if family not in CLASSIFICATION_FILES:
        raise ValueError(
            f"unknown family {family!r}; choose from {', '.join(CLASSIFICATION_FILES)}"
        )
    for m in methods:
        if m not in METHOD_SETS:
            raise ValueError(f"unknown method {m!r}; choose from {', '.join(METHOD_SETS)}")
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    files = CLASSIFICATION_FILES[family]
    return [
        seed_file_config(files[m], scale, seed=s, dataset=dataset) for m in methods for s in seeds
    ]


def continual_config(
    scale: Scale, seed: int = 0, eval_samples: int | None = None
) -> dict[str, Any]:
    """The permuted-MNIST run file at ``scale``; ``eval_samples`` replaces its C = 100 sampled
    networks per test (the cost of continual learning is mostly this evaluation)."""
    extra = {} if eval_samples is None else {"eval_samples": eval_samples}
    return seed_file_config(CONTINUAL_FILE, scale, seed=seed, **extra)


def chapter_configs(p: Mapping[str, Any], profile: str | None) -> dict[str, list[dict[str, Any]]]:
    """Every config the chapter runs, from its notebook parameters ``p``: "mnist" (both methods,
    every seed), "temperature" (BayesBiNN, first seed, other temperatures), "probe" (the same
    BayesBiNN run at ``probe_temperature`` with each learning rate of ``probe_lrs``: does a
    temperature that does not learn learn with a larger step?), "cifar" and "continual" (one
    permuted-MNIST run file per seed of ``cl_seeds``). With ``keep_paper_schedule`` a run shorter
    than the run file trains the first epochs of the file's schedule (``stop_after_epochs``)
    instead of compressing it."""
    paper_epochs = seed_file(CLASSIFICATION_FILES["mnist"]["BayesBiNN"]).epochs

    def sized(width: float, epochs: int | None, train: int | None, test: int | None) -> Scale:
        stop = p["keep_paper_schedule"] and epochs is not None and epochs < paper_epochs
        return Scale(
            width, None if stop else epochs, train, test, profile, epochs if stop else None
        )

    scale = sized(p["width"], p["epochs"], p["train_subset"], p["test_subset"])
    t_scale = sized(
        p["temperature_width"], p["epochs"], p["temperature_train_subset"], p["test_subset"]
    )
    c_scale = sized(
        p["cifar_width"], p["cifar_epochs"], p["cifar_train_subset"], p["cifar_test_subset"]
    )
    bayesbinn_mnist = CLASSIFICATION_FILES["mnist"]["BayesBiNN"]
    cl_scale = Scale(1.0, p["cl_epochs"], p["cl_train_subset"], p["cl_test_subset"], profile)
    return {
        "mnist": classification_configs("mnist", scale, p["seeds"]),
        "temperature": [
            seed_file_config(bayesbinn_mnist, t_scale, seed=p["seeds"][0], temperature=t)
            for t in p["temperatures"]
        ],
        "probe": [
            seed_file_config(
                bayesbinn_mnist,
                t_scale,
                seed=p["seeds"][0],
                temperature=p["probe_temperature"],
                lr=lr,
            )
            for lr in p["probe_lrs"]
        ],
        "cifar": [
            c
            for family in p["cifar_datasets"]
            for c in classification_configs(
                family,
                c_scale,
                p["cifar_seeds"],
                dataset=p["cifar_substitute"] if family == "cifar10" else None,
            )
        ],
        "continual": [
            continual_config(cl_scale, seed, p["cl_eval_samples"]) for seed in p["cl_seeds"]
        ],
    }


def method_of_set(hparams_set: str) -> str:
    """The method label ("BayesBiNN" or "STE") of an hparams set."""
    by_set = {v: k for k, v in METHOD_SETS.items()}
    if hparams_set not in by_set:
        raise ValueError(f"hparams set {hparams_set!r} is not one of {', '.join(by_set)}")
    return by_set[hparams_set]


def method_of(record: RunRecord) -> str:
    """The method label ("BayesBiNN" or "STE") of a run record."""
    return method_of_set(record.config["hparams_set"])
