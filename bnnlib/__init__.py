"""bnnlib: optimizers, layers and models for binarized neural networks, and the book's runner."""

from __future__ import annotations

__version__ = "0.1.0"


def summary(model, input_shape=None):  # noqa: ANN001, ANN201 - thin re-export, typed in summary.py
    """Per-layer 1-bit/32-bit parameter counts and memory; see :func:`bnnlib.summary.summary`."""
    from .summary import summary as _summary

    return _summary(model, input_shape)
