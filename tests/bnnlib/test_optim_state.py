"""Flip optimizers: state_dict round trips, flip counting, param groups, buckets, impls."""

from __future__ import annotations

import io

import pytest
import torch

from bnnlib.optim import Bop, Bop2ndOrder

IMPLS = ["reference", "foreach", "compiled"]
SHAPES = [(4, 3, 3, 3), (16, 36), (5,)]

VARIANTS = {
    "bop": (Bop, {"threshold": 1e-3, "gamma": 0.05}),
    "bop2_biased": (Bop2ndOrder, {"threshold": 0.05, "gamma": 0.1, "sigma": 0.2}),
    "bop2_unbiased": (
        Bop2ndOrder,
        {"threshold": 0.8, "gamma": 0.1, "sigma": 0.2, "unbiased": True},
    ),
    "bop2_adam": (
        Bop2ndOrder,
        {"threshold": 0.8, "gamma": 0.1, "sigma": 0.2, "adam_bias_correction": True},
    ),
}


def _params(seed: int = 0, dtype: torch.dtype = torch.float32) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.nn.Parameter(torch.randint(0, 2, s, generator=gen).to(dtype) * 2 - 1) for s in SHAPES
    ]


def _grads(steps: int, seed: int = 1) -> list[list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(s, generator=gen) + 0.3 for s in SHAPES] for _ in range(steps)]


def _run(opt, params, grads) -> None:
    for step_grads in grads:
        for p, g in zip(params, step_grads, strict=True):
            p.grad = g.to(p.dtype)
        opt.step()


def _snapshot(opt, params) -> list[dict[str, torch.Tensor]]:
    return [
        {"w": p.detach().clone(), **{k: v.clone() for k, v in opt.state[p].items() if k != "step"}}
        for p in params
    ]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_state_dict_round_trip_continues_identically(variant: str, impl: str) -> None:
    cls, kwargs = VARIANTS[variant]
    grads = _grads(7)

    straight = _params()
    opt = cls(straight, track_flips=True, impl=impl, **kwargs)
    _run(opt, straight, grads)

    first = _params()
    opt1 = cls(first, track_flips=True, impl=impl, **kwargs)
    _run(opt1, first, grads[:3])
    buffer = io.BytesIO()
    torch.save({"params": [p.detach() for p in first], "opt": opt1.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer)

    resumed = [torch.nn.Parameter(w.clone()) for w in saved["params"]]
    opt2 = cls(resumed, track_flips=True, impl=impl, **kwargs)
    opt2.load_state_dict(saved["opt"])
    _run(opt2, resumed, grads[3:])

    for want, got in zip(_snapshot(opt, straight), _snapshot(opt2, resumed), strict=True):
        assert want.keys() == got.keys()
        for key in want:
            assert got[key].dtype == want[key].dtype, key
            assert torch.equal(got[key], want[key]), key
    assert [s["step"] for s in opt2.state.values()] == [7, 7, 7]
    assert all(s["flips"].dtype == torch.int64 for s in opt2.state.values())


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_impls_agree_over_groups_and_dtypes(variant: str) -> None:
    """Two groups with their own hyper-parameters, one mixing float32 and float64 tensors
    (two buckets); every impl gives the same weights and flip counts, and m, v to 1e-6."""
    cls, kwargs = VARIANTS[variant]
    results = {}
    for impl in IMPLS:
        params = _params()
        params[2] = torch.nn.Parameter(params[2].detach().double())
        groups = [
            {"params": params[:1], "threshold": kwargs["threshold"] * 2},
            {"params": params[1:]},
        ]
        opt = cls(groups, track_flips=True, impl=impl, **kwargs)
        _run(opt, params, _grads(6))
        results[impl] = (_snapshot(opt, params), opt.flip_counts())
    ref_snap, ref_counts = results["reference"]
    assert sum(c for _, c in ref_counts) > 0
    for impl in ("foreach", "compiled"):
        snap, counts = results[impl]
        assert [c for _, c in counts] == [c for _, c in ref_counts]
        for want, got in zip(ref_snap, snap, strict=True):
            assert torch.equal(got["w"], want["w"])
            for key in ("m", "v"):
                if key in want:
                    torch.testing.assert_close(got[key], want[key], rtol=1e-6, atol=0)


@pytest.mark.parametrize("impl", IMPLS)
def test_flip_counts_match_the_weight_changes(impl: str) -> None:
    params = _params()
    opt = Bop(params, threshold=0.0, gamma=0.5, track_flips=True, impl=impl)
    expected = [0] * len(params)
    for step_grads in _grads(4):
        before = [p.detach().clone() for p in params]
        for p, g in zip(params, step_grads, strict=True):
            p.grad = g
        opt.step()
        for i, (p, b) in enumerate(zip(params, before, strict=True)):
            expected[i] += int((p.detach() != b).sum())
    counts = opt.flip_counts(reset=True)
    assert [p for p, _ in counts] == params
    assert [c for _, c in counts] == expected
    assert sum(expected) > 0
    assert [c for _, c in opt.flip_counts()] == [0, 0, 0]


def test_flip_counts_cover_params_without_state_and_require_tracking() -> None:
    a, b = _params()[:2]
    opt = Bop([a, b], track_flips=True)
    a.grad = torch.ones_like(a)
    opt.step()
    assert [p for p, _ in opt.flip_counts()] == [a, b]
    assert opt.flip_counts()[1][1] == 0
    with pytest.raises(RuntimeError, match="track_flips=True"):
        Bop([a]).flip_counts()


def test_group_hyperparameters_override_defaults() -> None:
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    opt = Bop([{"params": [a], "threshold": 0.1}, {"params": [b]}], threshold=0.9, gamma=1.0)
    a.grad = torch.full((2,), 0.5)
    b.grad = torch.full((2,), 0.5)
    opt.step()
    assert a.detach().tolist() == [-1.0, -1.0]
    assert b.detach().tolist() == [1.0, 1.0]
    assert opt.param_groups[1]["threshold"] == 0.9


def test_automatic_impl_runs_without_compiling_small_groups() -> None:
    params = _params()
    opt = Bop(params, threshold=0.0, gamma=0.5)
    _run(opt, params, _grads(2))
    assert opt.impl is None
    assert all(torch.all(p.abs() == 1) for p in params)


def test_automatic_impl_falls_back_to_foreach_when_compiling_fails(monkeypatch) -> None:
    import bnnlib.optim._flip as flip_module
    import bnnlib.optim.bop as bop_module

    def broken(fn):
        def fail(*args, **kwargs):
            raise RuntimeError("no compiler here")

        return fail

    monkeypatch.setattr(flip_module, "COMPILE_MIN_NUMEL", 0)
    monkeypatch.setattr(bop_module, "compiled", broken)
    params, reference = _params(), _params()
    opt = Bop(params, threshold=0.0, gamma=0.5, track_flips=True)
    ref = Bop(reference, threshold=0.0, gamma=0.5, track_flips=True, impl="reference")
    with pytest.warns(RuntimeWarning, match="no compiler here"):
        _run(opt, params, _grads(2))
    _run(ref, reference, _grads(2))
    assert opt.impl == "foreach"
    assert all(torch.equal(p, q) for p, q in zip(params, reference, strict=True))
    assert opt.flip_counts() == [
        (p, c) for (_, c), p in zip(ref.flip_counts(), params, strict=True)
    ]
    explicit = Bop(_params(), impl="compiled")
    with pytest.raises(RuntimeError, match="no compiler here"):
        _run(explicit, explicit.param_groups[0]["params"], _grads(1))


@pytest.mark.parametrize("impl", ["foreach", "compiled"])
def test_flip_counts_survive_switching_impl_and_reloading(impl: str) -> None:
    """Sign snapshots of the compiled counter are rebuilt from the weights after a
    load_state_dict or a switch of impl, so counts stay those of the reference path."""
    params, reference = _params(), _params()
    opt = Bop(params, threshold=0.0, gamma=0.5, track_flips=True, impl="compiled")
    ref = Bop(reference, threshold=0.0, gamma=0.5, track_flips=True, impl="reference")
    grads = _grads(6)
    _run(opt, params, grads[:2])
    opt.impl = impl
    _run(opt, params, grads[2:4])
    opt.impl = "compiled"
    opt.load_state_dict(opt.state_dict())
    _run(opt, params, grads[4:])
    _run(ref, reference, grads)
    assert [c for _, c in opt.flip_counts()] == [c for _, c in ref.flip_counts()]
