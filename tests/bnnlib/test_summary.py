"""bnnlib.summary: per-layer 1-bit/32-bit counts, packed memory and compression ratio."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import bnnlib
from bnnlib.layers import BinaryLinear
from bnnlib.models import create_model
from bnnlib.norms import BatchNorm
from bnnlib.summary import Summary, summary


def _small() -> nn.Sequential:
    # fc: 10*5 = 50 binary weights -> ceil(50/8) = 7 bytes
    # bn: gamma 5 + beta 5 float, running mean 5 + var 5 float buffers (num_batches_tracked: int)
    # out: Linear(5, 3): 15 + 3 = 18 float
    return nn.Sequential(BinaryLinear(10, 5), BatchNorm(5), nn.Linear(5, 3))


def test_small_model_counts_by_hand() -> None:
    s = summary(_small())
    assert [(r.name, r.type) for r in s.rows] == [
        ("0", "BinaryLinear"),
        ("1", "BatchNorm"),
        ("2", "Linear"),
    ]
    assert [(r.binary_params, r.float_params, r.float_buffers) for r in s.rows] == [
        (50, 0, 0),
        (0, 10, 10),
        (0, 18, 0),
    ]
    assert [r.memory_bytes for r in s.rows] == [7, 4 * 20, 4 * 18]
    assert s.total_binary == 50
    assert s.total_float == 28
    assert s.total_buffers == 10
    assert s.total_params == 78
    assert s.memory_bytes == 7 + 80 + 72
    assert s.float_memory_bytes == 4 * (50 + 28 + 10)
    assert s.compression_ratio == pytest.approx(352 / 159)


def test_packing_rounds_up_per_tensor() -> None:
    model = nn.Sequential(BinaryLinear(3, 3), BinaryLinear(3, 1))  # 9 and 3 binary weights
    s = summary(model)
    assert [r.memory_bytes for r in s.rows] == [2, 1]
    assert s.compression_ratio == pytest.approx(4 * 12 / 3)


def test_latent_weights_count_as_one_bit() -> None:
    s = summary(BinaryLinear(16, 4, weight_mode="latent"))
    assert (s.total_binary, s.total_float) == (64, 0)
    assert s.rows[0].name == ""


def test_shared_parameter_counted_once() -> None:
    shared = nn.Linear(4, 4)
    s = summary(nn.Sequential(shared, nn.ReLU(), shared))
    assert s.total_float == 20
    assert len(s.rows) == 1


def test_output_shapes_from_forward_hooks() -> None:
    s = summary(create_model("binarynet_batch", width=0.25), input_shape=(3, 32, 32))
    shapes = {r.name: r.output_shape for r in s.rows}
    assert shapes["conv1"] == (-1, 32, 30, 30)
    assert shapes["norm2"] == (-1, 32, 15, 15)  # after the first max-pool
    assert shapes["fc7"] == (-1, 256)
    assert shapes["norm9"] == (-1, 10)
    assert summary(_small()).rows[0].output_shape is None


def test_summary_forward_changes_no_state() -> None:
    model = _small()
    model[1].eval()
    rng = torch.get_rng_state()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    summary(model, input_shape=(10,))
    assert model.training and not model[1].training and model[2].training
    assert torch.equal(torch.get_rng_state(), rng)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_binarynet_totals_and_compression() -> None:
    s = summary(create_model("binarynet_batch"))
    channels = 128 + 128 + 256 + 256 + 512 + 512 + 1024 + 1024 + 10
    assert s.total_binary == 10_352_000
    assert s.total_float == channels
    assert s.total_buffers == 2 * channels
    # every binary tensor has a multiple of 8 elements, so packing is exact
    assert s.memory_bytes == 10_352_000 // 8 + 4 * 3 * channels
    assert s.compression_ratio == pytest.approx(4 * (10_352_000 + 3 * channels) / s.memory_bytes)


def test_table_and_dict() -> None:
    s = summary(_small(), input_shape=(10,))
    text = str(s)
    lines = text.splitlines()
    assert "1-bit params" in lines[0] and "Output shape" in lines[0]
    assert len({len(line) for line in lines[:6]}) == 1  # header, rule and rows aligned
    assert "(-1,5)" in text
    assert f"Compression ratio: {352 / 159:.2f}" in text
    d = json.loads(json.dumps(s.to_dict()))
    assert d["total_binary"] == 50 and d["memory_bytes"] == 159
    assert d["rows"][2]["output_shape"] == [-1, 3]
    assert "Output shape" not in str(summary(_small())).splitlines()[0]


def test_package_level_summary_is_callable() -> None:
    first = bnnlib.summary(_small())
    assert isinstance(first, Summary)
    assert isinstance(bnnlib.summary(_small()), Summary)
