"""BinaryNet ("BVGG") for CIFAR-10, in the three variants the papers' released code trains with Bop.

One layer list, three normalisation/bias recipes:

- ``binarynet_batch``: the BinaryNet of Bop's code (plumerai/rethinking-bnn-optimization) and of
  Bop2ndOrder's (CuauSuarez/Bop2ndOrder): BN(scale=False), no biases.
- ``binarynet``: Bop2ndOrder's LayerNorm version (Suarez-Ramirez et al., 2021): Keras
  LayerNormalization() with gamma and beta after every layer, no biases.
- ``binaryvgg``: the model of the reproducibility study of Bop (nancy-nayak/rethinking-bnn): BN or
  LN with scale=False, biases on layers 2..9.

All nine weight layers are binary, the first and the last included (larq's name-based predicate
claims every Quant-layer kernel, up to larq 0.8); only the first layer's input stays real. Keras
flattens NHWC and PyTorch NCHW, so the dense weights are a permutation of Keras's: irrelevant when
training from scratch.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ..layers import BinaryConv2d, BinaryLinear
from ..norms import make_norm
from .registry import register_model, scaled_width


def _flattened_side(image_size: int) -> int:
    side = (image_size - 2) // 2 // 2 // 2  # valid 3x3 conv, then three 2x2 max-pools
    if side < 1:
        raise ValueError(f"image_size must be at least 16 for BinaryNet, got {image_size!r}")
    return side


def _binary_vgg(
    norm: str,
    scale: bool,
    bias: bool,
    num_classes: int,
    weight_mode: str,
    width: float,
    in_channels: int,
    image_size: int,
) -> nn.Sequential:
    """The shared layer list of Bop's BinaryNet (plumerai code); ``bias`` applies to layers 2..9
    (the first never has one)."""
    f = scaled_width(128, width)
    dense = scaled_width(1024, width)
    channels = [in_channels, f, f, 2 * f, 2 * f, 4 * f, 4 * f]
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i in range(1, 7):
        first = i == 1
        layers[f"conv{i}"] = BinaryConv2d(
            channels[i - 1],
            channels[i],
            3,
            padding=0 if first else 1,  # Keras "valid" on the first conv: 32x32 -> 30x30
            bias=bias and not first,
            input_quantizer=None if first else "ste_sign",
            weight_mode=weight_mode,
        )
        if i % 2 == 0:
            layers[f"pool{i // 2}"] = nn.MaxPool2d(2)  # the norm follows the pool, as in Keras
        layers[f"norm{i}"] = make_norm(norm, channels[i], scale=scale)
    layers["flatten"] = nn.Flatten()
    features = [4 * f * _flattened_side(image_size) ** 2, dense, dense, num_classes]
    for i in range(7, 10):
        layers[f"fc{i}"] = BinaryLinear(
            features[i - 7], features[i - 6], bias=bias, weight_mode=weight_mode
        )
        layers[f"norm{i}"] = make_norm(norm, features[i - 6], scale=scale)
    return nn.Sequential(layers)


@register_model
def binarynet_batch(
    num_classes: int = 10,
    weight_mode: str = "binary",
    width: float = 1.0,
    in_channels: int = 3,
    image_size: int = 32,
) -> nn.Sequential:
    """BinaryNet with Keras BN(scale=False, momentum 0.99, eps 1e-3), Bop's and Bop2ndOrder's
    ``binarynet_batch``.

    Binary: conv1..conv6 (128-128-256-256-512-512 filters times ``width``) and fc7..fc9
    (1024-1024-num_classes), all without bias. Real: the image fed to conv1, the norms' beta.
    Returns logits (the final norm's output): the released code's softmax lives in the
    cross-entropy loss.
    """
    return _binary_vgg(
        "batch", False, False, num_classes, weight_mode, width, in_channels, image_size
    )


@register_model
def binarynet(
    num_classes: int = 10,
    weight_mode: str = "binary",
    width: float = 1.0,
    in_channels: int = 3,
    image_size: int = 32,
) -> nn.Sequential:
    """Bop2ndOrder's BinaryNet with Keras LayerNormalization() (Suarez-Ramirez et al.,
    2021, ``binarynet``).

    Same binary layers as :func:`binarynet_batch`; every norm, the last included, is a per-position
    channel LayerNorm with learned gamma and beta (Keras defaults, eps 1e-3). Returns logits.
    """
    return _binary_vgg(
        "layer", True, False, num_classes, weight_mode, width, in_channels, image_size
    )


@register_model
def binaryvgg(
    num_classes: int = 10,
    weight_mode: str = "binary",
    width: float = 1.0,
    norm_layer: str = "BatchNormalization",
    in_channels: int = 3,
    image_size: int = 32,
) -> nn.Sequential:
    """The BinaryNet of the reproducibility study of Bop (Nayak et al.), its ``binaryvgg``.

    Same binary layers as :func:`binarynet_batch`, but conv2..fc9 carry a (real) bias, as larq's
    default ``use_bias=True`` gives, and the norm is ``norm_layer`` ("BatchNormalization" or
    "LayerNormalization") with ``scale=False`` for both kinds. Returns logits.
    """
    return _binary_vgg(
        norm_layer, False, True, num_classes, weight_mode, width, in_channels, image_size
    )
