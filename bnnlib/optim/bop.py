"""Bop, the Binary optimizer of "Latent Weights Do Not Exist" (Helwegen et al., NeurIPS 2019).

Bop has no latent weights: it keeps an exponential moving average m of each binary weight's
gradient and flips the weight when m is strong enough and points the same way as the weight.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ._flip import (
    Bucket,
    FlipOptimizer,
    check_hyper,
    compiled,
    count_sign_changes,
    foreach_count_changes,
    foreach_flip,
    larq_flip,
    minus_one_mask,
    plus_minus_one,
    round_to,
)


def _reference(
    ws: list[torch.Tensor],
    ms: list[torch.Tensor],
    gs: list[torch.Tensor],
    counts: list[torch.Tensor] | None,
    threshold: float,
    gamma: float,
) -> None:
    for i, (w, m, g) in enumerate(zip(ws, ms, gs, strict=True)):
        m.add_(gamma * (g - m))
        new_w = larq_flip(w, m, threshold)
        if counts is not None:
            counts[i].add_(((new_w >= 0) != (w >= 0)).sum())
        w.copy_(new_w)


def _foreach(
    ws: list[torch.Tensor],
    ms: list[torch.Tensor],
    gs: list[torch.Tensor],
    counts: list[torch.Tensor] | None,
    threshold: float,
    gamma: float,
) -> None:
    delta = torch._foreach_sub(gs, ms)
    torch._foreach_mul_(delta, gamma)
    torch._foreach_add_(ms, delta)
    d = torch._foreach_mul(ws, ms)
    torch._foreach_sub_(d, threshold)
    new_ws = foreach_flip(ws, d)
    if counts is not None:
        foreach_count_changes(counts, ws, new_ws)
    torch._foreach_copy_(ws, new_ws)


def _fused(
    ws: list[torch.Tensor],
    ms: list[torch.Tensor],
    gs: list[torch.Tensor],
    counts: list[torch.Tensor] | None,
    snapshots: list[tuple[torch.Tensor, torch.Tensor]] | None,
    threshold: torch.Tensor,
    gamma: torch.Tensor,
) -> None:
    """Traced by torch.compile: one pass per tensor reading g, m, w and writing m, w (plus the
    int8 sign snapshots when counting flips)."""
    for i, (w, m, g) in enumerate(zip(ws, ms, gs, strict=True)):
        new_m = m + gamma * (g - m)
        minus_one = minus_one_mask(w, new_m, threshold)
        if counts is not None and snapshots is not None:
            count_sign_changes(counts[i], minus_one, *snapshots[i])
        m.copy_(new_m)
        w.copy_(plus_minus_one(minus_one, w))


class Bop(FlipOptimizer):
    """Bop with larq's exact semantics (``larq.optimizers.Bop``, larq 0.9-0.14).

    Per element, with m_0 = 0 and the gradient g_t taken at the current binary weights::

        m_t = m_{t-1} + gamma * (g_t - m_{t-1})          # this expression, in the param dtype
        w_t = sgn+(-sign(w_{t-1} * m_t - threshold) * w_{t-1})

    so a +-1 weight flips iff w*m > threshold. Behaviour kept from larq for bit-exact parity:

    - exact tie (w*m == threshold): the result is +1 whatever w was (the paper's strict rule
      would keep w);
    - non-binary weights are binarised by the first step (-sgn+(w) if w*m > threshold, else
      sgn+(w); 0 becomes +1), so weights need not be +-1 at construction;
    - threshold and gamma are used rounded to the parameter dtype (0.3 acts as 0.30000001 in
      float32), as larq keeps them as float32 variables;
    - a zero gradient is still a step (m decays, the test runs); no bias correction, no warm-up.

    State per tensor: ``m``, ``step`` and, with ``track_flips=True``, ``flips`` (entries whose
    sgn+ changed since :meth:`reset_flip_counts`, accumulated on device without host
    synchronisation; read them once per epoch with :meth:`flip_counts`).
    Each param group may override ``threshold`` and ``gamma``; a schedule may drive them
    (see :class:`bnnlib.optim.HyperparameterScheduler`), and gamma may then reach 0.

    ``impl``: ``"reference"`` (readable, one tensor at a time), ``"foreach"``
    (``torch._foreach_*`` over each group), ``"compiled"`` (one torch.compile'd pass per tensor),
    or None: compiled for groups of at least 2**20 elements when the device has a compiler,
    foreach otherwise (and if compiling fails). All give the same weights and flip counts; m may
    differ in the last bit where a backend contracts multiply-adds (not on CPU).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        threshold: float = 1e-8,
        gamma: float = 1e-4,
        *,
        track_flips: bool = False,
        impl: str | None = None,
    ) -> None:
        super().__init__(
            params, {"threshold": threshold, "gamma": gamma}, track_flips=track_flips, impl=impl
        )

    def _check_group(self, group: dict[str, Any], *, in_step: bool) -> None:
        check_hyper("threshold", group["threshold"], 0.0, low_open=False, high=None)
        check_hyper("gamma", group["gamma"], 0.0, low_open=not in_step, high=1.0)

    def _update(self, group: dict[str, Any], bucket: Bucket, impl: str) -> None:
        threshold = round_to(group["threshold"], bucket.dtype)
        gamma = round_to(group["gamma"], bucket.dtype)
        args = (bucket.params, bucket.slots["m"], bucket.grads, bucket.counts)
        if impl == "compiled":
            snapshots = self._sign_snapshots(bucket) if bucket.counts is not None else None
            scalars = bucket.scalar(threshold), bucket.scalar(gamma)
            compiled(_fused)(*args, snapshots, *scalars)
        elif impl == "foreach":
            _foreach(*args, threshold, gamma)
        else:
            _reference(*args, threshold, gamma)
