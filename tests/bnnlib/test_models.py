"""Model registry, Keras-faithful norms and the seeds' architectures (spec 1c, 2a, 2c, 3c)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bnnlib.layers import BinaryConv2d, BinaryConvTranspose2d, BinaryLinear, is_binary
from bnnlib.models import create_model, list_models, register_model, registry
from bnnlib.norms import BatchNorm, ChannelLayerNorm, make_norm
from bnnlib.quantizers import ste_sign

CIFAR = (2, 3, 32, 32)
MNIST = (2, 1, 28, 28)
CLASSIFIERS = ["binarynet", "binarynet_batch", "binaryvgg"]

# Binary kernels of BinaryNet, spec 1c: six 3x3 convs then three dense layers (4608 = 512*3*3).
BINARYNET_BINARY = (
    3 * 128 * 9
    + 128 * 128 * 9
    + 128 * 256 * 9
    + 256 * 256 * 9
    + 256 * 512 * 9
    + 512 * 512 * 9
    + 4608 * 1024
    + 1024 * 1024
    + 1024 * 10
)
# One beta per channel after each of the nine layers.
BINARYNET_CHANNELS = 128 + 128 + 256 + 256 + 512 + 512 + 1024 + 1024 + 10
# binaryvgg's biases on layers 2..9 (the first conv has none).
BINARYVGG_BIASES = 128 + 256 + 256 + 512 + 512 + 1024 + 1024 + 10
# Auto-encoder kernels (spec 2c): convs 3->32->16->8, transposed convs 8->8->16->32->3, all 3x3.
AE_KERNELS = (3 * 32 + 32 * 16 + 16 * 8 + 8 * 8 + 8 * 16 + 16 * 32 + 32 * 3) * 9
AE_BIASES_AFTER_FIRST = 16 + 8 + 8 + 16 + 32 + 3


def _binary_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if is_binary(p))


def _float_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if not is_binary(p))


def _binary_layers(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if is_binary(getattr(m, "weight", None))]


def _norms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (BatchNorm, ChannelLayerNorm))]


# ---------------------------------------------------------------- registry


def test_registry_lists_every_model() -> None:
    expected = {"binarynet", "binarynet_batch", "binaryvgg", "binaryae", "autoencoder"}
    assert expected | {"binary_mlp"} <= set(list_models())
    assert list_models() == sorted(list_models())


def test_unknown_model_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="binarynet_batch") as err:
        create_model("binarynett")
    assert "binarynett" in str(err.value)


def test_unknown_kwarg_is_a_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match="filters") as err:
        create_model("binarynet", filters=64)
    assert "width" in str(err.value)  # lists what is accepted


def test_register_by_decorator_and_duplicate_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_MODELS", registry._MODELS.copy())

    @register_model
    def tiny(num_classes: int = 3) -> nn.Module:
        return nn.Linear(2, num_classes)

    @register_model(name="tiny_named")
    def another(num_classes: int = 4) -> nn.Module:
        return nn.Linear(2, num_classes)

    assert create_model("tiny", num_classes=5).out_features == 5
    assert create_model("tiny_named").out_features == 4
    assert "tiny" in list_models()
    with pytest.raises(ValueError, match="tiny"):
        register_model(tiny)
    with pytest.raises(ValueError, match="binarynet"):

        @register_model(name="binarynet")
        def clash() -> nn.Module:
            return nn.Identity()


def test_width_must_be_positive() -> None:
    with pytest.raises(ValueError, match="width"):
        create_model("binarynet_batch", width=0)


# ---------------------------------------------------------------- norms


def test_batchnorm_scale_false_has_no_gamma() -> None:
    bn = BatchNorm(8, scale=False)
    assert bn.weight is None
    assert [n for n, _ in bn.named_parameters()] == ["bias"]
    assert [n for n, _ in BatchNorm(8).named_parameters()] == ["weight", "bias"]
    assert list(dict(BatchNorm(8, scale=False, center=False).named_parameters())) == []


def test_batchnorm_translates_keras_momentum_and_eps() -> None:
    bn = BatchNorm(4)
    assert bn.eps == 1e-3
    assert bn.momentum == pytest.approx(0.01)
    assert BatchNorm(4, momentum=0.9).momentum == pytest.approx(0.1)
    torch.manual_seed(0)
    x = torch.randn(16, 4, 3, 3) + 5.0
    bn(x)
    # Keras: moving = 0.99 * moving + 0.01 * batch, from moving_mean = 0
    assert torch.allclose(bn.running_mean, 0.01 * x.mean(dim=(0, 2, 3)))
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm(4, momentum=1.5)


@pytest.mark.parametrize("shape", [(16, 6), (8, 6, 5, 5)])
def test_batchnorm_matches_torch_batchnorm_with_gamma_one(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    ours = BatchNorm(6, scale=False)
    ref = (nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d)(6, eps=1e-3, momentum=0.01)
    with torch.no_grad():
        ours.bias.copy_(torch.randn(6))
        ref.bias.copy_(ours.bias)
    x = torch.randn(shape) * 3 + 1
    assert torch.allclose(ours(x), ref(x), atol=1e-5)
    assert torch.allclose(ours.running_var, ref.running_var)
    ours.eval()
    ref.eval()
    assert torch.allclose(ours(x), ref(x), atol=1e-5)


def test_channel_layernorm_matches_layernorm_on_nhwc() -> None:
    torch.manual_seed(0)
    ours = ChannelLayerNorm(6)
    ref = nn.LayerNorm(6, eps=1e-3)
    with torch.no_grad():
        ours.weight.copy_(torch.randn(6))
        ours.bias.copy_(torch.randn(6))
        ref.weight.copy_(ours.weight)
        ref.bias.copy_(ours.bias)
    x = torch.randn(3, 6, 4, 5) * 2 + 1
    expected = ref(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    assert torch.allclose(ours(x), expected, atol=1e-5)
    flat = torch.randn(4, 6)
    assert torch.allclose(ours(flat), ref(flat), atol=1e-5)


def test_channel_layernorm_normalises_each_position_separately() -> None:
    x = torch.randn(2, 8, 3, 3) * 4 + 2
    y = ChannelLayerNorm(8, scale=False, center=False)(x)
    assert torch.allclose(y.mean(dim=1), torch.zeros(2, 3, 3), atol=1e-5)
    # not normalised over (C, H, W): each position has unit variance over channels
    assert torch.allclose(y.var(dim=1, correction=0), torch.ones(2, 3, 3), atol=1e-3)


def test_channel_layernorm_scale_false_has_no_gamma() -> None:
    ln = ChannelLayerNorm(5, scale=False)
    assert ln.weight is None
    assert [n for n, _ in ln.named_parameters()] == ["bias"]
    with pytest.raises(ValueError, match="5"):
        ln(torch.randn(2, 4))


def test_make_norm_kinds() -> None:
    assert isinstance(make_norm("BatchNormalization", 4), BatchNorm)
    assert isinstance(make_norm("batch", 4), BatchNorm)
    assert isinstance(make_norm("LayerNormalization", 4), ChannelLayerNorm)
    assert isinstance(make_norm("layer", 4, scale=False), ChannelLayerNorm)
    assert make_norm("layer", 4).eps == 1e-3
    assert make_norm("batch", 4, momentum=0.8).momentum == pytest.approx(0.2)
    with pytest.raises(ValueError, match="LayerNormalization"):
        make_norm("GroupNormalization", 4)


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("name", CLASSIFIERS)
@pytest.mark.parametrize("weight_mode", ["binary", "latent"])
def test_classifier_outputs_logits(name: str, weight_mode: str) -> None:
    model = create_model(name, weight_mode=weight_mode, width=0.25)
    assert model(torch.randn(CIFAR)).shape == (2, 10)
    assert create_model(name, num_classes=7, width=0.125)(torch.randn(CIFAR)).shape == (2, 7)


def test_binarynet_on_mnist_shapes() -> None:
    model = create_model("binarynet_batch", width=0.125, in_channels=1, image_size=28)
    assert model(torch.randn(MNIST)).shape == (2, 10)


@pytest.mark.parametrize("name", ["binaryae", "autoencoder"])
def test_autoencoders_reconstruct_image_in_tanh_range(name: str) -> None:
    out = create_model(name)(torch.randn(CIFAR))
    assert out.shape == CIFAR
    assert out.abs().max() <= 1.0


def test_binary_mlp_on_mnist() -> None:
    assert create_model("binary_mlp", width=0.125)(torch.randn(MNIST)).shape == (2, 10)


def test_first_binarynet_conv_is_valid_and_norm_follows_pool() -> None:
    model = create_model("binarynet_batch")
    assert model.conv1(torch.randn(CIFAR)).shape == (2, 128, 30, 30)
    names = list(model._modules)
    for pool, norm in [("pool1", "norm2"), ("pool2", "norm4"), ("pool3", "norm6")]:
        assert names.index(norm) == names.index(pool) + 1
    assert model.fc7.in_features == 4608


# ---------------------------------------------------------------- binary layers and counts


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_binarynet_variants_are_fully_binary(name: str) -> None:
    model = create_model(name)
    assert len(_binary_layers(model)) == 9
    assert _binary_count(model) == BINARYNET_BINARY
    assert model.conv1.input_quantizer is None
    for layer in list(model.children())[1:]:
        if isinstance(layer, (BinaryConv2d, BinaryLinear)):
            assert layer.input_quantizer is ste_sign


def test_binarynet_batch_norms_and_biases() -> None:
    model = create_model("binarynet_batch")
    norms = _norms(model)
    assert len(norms) == 9
    assert all(isinstance(n, BatchNorm) and n.weight is None for n in norms)
    assert all(n.momentum == pytest.approx(0.01) and n.eps == 1e-3 for n in norms)
    assert _float_count(model) == BINARYNET_CHANNELS  # betas only, no biases


def test_binarynet_layernorm_learns_gamma_and_beta() -> None:
    model = create_model("binarynet")
    norms = _norms(model)
    assert len(norms) == 9
    assert all(isinstance(n, ChannelLayerNorm) and n.weight is not None for n in norms)
    assert _float_count(model) == 2 * BINARYNET_CHANNELS
    assert not list(model.buffers())


@pytest.mark.parametrize("norm_layer", ["BatchNormalization", "LayerNormalization"])
def test_binaryvgg_norm_scale_false_and_biases_after_first(norm_layer: str) -> None:
    model = create_model("binaryvgg", norm_layer=norm_layer)
    kind = BatchNorm if norm_layer == "BatchNormalization" else ChannelLayerNorm
    assert all(isinstance(n, kind) and n.weight is None for n in _norms(model))
    assert model.conv1.bias is None
    assert _float_count(model) == BINARYNET_CHANNELS + BINARYVGG_BIASES
    with pytest.raises(ValueError, match="BatchNormalization"):
        create_model("binaryvgg", norm_layer="GroupNorm")


def test_binaryae_follows_spec_table() -> None:
    model = create_model("binaryae")
    assert _binary_layers(model) == ["enc1", "enc2", "enc3", "dec1", "dec2", "dec3", "dec4"]
    assert _binary_count(model) == AE_KERNELS
    real_input = {"enc1", "dec1"}
    for name in _binary_layers(model):
        layer = getattr(model, name)
        assert (layer.input_quantizer is None) == (name in real_input)
        assert (layer.bias is None) == (name == "enc1")
    assert all(isinstance(getattr(model, f"dec{i}"), BinaryConvTranspose2d) for i in range(1, 5))
    norms = _norms(model)
    assert len(norms) == 7 and all(n.weight is None for n in norms)
    assert _float_count(model) == AE_BIASES_AFTER_FIRST + (32 + 16 + 8 + 8 + 16 + 32 + 3)
    assert all(m.mode == "nearest" for m in model.modules() if isinstance(m, nn.Upsample))
    assert list(model._modules)[-2:] == ["dec4_norm", "tanh"]
    encoder = nn.Sequential(*list(model.children())[:9])
    assert encoder(torch.randn(CIFAR)).shape == (2, 8, 4, 4)


def test_real_autoencoder_relu_before_norm_and_no_final_norm() -> None:
    model = create_model("autoencoder", norm_layer="LayerNormalization")
    assert _binary_count(model) == 0
    names = list(model._modules)
    for i in (1, 2, 3):
        for part in ("enc", "dec"):
            relu, norm = names.index(f"{part}{i}_relu"), names.index(f"{part}{i}_norm")
            assert norm == relu + 1 and relu == names.index(f"{part}{i}") + 1
    assert names[-2:] == ["dec4", "tanh"]
    assert len(_norms(model)) == 6 and all(isinstance(n, ChannelLayerNorm) for n in _norms(model))
    betas = 32 + 16 + 8 + 8 + 16 + 32
    assert _float_count(model) == AE_KERNELS + (32 + AE_BIASES_AFTER_FIRST) + betas
    with pytest.raises(ValueError, match="binaryae"):
        create_model("autoencoder", weight_mode="binary")


def test_binary_mlp_layers() -> None:
    model = create_model("binary_mlp")
    assert _binary_layers(model) == ["fc1", "fc2", "fc3"]
    assert _binary_count(model) == 784 * 2048 + 2048 * 2048 + 2048 * 10
    assert model.fc1.input_quantizer is None
    assert model.fc2.input_quantizer is ste_sign and model.fc3.input_quantizer is ste_sign
    custom = create_model("binary_mlp", hidden=(100, 50, 20), width=0.5)
    assert _binary_count(custom) == 784 * 50 + 50 * 25 + 25 * 10 + 10 * 10


def test_width_multiplier_scales_every_layer() -> None:
    model = create_model("binarynet_batch", width=0.25)  # 32 filters, 256 dense units
    expected = (
        3 * 32 * 9
        + 32 * 32 * 9
        + 32 * 64 * 9
        + 64 * 64 * 9
        + 64 * 128 * 9
        + 128 * 128 * 9
        + 128 * 3 * 3 * 256
        + 256 * 256
        + 256 * 10
    )
    assert _binary_count(model) == expected
    ae = create_model("binaryae", width=0.5)
    assert _binary_count(ae) == (3 * 16 + 16 * 8 + 8 * 4 + 4 * 4 + 4 * 8 + 8 * 16 + 16 * 3) * 9


@pytest.mark.parametrize("name", ["binarynet", "binaryae", "binary_mlp"])
def test_binary_weights_start_binary_and_receive_gradients(name: str) -> None:
    model = create_model(name, width=0.125)
    x = torch.randn(MNIST if name == "binary_mlp" else CIFAR)
    model(x).square().mean().backward()
    for p in filter(is_binary, model.parameters()):
        assert set(p.detach().unique().tolist()) <= {-1.0, 1.0}
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_latent_mode_keeps_real_latent_weights() -> None:
    model = create_model("binarynet_batch", weight_mode="latent", width=0.125)
    w = model.conv2.weight.detach()
    assert is_binary(model.conv2.weight)
    assert w.abs().max() < 1  # glorot latent, seen through ste_sign in the forward pass
