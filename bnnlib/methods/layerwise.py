"""Layer-by-layer binarization: train float, switch one more layer to sign weights every E epochs.

Iterative training with layer binarization (Lan, 2021, arXiv 2111.07046, and its released code):
start from random float weights with the first layer of an order already binary, and before epoch
e (1-based) make layer k of the order binary when k - 1 <= floor((e - 1) / E). A layer once binary
stays binary; the latent float weights keep training through the straight-through sign (no
clipping, no scale: a BatchNorm follows every layer). The float and all-binary baselines are the
same recipe with no switch and with every layer binary from epoch 1.

Orders are lists of layer *names* (``fc1``, ``layer2.0.conv1``), never module indices. An order is
written as one of:

- ``forward`` (input to output), ``reverse``;
- ``random``: a permutation drawn from ``order_seed`` (the same for every run seed);
- ``ascend`` / ``descend``: layers sorted by a sensitivity score (see :func:`sensitivity_order`);
- digits, each a 1-based layer number (``132``: L1, L3, L2), or a comma list of numbers, ``L``
  numbers or names (``L5,L4,L1,L3,L2``). Layers not named are never binarized, so ``2`` is the
  sensitivity run of layer 2;
- ``none`` (the float baseline) and ``all`` (the all-binary baseline).

:class:`LayerBinarization` is the Trainer callback that applies the schedule at every epoch start
(so a resumed run, even in the middle of an epoch, has the same binary layers) and writes the
binary layers into each epoch's metrics. Switching a layer touches neither its weights nor the
optimizer's state. ``reset_latent_to_sign`` reproduces an evaluation quirk of the released
MNIST/CIFAR code: after each epoch's training, every switchable weight goes back to its value
before the epoch's last step, and the binary layers' latent weights become exactly their sign.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from bnnlib.layers import switchable_layers

NAMED_ORDERS = ("forward", "reverse", "random", "ascend", "descend")
BASELINES = ("none", "all")
# Mixed into the random order's seed, so it is not the stream of another seeded draw.
_ORDER_STREAM = 0x4C415952


def layer_names(model: nn.Module) -> list[str]:
    """The switchable layers of ``model``, input to output (ValueError when it has none)."""
    names = [name for name, _ in switchable_layers(model)]
    if not names:
        raise ValueError(
            f"{type(model).__name__} has no switchable layers to binarize; use a model built of "
            "SwitchableLinear/SwitchableConv2d (mlp300, mlp784, vgg5, vgg9, resnet20, resnet21)"
        )
    return names


def resolve_order(
    spec: str,
    layers: Sequence[str],
    *,
    order_seed: int = 0,
    scores: Mapping[str, float] | None = None,
) -> list[str]:
    """The layer names ``spec`` binarizes, first to last (module docstring for the forms).
    ``all`` is every layer (all binary from epoch 1 is the caller's schedule); ``none`` is [].
    ValueError naming the spec and the layers when it does not fit ``layers``."""
    layers = list(layers)
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"binarize_order must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    if spec == "none":
        return []
    if spec in ("all", "forward"):
        return layers
    if spec == "reverse":
        return layers[::-1]
    if spec == "random":
        rng = np.random.default_rng([_ORDER_STREAM, order_seed])
        return [layers[i] for i in rng.permutation(len(layers))]
    if spec in ("ascend", "descend"):
        if scores is None:
            raise ValueError(
                f"binarize_order={spec!r} sorts layers by their sensitivity runs; give "
                "sensitivity_runs (the run keys of one sensitivity run per layer)"
            )
        order = sensitivity_order(scores, layers)
        return order if spec == "ascend" else order[::-1]
    if re.fullmatch(r"[1-9]+", spec):
        if len(layers) > 9:
            raise ValueError(
                f"binarize_order={spec!r}: digit orders name layers 1-9, this model has "
                f"{len(layers)}; write a comma list such as L12,L3"
            )
        tokens = list(spec)
    else:
        tokens = [t.strip() for t in spec.split(",")]
    order = [_layer(token, layers, spec) for token in tokens]
    if len(set(order)) != len(order):
        raise ValueError(f"binarize_order={spec!r} names a layer twice")
    return order


def _layer(token: str, layers: list[str], spec: str) -> str:
    number = token[1:] if token[:1] in ("L", "l") and token[1:].isdigit() else token
    if number.isdigit():
        k = int(number)
        if not 1 <= k <= len(layers):
            raise ValueError(
                f"binarize_order={spec!r}: layer {token} does not exist; this model has layers "
                f"1..{len(layers)} ({', '.join(layers)})"
            )
        return layers[k - 1]
    if token in layers:
        return token
    known = ", ".join([*NAMED_ORDERS, *BASELINES])
    raise ValueError(
        f"binarize_order={spec!r}: {token!r} is neither an order ({known}), a layer number "
        f"1..{len(layers)} nor a layer name ({', '.join(layers)})"
    )


def switch_epochs(
    order: Sequence[str], epochs_per_layer: int, *, all_binary: bool = False
) -> dict[str, int]:
    """Layer name -> the 1-based epoch it becomes binary: the k-th layer of ``order`` at epoch
    (k - 1) * E + 1; with ``all_binary`` every layer of ``order`` at epoch 1."""
    if isinstance(epochs_per_layer, bool) or not isinstance(epochs_per_layer, int):
        raise ValueError(f"epochs_per_layer must be an int >= 1, got {epochs_per_layer!r}")
    if epochs_per_layer < 1:
        raise ValueError(f"epochs_per_layer must be an int >= 1, got {epochs_per_layer!r}")
    return {name: 1 if all_binary else k * epochs_per_layer + 1 for k, name in enumerate(order)}


def binary_at(switches: Mapping[str, int], epoch: int) -> list[str]:
    """The layers that are binary during 1-based ``epoch``, in the order they turned binary."""
    return [name for name, first in switches.items() if first <= epoch]


def single_layer_order(number: int, layers: int) -> str:
    """The order that binarizes only layer ``number`` (1-based) of a model of ``layers`` layers:
    the digit the released scripts write (``2``) up to 9 layers, ``L12`` beyond (digit orders
    name layers 1-9 only, so ``12`` would be layers 1 and 2)."""
    if not 1 <= number <= layers:
        raise ValueError(f"layer {number} does not exist; the model has layers 1..{layers}")
    return str(number) if layers <= 9 else f"L{number}"


def sensitivity_score(history: Sequence[Mapping[str, Any]]) -> tuple[str, float]:
    """(the one binary layer, the score) of a sensitivity run's per-epoch history: the best
    validation accuracy (test accuracy without a validation split). ValueError when the history
    is not that of a run with one and the same layer binary in every epoch."""
    layers = {tuple(h.get("binary_layers", ())) for h in history}
    if len(layers) != 1 or len(next(iter(layers))) != 1:
        raise ValueError(
            f"not a sensitivity run: its binary layers per epoch are {sorted(layers)}, a "
            "sensitivity run has the same single layer in every epoch"
        )
    metric = "val_acc" if "val_acc" in history[-1] else "test_acc"
    return next(iter(layers))[0], max(float(h[metric]) for h in history)


def sensitivity_order(scores: Mapping[str, float], layers: Sequence[str]) -> list[str]:
    """Layers sorted by ascending score (ties keep the input-to-output order). A score is the
    accuracy of the run with only that layer binary, so ``ascend`` binarizes the layer whose
    binarization hurts most first. (Whether the released ``ascend`` sorts by accuracy or by
    error is not stated in its code; its stored orders are explicit permutations.)"""
    missing = [name for name in layers if name not in scores]
    extra = [name for name in scores if name not in layers]
    if missing or extra:
        raise ValueError(
            f"sensitivity scores must cover each layer once: missing {missing}, unknown {extra}"
        )
    return sorted(layers, key=lambda name: (scores[name], layers.index(name)))


class LayerBinarization:
    """Trainer callback: the binary layers of every epoch, and the released evaluation quirk.

    ``switches`` maps layer names of ``model`` to the epoch each becomes binary (see
    :func:`switch_epochs`); layers not in it stay float. Epoch metrics gain ``binary_layers``."""

    def __init__(
        self,
        model: nn.Module,
        switches: Mapping[str, int],
        *,
        reset_latent_to_sign: bool = False,
    ) -> None:
        self.layers = dict(switchable_layers(model))
        unknown = [name for name in switches if name not in self.layers]
        if unknown:
            raise ValueError(
                f"no switchable layer {unknown[0]!r} in the model; it has {', '.join(self.layers)}"
            )
        self.switches = dict(switches)
        self.reset_latent_to_sign = reset_latent_to_sign
        self._before_step: dict[str, torch.Tensor] | None = None
        self._hooked: set[int] = set()

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        binary = set(binary_at(self.switches, epoch))
        for name, layer in self.layers.items():
            layer.binary = name in binary
        if self.reset_latent_to_sign and id(trainer.optimizer) not in self._hooked:
            trainer.optimizer.register_step_pre_hook(self._remember)
            self._hooked.add(id(trainer.optimizer))

    def _remember(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        with torch.no_grad():
            if self._before_step is None:
                self._before_step = {
                    name: layer.weight.detach().clone() for name, layer in self.layers.items()
                }
            else:
                for name, layer in self.layers.items():
                    self._before_step[name].copy_(layer.weight)

    def on_train_epoch_end(self, trainer: Any, epoch: int) -> None:
        """The released code's evaluation writes back the weights the epoch's last forward pass
        used: the float layers' values before the last step, the binary layers' signs of them."""
        if not self.reset_latent_to_sign or self._before_step is None:
            return
        with torch.no_grad():
            for name, layer in self.layers.items():
                before = self._before_step[name]
                layer.weight.copy_(torch.sign(before) if layer.binary else before)

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, Any]) -> None:
        metrics["binary_layers"] = [n for n in binary_at(self.switches, epoch) if n in self.layers]


def layerwise_callback(
    model: nn.Module, hparams: Mapping[str, Any], scores: Mapping[str, float] | None = None
) -> LayerBinarization:
    """The callback a resolved hparams set asks for (``binarize_order``, ``epochs_per_layer``,
    ``order_seed``, ``reset_latent_to_sign``); ``scores`` for ``ascend``/``descend``."""
    names = layer_names(model)
    spec = hparams["binarize_order"]
    order = resolve_order(spec, names, order_seed=hparams.get("order_seed", 0), scores=scores)
    switches = switch_epochs(order, hparams["epochs_per_layer"], all_binary=spec == "all")
    return LayerBinarization(
        model, switches, reset_latent_to_sign=hparams.get("reset_latent_to_sign", False)
    )
