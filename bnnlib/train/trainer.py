"""One training loop for every method.

The loop always calls ``optimizer.step(closure)``. The closure does one forward/backward pass and
returns the loss, so an optimizer that needs several passes per step (BayesBiNN's Monte-Carlo
samples) simply calls it several times. Evaluation asks the optimizer for the networks to evaluate
(``eval_weight_samples``: BayesBiNN's mode or sampled networks); flip optimizers report their flips
per layer. Callbacks at epoch boundaries carry phase changes, per-epoch layer switches and
continual-learning task switches, so no method needs a second loop.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from bnnlib.atomic import save_torch
from bnnlib.optim.protocols import EvaluationNetworks, counts_flips, sub_optimizers
from bnnlib.optim.schedules import RECORDED_KEYS
from bnnlib.train.metrics import PEAK2_OFFSET_DB, binary_fraction, per_image_mse, psnr_peak1
from bnnlib.train.tasks import EVAL_AVERAGES, Task, get_task

CHECKPOINT_NAME = "last.pt"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left in place."""


class Loader(Protocol):
    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...
    def __len__(self) -> int: ...
    def set_epoch(self, epoch: int) -> None: ...


class Callback(Protocol):
    """Optional hooks; implement any subset."""

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None: ...
    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None: ...


class Trainer:
    """Trains ``model`` with ``optimizer``; ``task`` is "classification" or "denoising"."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        *,
        task: str = "classification",
        device: torch.device | str = "cpu",
        scheduler: Any = None,
        # keyword arguments of an EvaluationNetworks optimizer's eval_weight_samples
        eval_options: Mapping[str, Any] | None = None,
        eval_average: str = "logits",
        seed: int = 0,
        progress: bool | None = None,
        tensorboard_dir: str | Path | None = None,
        callbacks: Sequence[Callback] = (),
        nan_check_every: int = 50,
    ) -> None:
        if eval_average not in EVAL_AVERAGES:
            raise ValueError(f"eval_average={eval_average!r}; choose {' or '.join(EVAL_AVERAGES)}")
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.task: Task = get_task(task)
        self.device = torch.device(device)
        self.scheduler = scheduler
        self.eval_options = dict(eval_options or {})
        self.eval_average = eval_average
        self.eval_generator = torch.Generator(device=self.device).manual_seed(seed + 7919)
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.callbacks = list(callbacks)
        self.nan_check_every = nan_check_every
        self.history: list[dict[str, Any]] = []
        self.epoch = 0
        self.writer = _tensorboard_writer(tensorboard_dir) if tensorboard_dir else None
        self._param_names = {id(p): n for n, p in model.named_parameters()}

    def add_callback(self, callback: Callback) -> None:
        self.callbacks.append(callback)

    # -- the loop -------------------------------------------------------------------------------

    def fit(
        self,
        train: Loader,
        epochs: int,
        *,
        test: Loader | None = None,
        val: Loader | None = None,
        checkpoint_dir: str | Path | None = None,
        resume: bool = True,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Train until ``epochs`` epochs are done, resuming from ``checkpoint_dir`` when it holds a
        checkpoint. Returns the per-epoch history (also kept in ``self.history``)."""
        ckpt = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir else None
        if ckpt is not None and resume and ckpt.exists():
            self.load_state_dict(torch.load(ckpt, map_location=self.device, weights_only=False))
        while self.epoch < epochs:
            epoch = self.epoch + 1
            for cb in self.callbacks:
                _call(cb, "on_epoch_start", self, epoch)
            metrics = {"epoch": epoch, **self.train_epoch(train, epoch, ckpt)}
            if val is not None:
                metrics |= self.evaluate(val, prefix="val")
            if test is not None:
                metrics |= self.evaluate(test, prefix="test")
            self.history.append(metrics)
            self.epoch = epoch
            for cb in self.callbacks:
                _call(cb, "on_epoch_end", self, epoch, metrics)
            if self.writer is not None:
                _log_scalars(self.writer, metrics, epoch)
            if ckpt is not None:
                save_torch(ckpt, self.state_dict())
            if on_epoch is not None:
                on_epoch(metrics)
        if self.writer is not None:
            self.writer.flush()
        return self.history

    def train_epoch(self, loader: Loader, epoch: int, ckpt: Path | None = None) -> dict[str, Any]:
        self.model.train()
        loader.set_epoch(epoch)
        _reset_flips(self.optimizer)
        start = time.perf_counter()
        zero = torch.zeros((), device=self.device)
        loss_sum, seen, meter = zero.clone(), 0, self.task.train_meter(zero)
        steps = 0
        bar = _progress(loader, self.progress, f"epoch {epoch}")
        for x, y in bar:
            loss, output = self.train_step(x, y)
            steps += 1
            n = y.shape[0]
            seen += n
            loss_sum += loss * n
            meter.update(x, output, y, n)
            if steps % self.nan_check_every == 0:
                self._check_finite(loss, epoch, steps, ckpt)
        train_loss = loss_sum / max(seen, 1)
        self._check_finite(train_loss, epoch, steps, ckpt)
        metrics: dict[str, Any] = {
            "epoch_time_s": time.perf_counter() - start,
            "train_loss": train_loss.item(),
            **meter.summary(max(seen, 1), "train"),
        }
        flips = self._flip_ratios(steps)
        if flips:
            metrics["flip_ratio"] = flips
            metrics["flip_ratio_mean"] = _weighted_flip_mean(self.model, flips, self._param_names)
        frac = binary_fraction(self.model)
        if frac is not None:
            metrics["binary_fraction"] = frac
        metrics["hparams"] = self.current_hparams()
        return metrics

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on a batch, then one scheduler step: the batch loss and the output
        of the step's first forward pass. Anything that trains step by step calls this."""
        outputs: list[torch.Tensor] = []
        loss = self.optimizer.step(self.make_closure(x, y, outputs))
        if self.scheduler is not None:
            self.scheduler.step()
        return loss, outputs[0]

    def make_closure(
        self, x: torch.Tensor, y: torch.Tensor, outputs: list[torch.Tensor]
    ) -> Callable[[], torch.Tensor]:
        """One forward/backward pass; keeps the first call's outputs for the train metrics."""

        def closure() -> torch.Tensor:
            self.optimizer.zero_grad(set_to_none=False)
            out = self.model(x)
            loss = self.compute_loss(out, y)
            loss.backward()
            if not outputs:
                outputs.append(out.detach())
            return loss.detach()

        return closure

    def compute_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The minibatch-mean loss; override (or wrap ``loss_fn``) for distillation."""
        return self.loss_fn(outputs, targets)

    # -- evaluation -----------------------------------------------------------------------------

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Network output averaged over the networks the optimizer asks to evaluate."""
        self.model.eval()
        total, passes = None, 0
        for _ in self._eval_networks():
            out = self.task.network_output(self.model(x), self.eval_average)
            total = out if total is None else total + out
            passes += 1
        assert total is not None
        return self.task.averaged_output(total / passes, self.eval_average)

    def evaluate(self, loader: Loader, prefix: str = "test") -> dict[str, float]:
        loader.set_epoch(0)
        zero = torch.zeros((), device=self.device)
        loss_sum, seen, meter = zero.clone(), 0, self.task.eval_meter(zero)
        for x, y in loader:
            out = self.predict(x)
            n = y.shape[0]
            seen += n
            loss_sum += self.loss_fn(out, y) * n
            meter.update(x, out, y, n)
        seen = max(seen, 1)
        return {f"{prefix}_loss": (loss_sum / seen).item(), **meter.summary(seen, prefix)}

    @torch.no_grad()
    def reconstructions(self, loader: Loader) -> dict[str, Any]:
        """Best, median and worst test images by per-image PSNR: noisy input, clean target, output."""
        loader.set_epoch(0)
        scores = torch.cat([psnr_peak1(per_image_mse(self.predict(x), y)) for x, y in loader])
        order = scores.argsort()
        picks = {
            "worst": int(order[0]),
            "median": int(order[len(order) // 2]),
            "best": int(order[-1]),
        }
        found: dict[str, Any] = {}
        loader.set_epoch(0)
        offset = 0
        for x, y in loader:
            for label, idx in picks.items():
                if offset <= idx < offset + y.shape[0]:
                    i = idx - offset
                    out = self.predict(x[i : i + 1])[0]
                    p1 = float(scores[idx])
                    found[label] = {
                        "index": idx,
                        "psnr_peak1": p1,
                        "psnr_peak2": p1 + PEAK2_OFFSET_DB,
                        "noisy": _to_uint8(x[i]),
                        "clean": _to_uint8(y[i]),
                        "output": _to_uint8(out),
                    }
            offset += y.shape[0]
        return {label: found[label] for label in ("best", "median", "worst")}

    def _eval_networks(self) -> Iterable[None]:
        for opt in sub_optimizers(self.optimizer):
            if isinstance(opt, EvaluationNetworks):
                return opt.eval_weight_samples(generator=self.eval_generator, **self.eval_options)
        return (None,)

    # -- bookkeeping ----------------------------------------------------------------------------

    def current_hparams(self) -> dict[str, float]:
        """Scheduled values as they stand now: at the end of an epoch, those the next step uses."""
        out: dict[str, float] = {}
        for group in self.optimizer.param_groups:
            for key in RECORDED_KEYS:
                if key in group and key not in out and isinstance(group[key], (int, float)):
                    out[key] = float(group[key])
        return out

    def _flip_ratios(self, steps: int) -> dict[str, float]:
        ratios: dict[str, float] = {}
        for opt in sub_optimizers(self.optimizer):
            if not counts_flips(opt):
                continue
            for param, count in opt.flip_counts():
                name = self._param_names.get(id(param), "?").removesuffix(".weight")
                ratios[name] = float(count) / (param.numel() * max(steps, 1))
        return ratios

    def _check_finite(self, loss: torch.Tensor, epoch: int, step: int, ckpt: Path | None) -> None:
        value = float(loss)
        if not math.isfinite(value):
            kept = (
                f"the last good checkpoint (epoch {self.epoch}) is kept at {ckpt}"
                if ckpt is not None and ckpt.exists()
                else "no checkpoint was written"
            )
            raise TrainingDiverged(f"loss became {value} at epoch {epoch}, step {step}; {kept}")

    def state_dict(self) -> dict[str, Any]:
        state = {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "history": self.history,
            "torch_rng": torch.get_rng_state(),
            "eval_generator": self.eval_generator.get_state(),
        }
        if self.scheduler is not None:
            state["scheduler"] = self.scheduler.state_dict()
        # BayesBiNN draws its noise from its own generator: resuming must continue that stream.
        state["optimizer_generators"] = [
            g.get_state() if (g := getattr(opt, "generator", None)) is not None else None
            for opt in sub_optimizers(self.optimizer)
        ]
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and "scheduler" in state:
            self.scheduler.load_state_dict(state["scheduler"])
        self.history = list(state["history"])
        self.epoch = int(state["epoch"])
        torch.set_rng_state(state["torch_rng"].cpu())
        self.eval_generator.set_state(state["eval_generator"].cpu())
        for opt, g_state in zip(
            sub_optimizers(self.optimizer), state.get("optimizer_generators", []), strict=False
        ):
            if g_state is not None:
                opt.generator.set_state(g_state.cpu())
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])


def _reset_flips(optimizer: torch.optim.Optimizer) -> None:
    for opt in sub_optimizers(optimizer):
        if counts_flips(opt):
            opt.reset_flip_counts()


def _weighted_flip_mean(model: nn.Module, flips: dict[str, float], names: dict[int, str]) -> float:
    sizes = {
        names[id(p)].removesuffix(".weight"): p.numel()
        for p in model.parameters()
        if id(p) in names
    }
    total = sum(sizes.get(k, 0) for k in flips)
    return sum(r * sizes.get(k, 0) for k, r in flips.items()) / total if total else 0.0


def _to_uint8(img: torch.Tensor) -> list:
    """CHW in [-1, 1] to nested HWC uint8 lists (JSON-friendly)."""
    return (
        ((img.float().clamp(-1, 1) + 1) * 127.5)
        .round()
        .to(torch.uint8)
        .permute(1, 2, 0)
        .cpu()
        .tolist()
    )


def _progress(loader: Loader, enabled: bool, desc: str) -> Iterable:
    if not enabled:
        return loader
    from tqdm.auto import tqdm

    return tqdm(loader, total=len(loader), desc=desc, leave=False)


def _call(cb: Any, name: str, *args: Any) -> None:
    fn = getattr(cb, name, None)
    if fn is not None:
        fn(*args)


def _tensorboard_writer(logdir: str | Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise RuntimeError(
            "--tensorboard needs the tensorboard package: pip install 'bnnlib[tensorboard]'"
        ) from exc
    return SummaryWriter(str(logdir))


def _log_scalars(writer: Any, metrics: dict[str, Any], epoch: int) -> None:
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and key != "epoch":
            writer.add_scalar(key, value, epoch)
        elif isinstance(value, dict):
            for sub, v in value.items():
                writer.add_scalar(f"{key}/{sub}", v, epoch)
