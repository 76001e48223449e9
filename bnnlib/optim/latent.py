"""The latent-weight baseline: Adam on real latent weights that a sign quantizer binarises.

The straight-through estimator trains a real "latent" weight whose sign is used in the forward
pass. Keeping the latent weights in [-c, c] (larq's ``weight_clip`` constraint, BNEW's clip
before each forward) stops them from drifting so far that no gradient can flip them back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Adam

from ._contract import checked_params, unhooked
from ._flip import check_hyper


def _real(value: Any) -> Any:
    """A one-element tensor hyper-parameter (torch allows tensor lr and betas) as a number."""
    return value.item() if isinstance(value, torch.Tensor) and value.numel() == 1 else value


class ClippedAdam(Adam):
    """torch's Adam (foreach) with optional gradient clipping by value before the update and
    weight clamping to [-weight_clip, weight_clip] after it.

    Weights are also clamped when a param group is added, so the first forward pass already sees
    clipped latents: training then matches "clip before every forward pass" (BNEW) as well as
    "clip after every update" (larq's constraint). ``weight_clip=None`` disables the clamp, and
    each param group may override ``weight_clip`` and ``grad_clip``.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_clip: float | None = 1.0,
        grad_clip: float | None = None,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, foreach=True)
        # Adam's constructor fixes its own defaults; ours are added to every group here.
        for group in self.param_groups:
            group.setdefault("weight_clip", weight_clip)
            group.setdefault("grad_clip", grad_clip)
            self._check_group(group)
        self.defaults.update(weight_clip=weight_clip, grad_clip=grad_clip)
        for group in self.param_groups:
            self._clamp_weights(group)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Validate the group (Adam's hyper-parameters and the clips, with the defaults filled in;
        floating-point tensors given once) before torch appends it, then clamp its weights."""
        constructed = "weight_clip" in self.defaults  # not during Adam's constructor
        checked_params(param_group, type(self).__name__)
        if constructed:
            self._check_group({**self.defaults, **param_group})
        super().add_param_group(param_group)
        if constructed:
            self._clamp_weights(self.param_groups[-1])

    @staticmethod
    def _check_group(group: dict[str, Any]) -> None:
        for name in ("lr", "eps", "weight_decay"):
            check_hyper(name, _real(group[name]), 0.0, low_open=False, high=None)
        betas = group["betas"]
        if not (len(betas) == 2 and all(0.0 <= _real(b) < 1.0 for b in betas)):
            raise ValueError(f"invalid betas={betas!r}: each beta must be in [0, 1)")
        for name in ("weight_clip", "grad_clip"):
            if group[name] is not None:
                check_hyper(name, group[name], 0.0, low_open=True, high=None)

    @staticmethod
    @torch.no_grad()
    def _clamp_weights(group: dict[str, Any]) -> None:
        clip = group["weight_clip"]
        if clip is not None and group["params"]:
            torch._foreach_clamp_min_(group["params"], -clip)
            torch._foreach_clamp_max_(group["params"], clip)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            clip = group["grad_clip"]
            grads = [p.grad for p in group["params"] if p.grad is not None]
            if clip is not None and grads:
                torch._foreach_clamp_min_(grads, -clip)
                torch._foreach_clamp_max_(grads, clip)
        # Adam's update as a part of this step: calling super().step() would run torch's step
        # hooks a second time once any plain Adam has wrapped Adam.step with them.
        unhooked(Adam.step)(self)
        for group in self.param_groups:
            self._clamp_weights(group)
        return loss
