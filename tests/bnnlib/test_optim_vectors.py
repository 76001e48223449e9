"""Bop and Bop2ndOrder against the reference trajectories and the spec's hand vectors.

The trajectories (larq's Bop, the Bop2ndOrder authors' TensorFlow code) are compared as their
README asks: weights exactly, m and v to 1e-5 of the largest value each element takes (zeros
exactly). Every implementation path must pass, in float32 including the exact-tie cases.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from bnnlib.optim import Bop, Bop2ndOrder, ClippedAdam
from bnnlib.optim._flip import larq_flip, minus_one_mask, plus_minus_one, round_to
from bnnlib.quantizers import sign_plus

IMPLS = ["reference", "foreach", "compiled"]


# Copies of shared/vectors (larq's Bop and the authors' Bop2ndOrder, see vectors/README.md),
# committed so that these tests always run.
VECTORS = Path(__file__).parent / "vectors"


def _cases(filename: str) -> list[dict]:
    return json.loads((VECTORS / filename).read_text())["cases"]


BOP_CASES = _cases("bop_public.json")
BOP2_CASES = _cases("bop2_public.json")


def _tensor(values, shape, dtype=torch.float32) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).reshape(shape).to(dtype)


def _assert_slot_close(got: torch.Tensor, want: torch.Tensor, scale: torch.Tensor) -> None:
    """README criterion: |got - want| <= 1e-5 * max_t |want_t| per element; zeros exact."""
    err = (got.double() - want.double()).abs()
    assert torch.all(err <= 1e-5 * scale), f"max error {err.max().item()}"
    assert torch.all(got[scale == 0] == 0)


def _replay(case: dict, optimizer_cls, kwargs: dict, dtype=torch.float32, exact_slots=False):
    shape = case["shape"]
    w = torch.nn.Parameter(_tensor(case["w0"], shape, dtype))
    opt = optimizer_cls([w], **kwargs)
    slots = [k for k in ("m", "v") if k in case]
    traj = {k: _tensor(case[k], [case["num_steps"], *shape]) for k in slots}
    for t, grad in enumerate(case["grads"]):
        w.grad = _tensor(grad, shape, dtype)
        opt.step()
        want_w = _tensor(case["w"][t], shape, dtype)
        assert torch.equal(w.detach(), want_w), f"weights differ at step {t + 1}"
        for k in slots:
            got = opt.state[w][k]
            if exact_slots:
                assert torch.equal(got, traj[k][t]), f"{k} not bit-exact at step {t + 1}"
            _assert_slot_close(got, traj[k][t], traj[k].abs().amax(dim=0).double())
    return opt


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", BOP_CASES, ids=[c["name"] for c in BOP_CASES])
def test_bop_reference_trajectories(case: dict, impl: str) -> None:
    kwargs = {"threshold": case["threshold"], "gamma": case["gamma"], "impl": impl}
    _replay(case, Bop, kwargs, exact_slots=impl == "reference")


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", BOP2_CASES, ids=[c["name"] for c in BOP2_CASES])
def test_bop2_reference_trajectories(case: dict, impl: str) -> None:
    kwargs = {
        "threshold": case["threshold"],
        "gamma": case["gamma"],
        "sigma": case["sigma"],
        "unbiased": case["variant"] == "unbiased",
        "impl": impl,
    }
    _replay(case, Bop2ndOrder, kwargs, exact_slots=impl == "reference")


@pytest.mark.parametrize("impl", ["reference", "foreach"])
@pytest.mark.parametrize(
    "case",
    [
        c
        for c in BOP_CASES + BOP2_CASES
        if c["weights_unchanged_under"]["float64_with_hypers_as_given"]
    ],
    ids=lambda c: c["name"],
)
def test_float64_params_follow_the_trajectories(case: dict, impl: str) -> None:
    """float64 params use the hyper-parameters as given (rounded to float64); the README marks
    the cases whose weights stay the same under that replay."""
    kwargs = {"threshold": case["threshold"], "gamma": case["gamma"], "impl": impl}
    cls = Bop
    if "sigma" in case:
        cls = Bop2ndOrder
        kwargs.update(sigma=case["sigma"], unbiased=case["variant"] == "unbiased")
    opt = _replay(case, cls, kwargs, dtype=torch.float64)
    assert all(s["m"].dtype == torch.float64 for s in opt.state.values())


def _steps(opt_cls, w0, grads, impl, **kwargs):
    w = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float32))
    opt = opt_cls([w], impl=impl, **kwargs)
    history = []
    for g in grads:
        w.grad = torch.tensor(g, dtype=torch.float32)
        opt.step()
        history.append(
            (w.detach().clone(), {k: v.clone() for k, v in opt.state[w].items() if k in ("m", "v")})
        )
    return history


@pytest.mark.parametrize("impl", IMPLS)
def test_tv_bop_1_two_steps(impl: str) -> None:
    h = _steps(
        Bop,
        [1, 1, -1, -1],
        [[0.5, -0.5, 0.5, -0.5], [0.5, 0.5, 0, 0]],
        impl,
        threshold=0.1,
        gamma=0.5,
    )
    assert h[0][1]["m"].tolist() == [0.25, -0.25, 0.25, -0.25]
    assert h[0][0].tolist() == [-1, 1, -1, 1]
    assert h[1][1]["m"].tolist() == [0.375, 0.125, 0.125, -0.125]
    assert h[1][0].tolist() == [-1, -1, -1, 1]


@pytest.mark.parametrize("impl", IMPLS)
def test_tv_bop_2_inertia(impl: str) -> None:
    h = _steps(Bop, [1.0], [[5e-5]] * 3, impl, threshold=1e-8, gamma=1e-4)
    assert [w.item() for w, _ in h] == [1, 1, -1]
    for (_, s), want in zip(h, [5e-9, 9.9995e-9, 1.49985e-8], strict=True):
        assert s["m"].item() == pytest.approx(want, rel=1e-5)
    t_star = math.ceil(math.log(1 - 1e-8 / 5e-5) / math.log(1 - 1e-4))
    assert t_star == 3


@pytest.mark.parametrize("impl", IMPLS)
def test_tv_bop_3_exact_tie_gives_plus_one(impl: str) -> None:
    h = _steps(Bop, [1, -1], [[0.5, -0.5]], impl, threshold=0.5, gamma=1.0)
    assert h[0][0].tolist() == [1, 1]


@pytest.mark.parametrize("impl", IMPLS)
def test_tv_bop_4_real_init_is_binarised(impl: str) -> None:
    h = _steps(Bop, [0.3, -0.2, 0.0], [[1, 1, 1]], impl, threshold=1e-8, gamma=1e-4)
    assert h[0][0].tolist() == [-1, -1, 1]


@pytest.mark.parametrize("impl", IMPLS)
def test_threshold_is_rounded_to_the_param_dtype(impl: str) -> None:
    """tau = 0.3 acts as float32(0.3): m = float32(0.3) is then an exact tie (+1 stays +1);
    compared against the double 0.3 it would exceed it and flip."""
    g = torch.tensor(0.3, dtype=torch.float32).item()
    h = _steps(Bop, [1.0], [[g]], impl, threshold=0.3, gamma=1.0)
    assert h[0][0].item() == 1.0
    assert g > 0.3


@pytest.mark.parametrize("impl", IMPLS)
def test_zero_gradient_is_a_step(impl: str) -> None:
    w = torch.nn.Parameter(torch.ones(3))
    opt = Bop([w], threshold=1.0, gamma=0.5, impl=impl)
    w.grad = torch.full((3,), 2.0)
    opt.step()
    w.grad = torch.zeros(3)
    opt.step()
    assert opt.state[w]["m"].tolist() == [0.5, 0.5, 0.5]
    assert opt.state[w]["step"] == 2


@pytest.mark.parametrize("impl", IMPLS)
def test_params_without_grad_are_skipped(impl: str) -> None:
    a = torch.nn.Parameter(torch.ones(4))
    b = torch.nn.Parameter(torch.ones(4))
    opt = Bop2ndOrder([a, b], threshold=0.1, gamma=1.0, sigma=1.0, impl=impl)
    a.grad = torch.ones(4)
    opt.step()
    assert a.detach().tolist() == [-1.0] * 4
    assert b.detach().tolist() == [1.0] * 4
    assert b not in opt.state


@pytest.mark.parametrize("impl", IMPLS)
def test_tv_b2_1_biased_no_flip(impl: str) -> None:
    h = _steps(Bop2ndOrder, [1.0], [[2.0], [-1.0]], impl, threshold=0.75, gamma=0.1, sigma=0.04)
    (w1, s1), (w2, s2) = h
    assert s1["m"].item() == pytest.approx(0.2, rel=1e-6)
    assert s1["v"].item() == pytest.approx(0.16, rel=1e-6)
    assert s2["m"].item() == pytest.approx(0.08, rel=1e-5)
    assert s2["v"].item() == pytest.approx(0.1936, rel=1e-6)
    assert w1.item() == 1.0 and w2.item() == 1.0


@pytest.mark.parametrize("impl", IMPLS)
def test_tv_b2_2_unbiased_flips_at_step_one(impl: str) -> None:
    h = _steps(
        Bop2ndOrder, [1.0], [[2.0]], impl, threshold=0.75, gamma=0.1, sigma=0.04, unbiased=True
    )
    assert h[0][0].item() == -1.0


@pytest.mark.parametrize("impl", IMPLS)
def test_tv_b2_3_readme_values_mass_flip(impl: str) -> None:
    h = _steps(
        Bop2ndOrder, [1, 1, -1], [[3, -0.01, -5]], impl, threshold=1e-6, gamma=1e-7, sigma=1e-3
    )
    assert h[0][0].tolist() == [-1, 1, 1]


@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("impl", IMPLS)
def test_tv_b2_4_zero_gradient_from_zero_state(impl: str, unbiased: bool) -> None:
    h = _steps(Bop2ndOrder, [1, -1], [[0, 0]], impl, unbiased=unbiased)
    assert h[0][0].tolist() == [1, -1]
    assert h[0][1]["m"].tolist() == [0, 0] and h[0][1]["v"].tolist() == [0, 0]


@pytest.mark.parametrize("impl", IMPLS)
def test_adam_bias_correction_differs_from_unbiased_after_step_one(impl: str) -> None:
    """gamma = sigma = 0.5, g = 1, 1: both signals are 1 at step 1; at step 2 Adam's correction
    gives 0.75/0.75 / sqrt(0.75/0.75) = 1 and the authors' gives 1.5 / sqrt(1.5) = 1.22."""
    kw = {"threshold": 1.1, "gamma": 0.5, "sigma": 0.5}
    adam = _steps(Bop2ndOrder, [1.0], [[1.0], [1.0]], impl, adam_bias_correction=True, **kw)
    authors = _steps(Bop2ndOrder, [1.0], [[1.0], [1.0]], impl, unbiased=True, **kw)
    assert [w.item() for w, _ in adam] == [1.0, 1.0]
    assert [w.item() for w, _ in authors] == [1.0, -1.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_flip_rule_forms_agree(dtype: torch.dtype) -> None:
    """The fused kernels' form (-1 where (d*s)*(w*s) > 0) equals larq's literal
    sgn+(-sign(w*signal - tau)*w) for every finite weight, including subnormal weights and
    signals whose plain product would underflow, and whatever the signal (inf, NaN)."""
    info = torch.finfo(dtype)
    tiny = info.tiny * info.eps  # smallest subnormal
    finite = [0.0, -0.0, 1.0, -1.0, 0.25, -0.25, 0.5, 3.0, -2.0, tiny, -tiny, 3 * tiny]
    finite += [info.tiny, -info.tiny, info.max, -info.max, 1e-3, -1e-3]
    signals = [*finite, math.inf, -math.inf, math.nan]
    w, s = torch.meshgrid(
        torch.tensor(finite, dtype=dtype), torch.tensor(signals, dtype=dtype), indexing="ij"
    )
    for tau in (0.0, 0.25, 0.5, tiny, info.tiny):
        tau = round_to(tau, dtype)
        literal = larq_flip(w, s, tau)
        fused = plus_minus_one(minus_one_mask(w, s, tau), w)
        assert torch.equal(literal, fused), (w[literal != fused], s[literal != fused])


@pytest.mark.parametrize("impl", IMPLS)
def test_flip_counts_are_sign_changes(impl: str) -> None:
    """Binarising real weights counts only the entries whose sgn+ changed."""
    w = torch.nn.Parameter(torch.tensor([0.3, -0.2, 0.0, 0.7]))
    opt = Bop([w], threshold=1e-8, gamma=1e-4, track_flips=True, impl=impl)
    w.grad = torch.tensor([1.0, 1.0, 1.0, -1.0])
    opt.step()
    assert w.detach().tolist() == [-1, -1, 1, 1]
    assert opt.flip_counts() == [(w, 1)]


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"threshold": -1e-8}, "threshold=-1e-08"),
        ({"gamma": 0.0}, "gamma=0.0"),
        ({"gamma": 1.5}, "gamma=1.5"),
        ({"gamma": math.nan}, "gamma=nan"),
        ({"sigma": 0.0}, "sigma=0.0"),
        ({"sigma": 2.0}, "sigma=2.0"),
    ],
)
def test_invalid_hyperparameters(kwargs: dict, bad: str) -> None:
    w = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match=bad):
        Bop2ndOrder([w], **kwargs)
    if "sigma" not in kwargs:
        with pytest.raises(ValueError, match=bad):
            Bop([w], **kwargs)


def test_invalid_options() -> None:
    w = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match="exclude each other"):
        Bop2ndOrder([w], unbiased=True, adam_bias_correction=True)
    with pytest.raises(ValueError, match="unknown impl 'fast'"):
        Bop([w], impl="fast")
    with pytest.raises(TypeError, match="gamma must be a real number"):
        Bop([w], gamma="1e-4")
    with pytest.raises(ValueError, match="threshold=-1"):
        Bop([{"params": [w], "threshold": -1}])


def test_scheduled_gamma_may_reach_zero_during_training() -> None:
    """A linear-to-zero gamma schedule ends at 0 (BNEW); m then stays, weights do not flip."""
    w = torch.nn.Parameter(torch.ones(2))
    opt = Bop([w], threshold=0.5, gamma=0.5)
    w.grad = torch.tensor([0.6, -0.6])
    opt.step()
    opt.param_groups[0]["gamma"] = 0.0
    w.grad = torch.tensor([5.0, 5.0])
    opt.step()
    assert opt.state[w]["m"].tolist() == pytest.approx([0.3, -0.3])
    assert w.detach().tolist() == [1.0, 1.0]


def test_clipped_adam_tv_ste_1() -> None:
    latent = torch.nn.Parameter(torch.tensor([1.3, -0.2, 0.05]))
    opt = ClippedAdam([latent], lr=0.01)
    assert latent.detach().tolist() == pytest.approx([1.0, -0.2, 0.05])
    assert sign_plus(latent.detach()).tolist() == [1, -1, 1]
    latent.grad = torch.tensor([0.1, 0.1, -0.1])
    opt.step()
    assert latent.detach().tolist() == pytest.approx([0.99, -0.21, 0.06], abs=1e-6)


def test_clipped_adam_clips_gradients_and_weights() -> None:
    w = torch.nn.Parameter(torch.tensor([0.995, 0.0]))
    opt = ClippedAdam([w], lr=0.01, weight_clip=1.0, grad_clip=0.5)
    w.grad = torch.tensor([-3.0, 0.2])
    opt.step()
    assert w.grad.tolist() == pytest.approx([-0.5, 0.2])
    assert w.detach().tolist() == pytest.approx([1.0, -0.01], abs=1e-6)
    with pytest.raises(ValueError, match="weight_clip=0"):
        ClippedAdam([torch.nn.Parameter(torch.ones(1))], weight_clip=0)
