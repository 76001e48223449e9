"""Keras-faithful normalisation layers.

The Bop and Bop2ndOrder code builds its models in Keras, whose ``BatchNormalization`` and
``LayerNormalization`` differ from PyTorch's defaults in ways that change training: the momentum
convention is inverted (Keras 0.99 is PyTorch 0.01), eps is 1e-3 instead of 1e-5, ``scale=False``
removes gamma altogether, and ``LayerNormalization()`` on an NHWC map normalises over the channels
at each spatial position, not over (C, H, W). These modules reproduce those semantics on NCHW
tensors.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

NORM_KINDS = ("BatchNormalization", "LayerNormalization", "batch", "layer")


class BatchNorm(_BatchNorm):
    """Keras ``BatchNormalization(momentum, epsilon, scale, center)`` for (N, C) or (N, C, *) inputs.

    ``momentum`` is given in the Keras convention (weight of the *old* running statistic) and
    converted to PyTorch's (weight of the new batch statistic). With ``scale=False`` the module has
    no ``weight`` parameter at all, so a flip/float optimizer router never sees a frozen gamma; with
    ``center=False`` it has no ``bias``.
    """

    def __init__(
        self,
        num_features: int,
        momentum: float = 0.99,
        eps: float = 1e-3,
        scale: bool = True,
        center: bool = True,
    ) -> None:
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1] (Keras convention), got {momentum!r}")
        super().__init__(num_features, eps=eps, momentum=1.0 - momentum, affine=scale or center)
        self.keras_momentum = momentum
        self.scale = scale
        self.center = center
        if not scale:
            self.weight = None  # unregisters gamma: the parameter does not exist
        if not center:
            self.bias = None

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.weight is not None:
            nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(
                f"expected an (N, C) or (N, C, *) input, got shape {tuple(input.shape)}"
            )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, keras_momentum={self.keras_momentum}, eps={self.eps}, "
            f"scale={self.scale}, center={self.center}"
        )


class ChannelLayerNorm(nn.Module):
    """Keras ``LayerNormalization()`` (axis=-1 on NHWC) for (N, C) or (N, C, *) inputs.

    Normalises over dim 1 separately at every spatial position, with the biased variance and eps
    inside the square root as Keras does. Working on dim 1 avoids the NCHW -> NHWC permute copies.
    """

    def __init__(
        self, num_features: int, eps: float = 1e-3, scale: bool = True, center: bool = True
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.scale = scale
        self.center = center
        self.weight = nn.Parameter(torch.ones(num_features)) if scale else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if center else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[1] != self.num_features:
            raise ValueError(
                f"expected an (N, {self.num_features}, *) input, got shape {tuple(x.shape)}"
            )
        var, mean = torch.var_mean(x, dim=1, keepdim=True, correction=0)
        y = (x - mean) * torch.rsqrt(var + self.eps)
        shape = (1, self.num_features) + (1,) * (x.dim() - 2)
        if self.weight is not None:
            y = y * self.weight.view(shape)
        if self.bias is not None:
            y = y + self.bias.view(shape)
        return y

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, scale={self.scale}, center={self.center}"


def make_norm(
    kind: str,
    channels: int,
    scale: bool = True,
    center: bool = True,
    eps: float = 1e-3,
    momentum: float = 0.99,
) -> nn.Module:
    """Build the norm the released code names by its Keras class
    ("BatchNormalization"/"LayerNormalization", or "batch"/"layer"). ``momentum`` (Keras convention)
    only applies to batch norm, so a model can pass the same arguments whichever kind its
    ``norm_layer`` hyper-parameter selects."""
    if kind in ("BatchNormalization", "batch"):
        return BatchNorm(channels, momentum=momentum, eps=eps, scale=scale, center=center)
    if kind in ("LayerNormalization", "layer"):
        return ChannelLayerNorm(channels, eps=eps, scale=scale, center=center)
    raise ValueError(f"unknown norm kind {kind!r}; choose one of {', '.join(NORM_KINDS)}")
