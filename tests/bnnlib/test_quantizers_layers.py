"""Quantizer gradients and binary layer semantics (bnnlib.quantizers, bnnlib.layers)."""

from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.nn.functional as F

from bnnlib.layers import (
    BinaryConv2d,
    BinaryConvTranspose2d,
    BinaryLinear,
    binary_parameters,
    is_binary,
)
from bnnlib.quantizers import approx_sign, get_quantizer, identity_sign, sign_plus, ste_sign

X = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.25, 1.0, 1.5])
SIGNS = torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0])


def _grad(fn, x: torch.Tensor, upstream: torch.Tensor | None = None) -> torch.Tensor:
    x = x.clone().requires_grad_()
    y = fn(x)
    y.backward(torch.ones_like(y) if upstream is None else upstream)
    return x.grad


def test_sign_plus_maps_both_zeros_to_plus_one() -> None:
    assert torch.equal(sign_plus(X), SIGNS)
    assert sign_plus(torch.tensor([0.0]))[0] == 1.0
    assert sign_plus(torch.tensor([-0.0]))[0] == 1.0
    assert sign_plus(torch.tensor([1.0], dtype=torch.float64)).dtype == torch.float64


def test_sign_plus_has_no_gradient() -> None:
    assert not sign_plus(X.clone().requires_grad_()).requires_grad


@pytest.mark.parametrize("quantizer", [ste_sign, approx_sign, identity_sign])
def test_quantizers_forward_is_sign_plus(quantizer) -> None:
    assert torch.equal(quantizer(X), SIGNS)
    assert quantizer(torch.tensor([-0.0]))[0] == 1.0


def test_ste_sign_gradient_mask_is_inclusive_at_one() -> None:
    upstream = torch.arange(1.0, 8.0)
    expected = upstream * torch.tensor([0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    assert torch.equal(_grad(ste_sign, X, upstream), expected)


def test_ste_sign_clip_value_moves_the_mask() -> None:
    grad = _grad(lambda x: ste_sign(x, clip_value=0.5), X)
    assert torch.equal(grad, torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]))


def test_approx_sign_gradient_is_two_minus_two_abs_x() -> None:
    # 2 - 2|x| on |x| <= 1: x = -0.5 -> 1, 0 -> 2, 0.25 -> 1.5, +-1 -> 0; zero outside
    assert torch.allclose(_grad(approx_sign, X), torch.tensor([0.0, 0.0, 1.0, 2.0, 1.5, 0.0, 0.0]))


def test_identity_sign_passes_gradient_unchanged() -> None:
    upstream = torch.linspace(-3, 3, len(X))
    assert torch.equal(_grad(identity_sign, X, upstream), upstream)


def test_get_quantizer_resolves_names_and_rejects_unknown() -> None:
    assert get_quantizer("ste_sign") is ste_sign
    assert get_quantizer(None) is None
    assert get_quantizer(approx_sign) is approx_sign
    with pytest.raises(ValueError, match="ste_sign"):
        get_quantizer("stesign")


def test_binary_init_is_plus_minus_one() -> None:
    torch.manual_seed(0)
    for layer in (BinaryConv2d(8, 16, 3), BinaryLinear(64, 32), BinaryConvTranspose2d(8, 4, 3)):
        w = layer.weight.detach()
        assert set(w.unique().tolist()) == {-1.0, 1.0}
        assert is_binary(layer.weight)


def test_binary_conv_forward_equals_conv2d_with_sign_weights() -> None:
    torch.manual_seed(0)
    layer = BinaryConv2d(3, 5, 3, padding=1)
    x = torch.randn(2, 3, 8, 8)
    expected = F.conv2d(sign_plus(x), layer.weight.detach(), padding=1)
    assert torch.equal(layer(x), expected)


def test_first_layer_conv_keeps_real_input() -> None:
    torch.manual_seed(0)
    layer = BinaryConv2d(3, 5, 3, input_quantizer=None)
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(layer(x), F.conv2d(x, layer.weight.detach()), atol=1e-6)


def test_latent_conv_forward_uses_sign_of_latent_weight() -> None:
    torch.manual_seed(0)
    layer = BinaryConv2d(3, 5, 3, weight_mode="latent")
    w = layer.weight.detach()
    assert not torch.equal(w.abs(), torch.ones_like(w))  # a real latent, not +-1
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(layer(x), F.conv2d(sign_plus(x), sign_plus(w)))


def test_binary_linear_and_transpose_forward() -> None:
    torch.manual_seed(0)
    lin = BinaryLinear(6, 4, bias=True)
    with torch.no_grad():
        lin.bias.copy_(torch.randn(4))
    x = torch.randn(3, 6)
    expected = F.linear(sign_plus(x), lin.weight.detach(), lin.bias.detach())
    assert torch.allclose(lin(x), expected)
    tconv = BinaryConvTranspose2d(4, 2, 3, padding=1)
    z = torch.randn(2, 4, 5, 5)
    assert torch.equal(tconv(z), F.conv_transpose2d(sign_plus(z), tconv.weight.detach(), padding=1))


def test_latent_weight_gradient_is_ste_through_kernel_quantizer() -> None:
    torch.manual_seed(0)
    layer = BinaryLinear(4, 3, weight_mode="latent")
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.5, -0.2, 0.7, -1.0]] * 3))
    x = torch.randn(5, 4)
    upstream = torch.randn(5, 3)
    layer(x).backward(upstream)
    w_eff = sign_plus(layer.weight.detach()).requires_grad_()
    F.linear(sign_plus(x), w_eff).backward(upstream)
    mask = (layer.weight.detach().abs() <= 1).float()
    assert mask[0].tolist() == [0.0, 1.0, 1.0, 1.0]
    assert torch.allclose(layer.weight.grad, w_eff.grad * mask)


def test_binary_weight_gradient_is_not_masked() -> None:
    torch.manual_seed(0)
    layer = BinaryLinear(4, 3)
    x = torch.randn(5, 4)
    upstream = torch.randn(5, 3)
    layer(x).backward(upstream)
    assert torch.allclose(layer.weight.grad, upstream.T @ sign_plus(x))


def test_input_gradient_is_masked_by_ste() -> None:
    layer = BinaryLinear(3, 2)
    x = torch.tensor([[0.5, -1.5, 1.0]], requires_grad=True)
    layer(x).sum().backward()
    assert x.grad[0, 1] == 0.0
    assert torch.allclose(x.grad[0, [0, 2]], layer.weight.detach().sum(0)[[0, 2]])


def test_real_mode_is_not_binary_and_bias_never_is() -> None:
    real = BinaryConv2d(3, 4, 3, weight_mode="real", input_quantizer=None)
    assert not is_binary(real.weight)
    assert real.weight.detach().abs().max() < 1  # glorot_uniform, not +-1
    layer = BinaryConv2d(3, 4, 3, bias=True)
    assert [name for name, _ in binary_parameters(layer)] == ["weight"]
    assert not is_binary(layer.bias)


def test_binary_flag_survives_deepcopy_and_save_load() -> None:
    layer = BinaryLinear(4, 3)
    assert is_binary(copy.deepcopy(layer).weight)
    buffer = io.BytesIO()
    torch.save(layer, buffer)
    buffer.seek(0)
    assert is_binary(torch.load(buffer, weights_only=False).weight)


def test_unknown_weight_mode_raises() -> None:
    with pytest.raises(ValueError, match="latent"):
        BinaryLinear(4, 3, weight_mode="ternary")
