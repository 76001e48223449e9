"""Models by name: ``create_model("binarynet_batch", width=0.25)``, ``list_models()``.

Importing this package imports every model module, and each registers its factories with
``@register_model``; a new model module only needs one import line below.
"""

from __future__ import annotations

from . import autoencoder, bayesbinn, binarynet, mlp, switchable
from .registry import (
    check_model_args,
    create_model,
    get_model_factory,
    list_models,
    register_model,
    scaled_width,
)

__all__ = [
    "autoencoder",
    "bayesbinn",
    "binarynet",
    "check_model_args",
    "create_model",
    "get_model_factory",
    "list_models",
    "mlp",
    "register_model",
    "scaled_width",
    "switchable",
]
