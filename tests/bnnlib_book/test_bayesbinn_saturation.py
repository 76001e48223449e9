"""The scale s of BayesBiNN's first step, as the chapter's temperature section tabulates it."""

from __future__ import annotations

import math

import pytest
import torch

from bnnlib.optim.bayesbinn import STATE_KEY, BayesBiNN
from bnnlib_book.bayesbinn.saturation import first_step_scale, scale_rows


def test_small_temperatures_saturate_to_one_over_tau_in_float32() -> None:
    for tau in (1e-10, 1e-6, 1e-2):
        scale = first_step_scale(tau)
        assert scale["saturated"] == 1.0
        assert scale["median_s"] == pytest.approx(1 / tau, rel=1e-6)
        assert scale["p999_s"] == pytest.approx(1 / tau, rel=1e-6)


def test_float64_keeps_one_minus_mu_squared() -> None:
    expected = 1e-10 / 1e-2 / (1 - math.tanh(10.0) ** 2 + 1e-10)
    scale = first_step_scale(1e-2, dtype=torch.float64)
    assert scale["median_s"] == pytest.approx(expected, rel=1e-9)


def test_at_temperature_one_the_noise_unsaturates_some_weights() -> None:
    scale = first_step_scale(1.0)
    assert 0.5 < scale["saturated"] < 0.99
    assert scale["p999_s"] > 1000 * scale["median_s"]


def test_rows_scale_by_lr_and_training_set_size() -> None:
    rows = scale_rows([1e-2], lr=1e-4, train_size=10_000)
    assert [r["float"] for r in rows] == ["float32", "float64"]
    assert rows[0]["lr N s, median"] == pytest.approx(1e-4 * 10_000 * 100, rel=1e-6)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        first_step_scale(0.0)


def test_the_optimizer_takes_the_step_the_table_predicts() -> None:
    """One BayesBiNN step at tau 1e-2 moves lamda by lr (N s g + lamda) with s = 1/tau exactly,
    the table's float32 value, for every weight."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(20, 3, bias=False)
    x, y = torch.randn(8, 20), torch.randint(0, 3, (8,))
    lr, n = 1e-4, 1000
    optimizer = BayesBiNN(layer.parameters(), lr=lr, train_set_size=n, temperature=1e-2)
    before = optimizer.state[STATE_KEY]["lamda"].clone()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(layer(x), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    g = layer.weight.grad.flatten()
    s = first_step_scale(1e-2)["median_s"]
    moved = before - optimizer.state[STATE_KEY]["lamda"]
    assert torch.allclose(moved, lr * (n * s * g + before), rtol=1e-4, atol=1e-7)
