"""Per-layer parameter counts and memory of a BNN, like ``larq.models.summary``.

A BNN's point is its memory: 1-bit tensors pack 8 to a byte while everything else stays float32.
The summary counts, for every module that owns parameters or floating-point buffers, its 1-bit
parameters (``is_binary``: binary *and* latent weights, since both deploy as +-1), its 32-bit
parameters, and its 32-bit buffers (BN running statistics: not trained, but stored with the model).
Integer buffers such as BN's ``num_batches_tracked`` are bookkeeping and are not counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from bnnlib.layers import is_binary

Shape = tuple[int, ...]


@dataclass(frozen=True)
class SummaryRow:
    """One module: its name in ``named_modules`` ("" for the root), class and counts.

    ``output_shape`` has -1 for the batch dimension (a tuple of shapes for tuple outputs) and is
    None when no ``input_shape`` was given. ``memory_bytes`` packs each 1-bit tensor into
    ceil(n/8) bytes and stores parameters and buffers that are not 1-bit as 4-byte floats.
    """

    name: str
    type: str
    output_shape: Shape | tuple[Shape, ...] | None
    binary_params: int
    float_params: int
    float_buffers: int
    memory_bytes: int


@dataclass(frozen=True)
class Summary:
    """The rows plus totals; ``str()`` is an aligned table, ``to_dict()`` is JSON-ready."""

    rows: tuple[SummaryRow, ...]

    @property
    def total_binary(self) -> int:
        return sum(r.binary_params for r in self.rows)

    @property
    def total_float(self) -> int:
        """32-bit parameters (trainable or frozen); buffers are in :attr:`total_buffers`."""
        return sum(r.float_params for r in self.rows)

    @property
    def total_buffers(self) -> int:
        return sum(r.float_buffers for r in self.rows)

    @property
    def total_params(self) -> int:
        return self.total_binary + self.total_float

    @property
    def memory_bytes(self) -> int:
        return sum(r.memory_bytes for r in self.rows)

    @property
    def float_memory_bytes(self) -> int:
        """Memory of the same model with every parameter and buffer stored as float32."""
        return 4 * (self.total_binary + self.total_float + self.total_buffers)

    @property
    def compression_ratio(self) -> float:
        """``float_memory_bytes / memory_bytes`` (1.0 for a model with nothing stored)."""
        return self.float_memory_bytes / self.memory_bytes if self.memory_bytes else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [asdict(r) for r in self.rows],
            "total_binary": self.total_binary,
            "total_float": self.total_float,
            "total_buffers": self.total_buffers,
            "total_params": self.total_params,
            "memory_bytes": self.memory_bytes,
            "float_memory_bytes": self.float_memory_bytes,
            "compression_ratio": self.compression_ratio,
        }

    def __str__(self) -> str:
        with_shapes = any(r.output_shape is not None for r in self.rows)
        header = ["Layer", "Type"] + (["Output shape"] if with_shapes else [])
        header += ["1-bit params", "32-bit params", "32-bit buffers", "Memory (KiB)"]
        table = [header]
        for r in self.rows:
            cells = [r.name or "(root)", r.type]
            if with_shapes:
                cells.append(_format_shape(r.output_shape))
            cells += [
                f"{r.binary_params:,}",
                f"{r.float_params:,}",
                f"{r.float_buffers:,}",
                f"{r.memory_bytes / 1024:,.2f}",
            ]
            table.append(cells)
        total = ["Total", ""] + ([""] if with_shapes else [])
        total += [
            f"{self.total_binary:,}",
            f"{self.total_float:,}",
            f"{self.total_buffers:,}",
            f"{self.memory_bytes / 1024:,.2f}",
        ]
        table.append(total)
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        text_cols = 3 if with_shapes else 2

        def fmt(row: Sequence[str]) -> str:
            return "  ".join(
                c.ljust(w) if i < text_cols else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )

        rule = "-" * len(fmt(header))
        lines = [fmt(header), rule, *(fmt(row) for row in table[1:-1]), rule, fmt(table[-1])]
        lines += [
            "",
            f"Total params: {self.total_params:,} ({self.total_binary:,} 1-bit, "
            f"{self.total_float:,} 32-bit) + {self.total_buffers:,} 32-bit buffers",
            f"Memory: {self.memory_bytes / 1024:,.2f} KiB "
            "(1-bit tensors packed 8 per byte, the rest float32)",
            f"Float-32 equivalent: {self.float_memory_bytes / 1024:,.2f} KiB",
            f"Compression ratio: {self.compression_ratio:.2f}",
        ]
        return "\n".join(lines)


def _format_shape(shape: Shape | tuple[Shape, ...] | None) -> str:
    if shape is None:
        return ""
    return str(shape).replace(" ", "")


def _output_shape(output: Any) -> Shape | tuple[Shape, ...] | None:
    if isinstance(output, torch.Tensor):
        return (-1, *output.shape[1:])
    if isinstance(output, (tuple, list)) and all(isinstance(o, torch.Tensor) for o in output):
        return tuple((-1, *o.shape[1:]) for o in output)
    return None


def _owners(
    model: nn.Module,
) -> list[tuple[str, nn.Module, list[torch.Tensor], list[torch.Tensor]]]:
    """Modules with their own (not yet counted) parameters and floating-point buffers."""
    seen: set[int] = set()
    owners = []
    for name, module in model.named_modules():
        params = [p for p in module.parameters(recurse=False) if id(p) not in seen]
        buffers = [
            b for b in module.buffers(recurse=False) if id(b) not in seen and b.is_floating_point()
        ]
        seen.update(id(t) for t in params + buffers)
        if params or buffers:
            owners.append((name, module, params, buffers))
    return owners


def _record_shapes(
    model: nn.Module, modules: Sequence[nn.Module], input_shape: Sequence[int]
) -> dict[int, Any]:
    """Run a zero batch of 2 in eval mode through ``model`` and record each module's output shape.

    Zeros (not random data) leave the global RNG untouched; eval mode leaves BN running stats
    untouched and accepts any batch size; every module's training flag is restored afterwards.
    """
    reference = next(iter(model.parameters()), None)
    if reference is None:
        reference = next(iter(model.buffers()), torch.zeros(()))
    dtype = reference.dtype if reference.is_floating_point() else torch.get_default_dtype()
    shapes: dict[int, Any] = {}
    handles = [
        m.register_forward_hook(
            lambda mod, _inp, out: shapes.__setitem__(id(mod), _output_shape(out))
        )
        for m in modules
    ]
    training = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((2, *input_shape), dtype=dtype, device=reference.device))
    finally:
        for h in handles:
            h.remove()
        for m, flag in training.items():
            m.training = flag
    return shapes


def summary(model: nn.Module, input_shape: Sequence[int] | None = None) -> Summary:
    """Summarise ``model``; with ``input_shape`` (one example, no batch dimension, e.g.
    ``(3, 32, 32)``) a forward pass on the model's device also records output shapes."""
    owners = _owners(model)
    shapes = (
        _record_shapes(model, [m for _, m, _, _ in owners], input_shape)
        if input_shape is not None
        else {}
    )
    rows = []
    for name, module, params, buffers in owners:
        binary = [p for p in params if is_binary(p)]
        n_binary = sum(p.numel() for p in binary)
        n_float = sum(p.numel() for p in params) - n_binary
        n_buffers = sum(b.numel() for b in buffers)
        memory = sum(math.ceil(p.numel() / 8) for p in binary) + 4 * (n_float + n_buffers)
        rows.append(
            SummaryRow(
                name=name,
                type=type(module).__name__,
                output_shape=shapes.get(id(module)),
                binary_params=n_binary,
                float_params=n_float,
                float_buffers=n_buffers,
                memory_bytes=memory,
            )
        )
    return Summary(tuple(rows))
