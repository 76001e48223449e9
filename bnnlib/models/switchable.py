"""Float networks whose conv/linear layers can each be switched to sign weights.

The networks of layer-by-layer binarization (Lan, 2021, "Iterative training: finding binary weight
deep neural networks with layer binarization", arXiv 2111.07046; its released code): ReLU
activations, real biases and BatchNorm, and every conv/linear layer a
:class:`~bnnlib.layers.SwitchableLinear` / :class:`~bnnlib.layers.SwitchableConv2d`. The layers
are registered in the order the forward pass uses them, so
:func:`bnnlib.layers.switchable_layers` lists them input to output (``L1`` first); a ResNet's
downsample convolution comes right after the conv2 of its block, as in torchvision.

The MLPs and VGGs end with a BatchNorm whose output is the logits (the released code's
LogSoftmax + NLL is cross-entropy on it); the ResNets end with a linear layer and no BatchNorm.
PyTorch's default initialisation everywhere but ResNet-21, which initialises as torchvision's
ResNet-18 (kaiming normal, fan out, for the convolutions).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import SwitchableConv2d, SwitchableLinear
from .registry import register_model


def _mlp(in_features: int, hidden: Sequence[int], num_classes: int) -> nn.Sequential:
    if not hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
        raise ValueError(f"hidden must list positive layer widths, got {list(hidden)!r}")
    sizes = [in_features, *hidden, num_classes]
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    for i in range(1, len(sizes)):
        layers[f"fc{i}"] = SwitchableLinear(sizes[i - 1], sizes[i])
        layers[f"bn{i}"] = nn.BatchNorm1d(sizes[i])
        if i < len(sizes) - 1:
            layers[f"relu{i}"] = nn.ReLU()
    return nn.Sequential(layers)


@register_model
def mlp300(
    num_classes: int = 10, in_features: int = 784, hidden: Sequence[int] = (300, 100)
) -> nn.Sequential:
    """MLP 784-300-100-10: Linear -> BN -> ReLU per hidden layer, Linear -> BN out.
    Weights 235,200 / 30,000 / 1,000."""
    return _mlp(in_features, hidden, num_classes)


@register_model
def mlp784(
    num_classes: int = 10, in_features: int = 784, hidden: Sequence[int] = (784, 784)
) -> nn.Sequential:
    """The released code's "784" MLP: hidden widths 784 and 784 (784-784-784-10; its README
    titles the section 784-100-10). ``hidden=(784, 100)`` builds that title's network."""
    return _mlp(in_features, hidden, num_classes)


def _vgg(
    plan: Sequence[int | str], in_channels: int, image_size: int, num_classes: int
) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    channels, side, conv, pool = in_channels, image_size, 0, 0
    for item in plan:
        if item == "M":
            pool += 1
            layers[f"pool{pool}"] = nn.MaxPool2d(2)
            side //= 2
            continue
        conv += 1
        layers[f"conv{conv}"] = SwitchableConv2d(channels, int(item), 3, padding=1)
        layers[f"bn{conv}"] = nn.BatchNorm2d(int(item))
        layers[f"relu{conv}"] = nn.ReLU()
        channels = int(item)
    if side < 1:
        raise ValueError(f"image_size={image_size} is too small for {pool} max-pools")
    layers["flatten"] = nn.Flatten()
    sizes = [channels * side * side, 256, 256, num_classes]
    for i in range(1, 4):
        layers[f"fc{i}"] = SwitchableLinear(sizes[i - 1], sizes[i])
        layers[f"fc_bn{i}"] = nn.BatchNorm1d(sizes[i])
        if i < 3:
            layers[f"fc_relu{i}"] = nn.ReLU()
    return nn.Sequential(layers)


@register_model
def vgg5(num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> nn.Sequential:
    """VGG-5: conv 64, conv 64, max-pool, FC 256, FC 256, FC 10 (4,300,992 switchable weights)."""
    return _vgg((64, 64, "M"), in_channels, image_size, num_classes)


@register_model
def vgg9(num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> nn.Sequential:
    """VGG-9: [conv 64 x2, pool], [conv 128 x2, pool], [conv 256 x2, pool], FC 256, FC 256, FC 10
    (2,261,184 switchable weights)."""
    plan = (64, 64, "M", 128, 128, "M", 256, 256, "M")
    return _vgg(plan, in_channels, image_size, num_classes)


class _ShortcutA(nn.Module):
    """He et al.'s CIFAR option A: subsample by 2 and zero-pad the new channels (no weights)."""

    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus the shortcut, -> ReLU."""

    def __init__(self, inputs: int, planes: int, stride: int, shortcut: str) -> None:
        super().__init__()
        self.conv1 = SwitchableConv2d(inputs, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = SwitchableConv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or inputs != planes:
            if shortcut == "A":
                self.downsample = _ShortcutA((planes - inputs) // 2)
            else:
                self.downsample = nn.Sequential(
                    SwitchableConv2d(inputs, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.downsample(x))


class ResNet(nn.Module):
    """A ResNet of BasicBlocks: CIFAR's 3x3 stem (option-A shortcuts) or ImageNet's 7x7 stem and
    max-pool (1x1 downsample convolutions); global average pool and a linear classifier."""

    def __init__(
        self,
        stages: Sequence[int],
        blocks: int,
        num_classes: int,
        in_channels: int,
        imagenet: bool,
    ) -> None:
        super().__init__()
        first = stages[0]
        if imagenet:
            self.conv1 = SwitchableConv2d(in_channels, first, 7, 2, 3, bias=False)
        else:
            self.conv1 = SwitchableConv2d(in_channels, first, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(first)
        self.pool: nn.Module = nn.MaxPool2d(3, 2, 1) if imagenet else nn.Identity()
        shortcut = "B" if imagenet else "A"
        inputs, groups = first, []
        for i, planes in enumerate(stages):
            stride = 1 if i == 0 else 2
            layer = [BasicBlock(inputs, planes, stride, shortcut)]
            layer += [BasicBlock(planes, planes, 1, shortcut) for _ in range(blocks - 1)]
            groups.append(nn.Sequential(*layer))
            inputs = planes
        self.layer1, self.layer2, self.layer3 = groups[:3]
        self.layer4 = groups[3] if len(groups) > 3 else nn.Identity()
        self.fc = SwitchableLinear(inputs, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


@register_model
def resnet20(num_classes: int = 10, in_channels: int = 3) -> ResNet:
    """ResNet-20 for CIFAR (He et al., 2016): 16/32/64 channels, 3 blocks per stage, option-A
    shortcuts; 268,336 switchable weights (19 convolutions and the classifier)."""
    return ResNet((16, 32, 64), 3, num_classes, in_channels, imagenet=False)


@register_model
def resnet21(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet-21: torchvision's ResNet-18 layout with its three downsample convolutions counted
    (1 stem + 16 block convolutions + 3 downsample + 1 classifier = 21 switchable layers,
    11,678,912 weights); convolutions initialised kaiming normal (fan out), BN weight 1, bias 0."""
    model = ResNet((64, 128, 256, 512), 2, num_classes, in_channels, imagenet=True)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model
