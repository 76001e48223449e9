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
# # Quickstart: what τ and γ do in Bop
#
# Bop keeps an exponential moving average $m$ of each binary weight's gradient, with adaptivity
# rate $\gamma$, and flips the weight when $w\,m > \tau$. This page hands `bnnlib.optim.Bop`
# synthetic gradients, a small constant signal per weight buried in noise, and counts the
# fraction of weights it flips at each step (`track_flips=True`). The slider steps through the values of $\tau$ and $\gamma$ on
# a log grid; the drop-down switches the noise level.

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
import numpy as np
import pandas as pd
import torch

from bnnlib.optim import Bop
from bnnlib_book import charts as report

# %% tags=["parameters"]
profile = "cpu"
interactive = True
seed = 0
num_weights = 2000
steps = 3000
thresholds = [1.0e-8, 1.0e-7, 1.0e-6]
gammas = [1.0e-4, 1.0e-3, 1.0e-2]
noise_levels = {"low": 1.0e-6, "high": 1.0e-5}

# %%
report.use_renderer(interactive, number_figures=True)

# %% [markdown]
# Each weight $i$ sees gradients $g_t = s_i + \epsilon_t$: a fixed signal $s_i$ of standard
# deviation $10^{-6}$ and fresh noise $\epsilon_t$ of the chosen standard deviation. The frame
# below holds the flip fraction, averaged over windows of `steps // 30` steps, for every
# combination of $\tau$, $\gamma$ and noise.

# %%
gen = torch.Generator().manual_seed(seed)
signal = 1.0e-6 * torch.randn(num_weights, generator=gen)
window = steps // 30
rows = []
for noise_name, noise in noise_levels.items():
    gradients = signal + noise * torch.randn(steps, num_weights, generator=gen)
    for threshold in thresholds:
        for gamma in gammas:
            w = torch.where(torch.rand(num_weights, generator=gen) < 0.5, -1.0, 1.0)
            w.requires_grad_()
            opt = Bop([w], threshold=threshold, gamma=gamma, track_flips=True)
            flips = np.empty(steps)
            for t in range(steps):
                w.grad = gradients[t]
                opt.step()
                flips[t] = opt.flip_counts(reset=True)[0][1] / num_weights
            for start in range(0, steps, window):
                rows.append(
                    {
                        "noise": noise_name,
                        "threshold": threshold,
                        "gamma": gamma,
                        "step": start + window,
                        "flip_fraction": flips[start : start + window].mean(),
                    }
                )
frame = pd.DataFrame(rows)
frame.head()

# %% tags=["hide-input"]
report.curves_chart(
    frame,
    x="step",
    y="flip_fraction",
    sliders={"threshold": thresholds, "gamma": gammas},
    selects={"noise": list(noise_levels)},
    title="Fraction of weights flipped per step",
)

# %% [markdown]
# A larger $\gamma$ makes $m$ follow the noise, so weights keep flipping back and forth; a larger
# $\tau$ demands stronger evidence before a flip, so flipping stops sooner.

# %%
if interactive:
    from IPython.display import display

    from bnnlib_book import widgets

    display(
        widgets.curves_panel(
            frame,
            x="step",
            y="flip_fraction",
            sliders={"threshold": thresholds, "gamma": gammas},
            selects={"noise": list(noise_levels)},
        )
    )
