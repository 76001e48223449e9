"""Binary Linear, Conv2d and ConvTranspose2d layers.

A binary layer has an *input quantizer* (applied to its activations) and a *weight mode*:

- ``"binary"``: the weight tensor itself holds +-1 and is used as it is in the forward pass. It has
  no latent real value, so it is trained by a flip optimizer (Bop, Bop2ndOrder) or written by
  BayesBiNN. Initialised as sgn+(glorot_uniform) so the first forward pass is already binary.
- ``"latent"``: the weight is a real latent tensor seen through ``kernel_quantizer`` (ste_sign by
  default) and trained by Adam/SGD with clipping (the STE baseline).
- ``"real"``: an ordinary float weight (first/last layers of some recipes).

Binary and latent weights are marked ``param.precision = 1`` (larq's convention) so that the
optimizer router and :func:`bnnlib.summary` can find them without knowing the model.

Switchable layers (:class:`SwitchableLinear`, :class:`SwitchableConv2d`) are ordinary float layers
whose weight can be switched, at any time, to its sign (``torch_sign``: no scale, no clipping, the
gradient straight through to the float weight). Layer-by-layer binarization
(:mod:`bnnlib.methods.layerwise`) switches them one by one; their input is never quantized. Their
weights are not marked 1-bit: the float weights are what the optimizer trains.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from bnnlib.quantizers import Quantizer, get_quantizer, sign_plus, torch_sign

WEIGHT_MODES = ("binary", "latent", "real")


class BinaryParameter(nn.Parameter):
    """A parameter marked 1-bit. The subclass survives ``deepcopy``; the instance attribute set in
    :meth:`_BinaryMixin._setup_binary` survives pickling, which rebuilds plain Parameters."""

    precision = 1


def is_binary(param: torch.Tensor) -> bool:
    """True for tensors marked 1-bit (larq's ``precision == 1`` predicate)."""
    return getattr(param, "precision", 32) == 1


def binary_parameters(module: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    """(name, parameter) for every 1-bit tensor of ``module``, in ``named_parameters`` order."""
    for name, p in module.named_parameters():
        if is_binary(p):
            yield name, p


class _BinaryMixin:
    weight: nn.Parameter

    def _setup_binary(
        self,
        input_quantizer: str | Quantizer | None,
        weight_mode: str,
        kernel_quantizer: str | Quantizer | None,
    ) -> None:
        if weight_mode not in WEIGHT_MODES:
            raise ValueError(
                f"unknown weight_mode {weight_mode!r}; choose one of {', '.join(WEIGHT_MODES)}"
            )
        self.input_quantizer = get_quantizer(input_quantizer)
        self.weight_mode = weight_mode
        self.kernel_quantizer = get_quantizer(kernel_quantizer) if weight_mode == "latent" else None
        self._input_quantizer_name = _name(input_quantizer)
        self._kernel_quantizer_name = _name(kernel_quantizer) if weight_mode == "latent" else None
        with torch.no_grad():
            nn.init.xavier_uniform_(self.weight)  # Keras glorot_uniform, as the Keras code uses
            if weight_mode == "binary":
                self.weight.copy_(sign_plus(self.weight))
        if weight_mode != "real":
            self.weight = BinaryParameter(self.weight.data)
            self.weight.precision = 1
        if getattr(self, "bias", None) is not None:
            nn.init.zeros_(self.bias)

    def quantized_input(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.input_quantizer is None else self.input_quantizer(x)

    def effective_weight(self) -> torch.Tensor:
        """The weight the forward pass uses: +-1 for binary and latent modes."""
        if self.kernel_quantizer is not None:
            return self.kernel_quantizer(self.weight)
        return self.weight

    def extra_repr(self) -> str:  # type: ignore[override]
        base = super().extra_repr()  # type: ignore[misc]
        extra = f"weight_mode={self.weight_mode}, input_quantizer={self._input_quantizer_name}"
        if self._kernel_quantizer_name:
            extra += f", kernel_quantizer={self._kernel_quantizer_name}"
        return f"{base}, {extra}"


def _name(q: str | Quantizer | None) -> str | None:
    if q is None or isinstance(q, str):
        return q
    return getattr(q, "__name__", type(q).__name__)


class BinaryLinear(_BinaryMixin, nn.Linear):
    """Linear layer with binarised input and binary (or latent) weights; no scaling factor."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = False,
        input_quantizer: str | Quantizer | None = "ste_sign",
        weight_mode: str = "binary",
        kernel_quantizer: str | Quantizer | None = "ste_sign",
    ) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self._setup_binary(input_quantizer, weight_mode, kernel_quantizer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.quantized_input(x), self.effective_weight(), self.bias)


class BinaryConv2d(_BinaryMixin, nn.Conv2d):
    """Conv2d with binarised input and binary (or latent) weights; no scaling factor."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int | str = 0,
        bias: bool = False,
        input_quantizer: str | Quantizer | None = "ste_sign",
        weight_mode: str = "binary",
        kernel_quantizer: str | Quantizer | None = "ste_sign",
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=bias)
        self._setup_binary(input_quantizer, weight_mode, kernel_quantizer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self.quantized_input(x), self.effective_weight(), self.bias)


class BinaryConvTranspose2d(_BinaryMixin, nn.ConvTranspose2d):
    """ConvTranspose2d with binarised input and binary (or latent) weights (the binary AE decoder)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = False,
        input_quantizer: str | Quantizer | None = "ste_sign",
        weight_mode: str = "binary",
        kernel_quantizer: str | Quantizer | None = "ste_sign",
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=bias)
        self._setup_binary(input_quantizer, weight_mode, kernel_quantizer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose2d(
            self.quantized_input(x),
            self.effective_weight(),
            self.bias,
            self.stride,
            self.padding,
            self.output_padding,
            self.groups,
            self.dilation,
        )


class _SwitchableMixin:
    """``binary`` says whether the forward pass uses sign(weight) or the weight itself. It is kept
    in the module's state_dict (as extra state), so a saved model evaluates the way it trained,
    and it is a Python bool, so the forward pass never waits on the device to read it."""

    weight: nn.Parameter
    binary: bool = False

    def used_weight(self) -> torch.Tensor:
        return torch_sign(self.weight) if self.binary else self.weight

    def get_extra_state(self) -> dict[str, bool]:
        return {"binary": self.binary}

    def set_extra_state(self, state: dict[str, bool]) -> None:
        if not isinstance(state, dict) or not isinstance(state.get("binary"), bool):
            raise ValueError(f"switchable layer state must be {{'binary': bool}}, got {state!r}")
        self.binary = state["binary"]

    def extra_repr(self) -> str:  # type: ignore[override]
        return f"{super().extra_repr()}, binary={self.binary}"  # type: ignore[misc]


class SwitchableLinear(_SwitchableMixin, nn.Linear):
    """nn.Linear (PyTorch's initialisation, bias by default) whose weight can be switched to its
    sign; the bias stays real."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.used_weight(), self.bias)


class SwitchableConv2d(_SwitchableMixin, nn.Conv2d):
    """nn.Conv2d whose weight can be switched to its sign; a bias, if any, stays real."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.used_weight(), self.bias)


Switchable = (SwitchableLinear, SwitchableConv2d)


def switchable_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, layer) of every switchable layer in ``named_modules`` order: the input-to-output
    order when a model registers its layers in the order its forward pass uses them."""
    return [(name, m) for name, m in module.named_modules() if isinstance(m, Switchable)]
