"""What every optimizer of the package shares to follow torch.optim's contract.

- :func:`step_as_part_of`: step an optimizer inside another one's step (a Router's
  sub-optimizers, ClippedAdam's Adam update) so that one ``step()`` of the outer optimizer is one
  call of torch's global step hooks, while hooks registered on the inner optimizer itself still
  fire once;
- :func:`checked_params`: the tensors of a param group, validated before ``add_param_group``
  appends it, so that a rejected group leaves the optimizer as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer


def unhooked(step: Callable[..., Any]) -> Callable[..., Any]:
    """``step`` without the wrapper torch's ``Optimizer`` puts around every class's ``step`` (the
    one that runs the global and per-instance step hooks and the profiler range)."""
    return step.__wrapped__ if getattr(step, "hooked", False) else step


def step_as_part_of(opt: Optimizer, *args: Any, **kwargs: Any) -> Any:
    """``opt.step(*args, **kwargs)`` as a part of an enclosing optimizer's step: ``opt``'s own step
    pre and post hooks run (they may replace the arguments, as in torch), torch's global hooks do
    not (the enclosing step already ran them)."""
    name = f"Optimizer.step#{type(opt).__name__}.step"
    with torch.autograd.profiler.record_function(name):
        args = (opt, *args)
        for pre_hook in list(opt._optimizer_step_pre_hooks.values()):
            result = pre_hook(opt, args, kwargs)
            if result is not None:
                if not (isinstance(result, tuple) and len(result) == 2):
                    raise RuntimeError(
                        f"a step pre hook of {type(opt).__name__} must return None or "
                        f"(new_args, new_kwargs), got {result!r}"
                    )
                args, kwargs = result
        out = unhooked(type(opt).step)(*args, **kwargs)
        opt._optimizer_step_code()
        for post_hook in list(opt._optimizer_step_post_hooks.values()):
            post_hook(opt, args, kwargs)
    return out


def checked_params(param_group: dict[str, Any], owner: str) -> list[torch.Tensor]:
    """The group's tensors as a list (stored back in the group, as torch does), after checking
    that they are floating-point tensors given once each. Raises before anything is appended."""
    if not isinstance(param_group, dict):
        raise TypeError(f"{owner}: a param group must be a dict, got {type(param_group).__name__}")
    if "params" not in param_group:
        raise ValueError(f"{owner}: the param group has no 'params' entry")
    params = param_group["params"]
    if isinstance(params, torch.Tensor):
        params = [params]
    elif isinstance(params, set):
        raise TypeError(
            f"{owner}: give a param group's tensors in an ordered collection (a list), not a set"
        )
    else:
        params = list(params)
    seen: set[int] = set()
    for p in params:
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"{owner} optimizes tensors, got a {type(p).__name__} in 'params'")
        if not p.is_floating_point():
            raise ValueError(
                f"{owner} optimizes floating-point tensors, got a {p.dtype} tensor of shape "
                f"{tuple(p.shape)}"
            )
        if id(p) in seen:
            raise ValueError(
                f"{owner}: a tensor of shape {tuple(p.shape)} appears twice in one param group; "
                "give each tensor once"
            )
        seen.add(id(p))
    param_group["params"] = params
    return params
