"""Why one temperature learns and another does not: the scale s of BayesBiNN's first step.

The update multiplies the minibatch gradient by ``N * s`` with
``s = (1 - w^2 + 1e-10) / tau / (1 - mu^2 + 1e-10)`` (the reference code's formula, which
:class:`bnnlib.optim.BayesBiNN` keeps), ``w = tanh((lamda + delta) / tau)`` and ``mu = tanh(lamda)``.
At the initial posterior ``lamda = +-10`` a weight flips only once the steps have moved lamda by
about 10. This module evaluates s there, in float32 (what the runs use) and float64, so the page
can show how large a first step each temperature takes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

EPS = 1e-10  # the reference's constant in s
LAMDA_INIT = 10.0  # the reference's initial |lamda|


def first_step_scale(
    temperature: float,
    *,
    lamda_init: float = LAMDA_INIT,
    dtype: torch.dtype = torch.float32,
    size: int = 100_000,
    seed: int = 0,
) -> dict[str, float]:
    """s over ``size`` weights at ``lamda = lamda_init`` with fresh logistic noise (the sign of
    lamda does not matter): its median, its 99.9th percentile (the few weights the noise pulls
    off +-1 take the large steps) and the fraction of relaxed weights that are exactly +-1
    (``1 - w^2 == 0``, where only the constant 1e-10 keeps s from 0)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    generator = torch.Generator().manual_seed(seed)
    u = torch.rand(size, generator=generator, dtype=torch.float64).to(dtype)
    u = u.clamp(torch.finfo(dtype).tiny, 1 - torch.finfo(dtype).eps)
    delta = 0.5 * torch.log(u / (1 - u))
    lamda = torch.full((size,), lamda_init, dtype=dtype)
    w = torch.tanh((lamda + delta) / temperature)
    mu = torch.tanh(lamda)
    s = (1 - w**2 + EPS) / temperature / (1 - mu**2 + EPS)
    return {
        "saturated": float((1 - w**2 == 0).to(torch.float64).mean()),
        "median_s": float(s.median()),
        "p999_s": float(torch.quantile(s.to(torch.float64), 0.999)),
    }


def scale_rows(
    temperatures: Iterable[float], *, lr: float, train_size: int
) -> list[dict[str, Any]]:
    """One row per temperature and float type: the saturated fraction (%), s (median and 99.9th
    percentile) and the first step's factor on the gradient, ``lr * N * s`` (a weight's lamda
    moves by this times its gradient; it needs to move by about 10 to flip)."""
    rows = []
    for temperature in temperatures:
        for name, dtype in (("float32", torch.float32), ("float64", torch.float64)):
            scale = first_step_scale(float(temperature), dtype=dtype)
            rows.append(
                {
                    "temperature": float(temperature),
                    "float": name,
                    "saturated weights (%)": 100 * scale["saturated"],
                    "s, median": scale["median_s"],
                    "s, 99.9th percentile": scale["p999_s"],
                    "lr N s, median": lr * train_size * scale["median_s"],
                    "lr N s, 99.9th percentile": lr * train_size * scale["p999_s"],
                }
            )
    return rows
