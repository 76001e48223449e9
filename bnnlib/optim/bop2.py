"""Bop2ndOrder of "(A) Bop and Beyond" (Suarez-Ramirez et al., CVPR-W 2021).

Bop with a second moment: the flip signal is m normalised by the square root of an exponential
moving average v of the squared gradient, as in Adam, so that one threshold suits layers whose
gradients differ in scale.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from ._flip import (
    Bucket,
    FlipOptimizer,
    Scalar,
    check_hyper,
    compiled,
    count_sign_changes,
    foreach_count_changes,
    foreach_flip,
    larq_flip,
    minus_one_mask,
    per_tensor,
    plus_minus_one,
    round_to,
)

# Hard-coded in the authors' code (float32 there; rounded to the param dtype here) and added
# outside the square root.
EPSILON = 1e-10


def _reference(
    ws: list[torch.Tensor],
    ms: list[torch.Tensor],
    vs: list[torch.Tensor],
    gs: list[torch.Tensor],
    counts: list[torch.Tensor] | None,
    threshold: float,
    gamma: float,
    sigma: float,
    m_div: Sequence[Scalar] | None,
    v_div: Sequence[Scalar] | None,
) -> None:
    for i, (w, m, v, g) in enumerate(zip(ws, ms, vs, gs, strict=True)):
        m.add_(gamma * (g - m))
        v.add_(sigma * (g * g - v))
        if m_div is None or v_div is None:
            signal = m / (torch.sqrt(v) + EPSILON)
        else:
            signal = (m / m_div[i]) / (torch.sqrt(v / v_div[i]) + EPSILON)
        new_w = larq_flip(w, signal, threshold)
        if counts is not None:
            counts[i].add_(((new_w >= 0) != (w >= 0)).sum())
        w.copy_(new_w)


def _foreach(
    ws: list[torch.Tensor],
    ms: list[torch.Tensor],
    vs: list[torch.Tensor],
    gs: list[torch.Tensor],
    counts: list[torch.Tensor] | None,
    threshold: float,
    gamma: float,
    sigma: float,
    m_div: Sequence[Scalar] | None,
    v_div: Sequence[Scalar] | None,
) -> None:
    delta = torch._foreach_sub(gs, ms)
    torch._foreach_mul_(delta, gamma)
    torch._foreach_add_(ms, delta)
    delta = torch._foreach_mul(gs, gs)
    torch._foreach_sub_(delta, vs)
    torch._foreach_mul_(delta, sigma)
    torch._foreach_add_(vs, delta)
    if m_div is None or v_div is None:
        num = ms
        den = torch._foreach_sqrt(vs)
    else:
        num = _foreach_divide(ms, m_div)
        den = _foreach_divide(vs, v_div)
        torch._foreach_sqrt_(den)
    torch._foreach_add_(den, EPSILON)
    d = torch._foreach_div(num, den)
    torch._foreach_mul_(d, ws)
    torch._foreach_sub_(d, threshold)
    new_ws = foreach_flip(ws, d)
    if counts is not None:
        foreach_count_changes(counts, ws, new_ws)
    torch._foreach_copy_(ws, new_ws)


def _foreach_divide(xs: list[torch.Tensor], divs: Sequence[Scalar]) -> list[torch.Tensor]:
    first = divs[0]
    if isinstance(first, torch.Tensor) and all(d is first for d in divs):
        return torch._foreach_div(xs, first)  # a true division by one 0-dim device tensor
    return torch._foreach_div(xs, [float(d) for d in divs])


def _fused(
    ws: list[torch.Tensor],
    ms: list[torch.Tensor],
    vs: list[torch.Tensor],
    gs: list[torch.Tensor],
    counts: list[torch.Tensor] | None,
    snapshots: list[tuple[torch.Tensor, torch.Tensor]] | None,
    threshold: torch.Tensor,
    gamma: torch.Tensor,
    sigma: torch.Tensor,
    m_div: list[torch.Tensor] | None,
    v_div: list[torch.Tensor] | None,
) -> None:
    """Traced by torch.compile: one pass per tensor reading g, m, v, w and writing m, v, w
    (plus the int8 sign snapshots when counting flips)."""
    for i, (w, m, v, g) in enumerate(zip(ws, ms, vs, gs, strict=True)):
        new_m = m + gamma * (g - m)
        new_v = v + sigma * (g * g - v)
        if m_div is None or v_div is None:
            signal = new_m / (torch.sqrt(new_v) + EPSILON)
        else:
            signal = (new_m / m_div[i]) / (torch.sqrt(new_v / v_div[i]) + EPSILON)
        minus_one = minus_one_mask(w, signal, threshold)
        if counts is not None and snapshots is not None:
            count_sign_changes(counts[i], minus_one, *snapshots[i])
        m.copy_(new_m)
        v.copy_(new_v)
        w.copy_(plus_minus_one(minus_one, w))


class Bop2ndOrder(FlipOptimizer):
    """Bop2ndOrder as in the authors' TensorFlow code (CuauSuarez/Bop2ndOrder, branch
    ``conference``), classes ``Bop2ndOrder`` (biased) and ``Bop2ndOrder_unbiased``.

    Per element, with m_0 = v_0 = 0 and eps = 1e-10 added outside the square root::

        m_t = m_{t-1} + gamma * (g_t - m_{t-1})
        v_t = v_{t-1} + sigma * (g_t**2 - v_{t-1})
        s_t = m_t / (sqrt(v_t) + eps)                          # default (biased)
        s_t = (m_t / gamma) / (sqrt(v_t / sigma) + eps)        # unbiased=True (authors' code)
        s_t = (m_t / c1) / (sqrt(v_t / c2) + eps)              # adam_bias_correction=True
        w_t = sgn+(-sign(w_{t-1} * s_t - threshold) * w_{t-1})

    with c1 = 1 - (1 - gamma)**t and c2 = 1 - (1 - sigma)**t (t = this tensor's step count).

    ``unbiased=True`` reproduces ``Bop2ndOrder_unbiased``: it divides by the *rates* gamma and
    sigma, which equals Adam's bias correction only at t = 1 and otherwise rescales the signal by
    about sqrt(sigma)/gamma, so thresholds of the two variants are not comparable.
    ``adam_bias_correction=True`` is the textbook alternative (not in the authors' code); the two
    options exclude each other.

    The flip rule, exact-tie behaviour (w*s == threshold gives +1), binarisation of non-binary
    weights, rounding of threshold/gamma/sigma to the parameter dtype, zero gradients, state
    (``m``, ``v``, ``step``, ``flips``), ``track_flips`` and ``impl`` are as in
    :class:`bnnlib.optim.Bop`. Each param group may override threshold, gamma and sigma.
    """

    slots = ("m", "v")

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        threshold: float = 1e-6,
        gamma: float = 1e-6,
        sigma: float = 1e-2,
        unbiased: bool = False,
        adam_bias_correction: bool = False,
        *,
        track_flips: bool = False,
        impl: str | None = None,
    ) -> None:
        if unbiased and adam_bias_correction:
            raise ValueError(
                "unbiased=True (the authors' division by gamma and sigma) and "
                "adam_bias_correction=True (Adam's 1-(1-rate)**t) exclude each other; pick one"
            )
        defaults = {
            "threshold": threshold,
            "gamma": gamma,
            "sigma": sigma,
            "unbiased": bool(unbiased),
            "adam_bias_correction": bool(adam_bias_correction),
        }
        super().__init__(params, defaults, track_flips=track_flips, impl=impl)

    def _check_group(self, group: dict[str, Any], *, in_step: bool) -> None:
        divides = group["unbiased"] or group["adam_bias_correction"]
        check_hyper("threshold", group["threshold"], 0.0, low_open=False, high=None)
        for name in ("gamma", "sigma"):
            check_hyper(name, group[name], 0.0, low_open=divides or not in_step, high=1.0)
        if group["unbiased"] and group["adam_bias_correction"]:
            raise ValueError("a param group cannot set both unbiased and adam_bias_correction")

    def _update(self, group: dict[str, Any], bucket: Bucket, impl: str) -> None:
        threshold = round_to(group["threshold"], bucket.dtype)
        gamma = round_to(group["gamma"], bucket.dtype)
        sigma = round_to(group["sigma"], bucket.dtype)
        # foreach takes per-tensor divisors as Python numbers; the other paths as device tensors.
        as_tensors = impl != "foreach"
        m_div: list[Scalar] | None = None
        v_div: list[Scalar] | None = None
        if group["unbiased"]:
            m_div = [bucket.scalar(gamma)] * len(bucket.params)
            v_div = [bucket.scalar(sigma)] * len(bucket.params)
        elif group["adam_bias_correction"]:
            g64, s64 = float(group["gamma"]), float(group["sigma"])
            m_div = per_tensor([1 - (1 - g64) ** t for t in bucket.steps], bucket, as_tensors)
            v_div = per_tensor([1 - (1 - s64) ** t for t in bucket.steps], bucket, as_tensors)
        args = (bucket.params, bucket.slots["m"], bucket.slots["v"], bucket.grads, bucket.counts)
        if impl == "compiled":
            snapshots = self._sign_snapshots(bucket) if bucket.counts is not None else None
            scalars = [bucket.scalar(x) for x in (threshold, gamma, sigma)]
            compiled(_fused)(*args, snapshots, *scalars, m_div, v_div)
        elif impl == "foreach":
            _foreach(*args, threshold, gamma, sigma, m_div, v_div)
        else:
            _reference(*args, threshold, gamma, sigma, m_div, v_div)
