"""bnnlib: optimizers, layers and models for binarized neural networks, and an experiment runner."""

from __future__ import annotations

__version__ = "0.1.0"

from bnnlib.summary import Summary, summary  # noqa: E402 - needs __version__ defined first for submodules

__all__ = ["Summary", "__version__", "summary"]
