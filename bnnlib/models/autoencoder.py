"""Denoising auto-encoders of the reproducibility study of Bop (Nayak et al.,
nancy-nayak/rethinking-bnn): binary and real.

Both map a noisy 32x32 image in [-1, 1] to its clean version in [-1, 1] (tanh output), through a
4x4x8 code: three 3x3 "same" convs with 2x2 max-pools, then three 3x3 "same" transposed convs with
nearest x2 up-sampling and a final transposed conv to the image channels.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ..layers import BinaryConv2d, BinaryConvTranspose2d
from ..norms import make_norm
from .registry import register_model, scaled_width

_ENCODER = (32, 16, 8)
_DECODER = (8, 16, 32)


@register_model
def binaryae(
    weight_mode: str = "binary",
    width: float = 1.0,
    norm_layer: str = "BatchNormalization",
    in_channels: int = 3,
) -> nn.Sequential:
    """Binary denoising AE ``binaryae`` (the reproducibility study's ``binary_ae.py``).

    Binary kernels: all seven layers (enc1..enc3 convs 32-16-8, dec1..dec3 transposed convs
    8-16-32 times ``width``, dec4 transposed conv to ``in_channels``). Inputs quantised with
    ste_sign everywhere except enc1 (the noisy image) and dec1 (the real code), as in larq's
    ``QuantConv2DTranspose`` without an input quantizer. Real biases on every layer but enc1. Each
    layer is followed by ``norm_layer`` with scale=False, then pool / up-sample, the last by tanh.
    """
    enc = [in_channels] + [scaled_width(c, width) for c in _ENCODER]
    dec = [enc[-1]] + [scaled_width(c, width) for c in _DECODER] + [in_channels]
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i in range(1, 4):
        layers[f"enc{i}"] = BinaryConv2d(
            enc[i - 1],
            enc[i],
            3,
            padding=1,
            bias=i > 1,
            input_quantizer=None if i == 1 else "ste_sign",
            weight_mode=weight_mode,
        )
        layers[f"enc{i}_norm"] = make_norm(norm_layer, enc[i], scale=False)
        layers[f"enc{i}_pool"] = nn.MaxPool2d(2)
    for i in range(1, 5):
        layers[f"dec{i}"] = BinaryConvTranspose2d(
            dec[i - 1],
            dec[i],
            3,
            padding=1,
            bias=True,
            input_quantizer=None if i == 1 else "ste_sign",
            weight_mode=weight_mode,
        )
        layers[f"dec{i}_norm"] = make_norm(norm_layer, dec[i], scale=False)
        if i < 4:
            layers[f"dec{i}_up"] = nn.Upsample(scale_factor=2, mode="nearest")
    layers["tanh"] = nn.Tanh()
    return nn.Sequential(layers)


def _glorot(layer: nn.Conv2d | nn.ConvTranspose2d) -> nn.Module:
    """Keras initialisation (glorot_uniform kernel, zero bias) instead of PyTorch's kaiming."""
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


@register_model
def autoencoder(
    weight_mode: str = "real",
    width: float = 1.0,
    norm_layer: str = "BatchNormalization",
    in_channels: int = 3,
) -> nn.Sequential:
    """Real-valued denoising AE ``autoencoder`` of the reproducibility study, the AE+Adam
    baseline.

    No binary layers: ``weight_mode`` exists so every model takes the same arguments, and only
    "real" is accepted. Every conv has a bias and applies ReLU *before* its ``norm_layer``
    (scale=False), as Keras ``Conv2D(activation="relu")`` does; the last transposed conv applies
    tanh and has no norm after it.
    """
    if weight_mode != "real":
        raise ValueError(
            f"autoencoder is real-valued and only accepts weight_mode 'real', got {weight_mode!r};"
            " use binaryae for binary weights"
        )
    enc = [in_channels] + [scaled_width(c, width) for c in _ENCODER]
    dec = [enc[-1]] + [scaled_width(c, width) for c in _DECODER] + [in_channels]
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i in range(1, 4):
        layers[f"enc{i}"] = _glorot(nn.Conv2d(enc[i - 1], enc[i], 3, padding=1))
        layers[f"enc{i}_relu"] = nn.ReLU()
        layers[f"enc{i}_norm"] = make_norm(norm_layer, enc[i], scale=False)
        layers[f"enc{i}_pool"] = nn.MaxPool2d(2)
    for i in range(1, 4):
        layers[f"dec{i}"] = _glorot(nn.ConvTranspose2d(dec[i - 1], dec[i], 3, padding=1))
        layers[f"dec{i}_relu"] = nn.ReLU()
        layers[f"dec{i}_norm"] = make_norm(norm_layer, dec[i], scale=False)
        layers[f"dec{i}_up"] = nn.Upsample(scale_factor=2, mode="nearest")
    layers["dec4"] = _glorot(nn.ConvTranspose2d(dec[3], dec[4], 3, padding=1))
    layers["tanh"] = nn.Tanh()
    return nn.Sequential(layers)
