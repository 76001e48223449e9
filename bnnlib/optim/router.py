"""Several optimizers stepped as one: binary tensors to a flip optimizer, the rest to Adam.

This is larq's ``CaseOptimizer``: a BNN recipe trains its +-1 kernels with Bop (or BayesBiNN)
and its real parameters (BatchNorm, biases, real first/last layers) with an ordinary optimizer,
and a trainer, a checkpoint or an LR scheduler should see one optimizer.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from ._contract import step_as_part_of

Predicate = Callable[[torch.Tensor], bool]
Factory = Callable[[list[torch.Tensor]], Optimizer]


def _describe(t: torch.Tensor, name: str | None = None) -> str:
    label = f"parameter {name!r}" if name else "a tensor"
    return f"{label} of shape {tuple(t.shape)} (id {id(t):#x})"


class _MergedState(Mapping):
    """Read-only view of the sub-optimizers' ``state`` (they are disjoint by construction).

    Plain chaining would not do: looking up a missing key in a ``defaultdict`` inserts it.
    """

    def __init__(self, optimizers: Sequence[Optimizer]) -> None:
        self._optimizers = optimizers

    def __getitem__(self, key: torch.Tensor) -> Any:
        for opt in self._optimizers:
            if key in opt.state:
                return opt.state[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator[torch.Tensor]:
        for opt in self._optimizers:
            yield from opt.state

    def __len__(self) -> int:
        return sum(len(opt.state) for opt in self._optimizers)


class Router(Optimizer):
    """Steps several optimizers over disjoint tensors as one optimizer.

    ``param_groups`` is the concatenation of the sub-optimizers' groups (the same dict objects,
    so a scheduler that writes ``group["lr"]`` or ``group["gamma"]`` reaches the sub-optimizer;
    use :class:`bnnlib.optim.HyperparameterScheduler`, as torch's LR schedulers expect ``lr`` in
    every group), ``state`` a read-only merged view, ``state_dict()`` the list of the
    sub-optimizers' state dicts.

    ``step(closure)``: if a sub-optimizer declares ``consumes_closure = True`` (BayesBiNN
    evaluates the closure several times itself), it is stepped first with the closure and its
    loss is returned, then the others are stepped without it. Otherwise the closure (if any) is
    evaluated once with gradients enabled and every sub-optimizer is stepped.

    torch's hook APIs see one optimizer: one ``router.step()`` is one call of torch's global step
    hooks (``register_optimizer_step_pre_hook`` / ``..._post_hook``, with the Router as the
    optimizer) and of the Router's own step hooks; the sub-optimizers' steps are parts of it, so
    the global hooks do not run for them again, while hooks registered on a sub-optimizer itself
    fire once per Router step. ``state_dict()`` and ``load_state_dict()`` run the Router's
    state-dict hooks as torch's do (a post hook or a load pre hook may return a replacement),
    and each sub-optimizer's own. ``copy.deepcopy`` and pickling keep the sub-optimizers.
    """

    def __init__(self, optimizers: Sequence[Optimizer]) -> None:
        optimizers = list(optimizers)
        if not optimizers:
            raise ValueError("Router needs at least one optimizer")
        for i, opt in enumerate(optimizers):
            if not isinstance(opt, Optimizer):
                raise TypeError(f"optimizers[{i}] is {type(opt).__name__}, not an Optimizer")
        owner: dict[int, int] = {}
        for i, opt in enumerate(optimizers):
            for group in opt.param_groups:
                for p in group["params"]:
                    j = owner.setdefault(id(p), i)
                    if j != i:
                        raise ValueError(
                            f"{_describe(p)} is claimed by optimizers[{j}] "
                            f"({type(optimizers[j]).__name__}) and optimizers[{i}] "
                            f"({type(opt).__name__}); each tensor may have one optimizer"
                        )
        consumers = [o for o in optimizers if getattr(o, "consumes_closure", False)]
        if len(consumers) > 1:
            names = ", ".join(type(o).__name__ for o in consumers)
            raise ValueError(f"only one optimizer may consume the closure, got {names}")
        self.optimizers = optimizers
        groups = [g for opt in optimizers for g in opt.param_groups]
        super().__init__(groups, {})
        # Optimizer.__init__ appended the very same group dicts; only ``state`` is replaced.
        self.state = _MergedState(self.optimizers)  # type: ignore[assignment]

    def sub_optimizers(self) -> list[Optimizer]:
        """The optimizers this Router steps, in order (:func:`bnnlib.optim.sub_optimizers`)."""
        return list(self.optimizers)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Register a group that one of ``router.optimizers`` already holds (add it there first);
        refused, changing nothing, if no sub-optimizer holds it or the Router already has it."""
        if not any(param_group is g for o in self.optimizers for g in o.param_groups):
            raise TypeError(
                "Router.add_param_group: add the group to one of router.optimizers instead"
            )
        if any(param_group is g for g in self.param_groups):
            raise ValueError("Router.add_param_group: this param group is already in the Router")
        super().add_param_group(param_group)

    def __getstate__(self) -> dict[str, Any]:
        # torch keeps defaults, state and param_groups; the Router's state is a view of its
        # sub-optimizers, which must be kept instead (param_groups are the same dicts as theirs).
        return {
            "optimizers": self.optimizers,
            "defaults": self.defaults,
            "param_groups": self.param_groups,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        optimizers = state["optimizers"]
        state.setdefault("param_groups", [g for o in optimizers for g in o.param_groups])
        state["state"] = _MergedState(optimizers)
        super().__setstate__(state)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        consumer = next((o for o in self.optimizers if getattr(o, "consumes_closure", False)), None)
        if consumer is not None:
            loss = step_as_part_of(consumer, closure)
            for opt in self.optimizers:
                if opt is not consumer:
                    step_as_part_of(opt)
            return loss
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for opt in self.optimizers:
            step_as_part_of(opt)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> list[dict[str, Any]]:  # type: ignore[override]
        """The sub-optimizers' state dicts, in order, through the Router's state-dict hooks."""
        for pre_hook in list(self._optimizer_state_dict_pre_hooks.values()):
            pre_hook(self)
        state: Any = [opt.state_dict() for opt in self.optimizers]
        for post_hook in list(self._optimizer_state_dict_post_hooks.values()):
            result = post_hook(self, state)
            if result is not None:
                state = result
        return state

    def load_state_dict(self, state_dict: list[dict[str, Any]]) -> None:  # type: ignore[override]
        """Load one state dict per sub-optimizer (after the Router's load pre hooks, which may
        replace the list). The list is checked against every sub-optimizer's param groups before
        any is loaded, so a mismatch changes nothing."""
        for pre_hook in list(self._optimizer_load_state_dict_pre_hooks.values()):
            result = pre_hook(self, state_dict)
            if result is not None:
                state_dict = result
        if not isinstance(state_dict, list | tuple) or len(state_dict) != len(self.optimizers):
            got = len(state_dict) if isinstance(state_dict, list | tuple) else type(state_dict)
            raise ValueError(
                f"Router.load_state_dict expects a list of {len(self.optimizers)} state dicts "
                f"(one per sub-optimizer), got {got}"
            )
        for i, (opt, sd) in enumerate(zip(self.optimizers, state_dict, strict=True)):
            groups = sd.get("param_groups") if isinstance(sd, dict) else None
            sizes = [len(g["params"]) for g in opt.param_groups]
            if groups is None or [len(g["params"]) for g in groups] != sizes:
                raise ValueError(
                    f"Router.load_state_dict: state dict {i} does not match optimizers[{i}] "
                    f"({type(opt).__name__}, param groups of sizes {sizes})"
                )
        for opt, sd in zip(self.optimizers, state_dict, strict=True):
            opt.load_state_dict(sd)
        self.param_groups = [g for opt in self.optimizers for g in opt.param_groups]
        for post_hook in list(self._optimizer_load_state_dict_post_hooks.values()):
            post_hook(self)


def _named_parameters(
    source: nn.Module | Iterable[tuple[str, torch.Tensor]],
) -> list[tuple[str, torch.Tensor]]:
    items = source.named_parameters() if isinstance(source, nn.Module) else source
    seen: set[int] = set()
    result = []
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], torch.Tensor)):
            raise TypeError(
                "route() takes an nn.Module or an iterable of (name, parameter) pairs, "
                f"got an item {item!r}"
            )
        name, p = item
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            result.append((name, p))
    return result


def route(
    named_params_or_module: nn.Module | Iterable[tuple[str, torch.Tensor]],
    cases: Sequence[tuple[Predicate, Factory]],
    default: Factory | None = None,
) -> Router:
    """Partition trainable parameters by predicate and build one optimizer per case.

    ``cases`` is a list of ``(predicate, factory)``: ``predicate(param) -> bool`` (for example
    :func:`bnnlib.layers.is_binary`) and ``factory(params) -> Optimizer`` (for example
    ``functools.partial(Bop, threshold=1e-8)``). Parameters no predicate claims go to
    ``default``; without a default they are not trained and a warning names them.

    Raises ValueError if a tensor is claimed by two predicates or a case claims nothing.
    """
    named = _named_parameters(named_params_or_module)
    claimed: list[list[torch.Tensor]] = [[] for _ in cases]
    unclaimed: list[tuple[str, torch.Tensor]] = []
    for name, p in named:
        hits = [i for i, (predicate, _) in enumerate(cases) if predicate(p)]
        if len(hits) > 1:
            raise ValueError(
                f"{_describe(p, name)} is claimed by cases {hits[0]} and {hits[1]}; "
                "each parameter may match one predicate"
            )
        if hits:
            claimed[hits[0]].append(p)
        else:
            unclaimed.append((name, p))
    for i, ((predicate, _), params) in enumerate(zip(cases, claimed, strict=True)):
        if not params:
            pname = getattr(predicate, "__name__", repr(predicate))
            raise ValueError(f"case {i} (predicate {pname}) claims no trainable parameter")
    optimizers = [factory(params) for (_, factory), params in zip(cases, claimed, strict=True)]
    if unclaimed:
        if default is None:
            names = ", ".join(name for name, _ in unclaimed)
            warnings.warn(
                f"{len(unclaimed)} parameters match no case and there is no default optimizer; "
                f"they will not be trained: {names}",
                UserWarning,
                stacklevel=2,
            )
        else:
            optimizers.append(default([p for _, p in unclaimed]))
    return Router(optimizers)
