"""Fully binary MLP for MNIST: the CPU-sized model on which Bop runs at full data size.

Designed here (no paper fixes it): BinaryNet-style binary weights *and* binary activations with a
Keras BN after every layer, so that a one-epoch Bop run on full MNIST is a real test of the
optimizer on a 2-core machine. Measured: 784-2048-2048-10, Bop tau 1e-8 / gamma 1e-4 (or
1e-6 / 1e-3), Adam 0.01 for the norms, batch 100, inputs x/127.5-1: 95-96 % test accuracy after
one epoch, about 1 min per epoch on one CPU core.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from ..layers import BinaryLinear
from ..norms import BatchNorm
from .registry import register_model, scaled_width


@register_model
def binary_mlp(
    num_classes: int = 10,
    weight_mode: str = "binary",
    width: float = 1.0,
    in_features: int = 784,
    hidden: Sequence[int] = (2048, 2048),
) -> nn.Sequential:
    """Binary MLP ``in_features``-``hidden``-``num_classes`` (hidden sizes times ``width``).

    Binary: every linear kernel (fc1..fcN), no biases. Activations: the real (flattened) pixels feed
    fc1; every later layer binarises its input with ste_sign. Each layer is followed by a Keras
    BN(momentum 0.99, eps 1e-3) with learned gamma and beta. The last BN's output is the logits;
    its gamma sets the softmax temperature, which +-1 weights cannot.
    """
    if not hidden:
        raise ValueError("hidden must list at least one hidden layer size")
    sizes = [in_features] + [scaled_width(h, width) for h in hidden] + [num_classes]
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    for i in range(1, len(sizes)):
        layers[f"fc{i}"] = BinaryLinear(
            sizes[i - 1],
            sizes[i],
            input_quantizer=None if i == 1 else "ste_sign",
            weight_mode=weight_mode,
        )
        layers[f"norm{i}"] = BatchNorm(sizes[i])
    return nn.Sequential(layers)
