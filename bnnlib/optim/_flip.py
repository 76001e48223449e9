"""Machinery shared by the flip optimizers (Bop, Bop2ndOrder).

A flip optimizer keeps float moving averages ("slots": ``m``, and ``v`` for Bop2ndOrder) per
binary tensor and writes +-1 into the weight itself. This module holds what Bop and Bop2ndOrder
share so that each of them is only its update rule:

- the flip rule of the TensorFlow reference code, w <- sgn+(-sign(w*s - tau) * w), in its literal
  form (for the readable reference path) and in an equivalent form that fuses well;
- gathering a param group into (device, dtype) buckets of parallel tensor lists, without a
  per-tensor kernel;
- the choice of implementation (``impl``): ``"reference"`` (one tensor at a time, literal
  formulas), ``"foreach"`` (``torch._foreach_*`` over the bucket) and ``"compiled"`` (one
  ``torch.compile``'d function over the bucket, fused into one pass per tensor);
- hyper-parameter validation and rounding to the parameter dtype (larq keeps them as float32);
- on-device flip counting for the per-layer flip ratio (fused into the compiled pass through
  int8 sign snapshots).
"""

from __future__ import annotations

import functools
import math
import numbers
import shutil
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.optim import Optimizer

from ..quantizers import sign_plus
from ._contract import checked_params

IMPLS = ("foreach", "compiled", "reference")
# Below this many elements per bucket the one-off compile costs more than it can save.
COMPILE_MIN_NUMEL = 1 << 20
# Graphs kept per kernel (dynamo's default, 8, is shared by all optimizers of a process and would
# be reached by a few models with different tensor lists).
RECOMPILE_LIMIT = 64

Scalar = float | torch.Tensor


def larq_flip(w: torch.Tensor, signal: torch.Tensor, threshold: Scalar) -> torch.Tensor:
    """New weights by the reference code's literal rule: sgn+(-sign(w*signal - threshold) * w).

    For w in {-1, +1} this flips iff w*signal > threshold. On an exact tie (w*signal ==
    threshold) the result is +1 whatever w was (sign(0) = 0, sgn+(0) = +1). A real-valued w is
    binarised: -sgn+(w) if w*signal > threshold, else sgn+(w); a zero weight becomes +1.
    """
    return sign_plus(-torch.sign(w * signal - threshold) * w)


def _product_scale(dtype: torch.dtype) -> float:
    """A power of two s such that (a*s)*(b*s) cannot underflow to 0 for nonzero a, b."""
    info = torch.finfo(dtype)
    return 2.0 ** math.ceil(-math.log2(info.tiny * info.eps) / 2)


def minus_one_mask(w: torch.Tensor, signal: torch.Tensor, threshold: Scalar) -> torch.Tensor:
    """Where :func:`larq_flip` gives -1, for finite w, in a few fusable instructions.

    sgn+(-sign(d)*w) with d = w*signal - threshold is -1 exactly where d and w are both > 0 or
    both < 0, i.e. where d*w > 0. Scaling both factors by a power of two keeps that product
    exact in sign (no underflow to 0, overflow keeps the sign); a NaN d gives False, as
    torch.sign(NaN) = 0 gives +1 in the literal rule.
    """
    d = w * signal - threshold
    scale = _product_scale(w.dtype)
    return (d * scale) * (w * scale) > 0


def plus_minus_one(minus_one: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """-1 where ``minus_one``, +1 elsewhere, in ``like``'s dtype and device."""
    one = torch.ones((), dtype=like.dtype, device=like.device)
    return torch.where(minus_one, -one, one)


def count_sign_changes(
    count: torch.Tensor, minus_one: torch.Tensor, previous: torch.Tensor, following: torch.Tensor
) -> None:
    """Fused flip counting: add to ``count`` the entries whose sign differs from the int8
    snapshot ``previous`` (1 where the weight was >= 0) and write the new snapshot to
    ``following``. Reading the snapshot, not the weight being overwritten, lets the compiler
    update the weight in place within the same pass (the int32 detour vectorises best)."""
    positive = torch.where(minus_one, 0.0, 1.0).to(torch.int32)
    count.add_((positive ^ previous.to(torch.int32)).sum(dtype=torch.int32))
    following.copy_(positive.to(torch.int8))


def foreach_flip(ws: list[torch.Tensor], d: list[torch.Tensor]) -> list[torch.Tensor]:
    """:func:`larq_flip` over lists, given d = w*signal - threshold (overwritten and returned).

    s = sign(sign(d)*w) is exact ({-1, 0, 1}); sgn+(-s) = sign(0.5 - s) needs no comparison op,
    which ``torch._foreach_*`` lacks.
    """
    torch._foreach_sign_(d)
    torch._foreach_mul_(d, ws)
    torch._foreach_sign_(d)
    torch._foreach_neg_(d)
    torch._foreach_add_(d, 0.5)
    torch._foreach_sign_(d)
    return d


def foreach_count_changes(
    counts: list[torch.Tensor], old: list[torch.Tensor], new: list[torch.Tensor]
) -> None:
    """Add to ``counts`` (int64) the entries whose sgn+ differs between ``old`` and the +-1
    tensors ``new``, on device."""
    changed = torch._foreach_sign(old)
    torch._foreach_add_(changed, 0.5)
    torch._foreach_sign_(changed)  # sgn+(old)
    torch._foreach_sub_(changed, new)  # 0 or +-2
    # float64 sums are exact up to 2**53 entries.
    norms = torch._foreach_norm(changed, 1, dtype=torch.float64)
    totals = (torch.stack(norms) / 2).to(torch.int64)
    torch._foreach_add_(counts, list(totals.unbind()))


def round_to(value: float, dtype: torch.dtype) -> float:
    """``value`` rounded to ``dtype`` (a Python float that the dtype represents exactly)."""
    return torch.tensor(value, dtype=dtype).item()


def check_hyper(name: str, value: Any, low: float, *, low_open: bool, high: float | None) -> None:
    """Raise unless ``low <(=) value <= high`` (``high`` None: unbounded)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    above = value > low if low_open else value >= low
    below = high is None or value <= high
    if not (above and below):
        bracket = "(" if low_open else "["
        upper = "inf)" if high is None else f"{high}]"
        raise ValueError(f"invalid {name}={value!r}: must be in {bracket}{low}, {upper}")


@functools.cache
def compiler_available(device_type: str) -> bool:
    """Whether torch.compile's default backend can generate code for this device type."""
    if not torch._dynamo.is_dynamo_supported():
        return False
    if device_type == "cpu":
        return any(shutil.which(cxx) for cxx in ("c++", "g++", "clang++", "cl"))
    if device_type == "cuda":
        from torch.utils._triton import has_triton

        return has_triton()
    return False


@functools.cache
def compiled(fn: Callable[..., None]) -> Callable[..., None]:
    """One torch.compile wrapper per kernel, shared by every optimizer instance."""
    limit = torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT)
    return limit(torch.compile(fn, fullgraph=True))


@dataclass
class Bucket:
    """The tensors of one param group that share device and dtype, as parallel lists."""

    device: torch.device
    dtype: torch.dtype
    params: list[torch.Tensor] = field(default_factory=list)
    grads: list[torch.Tensor] = field(default_factory=list)
    slots: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    counts: list[torch.Tensor] | None = None
    steps: list[int] = field(default_factory=list)
    owners: list[torch.Tensor] = field(default_factory=list)

    @property
    def numel(self) -> int:
        return sum(p.numel() for p in self.params)

    def scalar(self, value: float) -> torch.Tensor:
        """``value`` as a 0-dim tensor of the bucket's dtype and device (for compiled kernels
        and true divisions: CUDA divides by a CPU scalar through its reciprocal)."""
        return torch.full((), value, dtype=self.dtype, device=self.device)


class FlipOptimizer(Optimizer, ABC):
    """Base of Bop and Bop2ndOrder: param groups, buckets, impl choice, flip counting.

    Subclasses set ``slots`` (state tensors created as zeros like the parameter), implement
    :meth:`_check_group` and :meth:`_update` (one bucket with the chosen impl).
    """

    slots: tuple[str, ...] = ("m",)

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        defaults: dict[str, Any],
        *,
        track_flips: bool,
        impl: str | None,
    ) -> None:
        if impl is not None and impl not in IMPLS:
            raise ValueError(f"unknown impl {impl!r}; choose one of {', '.join(IMPLS)} or None")
        self.track_flips = bool(track_flips)
        self.impl = impl
        # Per tensor, two int8 sign snapshots used in turn by the compiled flip counter. They
        # always equal "w >= 0" after the tensor's last step, so they are rebuilt from the
        # weights instead of being saved.
        self._snapshots: dict[torch.Tensor, tuple[torch.Tensor, torch.Tensor]] = {}
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Validate the group (hyper-parameters with the defaults filled in, floating-point
        tensors given once) before torch appends it, so a rejected group changes nothing."""
        checked_params(param_group, type(self).__name__)
        self._check_group({**self.defaults, **param_group}, in_step=False)
        super().add_param_group(param_group)

    @abstractmethod
    def _check_group(self, group: dict[str, Any], *, in_step: bool) -> None:
        """Validate a group's hyper-parameters (at construction, and before each step)."""

    @abstractmethod
    def _update(self, group: dict[str, Any], bucket: Bucket, impl: str) -> None:
        """Apply one step to ``bucket`` (tensors of one device and dtype) with ``impl``."""

    def __getstate__(self) -> dict[str, Any]:
        # torch keeps defaults, state and param_groups only; the constructor's options persist
        # too (the sign snapshots are rebuilt from the weights).
        return {**super().__getstate__(), "track_flips": self.track_flips, "impl": self.impl}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("_snapshots", {})
        # Pickles made before these options were kept: flip counters in the state tell.
        tracking = any("flips" in s for s in self.state.values() if isinstance(s, dict))
        self.__dict__.setdefault("track_flips", tracking)
        self.__dict__.setdefault("impl", None)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One update of every tensor that has a gradient (a zero gradient is still a step;
        tensors whose ``grad`` is None are skipped, as in torch)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._check_group(group, in_step=True)
            for bucket in self._buckets(group):
                self._run(group, bucket)
        return loss

    def _run(self, group: dict[str, Any], bucket: Bucket) -> None:
        impl = self.impl
        if impl is None:
            auto = bucket.numel >= COMPILE_MIN_NUMEL and compiler_available(bucket.device.type)
            impl = "compiled" if auto else "foreach"
        if impl != "compiled":
            self._snapshots.clear()  # they would go stale
            self._update(group, bucket, impl)
            return
        try:
            self._update(group, bucket, "compiled")
        except Exception as err:
            if self.impl == "compiled":
                raise
            # The automatic choice must not make training fail.
            warnings.warn(
                f"{type(self).__name__}: torch.compile failed ({type(err).__name__}: {err}); "
                "using impl='foreach'. Pass impl='compiled' to see the error.",
                RuntimeWarning,
                stacklevel=3,
            )
            self.impl = "foreach"
            self._snapshots.clear()
            self._update(group, bucket, "foreach")

    def _buckets(self, group: dict[str, Any]) -> list[Bucket]:
        buckets: dict[tuple[torch.device, torch.dtype], Bucket] = {}
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise TypeError(f"{type(self).__name__} does not support sparse gradients")
            state = self.state[p]
            if not state:
                self._init_state(p, state)
            state["step"] += 1
            key = (p.device, p.dtype)
            bucket = buckets.get(key)
            if bucket is None:
                bucket = buckets[key] = Bucket(
                    p.device,
                    p.dtype,
                    slots={name: [] for name in self.slots},
                    counts=[] if self.track_flips else None,
                )
            bucket.owners.append(p)
            bucket.params.append(p.detach())
            bucket.grads.append(p.grad.detach())
            for name in self.slots:
                bucket.slots[name].append(state[name])
            if bucket.counts is not None:
                bucket.counts.append(state["flips"])
            bucket.steps.append(state["step"])
        return list(buckets.values())

    def _sign_snapshots(self, bucket: Bucket) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(previous, next) int8 sign snapshots per tensor of the bucket, alternating with the
        tensor's step count so that the counter never reads what it overwrites."""
        pairs = []
        for p, step in zip(bucket.owners, bucket.steps, strict=True):
            snaps = self._snapshots.get(p)
            if snaps is None:
                first = (p.detach() >= 0).to(torch.int8)
                other = torch.empty_like(first)
                snaps = (first, other) if step % 2 == 0 else (other, first)
                self._snapshots[p] = snaps
            pairs.append((snaps[step % 2], snaps[(step + 1) % 2]))
        return pairs

    def _init_state(self, p: torch.Tensor, state: dict[str, Any]) -> None:
        state["step"] = 0
        for name in self.slots:
            state[name] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if self.track_flips:
            state["flips"] = torch.zeros((), dtype=torch.int64, device=p.device)

    def _counted(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if not self.track_flips:
            raise RuntimeError(
                f"{type(self).__name__} does not count flips; construct it with track_flips=True"
            )
        pairs = []
        for group in self.param_groups:
            for p in group["params"]:
                flips = self.state[p].get("flips") if p in self.state else None
                pairs.append((p, flips))
        return pairs

    def flip_counts(self, reset: bool = False) -> list[tuple[torch.Tensor, int]]:
        """(parameter, flips since the last reset) for every parameter, in param-group order.

        A flip is an entry whose sgn+ changed in a step (for +-1 weights: whose value changed;
        the first step's binarisation of real weights counts only sign changes). One host
        synchronisation for all parameters; call it once per epoch."""
        pairs = self._counted()
        tensors = [f for _, f in pairs if f is not None]
        values = iter(torch.stack(tensors).tolist() if tensors else [])
        result = [(p, 0 if f is None else int(next(values))) for p, f in pairs]
        if reset:
            self.reset_flip_counts()
        return result

    def reset_flip_counts(self) -> None:
        """Set every flip counter to zero (on device, no synchronisation)."""
        tensors = [f for _, f in self._counted() if f is not None]
        if tensors:
            torch._foreach_zero_(tensors)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # torch casts every state tensor but "step" to the parameter's dtype; flip counts must
        # stay exact int64, so they are read again from the dict torch loaded (the one the load
        # pre hooks returned: a last pre hook sees it).
        loaded: list[dict[str, Any]] = []
        handle = self.register_load_state_dict_pre_hook(lambda _, sd: loaded.append(sd))
        try:
            super().load_state_dict(state_dict)
        finally:
            handle.remove()
        state_dict = loaded[-1]
        self._snapshots.clear()  # the weights may be loaded too; rebuild at the next step
        saved_ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        params = [p for g in self.param_groups for p in g["params"]]
        for saved_id, p in zip(saved_ids, params, strict=True):
            flips = state_dict["state"].get(saved_id, {}).get("flips")
            if flips is not None:
                self.state[p]["flips"] = flips.to(device=p.device, dtype=torch.int64, copy=True)


def per_tensor(values: Sequence[float], bucket: Bucket, as_tensors: bool) -> list[Scalar]:
    """Per-tensor scalars rounded to the bucket dtype, as floats or 0-dim device tensors."""
    rounded = [round_to(v, bucket.dtype) for v in values]
    return [bucket.scalar(v) for v in rounded] if as_tensors else rounded
