"""Schedules (Keras semantics, pre-step counter) and HyperparameterScheduler."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from bnnlib.optim import (
    Bop,
    Bop2ndOrder,
    Constant,
    CosineDecay,
    ExponentialDecay,
    HyperparameterScheduler,
    LinearToZero,
    PolynomialDecay,
)


def test_tv_sched_bop_sec52_staircase() -> None:
    gamma = ExponentialDecay(1e-4, decay_steps=100_000, decay_rate=0.1)
    assert gamma(0) == 1e-4
    assert gamma(99_999) == 1e-4
    assert gamma(100_000) == pytest.approx(1e-5, rel=1e-12)
    assert gamma(450_000) == pytest.approx(1e-8, rel=1e-12)


def test_exponential_decay_without_staircase() -> None:
    sched = ExponentialDecay(1.0, decay_steps=10, decay_rate=0.5, staircase=False)
    assert sched(5) == pytest.approx(0.5**0.5)


def test_tv_sched_poly_bop2ndorder_cifar() -> None:
    d = 500_000
    threshold = PolynomialDecay(1e-5, d, 1e-8)
    gamma = PolynomialDecay(1e-2, d, 1e-5)
    sigma = PolynomialDecay(1e-7, d, 1e-2)  # increases
    lr = PolynomialDecay(1e-2, d, 1e-3)
    assert gamma(250_000) == pytest.approx(0.005005, rel=1e-12)
    assert sigma(250_000) == pytest.approx(0.00500005, rel=1e-12)
    assert threshold(250_000) == pytest.approx(5.005e-6, rel=1e-12)
    assert lr(250_000) == pytest.approx(0.0055, rel=1e-12)
    for step in (d, d + 1, 3 * d):
        assert (gamma(step), sigma(step), threshold(step), lr(step)) == pytest.approx(
            (1e-5, 1e-2, 1e-8, 1e-3), rel=1e-12
        )


def test_polynomial_decay_power() -> None:
    assert PolynomialDecay(1.0, 10, 0.0, power=2.0)(5) == pytest.approx(0.25)


def test_tv_sched_exp_bop2ndorder_testexp() -> None:
    values = {
        name: ExponentialDecay(v, 100_000, 0.1)(150_000)
        for name, v in {"threshold": 1e-6, "gamma": 1e-7, "sigma": 1e-3, "lr": 1e-2}.items()
    }
    assert values == pytest.approx({"threshold": 1e-7, "gamma": 1e-8, "sigma": 1e-4, "lr": 1e-3})


def test_tv_bnew_3_linear_to_zero() -> None:
    n = 1000 * 352 - 1
    gamma = LinearToZero(1e-4, total_steps=n)
    assert n == 351_999
    assert gamma(0) == 1e-4
    assert gamma(175_999) == pytest.approx(5.0000142e-5, rel=1e-7)
    assert gamma(n) == 0.0
    assert gamma(n + 10) == 0.0


def test_cosine_decay_matches_torch_cosine_annealing() -> None:
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=0.1)
    torch_sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=0.01)
    ours = CosineDecay(0.1, decay_steps=10, end=0.01)
    for step in range(11):
        assert ours(step) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
        opt.step()
        torch_sched.step()
    assert ours(25) == 0.01


def test_schedules_pickle_and_validate() -> None:
    for sched in (
        Constant(3.0),
        ExponentialDecay(1.0, 5, 0.5),
        PolynomialDecay(1.0, 5, 0.1),
        CosineDecay(1.0, 5),
        LinearToZero(1.0, 5),
    ):
        clone = pickle.loads(pickle.dumps(sched))
        assert clone == sched and clone(3) == sched(3)
    with pytest.raises(ValueError, match="decay_steps must be > 0, got 0"):
        ExponentialDecay(1.0, 0, 0.5)
    with pytest.raises(ValueError, match="total_steps must be > 0"):
        LinearToZero(1.0, -1)
    with pytest.raises(ValueError, match="step must be >= 0"):
        Constant(1.0)(-1)


def _bop() -> Bop:
    return Bop([torch.nn.Parameter(torch.ones(3))], threshold=1e-8, gamma=1e-4)


def test_scheduler_applies_the_pre_step_counter() -> None:
    opt = _bop()
    gamma = ExponentialDecay(1e-2, decay_steps=2, decay_rate=0.1)
    sched = HyperparameterScheduler(opt, {"gamma": gamma, "threshold": Constant(0.5)})
    seen = []
    for _ in range(5):
        seen.append(opt.param_groups[0]["gamma"])
        opt.step()
        sched.step()
    assert seen == [gamma(t) for t in range(5)]
    assert opt.param_groups[0]["threshold"] == 0.5
    assert sched.current() == {"gamma": gamma(5), "threshold": 0.5}


def test_scheduler_drives_the_update() -> None:
    """gamma 1 on the first step, then 0: m is set by the first gradient and then frozen."""
    w = torch.nn.Parameter(torch.ones(2))
    opt = Bop2ndOrder([w], threshold=10.0, gamma=0.5, sigma=0.5)
    sched = HyperparameterScheduler(opt, {"gamma": lambda t: 1.0 if t == 0 else 0.0})
    for g in (0.25, 4.0):
        w.grad = torch.full((2,), g)
        opt.step()
        sched.step()
    assert opt.state[w]["m"].tolist() == [0.25, 0.25]


def test_scheduler_state_dict_round_trip() -> None:
    gamma = PolynomialDecay(1e-2, 10, 1e-4)
    opt = _bop()
    sched = HyperparameterScheduler(opt, {"gamma": gamma})
    for _ in range(4):
        sched.step()
    saved = pickle.loads(pickle.dumps(sched.state_dict()))
    opt2 = _bop()
    sched2 = HyperparameterScheduler(opt2, {"gamma": gamma})
    sched2.load_state_dict(saved)
    assert opt2.param_groups[0]["gamma"] == gamma(4)
    sched.step()
    sched2.step()
    assert opt2.param_groups[0]["gamma"] == opt.param_groups[0]["gamma"] == gamma(5)


def test_scheduler_rejects_unknown_keys_and_bad_schedules() -> None:
    with pytest.raises(ValueError, match="no param group has the key 'lr'; available keys: gamma"):
        HyperparameterScheduler(_bop(), {"lr": Constant(0.1)})
    with pytest.raises(TypeError, match="not callable"):
        HyperparameterScheduler(_bop(), {"gamma": 0.1})
    with pytest.raises(ValueError, match="at least one"):
        HyperparameterScheduler(_bop(), {})


def test_scheduler_works_for_torch_optimizers() -> None:
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([w], lr=1.0)
    sched = HyperparameterScheduler(opt, {"lr": CosineDecay(1.0, 4)})
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
    assert lrs == pytest.approx([(1 + math.cos(math.pi * t / 4)) / 2 for t in range(5)])
