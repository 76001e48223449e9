"""Hyper-parameter schedules (Keras semantics) and the scheduler that applies them.

The recipes schedule more than the learning rate: Bop's gamma and threshold, Bop2ndOrder's
sigma, BNEW's lambda. A schedule here is a picklable value object mapping the *pre-step*
counter (0 on the first optimizer step, as Keras evaluates a ``LearningRateSchedule`` at
``optimizer.iterations`` before incrementing it) to a value; :class:`HyperparameterScheduler`
writes those values into any param-group key.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch.optim import Optimizer

# The param-group keys a recipe may put on a schedule (``<key>_decay`` / ``<key>_end``); the
# trainer records each of them per epoch, with the other recorded keys of RECORDED_KEYS.
SCHEDULED_KEYS: tuple[str, ...] = ("lr", "threshold", "gamma", "sigma")
# What the trainer records per epoch: the scheduled keys and BayesBiNN's (constant) temperature.
RECORDED_KEYS: tuple[str, ...] = (*SCHEDULED_KEYS, "temperature")


def _check_step(step: int) -> None:
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


class Schedule(ABC):
    """Base of the schedules: ``value(step)``, also callable as ``schedule(step)``."""

    @abstractmethod
    def value(self, step: int) -> float:
        """The value at the pre-step counter ``step`` (>= 0)."""

    def __call__(self, step: int) -> float:
        _check_step(step)
        return self.value(step)


@dataclass(frozen=True)
class Constant(Schedule):
    """The same value at every step."""

    initial: float

    def value(self, step: int) -> float:
        return self.initial


@dataclass(frozen=True)
class ExponentialDecay(Schedule):
    """Keras ``ExponentialDecay``: initial * decay_rate ** (step / decay_steps), with the
    exponent floored when ``staircase`` (Bop's and Bop2ndOrder's "x0.1 every 100 epochs")."""

    initial: float
    decay_steps: int
    decay_rate: float
    staircase: bool = True

    def __post_init__(self) -> None:
        _check_positive("decay_steps", self.decay_steps)
        _check_positive("decay_rate", self.decay_rate)

    def value(self, step: int) -> float:
        exponent = step // self.decay_steps if self.staircase else step / self.decay_steps
        return self.initial * self.decay_rate**exponent


@dataclass(frozen=True)
class PolynomialDecay(Schedule):
    """Keras ``PolynomialDecay`` (no cycle): (initial - end) * (1 - s/D) ** power + end with
    s = min(step, D). It holds ``end`` after D steps and increases when end > initial
    (Bop2ndOrder's sigma and ImageNet threshold schedules do)."""

    initial: float
    decay_steps: int
    end: float
    power: float = 1.0

    def __post_init__(self) -> None:
        _check_positive("decay_steps", self.decay_steps)

    def value(self, step: int) -> float:
        fraction = min(step, self.decay_steps) / self.decay_steps
        return (self.initial - self.end) * (1 - fraction) ** self.power + self.end


@dataclass(frozen=True)
class CosineDecay(Schedule):
    """torch ``CosineAnnealingLR`` in closed form, end + (initial - end)(1 + cos(pi s/D))/2,
    held at ``end`` after D steps (where torch's closed form would rise again)."""

    initial: float
    decay_steps: int
    end: float = 0.0

    def __post_init__(self) -> None:
        _check_positive("decay_steps", self.decay_steps)

    def value(self, step: int) -> float:
        fraction = min(step, self.decay_steps) / self.decay_steps
        return self.end + (self.initial - self.end) * (1 + math.cos(math.pi * fraction)) / 2


@dataclass(frozen=True)
class LinearToZero(Schedule):
    """BNEW's per-iteration linear decay, initial * (1 - step / total_steps), with
    total_steps = epochs * iterations - 1 so that the last step uses 0; 0 afterwards."""

    initial: float
    total_steps: int

    def __post_init__(self) -> None:
        _check_positive("total_steps", self.total_steps)

    def value(self, step: int) -> float:
        return self.initial * max(0.0, 1 - step / self.total_steps)


@dataclass(frozen=True)
class MultiStep(Schedule):
    """torch ``MultiStepLR`` in closed form over an integer index (an epoch number when wrapped in
    :class:`PerEpoch`): initial * gamma ** (number of milestones <= index)."""

    initial: float
    milestones: tuple[int, ...]
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if list(self.milestones) != sorted(self.milestones) or any(
            isinstance(m, bool) or not isinstance(m, int) or m < 0 for m in self.milestones
        ):
            raise ValueError(f"milestones must be increasing ints >= 0, got {self.milestones!r}")
        _check_positive("gamma", self.gamma)

    def value(self, step: int) -> float:
        return self.initial * self.gamma ** sum(1 for m in self.milestones if m <= step)


@dataclass(frozen=True)
class PerEpoch(Schedule):
    """An epoch-indexed ``schedule`` held for each epoch of ``steps_per_epoch`` steps: 0-based
    epoch e uses ``schedule(e + offset)``. BayesBiNN's reference steps its per-epoch cosine at the
    start of every epoch, so its first epoch already uses the value of epoch 1 (offset 1)."""

    schedule: Schedule
    steps_per_epoch: int
    offset: int = 0

    def __post_init__(self) -> None:
        _check_positive("steps_per_epoch", self.steps_per_epoch)

    def value(self, step: int) -> float:
        return self.schedule(step // self.steps_per_epoch + self.offset)


class HyperparameterScheduler:
    """Drive param-group keys of an optimizer by schedules, with torch LRScheduler semantics.

    ``HyperparameterScheduler(optimizer, {"lr": sched, "gamma": sched2})`` sets
    ``group[key] = sched(step)`` in every group that has ``key``: at construction with step 0,
    and on each :meth:`step` call, which belongs *after* ``optimizer.step()``. A key that no
    group has is an error (a misspelt key would otherwise silently train with a constant).
    A schedule may be any callable ``int -> float``.
    """

    def __init__(
        self, optimizer: Optimizer, schedules: Mapping[str, Callable[[int], float]]
    ) -> None:
        if not schedules:
            raise ValueError("HyperparameterScheduler needs at least one schedule")
        available = sorted({k for g in optimizer.param_groups for k in g if k != "params"})
        for key, schedule in schedules.items():
            if not callable(schedule):
                raise TypeError(f"schedule for {key!r} is not callable: {schedule!r}")
            if not any(key in g for g in optimizer.param_groups):
                raise ValueError(
                    f"no param group has the key {key!r}; available keys: {', '.join(available)}"
                )
        self.optimizer = optimizer
        self.schedules = dict(schedules)
        self.last_step = 0
        self._apply()

    def _apply(self) -> None:
        for key, schedule in self.schedules.items():
            value = schedule(self.last_step)
            for group in self.optimizer.param_groups:
                if key in group:
                    group[key] = value

    def step(self) -> None:
        """Advance to the next optimizer step and write its values."""
        self.last_step += 1
        self._apply()

    def current(self) -> dict[str, float]:
        """The values the next optimizer step will use."""
        return {key: schedule(self.last_step) for key, schedule in self.schedules.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"last_step": self.last_step}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        self.last_step = int(state_dict["last_step"])
        self._apply()
