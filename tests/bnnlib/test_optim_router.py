"""Router (larq's CaseOptimizer) and the route() builder."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from torch import nn

from bnnlib.layers import BinaryLinear, is_binary
from bnnlib.optim import Bop, ExponentialDecay, HyperparameterScheduler, Router, route


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 8), nn.BatchNorm1d(8), BinaryLinear(8, 8), nn.BatchNorm1d(8), nn.Linear(8, 3)
    )


def _loss(model: nn.Module) -> torch.Tensor:
    x = torch.randn(16, 6, generator=torch.Generator().manual_seed(1))
    return model(x).square().mean()


bop = functools.partial(Bop, threshold=0.0, gamma=0.5)
adam = functools.partial(torch.optim.Adam, lr=0.1)


def test_route_partitions_binary_and_real_parameters() -> None:
    model = _model()
    router = route(model, [(is_binary, bop)], default=adam)
    flip, real = router.optimizers
    assert isinstance(flip, Bop) and isinstance(real, torch.optim.Adam)
    assert flip.param_groups[0]["params"] == [model[2].weight]
    binary_ids = {id(model[2].weight)}
    assert {id(p) for p in real.param_groups[0]["params"]} == {
        id(p) for p in model.parameters() if id(p) not in binary_ids
    }
    expected = flip.param_groups + real.param_groups
    assert len(router.param_groups) == len(expected)
    assert all(a is b for a, b in zip(router.param_groups, expected, strict=True))


def test_router_steps_every_optimizer() -> None:
    model = _model()
    router = route(model, [(is_binary, bop)], default=adam)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    router.zero_grad()
    _loss(model).backward()
    router.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert "2.weight" in changed and "0.weight" in changed and "4.bias" in changed
    assert torch.all(model[2].weight.abs() == 1)
    assert model[2].weight in router.state and model[0].weight in router.state
    router.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_router_closure_is_evaluated_once_with_grad() -> None:
    model = _model()
    router = route(model, [(is_binary, bop)], default=adam)
    calls = []

    def closure() -> torch.Tensor:
        calls.append(torch.is_grad_enabled())
        router.zero_grad()
        loss = _loss(model)
        loss.backward()
        return loss

    with torch.no_grad():
        loss = router.step(closure)
    assert calls == [True]
    assert loss.requires_grad


class _ClosureConsumer(torch.optim.SGD):
    """Stands in for BayesBiNN: evaluates the closure several times itself."""

    consumes_closure = True

    def step(self, closure=None):
        losses = [closure() for _ in range(3)]
        super().step()
        return sum(losses) / len(losses)


def test_router_lets_a_closure_consumer_run_it() -> None:
    model = _model()
    calls = []

    def closure() -> torch.Tensor:
        calls.append(1)
        with torch.enable_grad():
            router.zero_grad()
            loss = _loss(model)
            loss.backward()
        return loss

    consumer = functools.partial(_ClosureConsumer, lr=0.1)
    router = route(model, [(is_binary, consumer)], default=adam)
    before = model[0].weight.detach().clone()
    loss = router.step(closure)
    assert len(calls) == 3
    assert torch.isfinite(loss)
    assert not torch.equal(model[0].weight, before)


def test_router_refuses_a_tensor_in_two_optimizers() -> None:
    w = nn.Parameter(torch.ones(3, 2))
    with pytest.raises(
        ValueError, match=r"shape \(3, 2\).*optimizers\[0\] \(Bop\).*optimizers\[1\]"
    ):
        Router([Bop([w]), torch.optim.Adam([w])])
    with pytest.raises(ValueError, match="at least one"):
        Router([])
    with pytest.raises(TypeError, match="not an Optimizer"):
        Router([object()])


def test_route_errors_and_warnings() -> None:
    model = _model()
    with pytest.raises(ValueError, match="'2.weight'.*claimed by cases 0 and 1"):
        route(model, [(is_binary, bop), (lambda p: p.dim() == 2, adam)])
    with pytest.raises(ValueError, match="case 1 .* claims no trainable parameter"):
        route(model, [(is_binary, bop), (lambda p: p.dim() == 5, adam)])
    with pytest.warns(UserWarning, match="not be trained: 0.weight, 0.bias"):
        router = route(model, [(is_binary, bop)])
    assert len(router.optimizers) == 1
    with pytest.raises(TypeError, match="route\\(\\) takes"):
        route([torch.ones(2)], [(is_binary, bop)])


def test_route_skips_frozen_parameters() -> None:
    model = _model()
    model[1].weight.requires_grad_(False)
    router = route(model, [(is_binary, bop)], default=adam)
    routed = {id(p) for g in router.param_groups for p in g["params"]}
    assert id(model[1].weight) not in routed


def test_router_state_dict_round_trip() -> None:
    def build():
        model = _model()
        return model, route(model, [(is_binary, bop)], default=adam)

    model, router = build()
    for _ in range(2):
        router.zero_grad()
        _loss(model).backward()
        router.step()
    saved = copy.deepcopy(router.state_dict())  # state_dict() holds references
    assert isinstance(saved, list) and len(saved) == 2

    model2, router2 = build()
    model2.load_state_dict(model.state_dict())
    router2.load_state_dict(saved)
    assert all(
        a is b
        for a, b in zip(
            router2.param_groups,
            [g for o in router2.optimizers for g in o.param_groups],
            strict=True,
        )
    )
    for m, r in ((model, router), (model2, router2)):
        r.zero_grad()
        _loss(m).backward()
        r.step()
    for p, q in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="list of 2 state dicts"):
        router2.load_state_dict(saved[:1])


def test_scheduler_reaches_sub_optimizers_through_the_router() -> None:
    model = _model()
    router = route(model, [(is_binary, bop)], default=adam)
    sched = HyperparameterScheduler(
        router, {"gamma": ExponentialDecay(0.5, 1, 0.1), "lr": ExponentialDecay(0.1, 2, 0.5)}
    )
    flip, real = router.optimizers
    assert flip.param_groups[0]["gamma"] == 0.5 and real.param_groups[0]["lr"] == 0.1
    router.step()
    sched.step()
    assert flip.param_groups[0]["gamma"] == pytest.approx(0.05)
    assert real.param_groups[0]["lr"] == 0.1
    assert "gamma" not in real.param_groups[0]


def test_router_add_param_group_goes_through_a_sub_optimizer() -> None:
    router = route(_model(), [(is_binary, bop)], default=adam)
    with pytest.raises(TypeError, match="router.optimizers"):
        router.add_param_group({"params": [nn.Parameter(torch.ones(2))]})
