"""What the trainer does differently per task: classification or denoising.

A :class:`Task` gives the per-batch metrics of training and of evaluation (as a :class:`Meter`
that sums over batches and summarises an epoch), how the outputs of several evaluated networks
are averaged, and what a finished run adds to its record. :func:`get_task` selects one by name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import torch

from bnnlib.train.metrics import PEAK2_OFFSET_DB, per_image_mse, psnr_peak1, topk_correct

# How evaluation averages several networks' outputs: their logits, or their softmax probabilities.
EVAL_AVERAGES = ("logits", "probs")

if TYPE_CHECKING:
    from bnnlib.train.trainer import Loader, Trainer


class Meter(ABC):
    """Sums a task's metrics over the batches of one epoch (on device, no synchronisation)."""

    @abstractmethod
    def update(self, x: torch.Tensor, out: torch.Tensor, y: torch.Tensor, n: int) -> None: ...

    @abstractmethod
    def summary(self, seen: int, prefix: str) -> dict[str, float]:
        """The epoch's metrics over ``seen`` (>= 1) samples, named ``{prefix}_...``."""

    def state_dict(self) -> dict[str, Any]:
        """The sums so far (tensors, lists of tensors and plain values), for a mid-epoch
        checkpoint; :meth:`load_state_dict` continues them exactly."""
        return {
            k: (v.clone() if torch.is_tensor(v) else [t.clone() for t in v])
            if torch.is_tensor(v) or (isinstance(v, list) and all(map(torch.is_tensor, v)))
            else v
            for k, v in vars(self).items()
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            own = getattr(self, k)
            if torch.is_tensor(own):
                own.copy_(v)
            elif isinstance(own, list) and all(map(torch.is_tensor, own)):
                for t, saved in zip(own, v, strict=True):
                    t.copy_(saved)
            else:
                setattr(self, k, v)


class Task(ABC):
    name: str

    @abstractmethod
    def train_meter(self, zero: torch.Tensor) -> Meter:
        """Metrics of the training batches; ``zero`` is a 0-d tensor on the trainer's device."""

    @abstractmethod
    def eval_meter(self, zero: torch.Tensor) -> Meter:
        """Metrics of an evaluation; ``x`` is passed to :meth:`Meter.update` too."""

    def network_output(self, out: torch.Tensor, eval_average: str) -> torch.Tensor:
        """One evaluated network's output, as it enters the average over networks."""
        return out

    def averaged_output(self, mean: torch.Tensor, eval_average: str) -> torch.Tensor:
        """The prediction from the mean of :meth:`network_output` over the networks."""
        return mean

    def run_extras(self, trainer: Trainer, test: Loader) -> dict[str, Any]:
        """What a finished run adds to its record besides the history."""
        return {}


class _Accuracy(Meter):
    def __init__(self, zero: torch.Tensor, ks: tuple[int, ...]) -> None:
        self.ks = ks
        self.correct = [zero.clone() for _ in ks]

    def update(self, x: torch.Tensor, out: torch.Tensor, y: torch.Tensor, n: int) -> None:
        for total, c in zip(self.correct, topk_correct(out, y, self.ks), strict=True):
            total += c

    def summary(self, seen: int, prefix: str) -> dict[str, float]:
        names = {1: "acc", 5: "top5"}
        return {
            f"{prefix}_{names[k]}": (c / seen).item()
            for k, c in zip(self.ks, self.correct, strict=True)
        }


class Classification(Task):
    """Top-1 accuracy while training, top-1 and top-5 in evaluation; with ``eval_average="probs"``
    the networks' softmax probabilities are averaged and the log of the mean returned."""

    name = "classification"

    def train_meter(self, zero: torch.Tensor) -> Meter:
        return _Accuracy(zero, (1,))

    def eval_meter(self, zero: torch.Tensor) -> Meter:
        return _Accuracy(zero, (1, 5))

    def network_output(self, out: torch.Tensor, eval_average: str) -> torch.Tensor:
        return out.softmax(dim=1) if eval_average == "probs" else out

    def averaged_output(self, mean: torch.Tensor, eval_average: str) -> torch.Tensor:
        return mean.clamp_min(1e-12).log() if eval_average == "probs" else mean


class _Psnr(Meter):
    """Per-batch PSNR averaged over batches (weighted by size), as the Keras metric of the
    reproducibility study of Bop; in evaluation also the PSNR of the noisy input."""

    def __init__(self, zero: torch.Tensor, noisy: bool) -> None:
        self.psnr = zero.clone()
        self.noisy = zero.clone() if noisy else None

    def update(self, x: torch.Tensor, out: torch.Tensor, y: torch.Tensor, n: int) -> None:
        self.psnr += psnr_peak1(per_image_mse(out, y).mean()) * n
        if self.noisy is not None:
            self.noisy += psnr_peak1(per_image_mse(x, y).mean()) * n

    def summary(self, seen: int, prefix: str) -> dict[str, float]:
        p1 = (self.psnr / seen).item()
        res = {f"{prefix}_psnr_peak1": p1, f"{prefix}_psnr_peak2": p1 + PEAK2_OFFSET_DB}
        if self.noisy is not None:
            n1 = (self.noisy / seen).item()
            res |= {
                f"{prefix}_noisy_psnr_peak1": n1,
                f"{prefix}_noisy_psnr_peak2": n1 + PEAK2_OFFSET_DB,
            }
        return res


class Denoising(Task):
    """PSNR of the output (and, in evaluation, of the noisy input); a run keeps its best, median
    and worst test reconstructions."""

    name = "denoising"

    def train_meter(self, zero: torch.Tensor) -> Meter:
        return _Psnr(zero, noisy=False)

    def eval_meter(self, zero: torch.Tensor) -> Meter:
        return _Psnr(zero, noisy=True)

    def run_extras(self, trainer: Trainer, test: Loader) -> dict[str, Any]:
        return {"reconstructions": trainer.reconstructions(test)}


TASKS: dict[str, Task] = {t.name: t for t in (Classification(), Denoising())}


def get_task(name: str) -> Task:
    """The task called ``name``; ValueError naming the known tasks otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose classification or denoising") from None
