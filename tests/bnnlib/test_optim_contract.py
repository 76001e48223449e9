"""torch.optim's contract, for every optimizer of the library (after PyTorch's own optimizer tests,
test/optim/test_optim.py): deepcopy and pickle round trips that keep stepping bit for bit,
state_dict round trips into a freshly built twin, add_param_group that validates before it
appends, step hooks fired once per step (global and per instance), and a Router that honours
the hook and state-dict hook APIs as one optimizer."""

from __future__ import annotations

import copy
import functools
import io
import pickle
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn
from torch.optim.optimizer import (
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)

from bnnlib.layers import BinaryLinear, is_binary
from bnnlib.optim import Router, create_optimizer, list_optimizers, route, sub_optimizers

HPARAMS: dict[str, Any] = {
    "threshold": 1e-3,
    "gamma": 0.2,
    "sigma": 0.3,
    "unbiased": False,
    "adam_bias_correction": False,
    "lr": 0.05,
    "weight_clip": 1.0,
    "grad_clip": 0.5,
    "beta_1": 0.9,
    "beta_2": 0.999,
    "adam_eps": 1e-7,
    "train_set_size": 16,
    "temperature": 1.0,
    "num_samples": 2,
    "grad_momentum": 0.5,
}


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(5)


def _float_adam(params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """The real-valued parameters' optimizer of the recipes: torch's own Adam."""
    return torch.optim.Adam(params, lr=0.05, foreach=True)


def _binary_case(name: str, **overrides: Any) -> Callable[[list[nn.Parameter]], Any]:
    return functools.partial(create_optimizer, name, **{**HPARAMS, **overrides})


def _whole(name: str, **overrides: Any) -> Callable[[nn.Module], torch.optim.Optimizer]:
    def build(model: nn.Module) -> torch.optim.Optimizer:
        return create_optimizer(
            name, model.parameters(), **{**HPARAMS, **overrides}, generator=_generator()
        )

    return build


def _routed(factory: Callable[[list[nn.Parameter]], Any], default=_float_adam):
    def build(model: nn.Module) -> torch.optim.Optimizer:
        return route(model, [(is_binary, factory)], default=default)

    return build


# Every optimizer of the library, built as the recipes build it (registry builders; binary
# tensors routed to the binary optimizer, the rest to torch's Adam), alone and in a Router.
BUILDERS: dict[str, Callable[[nn.Module], torch.optim.Optimizer]] = {
    "bop": lambda m: _binary_case("bop")([p for p in m.parameters() if is_binary(p)]),
    "bop2_biased": lambda m: _binary_case("bop2ndOrder")(
        [p for p in m.parameters() if is_binary(p)]
    ),
    "bop2_unbiased": lambda m: _binary_case("bop2ndOrder", unbiased=True, threshold=0.5)(
        [p for p in m.parameters() if is_binary(p)]
    ),
    "clipped_adam": lambda m: _binary_case("adam")(list(m.parameters())),
    "bayesbinn": _whole("bayesbinn"),
    "sgd": _whole("sgd", momentum=0.9, weight_decay=1e-4),
    "router_bop": _routed(_binary_case("bop")),
    "router_bop2": _routed(_binary_case("bop2ndOrder", adam_bias_correction=True)),
    "router_clipped_adam": _routed(_binary_case("adam")),
    "router_bayesbinn": _routed(
        lambda ps: create_optimizer("bayesbinn", ps, **HPARAMS, generator=_generator()),
        default=_binary_case("adam"),
    ),
}
NAMES = list(BUILDERS)
REGISTRY_NAME = {
    "bop": "bop",
    "bop2_biased": "bop2ndOrder",
    "clipped_adam": "adam",
    "bayesbinn": "bayesbinn",
    "sgd": "sgd",
}


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), BinaryLinear(5, 3), nn.Linear(3, 2))


_X = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
_Y = torch.randn(8, 2, generator=torch.Generator().manual_seed(2))


def _build(name: str) -> tuple[nn.Module, torch.optim.Optimizer]:
    model = _model()
    return model, BUILDERS[name](model)


def _closure(model: nn.Module, opt: torch.optim.Optimizer) -> Callable[[], torch.Tensor]:
    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (model(_X) - _Y).square().mean()
        loss.backward()
        return loss

    return closure


def _steps(model: nn.Module, opt: torch.optim.Optimizer, n: int) -> None:
    closure = _closure(model, opt)
    for _ in range(n):
        opt.step(closure)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A state dict (or a Router's list of them) as path -> leaf, to compare bit for bit."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}/{key}"))
        return out
    if isinstance(value, list | tuple):
        out = {}
        for i, item in enumerate(value):
            out.update(_flatten(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def _generator_states(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [
        g.get_state()
        for o in sub_optimizers(opt)
        if (g := getattr(o, "generator", None)) is not None
    ]


def _assert_same(a: tuple[nn.Module, torch.optim.Optimizer], b: tuple[nn.Module, Any]) -> None:
    (model_a, opt_a), (model_b, opt_b) = a, b
    for (name, p), q in zip(model_a.named_parameters(), model_b.parameters(), strict=True):
        assert p.dtype == q.dtype and torch.equal(p, q), name
    sd_a, sd_b = _flatten(opt_a.state_dict()), _flatten(opt_b.state_dict())
    assert sd_a.keys() == sd_b.keys()
    for key, want in sd_a.items():
        got = sd_b[key]
        if isinstance(want, torch.Tensor):
            assert got.dtype == want.dtype and torch.equal(got, want), key
        else:
            assert got == want, key
    for g_a, g_b in zip(_generator_states(opt_a), _generator_states(opt_b), strict=True):
        assert torch.equal(g_a, g_b)


def _round_trip_through_bytes(state_dict: Any) -> Any:
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_every_registered_optimizer_is_covered() -> None:
    covered = set(REGISTRY_NAME.values()) | {"bop2ndOrder"}
    assert set(list_optimizers()) <= covered


# -- deepcopy and pickle ----------------------------------------------------------------------


def _public_attrs(obj: object) -> set[str]:
    return {k for k in vars(obj) if not k.startswith("_")}


@pytest.mark.parametrize("name", NAMES)
def test_deepcopy_copies_all_public_attrs(name: str) -> None:
    model, opt = _build(name)
    _steps(model, opt, 2)
    twin = copy.deepcopy(opt)
    assert _public_attrs(twin) == _public_attrs(opt)
    for a, b in zip(sub_optimizers(opt), sub_optimizers(twin), strict=True):
        assert type(a) is type(b)
        assert _public_attrs(a) == _public_attrs(b)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize("name", NAMES)
def test_copies_keep_stepping_identically(name: str, how: str) -> None:
    """A copy of (model, optimizer), taken mid-training, takes the same next steps as the
    original: same parameters, state and noise generator, bit for bit."""
    model, opt = _build(name)
    _steps(model, opt, 3)
    if how == "deepcopy":
        twin = copy.deepcopy((model, opt))
    else:
        twin = pickle.loads(pickle.dumps((model, opt)))
    _assert_same((model, opt), twin)
    _steps(model, opt, 4)
    _steps(*twin, 4)
    _assert_same((model, opt), twin)
    # The copy is independent: stepping it leaves the original alone.
    before = [p.detach().clone() for p in model.parameters()]
    _steps(*twin, 1)
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_compiled_flip_counting_survives_a_copy(how: str) -> None:
    """The compiled counter's int8 sign snapshots are not copied; the copy rebuilds them from the
    weights and counts the same flips as the original."""
    from bnnlib.optim import Bop

    def build(model: nn.Module) -> torch.optim.Optimizer:
        binary = [p for p in model.parameters() if is_binary(p)]
        return Bop(binary, threshold=0.0, gamma=0.5, track_flips=True, impl="compiled")

    model = _model()
    opt = build(model)
    _steps(model, opt, 2)
    twin = (
        copy.deepcopy((model, opt))
        if how == "deepcopy"
        else pickle.loads(pickle.dumps((model, opt)))
    )
    assert twin[1].impl == "compiled" and twin[1].track_flips
    _steps(model, opt, 3)
    _steps(*twin, 3)
    _assert_same((model, opt), twin)
    assert [c for _, c in twin[1].flip_counts()] == [c for _, c in opt.flip_counts()]
    assert sum(c for _, c in opt.flip_counts()) > 0


def test_router_copy_keeps_its_sub_optimizers_in_step() -> None:
    model, router = _build("router_bop")
    twin_model, twin = copy.deepcopy((model, router))
    assert isinstance(twin, Router) and len(twin.optimizers) == 2
    sub_groups = [g for o in twin.optimizers for g in o.param_groups]
    assert len(twin.param_groups) == len(sub_groups)
    assert all(a is b for a, b in zip(twin.param_groups, sub_groups, strict=True))
    binary = twin_model[1].weight
    _steps(twin_model, twin, 1)
    assert binary in twin.state and binary in twin.optimizers[0].state
    assert model[1].weight not in twin.state


def test_bayesbinn_copy_keeps_its_generator_stream() -> None:
    model, opt = _build("bayesbinn")
    _steps(model, opt, 1)
    twin_model, twin = pickle.loads(pickle.dumps((model, opt)))
    assert isinstance(twin.generator, torch.Generator) and twin.generator is not opt.generator
    assert torch.equal(twin.generator.get_state(), opt.generator.get_state())
    assert twin.stale_mu == opt.stale_mu


# -- state_dict round trip --------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_into_a_fresh_twin(name: str) -> None:
    """Saved mid-training (through torch.save / torch.load(weights_only=True)) and loaded into a
    freshly built twin, the twin continues exactly as the original."""
    model, opt = _build(name)
    _steps(model, opt, 3)
    saved = _round_trip_through_bytes({"model": model.state_dict(), "opt": opt.state_dict()})
    twin_model, twin = _build(name)
    twin_model.load_state_dict(saved["model"])
    twin.load_state_dict(saved["opt"])
    _assert_same((model, opt), (twin_model, twin))
    _steps(model, opt, 4)
    _steps(twin_model, twin, 4)
    _assert_same((model, opt), (twin_model, twin))


# -- add_param_group --------------------------------------------------------------------------

BAD_GROUPS: dict[str, list[tuple[dict[str, Any], str]]] = {
    "bop": [
        ({"gamma": 0.0}, "gamma"),
        ({"gamma": 1.5}, "gamma"),
        ({"threshold": -1.0}, "threshold"),
        ({"threshold": float("nan")}, "threshold"),
    ],
    "bop2_biased": [
        ({"sigma": 2.0}, "sigma"),
        ({"gamma": -0.1}, "gamma"),
        ({"unbiased": True, "adam_bias_correction": True}, "unbiased"),
    ],
    "bop2_unbiased": [({"sigma": 0.0}, "sigma"), ({"threshold": -2.0}, "threshold")],
    "clipped_adam": [
        ({"weight_clip": 0.0}, "weight_clip"),
        ({"grad_clip": -1.0}, "grad_clip"),
        ({"lr": -0.1}, "lr"),
        ({"eps": -1.0}, "eps"),
        ({"betas": (1.0, 0.999)}, "beta"),
        ({"betas": (0.9, -0.5)}, "beta"),
        ({"weight_decay": -1.0}, "weight_decay"),
    ],
}
FLAT = [(name, bad, word) for name, cases in BAD_GROUPS.items() for bad, word in cases]


def _new_param(shape: tuple[int, ...] = (3, 2)) -> nn.Parameter:
    return nn.Parameter(torch.ones(shape))


def _param_groups_snapshot(opt: torch.optim.Optimizer) -> list[tuple[int, list[int], dict]]:
    return [
        (id(g), [id(p) for p in g["params"]], {k: v for k, v in g.items() if k != "params"})
        for g in opt.param_groups
    ]


def _assert_rejected(
    name: str,
    group: Callable[[nn.Module, Any], dict[str, Any]],
    word: str,
    error: type[Exception] = ValueError,
) -> None:
    """``add_param_group(group(model, opt))`` raises a one-line error naming ``word`` and leaves
    the optimizer as it was: its later steps match a twin that never saw the group."""
    model, opt = _build(name)
    twin_model, twin = _build(name)
    _steps(model, opt, 1)
    _steps(twin_model, twin, 1)
    groups = _param_groups_snapshot(opt)
    state_keys = [id(k) for k in opt.state]
    with pytest.raises(error, match=word) as info:
        opt.add_param_group(group(model, opt))
    assert "\n" not in str(info.value)
    assert _param_groups_snapshot(opt) == groups
    assert [id(k) for k in opt.state] == state_keys
    _steps(model, opt, 2)
    _steps(twin_model, twin, 2)
    _assert_same((model, opt), (twin_model, twin))


@pytest.mark.parametrize(("name", "bad", "word"), FLAT, ids=[f"{n}-{w}" for n, _, w in FLAT])
def test_add_param_group_validates_before_appending(name: str, bad: dict, word: str) -> None:
    _assert_rejected(name, lambda m, o: {"params": [_new_param()], **bad}, word)


@pytest.mark.parametrize("name", list(BAD_GROUPS))
def test_add_param_group_refuses_duplicate_parameters(name: str) -> None:
    taken = lambda m, o: {"params": [o.param_groups[0]["params"][0]]}  # noqa: E731
    _assert_rejected(name, taken, "more than one parameter group")
    fresh = _new_param()
    _assert_rejected(name, lambda m, o: {"params": [fresh, fresh]}, "twice")


@pytest.mark.parametrize("name", list(BAD_GROUPS))
def test_add_param_group_refuses_non_floating_tensors(name: str) -> None:
    counts = torch.zeros(3, dtype=torch.int64)
    _assert_rejected(name, lambda m, o: {"params": [counts]}, "floating")


@pytest.mark.parametrize("name", list(BAD_GROUPS))
def test_add_param_group_accepts_a_good_group_and_steps_it(name: str) -> None:
    model, opt = _build(name)
    extra = nn.Parameter(torch.tensor([[0.5, -2.0], [3.0, -0.25]]))
    opt.add_param_group({"params": [extra]})
    assert opt.param_groups[-1]["params"] == [extra]
    before = extra.detach().clone()
    closure = _closure(model, opt)

    def with_extra() -> torch.Tensor:
        loss = closure()
        (extra.sum() * 0.1).backward()
        return loss

    opt.step(with_extra)
    assert not torch.equal(extra, before)
    assert extra in opt.state


def test_bayesbinn_refuses_any_added_group_and_keeps_working() -> None:
    _assert_rejected("bayesbinn", lambda m, o: {"params": [_new_param()]}, "fixed at construction")


def test_router_add_param_group_validates_before_appending() -> None:
    # A group that no sub-optimizer holds is refused, as before.
    new = lambda m, o: {"params": [_new_param()]}  # noqa: E731
    _assert_rejected("router_bop", new, "router.optimizers", TypeError)
    # A group already routed is refused without being added twice.
    _assert_rejected("router_bop", lambda m, o: o.param_groups[0], "already")
    _assert_rejected("router_bop", lambda m, o: o.param_groups[-1], "already")
    # The supported way: add it to a sub-optimizer, then to the Router.
    model, router = _build("router_bop")
    flip, real = router.optimizers
    extra = _new_param()
    flip.add_param_group({"params": [extra]})
    router.add_param_group(flip.param_groups[-1])
    assert router.param_groups[-1] is flip.param_groups[-1]


# -- hooks ------------------------------------------------------------------------------------


@pytest.fixture
def global_hooks():
    calls: list[tuple[str, int]] = []
    pre = register_optimizer_step_pre_hook(lambda o, a, k: calls.append(("pre", id(o))))
    post = register_optimizer_step_post_hook(lambda o, a, k: calls.append(("post", id(o))))
    try:
        yield calls
    finally:
        pre.remove()
        post.remove()


@pytest.mark.parametrize("name", NAMES)
def test_global_step_hooks_fire_once_per_step(name: str, global_hooks) -> None:
    """One step() is one pre and one post call with the stepped optimizer, also once a plain
    torch Adam exists (which patches Adam.step with torch's hook wrapper)."""
    torch.optim.Adam([_new_param()], lr=0.1)
    torch.optim.SGD([_new_param()], lr=0.1)
    model, opt = _build(name)
    _steps(model, opt, 2)
    assert global_hooks == [("pre", id(opt)), ("post", id(opt))] * 2


@pytest.mark.parametrize("name", NAMES)
def test_instance_step_hooks_fire_once_per_step_in_order(name: str, global_hooks) -> None:
    """As PyTorch's test_step_all_hooks: global pre, local pre, local post, global post."""
    model, opt = _build(name)
    opt.register_step_pre_hook(lambda o, a, k: global_hooks.append(("local_pre", id(o))))
    opt.register_step_post_hook(lambda o, a, k: global_hooks.append(("local_post", id(o))))
    _steps(model, opt, 2)
    me = id(opt)
    once = [("pre", me), ("local_pre", me), ("local_post", me), ("post", me)]
    assert global_hooks == once * 2


def test_router_steps_fire_the_sub_optimizers_own_hooks_once() -> None:
    """Inside a Router, a sub-optimizer's step is part of the Router's step: global hooks see one
    step (the Router's), hooks registered on a sub-optimizer itself fire once per Router step."""
    model, router = _build("router_bop")
    calls: list[str] = []
    for i, opt in enumerate(router.optimizers):
        opt.register_step_pre_hook(lambda o, a, k, i=i: calls.append(f"pre{i}"))
        opt.register_step_post_hook(lambda o, a, k, i=i: calls.append(f"post{i}"))
    _steps(model, router, 2)
    assert calls == ["pre0", "post0", "pre1", "post1"] * 2


def test_a_pre_hook_may_replace_the_step_arguments() -> None:
    model, router = _build("router_bayesbinn")
    calls = []
    closure = _closure(model, router)

    def counted() -> torch.Tensor:
        calls.append(1)
        return closure()

    router.register_step_pre_hook(lambda o, a, k: ((a[0], counted), {}))
    router.step(closure)
    assert len(calls) == HPARAMS["num_samples"]


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_hooks_are_honoured(name: str) -> None:
    """As PyTorch's state_dict / load_state_dict hook tests: pre hooks see the optimizer, a post
    hook's return value replaces the state dict, a load pre hook may replace what is loaded."""
    model, opt = _build(name)
    _steps(model, opt, 1)
    calls: list[str] = []
    marker = {"marked": True}

    def sd_post(o, sd):
        calls.append("sd_post")
        return {"wrapped": sd, **marker}

    def load_pre(o, sd):
        calls.append("load_pre")
        assert sd["marked"]
        return sd["wrapped"]

    opt.register_state_dict_pre_hook(lambda o: calls.append("sd_pre"))
    opt.register_state_dict_post_hook(sd_post)
    opt.register_load_state_dict_pre_hook(load_pre)
    opt.register_load_state_dict_post_hook(lambda o: calls.append("load_post"))
    saved = opt.state_dict()
    assert saved["marked"] and calls == ["sd_pre", "sd_post"]
    saved = _round_trip_through_bytes(saved)
    opt.load_state_dict(saved)
    assert calls == ["sd_pre", "sd_post", "load_pre", "load_post"]
    _steps(model, opt, 1)


# -- refused loads change nothing -------------------------------------------------------------


def test_bayesbinn_refuses_a_state_dict_for_other_parameters() -> None:
    model, opt = _build("bayesbinn")
    twin_model, twin = _build("bayesbinn")
    _steps(model, opt, 1)
    _steps(twin_model, twin, 1)
    others = [nn.Parameter(torch.zeros(1)) for _ in model.parameters()]  # as many, smaller
    foreign = create_optimizer("bayesbinn", others, **HPARAMS).state_dict()
    with pytest.raises(ValueError, match="'lamda' has shape \\(5,\\)"):
        opt.load_state_dict(foreign)
    _steps(model, opt, 2)
    _steps(twin_model, twin, 2)
    _assert_same((model, opt), (twin_model, twin))


def test_bayesbinn_loads_a_state_dict_without_generator_state() -> None:
    """State dicts saved before they carried the generator's state still load; the generator
    then keeps its own position."""
    model, opt = _build("bayesbinn")
    _steps(model, opt, 1)
    saved = _round_trip_through_bytes(opt.state_dict())
    del saved["state"]["bayesbinn"]["generator"]
    before = opt.generator.get_state()
    opt.load_state_dict(saved)
    assert torch.equal(opt.generator.get_state(), before)
    assert "generator" not in opt.state["bayesbinn"]
    _steps(model, opt, 1)


def test_router_refuses_a_mismatched_list_before_loading_any() -> None:
    model, router = _build("router_bop")
    twin_model, twin = _build("router_bop")
    _steps(model, router, 1)
    _steps(twin_model, twin, 1)
    earlier = _round_trip_through_bytes(router.state_dict())
    _steps(model, router, 1)
    _steps(twin_model, twin, 1)
    # The first would load (an older state of Bop), the second does not fit Adam.
    bad = [earlier[0], _round_trip_through_bytes(earlier[0])]
    bad[1]["param_groups"][0]["params"] = bad[1]["param_groups"][0]["params"][:0]
    with pytest.raises(ValueError, match=r"state dict 1 does not match optimizers\[1\] \(Adam"):
        router.load_state_dict(bad)
    _steps(model, router, 2)
    _steps(twin_model, twin, 2)
    _assert_same((model, router), (twin_model, twin))
