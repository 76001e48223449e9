"""The book's chapters by seed, and the claims each one judges: what the summary page tabulates.

A written chapter names the function that judges its claims from its run records
(:class:`bnnlib_book.grading.Chapter`); a chapter that is planned, or a result outside the book's
scope, lists its claims with the reason they are not run, so the summary never drops a claim.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bnnlib_book.bayesbinn.claims import bayesbinn_claims
from bnnlib_book.bop.claims import bop_ablation_claims, denoising_claims
from bnnlib_book.bop2.claims import ablations_claims, cifar_claims, imagenet_claims, variants_claims
from bnnlib_book.grading import (
    Chapter,
    Claim,
    Verdict,
    chapter_verdicts,
)
from bnnlib_book.iterative.claims import cifar_claims as iterative_cifar_claims
from bnnlib_book.iterative.claims import mnist_claims

SEEDS = {
    "000": "Bop and its reproducibility study",
    "001": "Bop2ndOrder",
    "002": "BayesBiNN and STE",
    "003": "BNEW",
    "004": "Iterative layer binarization",
}
OUTSIDE = (
    "outside this book: ImageNet has no offline copy, and the 500-epoch CIFAR-10 recipe of Bop "
    "is not one of the seeds' chapters"
)
PLANNED = "chapter planned, not yet in the book"


def _outside(seed: str, paper: str, prefixes: tuple[str, ...]) -> tuple[Claim, ...]:
    """Reported top-1 accuracies of ``paper`` whose settings start with ``prefixes`` (README
    values only), as claims outside this book."""
    from bnnlib_book.papers import reported

    return tuple(
        Claim(seed, "not in this book", f"{e.setting}: {e.shown} top-1", e.source, e.shown)
        for e in reported(paper)
        if e.tag == "README" and e.setting.startswith(prefixes) and "top-1" in e.metric
    )


_SEED000 = (
    Chapter(
        "000",
        "01_bop_ablation",
        "Bop: tau/gamma ablations, BatchNorm vs LayerNorm",
        evaluator=bop_ablation_claims,
    ),
    Chapter(
        "000",
        "02_denoising_ae",
        "Binary denoising autoencoder",
        evaluator=denoising_claims,
    ),
    Chapter(
        "000",
        "bop_paper",
        "Bop's own CIFAR-10 and ImageNet results",
        claims=_outside("000", "bop", ("CIFAR-10, BinaryNet, Bop recipe bop_sec52", "ImageNet")),
        why=OUTSIDE,
    ),
)

_SEED001 = (
    Chapter(
        "001",
        "03_bop2_variants",
        "Bop2ndOrder: biased and unbiased, BatchNorm and LayerNorm",
        evaluator=variants_claims,
    ),
    Chapter(
        "001",
        "04_bop2_ablations",
        "Bop2ndOrder: hyper-parameters and schedulers",
        evaluator=ablations_claims,
    ),
    Chapter(
        "001",
        "05_bop2_cifar_recipe",
        "Bop2ndOrder: the CIFAR-10 recipe",
        evaluator=cifar_claims,
    ),
    Chapter(
        "001",
        "imagenet",
        "Bop2ndOrder on ImageNet",
        claims=imagenet_claims(),
        why=OUTSIDE,
    ),
)

_SEED002 = (
    Chapter(
        "002",
        "06_bayesbinn",
        "BayesBiNN and the STE baseline: the first epochs against the authors' logs",
        evaluator=bayesbinn_claims,
    ),
)

_PLANNED = (
    Chapter(
        "003",
        "bnew",
        "BNEW: two-phase training with a concave regulariser",
        claims=(
            Claim(
                "003",
                "planned",
                "BNEW against STE, BMD and Bop on CIFAR-10 and CIFAR-100, with and without "
                "distillation; ReActNet-A on ImageNet",
                "seed 003 (spec 4e)",
                "not yet transcribed",
            ),
        ),
        why=PLANNED,
    ),
)

_SEED004 = (
    Chapter(
        "004",
        "07_iterative_mnist",
        "Iterative training: MLPs on MNIST at the released recipe",
        evaluator=mnist_claims,
    ),
    Chapter(
        "004",
        "08_iterative_cifar",
        "Iterative training: VGG-5/9 and ResNet-20 on CIFAR-10",
        evaluator=iterative_cifar_claims,
    ),
    Chapter(
        "004",
        "iterative_imagenet",
        "Iterative training: ResNet-21 on ImageNet",
        claims=(
            Claim(
                "004",
                "not in this book",
                "ResNet-21 on ImageNet: iterative (forward, ascend) against float and all-binary "
                "training",
                "Lan (2021), arXiv 2111.07046, abstract",
                "not available (result tables not transcribed)",
            ),
        ),
        why="ImageNet has no offline copy and bnnlib has no ImageNet loader yet",
    ),
)

CHAPTERS: tuple[Chapter, ...] = (*_SEED000, *_SEED001, *_SEED002, *_PLANNED, *_SEED004)


def book_verdicts(
    results_dirs: Mapping[str, str | Path], params: Mapping[str, Mapping[str, Any]]
) -> list[Verdict]:
    """Every chapter's verdicts in book order. For each written chapter, ``results_dirs`` names
    the folder of its run records and ``params`` its resolved notebook parameters (what its page
    ran with); planned chapters need neither."""
    names = {c.name for c in CHAPTERS}
    unknown = sorted((set(results_dirs) | set(params)) - names)
    if unknown:
        raise ValueError(f"unknown chapter {unknown[0]!r}; chapters: {', '.join(sorted(names))}")
    missing = [c.name for c in CHAPTERS if c.evaluator and c.name not in params]
    if missing:
        raise ValueError(f"chapter {missing[0]!r} needs its parameters to be graded")
    verdicts: list[Verdict] = []
    for chapter in CHAPTERS:
        verdicts.extend(
            chapter_verdicts(chapter, results_dirs.get(chapter.name), params.get(chapter.name, {}))
        )
    return verdicts
