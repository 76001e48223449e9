"""One training loop for every method.

The loop always calls ``optimizer.step(closure)``. The closure does one forward/backward pass and
returns the loss, so an optimizer that needs several passes per step (BayesBiNN's Monte-Carlo
samples) simply calls it several times. Evaluation asks the optimizer for the networks to evaluate
(``eval_weight_samples``: BayesBiNN's mode or sampled networks); flip optimizers report their flips
per layer. Callbacks at epoch boundaries carry phase changes, per-epoch layer switches and
continual-learning task switches, so no method needs a second loop.

Checkpoints (``<checkpoint_dir>/last.pt``) are written atomically after every epoch with
:func:`bnnlib.atomic.save_checkpoint`: tensors and plain data only, with the sha256 of their
content. On resume a checkpoint that is corrupt, truncated, empty, foreign or would need code to
load is moved aside to ``last.pt.corrupt-<UTC time>`` and training starts from scratch, with a
one-line warning (the run is a pure function of its config and seed, so nothing but time is lost).

Divergence: a NaN or infinite loss, or one above ``max_loss`` (default :data:`DEFAULT_MAX_LOSS`),
raises :class:`TrainingDiverged` naming the epoch and the first bad step; no checkpoint is written
after it, so the last good one stays in place.

Interruption: during :meth:`Trainer.fit`, SIGINT (Ctrl-C) and SIGTERM stop training at the next
step boundary; with a checkpoint folder the trainer saves a mid-epoch checkpoint there (the
epoch's batches are replayed from ``set_epoch`` up to that step on resume, so the resumed run
equals an uninterrupted one) and raises :class:`TrainingInterrupted`. A second signal stops at
once, keeping the last complete checkpoint.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from bnnlib.atomic import (
    CorruptFileError,
    load_checkpoint,
    move_aside,
    remove_orphan_temps,
    save_checkpoint,
)
from bnnlib.optim.protocols import EvaluationNetworks, counts_flips, sub_optimizers
from bnnlib.optim.schedules import RECORDED_KEYS
from bnnlib.train.metrics import PEAK2_OFFSET_DB, binary_fraction, per_image_mse, psnr_peak1
from bnnlib.train.tasks import EVAL_AVERAGES, Task, get_task

CHECKPOINT_NAME = "last.pt"
# A loss above this is treated as divergence unless the trainer is given another ``max_loss``.
DEFAULT_MAX_LOSS = 1e30
# What every trainer checkpoint holds (older checkpoints without a content hash hold the same).
_STATE_KEYS = ("epoch", "model", "optimizer", "history", "torch_rng", "eval_generator")

logger = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss became NaN, infinite or larger than ``max_loss`` at ``epoch``, ``step``; the last
    good checkpoint (if any, at ``checkpoint``) is left in place."""

    def __init__(
        self, message: str, epoch: int = 0, step: int = 0, checkpoint: Path | None = None
    ) -> None:
        super().__init__(message)
        self.epoch, self.step, self.checkpoint = epoch, step, checkpoint

    def __reduce__(self):  # noqa: ANN204 - keep the fields through pickling (worker processes)
        return (type(self), (str(self), self.epoch, self.step, self.checkpoint))


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped training at ``epoch``, ``step`` (0: at the end of the epoch);
    ``checkpoint`` is the file the same run resumes from (None: it starts from scratch). A
    KeyboardInterrupt, so code that stops on Ctrl-C keeps stopping; ``exit_code`` is 128 + the
    signal number (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(
        self,
        message: str,
        signum: int,
        epoch: int = 0,
        step: int = 0,
        checkpoint: Path | None = None,
    ) -> None:
        super().__init__(message)
        self.signum, self.epoch, self.step, self.checkpoint = signum, epoch, step, checkpoint

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __reduce__(self):  # noqa: ANN204
        return (type(self), (str(self), self.signum, self.epoch, self.step, self.checkpoint))


class Loader(Protocol):
    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...
    def __len__(self) -> int: ...
    def set_epoch(self, epoch: int) -> None: ...


class Callback(Protocol):
    """Optional hooks; implement any subset."""

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None: ...
    def on_train_epoch_end(self, trainer: Trainer, epoch: int) -> None: ...
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
        max_loss: float | None = None,
        handle_signals: bool = True,
        mid_epoch_checkpoints: bool = True,
    ) -> None:
        """``max_loss``: a loss above it is divergence (None: :data:`DEFAULT_MAX_LOSS`).
        ``handle_signals``: SIGINT/SIGTERM during :meth:`fit` save a checkpoint and raise
        :class:`TrainingInterrupted` (only in the main thread). ``mid_epoch_checkpoints``: that
        checkpoint is taken at the current step, which needs loaders whose epoch is a pure
        function of ``set_epoch`` (as bnnlib's are); with False the last epoch's is kept."""
        if eval_average not in EVAL_AVERAGES:
            raise ValueError(f"eval_average={eval_average!r}; choose {' or '.join(EVAL_AVERAGES)}")
        max_loss = DEFAULT_MAX_LOSS if max_loss is None else max_loss
        if (
            isinstance(max_loss, bool)
            or not isinstance(max_loss, (int, float))
            or not (0 < max_loss < math.inf)
        ):
            raise ValueError(f"max_loss={max_loss!r} must be a finite number > 0")
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
        self.max_loss = float(max_loss)
        self.handle_signals = handle_signals
        self.mid_epoch_checkpoints = mid_epoch_checkpoints
        self.history: list[dict[str, Any]] = []
        self.epoch = 0
        # (epoch, step) of the checkpoint on disk: step 0 is an epoch boundary; None: no file.
        self.checkpointed: tuple[int, int] | None = None
        self._in_epoch: dict[str, Any] | None = None  # a mid-epoch state to continue
        self._signalled: int | None = None
        self.writer = _tensorboard_writer(tensorboard_dir) if tensorboard_dir else None
        self._param_names = {id(p): n for n, p in model.named_parameters()}

    def add_callback(self, callback: Callback) -> None:
        self.callbacks.append(callback)

    @property
    def stopped_in_epoch(self) -> tuple[int, int] | None:
        """(epoch, step) when the loaded checkpoint stopped in the middle of that epoch: the next
        :meth:`fit` continues it there (so the epoch and anything that starts it has begun)."""
        return (self._in_epoch["epoch"], self._in_epoch["step"]) if self._in_epoch else None

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
        checkpoint (see :meth:`resume_from`). Returns the per-epoch history (also kept in
        ``self.history``). Raises :class:`TrainingDiverged` or :class:`TrainingInterrupted`
        (module docstring); callbacks' ``on_epoch_start`` must depend on the epoch number only,
        as it runs again for an epoch resumed in its middle."""
        ckpt = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir else None
        if ckpt is not None and resume:
            self.resume_from(ckpt)
        with self._signal_handlers(ckpt):
            while self.epoch < epochs:
                epoch = self.epoch + 1
                for cb in self.callbacks:
                    _call(cb, "on_epoch_start", self, epoch)
                metrics = {"epoch": epoch, **self.train_epoch(train, epoch, ckpt)}
                for cb in self.callbacks:  # after the epoch's steps, before its evaluation
                    _call(cb, "on_train_epoch_end", self, epoch)
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
                    save_checkpoint(ckpt, self.state_dict())
                    self.checkpointed = (epoch, 0)
                if on_epoch is not None:
                    on_epoch(metrics)
                if self._signalled is not None:
                    self._stop(epoch, 0, ckpt)
        if self.writer is not None:
            self.writer.flush()
        return self.history

    def resume_from(self, ckpt: str | Path) -> bool:
        """Load ``ckpt`` when it exists; True when training continues from it. Temporary files a
        killed write left beside it are removed first. A checkpoint that is corrupt (content
        hash mismatch), truncated, empty, foreign, needs code to load or does not fit this model
        is moved aside to ``<name>.corrupt-<UTC time>`` with a one-line warning and False is
        returned: training starts from scratch, and the trainer is left as it was."""
        ckpt = Path(ckpt)
        remove_orphan_temps(ckpt.parent)
        if not ckpt.exists():
            return False
        try:
            state, _ = load_checkpoint(ckpt, what="trainer checkpoint", legacy=_is_trainer_state)
            missing = [k for k in _STATE_KEYS if not isinstance(state, dict) or k not in state]
            if missing:
                raise CorruptFileError(ckpt, f"trainer checkpoint lacks {missing[0]!r}")
            before = copy.deepcopy(self.state_dict())
            try:
                self.load_state_dict(state)
            except Exception as exc:  # noqa: BLE001 - whatever does not fit, undo and refuse
                self.load_state_dict(before)
                raise CorruptFileError(
                    ckpt, f"trainer checkpoint does not fit this run ({type(exc).__name__})"
                ) from None
        except CorruptFileError as exc:
            self.checkpointed = None
            moved = move_aside(ckpt)
            logger.warning(
                "%s: %s; moved it aside to %s and training starts from scratch",
                exc.path,
                exc.reason,
                moved.name,
            )
            return False
        return True

    def train_epoch(self, loader: Loader, epoch: int, ckpt: Path | None = None) -> dict[str, Any]:
        self.model.train()
        loader.set_epoch(epoch)
        zero = torch.zeros((), device=self.device)
        loss_sum, seen, meter = zero.clone(), 0, self.task.train_meter(zero)
        guard = _LossGuard(zero, self.max_loss)
        steps, elapsed = 0, 0.0
        partial, self._in_epoch = self._in_epoch, None
        if partial is not None:  # continue the epoch a mid-epoch checkpoint stopped in
            if partial["epoch"] != epoch or partial["steps_per_epoch"] != len(loader):
                raise ValueError(
                    f"the checkpoint stopped in epoch {partial['epoch']} at step "
                    f"{partial['step']} of {partial['steps_per_epoch']}, but this is epoch {epoch} "
                    f"of {len(loader)} steps; re-train with --force"
                )
            steps, seen, elapsed = partial["step"], partial["seen"], partial["elapsed_s"]
            loss_sum.copy_(partial["loss_sum"])
            meter.load_state_dict(partial["meter"])
        else:
            _reset_flips(self.optimizer)
        start = time.perf_counter() - elapsed
        skip = steps
        bar = _progress(loader, self.progress, f"epoch {epoch}")
        for x, y in bar:
            if skip:  # replay the batches of the steps the checkpoint already took
                skip -= 1
                continue
            loss, output = self.train_step(x, y)
            steps += 1
            guard.update(loss, steps)
            n = y.shape[0]
            seen += n
            loss_sum += loss * n
            meter.update(x, output, y, n)
            if steps % self.nan_check_every == 0:
                self._check_loss(guard, epoch, ckpt)
            if self._signalled is not None:
                self._check_loss(guard, epoch, ckpt)
                in_epoch = {
                    "epoch": epoch,
                    "step": steps,
                    "steps_per_epoch": len(loader),
                    "loss_sum": loss_sum.clone(),
                    "seen": seen,
                    "meter": meter.state_dict(),
                    "elapsed_s": time.perf_counter() - start,
                }
                self._stop(epoch, steps, ckpt, in_epoch, len(loader))
        self._check_loss(guard, epoch, ckpt)
        train_loss = loss_sum / max(seen, 1)
        if not math.isfinite(float(train_loss)):
            raise self._diverged(
                f"the mean train loss became {float(train_loss)} at epoch {epoch} (after step "
                f"{steps})",
                epoch,
                steps,
                ckpt,
            )
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

    def _check_loss(self, guard: _LossGuard, epoch: int, ckpt: Path | None) -> None:
        """Raise :class:`TrainingDiverged` at the first step whose loss was bad (one host sync)."""
        bad = guard.first_bad()
        if bad is None:
            return
        step, value = bad
        what = (
            f"loss became {value}"
            if not math.isfinite(value)
            else f"loss {value:.4g} exceeded max_loss={self.max_loss:g}"
        )
        raise self._diverged(f"{what} at epoch {epoch}, step {step}", epoch, step, ckpt)

    def _diverged(self, what: str, epoch: int, step: int, ckpt: Path | None) -> TrainingDiverged:
        if ckpt is not None and ckpt.exists() and self.checkpointed is not None:
            at_epoch, at_step = self.checkpointed
            where = f"epoch {at_epoch}" + (f", step {at_step}" if at_step else "")
            kept = f"the last good checkpoint ({where}) is kept at {ckpt}"
        elif ckpt is not None and ckpt.exists():
            kept = f"the last good checkpoint is kept at {ckpt}"
        else:
            kept = "no checkpoint was written"
        return TrainingDiverged(f"{what}; {kept}", epoch, step, ckpt if ckpt else None)

    # -- interruption ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _signal_handlers(self, ckpt: Path | None) -> Iterator[None]:
        """While training, SIGINT/SIGTERM set a flag the loop checks after each step; a second
        one raises at once. Signals a caller ignores (SIG_IGN) stay ignored."""
        self._signalled = None
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self._signalled is None:
                self._signalled = signum
                return
            kept = f"the last complete checkpoint is kept at {ckpt}" if ckpt else "nothing saved"
            raise TrainingInterrupted(
                f"a second {signal.Signals(signum).name} stopped training at once; {kept}",
                signum,
                self.epoch + 1,
                0,
                ckpt if ckpt is not None and ckpt.exists() else None,
            )

        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, handler)
        try:
            yield
        finally:
            for signum, old in previous.items():
                # None: a handler not installed from Python, which cannot be put back
                signal.signal(signum, signal.SIG_DFL if old is None else old)
            self._signalled = None

    def _stop(
        self,
        epoch: int,
        step: int,
        ckpt: Path | None,
        in_epoch: dict[str, Any] | None = None,
        steps_per_epoch: int = 0,
    ) -> None:
        """Save what a signal lets us save and raise :class:`TrainingInterrupted`."""
        signum = self._signalled
        assert signum is not None
        name = signal.Signals(signum).name
        if ckpt is None:
            where = f"epoch {epoch}, step {step}" if step else f"the end of epoch {epoch}"
            message = f"{name} at {where}: no checkpoint folder, nothing was saved"
            raise TrainingInterrupted(message, signum, epoch, step, None)
        if step == 0:
            message = (
                f"{name} after epoch {epoch}: its checkpoint is saved at {ckpt}; the same "
                "command resumes from the end of that epoch"
            )
            raise TrainingInterrupted(message, signum, epoch, 0, ckpt)
        if self.mid_epoch_checkpoints:
            save_checkpoint(ckpt, self.state_dict(in_epoch=in_epoch))
            self.checkpointed = (epoch, step)
            message = (
                f"{name} at epoch {epoch}, step {step} of {steps_per_epoch}: saved a checkpoint of "
                f"that step at {ckpt}; the same command resumes mid-epoch from there"
            )
            raise TrainingInterrupted(message, signum, epoch, step, ckpt)
        if ckpt.exists() and self.epoch:
            message = (
                f"{name} at epoch {epoch}, step {step}: this loader's position cannot be saved, so "
                f"the checkpoint of epoch {self.epoch} is kept at {ckpt}; the same command resumes "
                f"from the end of epoch {self.epoch}"
            )
            raise TrainingInterrupted(message, signum, epoch, step, ckpt)
        message = (
            f"{name} at epoch {epoch}, step {step}: this loader's position cannot be saved and no "
            "epoch had finished, so nothing was saved; the same command starts from scratch"
        )
        raise TrainingInterrupted(message, signum, epoch, step, None)

    def state_dict(self, in_epoch: dict[str, Any] | None = None) -> dict[str, Any]:
        """Everything a resumed run needs, tensors and plain data only; ``in_epoch`` (the
        position and sums of an epoch stopped in its middle) makes it a mid-epoch checkpoint."""
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
        if in_epoch is not None:
            state["in_epoch"] = in_epoch
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
        self._in_epoch = state.get("in_epoch")
        self.checkpointed = (
            (self._in_epoch["epoch"], self._in_epoch["step"]) if self._in_epoch else (self.epoch, 0)
        )


class _LossGuard:
    """The first step of an epoch whose loss was NaN, infinite or above the ceiling, tracked on
    the device (no synchronisation per step); :meth:`first_bad` reads it."""

    def __init__(self, zero: torch.Tensor, ceiling: float) -> None:
        self.ceiling = ceiling
        self.step = torch.zeros((), dtype=torch.long, device=zero.device)
        self.value = zero.clone()

    def update(self, loss: torch.Tensor, step: int) -> None:
        loss = loss.detach().to(self.value.dtype).reshape(())
        new = (self.step == 0) & ~(torch.isfinite(loss) & (loss <= self.ceiling))
        self.step = torch.where(new, step, self.step)
        self.value = torch.where(new, loss, self.value)

    def first_bad(self) -> tuple[int, float] | None:
        step = int(self.step)
        return (step, float(self.value)) if step else None


def _is_trainer_state(obj: Any) -> bool:
    """A trainer state saved before checkpoints carried a content hash."""
    return isinstance(obj, dict) and all(k in obj for k in _STATE_KEYS)


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
