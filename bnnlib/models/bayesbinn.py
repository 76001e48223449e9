"""The networks of the BayesBiNN paper (Meng, Bachmann & Khan, 2020) and its reproduction (Garg &
Singhal).

Binary weights, real activations (no input quantizer), bias-free conv/linear layers, each followed
by a PyTorch BatchNorm without learnable parameters unless ``batch_affine`` (the paper's setting is
off: BayesBiNN would treat gains and biases as +-1 variables too). Layer order follows the
released code, not the paper's Tables 5 and 8: conv (-> max-pool) -> BN -> ReLU.

``weight_mode`` picks the training method with one architecture:

- ``"binary"``: BayesBiNN; the optimizer writes relaxed/sampled weights into the layers.
- ``"latent"``: the STE baseline; latent reals through the identity straight-through sign (no
  |w| <= 1 gating, as in the official code), initialised as the official STE models: linear
  U(-a, a) with a = sqrt(1.5 / (fan_in + fan_out)), conv PyTorch's default.
- ``"real"``: the full-precision baseline with PyTorch's default initialisation.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from torch import nn

from ..layers import BinaryConv2d, BinaryLinear
from .registry import register_model, scaled_width

STE_QUANTIZER = "identity_sign"


def _reference_init(layer: BinaryLinear | BinaryConv2d) -> None:
    """Initialise latent/real weights as the official code does (binary weights are never read
    before BayesBiNN overwrites them, so they keep the layer's own init)."""
    if layer.weight_mode == "binary":
        return
    if layer.weight_mode == "latent" and isinstance(layer, BinaryLinear):
        bound = math.sqrt(1.5 / (layer.in_features + layer.out_features))
        nn.init.uniform_(layer.weight, -bound, bound)
    else:
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5))  # nn.Linear/Conv2d default


def _linear(n_in: int, n_out: int, weight_mode: str) -> BinaryLinear:
    layer = BinaryLinear(
        n_in,
        n_out,
        bias=False,
        input_quantizer=None,
        weight_mode=weight_mode,
        kernel_quantizer=STE_QUANTIZER,
    )
    _reference_init(layer)
    return layer


def _conv(n_in: int, n_out: int, kernel_size: int, weight_mode: str) -> BinaryConv2d:
    layer = BinaryConv2d(
        n_in,
        n_out,
        kernel_size,
        padding=kernel_size // 2,
        bias=False,
        input_quantizer=None,
        weight_mode=weight_mode,
        kernel_quantizer=STE_QUANTIZER,
    )
    _reference_init(layer)
    return layer


def _mlp(
    widths: list[int],
    drop_prob: float,
    weight_mode: str,
    batch_affine: bool,
    bn_momentum: float,
    bn_eps: float,
) -> nn.Sequential:
    """flatten -> [dropout] -> (linear -> BN -> ReLU -> [dropout])* -> linear -> BN (logits)."""
    if not 0.0 <= drop_prob < 1.0:
        raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob!r}")
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    if drop_prob > 0:
        layers["drop0"] = nn.Dropout(drop_prob)
    last = len(widths) - 1
    for i in range(1, len(widths)):
        layers[f"fc{i}"] = _linear(widths[i - 1], widths[i], weight_mode)
        layers[f"bn{i}"] = nn.BatchNorm1d(
            widths[i], eps=bn_eps, momentum=bn_momentum, affine=batch_affine
        )
        if i < last:
            layers[f"relu{i}"] = nn.ReLU()
            if drop_prob > 0:
                layers[f"drop{i}"] = nn.Dropout(drop_prob)
    return nn.Sequential(layers)


@register_model
def mlp_binaryconnect(
    num_classes: int = 10,
    weight_mode: str = "binary",
    width: float = 1.0,
    in_features: int = 784,
    drop_prob: float = 0.2,
    batch_affine: bool = False,
    bn_momentum: float = 0.15,
    bn_eps: float = 1e-4,
) -> nn.Sequential:
    """BayesBiNN's MNIST MLP "MLPBinaryConnect" (the reproduction's "BinaryConnect").

    Binary: fc1..fc4 = 784-2048-2048-2048-num_classes (hidden widths times ``width``),
    10,014,720 weights at full width. Dropout ``drop_prob`` on the input and after each hidden
    ReLU; BN eps 1e-4, momentum 0.15 (PyTorch convention). Returns logits (the last BN's output).
    """
    hidden = scaled_width(2048, width)
    widths = [in_features, hidden, hidden, hidden, num_classes]
    return _mlp(widths, drop_prob, weight_mode, batch_affine, bn_momentum, bn_eps)


@register_model
def mlp_cl_h100(
    num_classes: int = 10,
    weight_mode: str = "binary",
    width: float = 1.0,
    in_features: int = 784,
    batch_affine: bool = False,
    bn_momentum: float = 0.15,
    bn_eps: float = 1e-4,
) -> nn.Sequential:
    """The continual-learning MLP of permuted MNIST (reference ``MLP_CL_h100``, the
    reproduction's ``SimpleBinaryConnect``): 784-100-100-num_classes binary, BN after each layer, no
    dropout."""
    hidden = scaled_width(100, width)
    widths = [in_features, hidden, hidden, num_classes]
    return _mlp(widths, 0.0, weight_mode, batch_affine, bn_momentum, bn_eps)


def _conv_trunk(
    layers: OrderedDict[str, nn.Module],
    channels: list[int],
    pool_after: set[int],
    kernel_size: int,
    weight_mode: str,
    batch_affine: bool,
    bn_momentum: float,
    bn_eps: float,
    pool_before_bn: bool,
) -> None:
    for i in range(1, len(channels)):
        layers[f"conv{i}"] = _conv(channels[i - 1], channels[i], kernel_size, weight_mode)
        bn = nn.BatchNorm2d(channels[i], eps=bn_eps, momentum=bn_momentum, affine=batch_affine)
        pool = nn.MaxPool2d(2, 2) if i in pool_after else None
        if pool is not None and pool_before_bn:
            layers[f"pool{i}"] = pool
        layers[f"bn{i}"] = bn
        if pool is not None and not pool_before_bn:
            layers[f"pool{i}"] = pool
        layers[f"relu{i}"] = nn.ReLU()


def _dense_head(
    layers: OrderedDict[str, nn.Module],
    widths: list[int],
    first_index: int,
    weight_mode: str,
    batch_affine: bool,
) -> None:
    """Linear -> BN1d (PyTorch defaults eps 1e-5, momentum 0.1, as the reference's FC BNs) -> ReLU,
    no ReLU after the last."""
    layers["flatten"] = nn.Flatten()
    for j in range(1, len(widths)):
        i = first_index + j - 1
        layers[f"fc{i}"] = _linear(widths[j - 1], widths[j], weight_mode)
        layers[f"bn{i}"] = nn.BatchNorm1d(widths[j], affine=batch_affine)
        if j < len(widths) - 1:
            layers[f"relu{i}"] = nn.ReLU()


@register_model
def vgg_binaryconnect(
    num_classes: int = 10,
    weight_mode: str = "binary",
    width: float = 1.0,
    in_channels: int = 3,
    batch_affine: bool = False,
    bn_momentum: float = 0.2,
    bn_eps: float = 1e-5,
) -> nn.Sequential:
    """BayesBiNN's CIFAR VGG "VGGBinaryConnect" for 32x32 inputs.

    Binary: conv1..conv6 3x3 (128-128-256-256-512-512 channels times ``width``), max-pool after
    conv2/4/6 *before* their BN; fc7..fc9 = 8192-1024-1024-num_classes (times ``width``).
    14,022,016 weights for 10 classes at full width. Conv BNs use ``bn_momentum``/``bn_eps``
    (0.2, 1e-5); FC BNs PyTorch's defaults. Returns logits.
    """
    c = [scaled_width(n, width) for n in (128, 128, 256, 256, 512, 512)]
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    _conv_trunk(
        layers,
        [in_channels, *c],
        {2, 4, 6},
        3,
        weight_mode,
        batch_affine,
        bn_momentum,
        bn_eps,
        pool_before_bn=True,
    )
    dense = scaled_width(1024, width)
    _dense_head(layers, [c[-1] * 4 * 4, dense, dense, num_classes], 7, weight_mode, batch_affine)
    return nn.Sequential(layers)


@register_model
def lrnet_small(
    num_classes: int = 10,
    weight_mode: str = "binary",
    width: float = 1.0,
    in_channels: int = 1,
    batch_affine: bool = False,
    bn_momentum: float = 0.2,
    bn_eps: float = 1e-5,
) -> nn.Sequential:
    """The LR-net comparison CNN for 28x28 MNIST (the reproduction's ``LRNetSmall``).

    Binary: conv1 5x5 32, conv2 5x5 64 (each -> max-pool -> BN -> ReLU), fc3 3136-512, fc4
    512-num_classes (times ``width``). Conv BNs ``bn_momentum``; FC BNs PyTorch's defaults.
    """
    c = [scaled_width(32, width), scaled_width(64, width)]
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    _conv_trunk(
        layers,
        [in_channels, *c],
        {1, 2},
        5,
        weight_mode,
        batch_affine,
        bn_momentum,
        bn_eps,
        pool_before_bn=True,
    )
    _dense_head(
        layers, [c[-1] * 7 * 7, scaled_width(512, width), num_classes], 3, weight_mode, batch_affine
    )
    return nn.Sequential(layers)


@register_model
def lrnet_big(
    num_classes: int = 10,
    weight_mode: str = "binary",
    width: float = 1.0,
    in_channels: int = 3,
    batch_affine: bool = False,
    bn_momentum: float = 0.2,
    bn_eps: float = 1e-5,
) -> nn.Sequential:
    """The LR-net comparison CNN for 32x32 CIFAR-10 (the reproduction's ``LRNetBig``).

    The VGGBinaryConnect trunk, but with the reproduction's order conv -> BN -> max-pool -> ReLU,
    then fc7 8192-1024 and fc8 1024-num_classes (times ``width``), each followed by a default BN1d.
    """
    c = [scaled_width(n, width) for n in (128, 128, 256, 256, 512, 512)]
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    _conv_trunk(
        layers,
        [in_channels, *c],
        {2, 4, 6},
        3,
        weight_mode,
        batch_affine,
        bn_momentum,
        bn_eps,
        pool_before_bn=False,
    )
    _dense_head(
        layers,
        [c[-1] * 4 * 4, scaled_width(1024, width), num_classes],
        7,
        weight_mode,
        batch_affine,
    )
    return nn.Sequential(layers)
