"""Sign quantizers and their straight-through gradients.

Every quantizer but one maps to {-1, +1} with the sgn+ convention (0 -> +1, also -0.0), as larq's
``larq.math.sign`` does; they differ only in the gradient they pass back. ``torch_sign`` keeps
torch's sign(0) = 0, which layer-by-layer binarization's weights use (a latent weight that is
exactly 0 gives a 0 weight). One place defines them so that layers, optimizers and tests agree on
the sign of zero.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Quantizer = Callable[[torch.Tensor], torch.Tensor]


def sign_plus(x: torch.Tensor) -> torch.Tensor:
    """sgn+(x): +1 where x >= 0 (including -0.0), -1 elsewhere, in x's dtype. No gradient."""
    one = torch.ones((), dtype=x.dtype, device=x.device)
    return torch.where(x >= 0, one, -one)


class _SteSign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, clip: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.clip = clip
        return sign_plus(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= ctx.clip).to(grad.dtype), None


class _ApproxSign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return sign_plus(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        a = x.abs()
        return grad * torch.where(a <= 1, 2 - 2 * a, torch.zeros_like(a))


class _IdentitySign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return sign_plus(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


class _TorchSign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return torch.sign(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


def ste_sign(x: torch.Tensor, clip_value: float = 1.0) -> torch.Tensor:
    """sgn+ forward; gradient passed where |x| <= clip_value (inclusive, as larq), zero elsewhere."""
    return _SteSign.apply(x, clip_value)


def approx_sign(x: torch.Tensor) -> torch.Tensor:
    """sgn+ forward; Bi-Real Net's piecewise-polynomial gradient (2 - 2|x|) on |x| <= 1."""
    return _ApproxSign.apply(x)


def identity_sign(x: torch.Tensor) -> torch.Tensor:
    """sgn+ forward; the gradient passes unchanged (BayesBiNN's and BNEW's STE baselines)."""
    return _IdentitySign.apply(x)


def torch_sign(x: torch.Tensor) -> torch.Tensor:
    """torch.sign forward (0 -> 0, so {-1, 0, +1}); the gradient passes unchanged. No clipping and
    no scale: the weights of layer-by-layer binarization, where a BatchNorm follows every layer."""
    return _TorchSign.apply(x)


QUANTIZERS: dict[str, Quantizer] = {
    "ste_sign": ste_sign,
    "approx_sign": approx_sign,
    "identity_sign": identity_sign,
    "sign_plus": sign_plus,
    "torch_sign": torch_sign,
}


def get_quantizer(name: str | Quantizer | None) -> Quantizer | None:
    """Resolve a quantizer by name (None stays None: the input is used as it is)."""
    if name is None or callable(name):
        return name
    try:
        return QUANTIZERS[name]
    except KeyError:
        raise ValueError(
            f"unknown quantizer {name!r}; choose one of {', '.join(sorted(QUANTIZERS))}"
        ) from None
