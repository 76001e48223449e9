# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Results: every claim and its status
#
# This book reproduces five works on training binarized neural networks, chapter by chapter, from
# the authors' recipes (the introduction says what each chapter covers). This page opens it with
# what came out: per work, every claim the chapters test, where the paper makes it, the paper's
# value, the status our run records give it under the profile this book was built with, and the
# evidence, our numbers labelled with the runs' profile, data, images, epochs and hardware. The
# chapters grade their claims with the same rules on the same records, so their statuses and
# these agree. How each status is given is stated at the end of this page.

# %% tags=["hide-input"]
# Setup: in a fresh runtime (Colab) install bnnlib from the book's repository, fetch the
# book's files (params, run records) and report the device. Written from _config.yml by
# `bnnlib-book setup-cells` (template: bnnlib_book/setup_cell.py); do not edit it here.
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("bnnlib_book") is None:
    package = "bnnlib[book] @ git+https://github.com/bnnlib/bnnlib@main"
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", package])
    importlib.invalidate_caches()

from bnnlib_book.runtime import setup

runtime = setup(
    repository="https://github.com/bnnlib/bnnlib",
    branch="main",
)

# %% tags=["hide-input"]
import pandas as pd
from IPython.display import Markdown, display

from bnnlib_book.chapters import SEEDS, book_verdicts
from bnnlib_book.grading import STATUS_RULES, STATUSES, status_counts, verdict_frame
from bnnlib_book.runner import chapter_params

# %% tags=["parameters"]
profile = "cpu"
interactive = True
bop_ablation_dir = "runs/cpu/01_bop_ablation"
denoising_dir = "runs/cpu/02_denoising_ae"
variants_dir = "runs/cpu/03_bop2_variants"
ablations_dir = "runs/cpu/04_bop2_ablations"
cifar_dir = "runs/cpu/05_bop2_cifar_recipe"
bayesbinn_dir = "runs/cpu/06_bayesbinn"
iterative_mnist_dir = "runs/cpu/07_iterative_mnist"
iterative_cifar_dir = "runs/cpu/08_iterative_cifar"

# %% tags=["remove-input"]
results_dirs = {
    "01_bop_ablation": bop_ablation_dir,
    "02_denoising_ae": denoising_dir,
    "03_bop2_variants": variants_dir,
    "04_bop2_ablations": ablations_dir,
    "05_bop2_cifar_recipe": cifar_dir,
    "06_bayesbinn": bayesbinn_dir,
    "07_iterative_mnist": iterative_mnist_dir,
    "08_iterative_cifar": iterative_cifar_dir,
}
verdicts = book_verdicts(
    results_dirs, {name: chapter_params(name, profile) for name in results_dirs}
)
table = verdict_frame(verdicts)
counts = status_counts(verdicts)
display(
    Markdown(
        f"**Profile `{profile}`: {len(verdicts)} claims.** "
        + ", ".join(f"{n} {status}" for status, n in counts.items() if n)
        + "."
    )
)

# %% tags=["remove-input"]
by_seed = pd.crosstab(table["status"], table["seed"]).reindex(index=list(STATUSES), fill_value=0)
by_seed.columns = [f"{seed} {SEEDS[seed]}" for seed in by_seed.columns]
by_seed["all"] = by_seed.sum(axis=1)
by_seed.index.name = "status"
by_seed.columns.name = None
display(by_seed)

# %% [markdown]
# ## The claims, work by work
#
# `chapter` names the page that tests the claim ("not in this book" and "planned" for the
# others); `evidence` is what our records show, with the label of the runs.

# %% tags=["remove-input"]
COLOURS = {
    "reproduced": "#d9f2d9",
    "epoch-matched": "#e6f4ea",
    "consistent at reduced scale": "#fff3c4",
    "inconsistent at reduced scale": "#fbe3cf",
    "not reproduced": "#f8d4d4",
    "inconclusive (within the seed spread)": "#f1e6f6",
    "too few seeds to grade": "#f3f3e6",
    "not run at this profile": "#eeeeee",
    "no paper value to compare": "#e3ecf8",
}
uncoloured = [s for s in STATUSES if s not in COLOURS]
if uncoloured:
    raise ValueError(f"statuses without a colour: {uncoloured}")
for seed, claims in table.groupby("seed", sort=True):
    seed_counts = ", ".join(f"{n} {s}" for s, n in claims["status"].value_counts().items())
    display(Markdown(f"### {seed} {SEEDS[seed]}\n\n{len(claims)} claims: {seed_counts}."))
    display(
        claims.drop(columns=["seed"])
        .style.hide(axis="index")
        .map(lambda s: f"background-color: {COLOURS[s]}", subset=["status"])
        .set_properties(**{"text-align": "left", "vertical-align": "top"})
    )

# %% [markdown]
# ## How a status is given
#
# A claim's setting is its data set, model, training budget and metric; a smaller setting is
# labelled on every number it gives. The statuses, each with the rule that gives it (printed from
# `bnnlib_book.grading.STATUS_RULES`, the rules the graders apply):

# %% tags=["remove-input"]
display(Markdown("\n".join(f"- **{status}**: {STATUS_RULES[status]}" for status in STATUSES)))

# %% [markdown]
# Seed 003 (BNEW) has no chapter yet, and seed 004's ImageNet experiment is not in the book
# yet; each is listed by its headline experiment, not run at any profile. Seed 002's
# chapter runs the first epochs of the 500-epoch recipes: its curves are graded against the
# BayesBiNN authors' own per-epoch logs ("epoch-matched"), its 500-epoch numbers are not run.
