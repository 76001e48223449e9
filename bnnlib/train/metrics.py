"""Metrics the trainer reports: top-k accuracy, PSNR in both peak conventions, binary fraction."""

from __future__ import annotations

import math

import torch
from torch import nn

from bnnlib.layers import binary_parameters

# The reproducibility study's Keras metric uses "max pixel" 1 on data in [-1, 1]; the conventional
# PSNR for that range uses the peak-to-peak value 2, which adds 20*log10(2) ~ 6.02 dB.
PEAK2_OFFSET_DB = 20 * math.log10(2.0)


def topk_correct(
    logits: torch.Tensor, target: torch.Tensor, ks: tuple[int, ...] = (1, 5)
) -> list[torch.Tensor]:
    """Number of samples whose target is among the top-k logits, for each k (on device, no sync)."""
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices
    hits = top.eq(target.unsqueeze(1))
    return [hits[:, : min(k, kmax)].any(dim=1).sum() for k in ks]


def psnr_peak1(mse: torch.Tensor) -> torch.Tensor:
    """10*log10(1/MSE): the reproducibility study's convention (max pixel 1 on [-1, 1] data)."""
    return -10.0 * torch.log10(mse)


def per_image_mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (output - target).pow(2).flatten(1).mean(dim=1)


def binary_fraction(model: nn.Module) -> float | None:
    """Fraction of 1-bit-marked weights that are exactly +-1 (1.0 for flip optimizers; below 1 for
    latent weights inside the clip range or BayesBiNN's relaxed weights). None without such weights."""
    exact = total = 0
    for _, p in binary_parameters(model):
        exact += int((p.detach().abs() == 1).sum())
        total += p.numel()
    return exact / total if total else None
