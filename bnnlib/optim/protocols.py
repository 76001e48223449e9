"""What a trainer may ask an optimizer, as runtime-checkable protocols.

- :class:`SubOptimizers`: an optimizer that steps others (:class:`~bnnlib.optim.Router`);
  :func:`sub_optimizers` lists them, or the optimizer itself for a plain one;
- :class:`FlipCounting`: a flip optimizer (Bop, Bop2ndOrder) that counts its flips per tensor;
- :class:`EvaluationNetworks`: an optimizer that writes the networks to evaluate into the model
  (BayesBiNN's mode network or sampled networks).

A trainer checks ``isinstance(opt, FlipCounting)`` instead of probing method names.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch.optim import Optimizer


@runtime_checkable
class SubOptimizers(Protocol):
    def sub_optimizers(self) -> Sequence[Optimizer]:
        """The optimizers this one steps."""
        ...


@runtime_checkable
class FlipCounting(Protocol):
    track_flips: bool

    def flip_counts(self, reset: bool = False) -> list[tuple[torch.Tensor, int]]:
        """(parameter, flips since the last reset) for every parameter."""
        ...

    def reset_flip_counts(self) -> None: ...


@runtime_checkable
class EvaluationNetworks(Protocol):
    def eval_weight_samples(
        self, *, generator: torch.Generator | None = None, **options: Any
    ) -> Iterable[None]:
        """Write evaluation weights into the model, one network per iteration; ``generator`` is
        the evaluation's own noise, ``options`` the optimizer's choices (BayesBiNN: kind, num)."""
        ...


def sub_optimizers(optimizer: Optimizer) -> list[Optimizer]:
    """The optimizers ``optimizer`` steps (a Router's), or ``[optimizer]`` for a plain one."""
    if isinstance(optimizer, SubOptimizers):
        return list(optimizer.sub_optimizers())
    return [optimizer]


def counts_flips(optimizer: Optimizer) -> bool:
    """Whether ``optimizer`` is a flip optimizer that was built to count its flips."""
    return isinstance(optimizer, FlipCounting) and optimizer.track_flips
