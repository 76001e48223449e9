"""Optimizers for binarized neural networks, with torch's Optimizer interface.

- flip optimizers that write +-1 weights directly: :class:`Bop`, :class:`Bop2ndOrder`;
- the latent-weight STE baseline: :class:`ClippedAdam`;
- :class:`Router` / :func:`route`: several optimizers stepped as one (larq's CaseOptimizer);
- schedules for any hyper-parameter and :class:`HyperparameterScheduler` that applies them.
"""

from .bayesbinn import BayesBiNN
from .bop import Bop
from .bop2 import Bop2ndOrder
from .latent import ClippedAdam
from .protocols import (
    EvaluationNetworks,
    FlipCounting,
    SubOptimizers,
    counts_flips,
    sub_optimizers,
)
from .registry import create_optimizer, list_optimizers, register_optimizer
from .router import Router, route
from .schedules import (
    RECORDED_KEYS,
    SCHEDULED_KEYS,
    Constant,
    CosineDecay,
    ExponentialDecay,
    HyperparameterScheduler,
    LinearToZero,
    MultiStep,
    PerEpoch,
    PolynomialDecay,
    Schedule,
)

__all__ = [
    "RECORDED_KEYS",
    "SCHEDULED_KEYS",
    "BayesBiNN",
    "Bop",
    "Bop2ndOrder",
    "ClippedAdam",
    "Constant",
    "EvaluationNetworks",
    "FlipCounting",
    "SubOptimizers",
    "counts_flips",
    "sub_optimizers",
    "CosineDecay",
    "ExponentialDecay",
    "HyperparameterScheduler",
    "LinearToZero",
    "MultiStep",
    "PerEpoch",
    "PolynomialDecay",
    "Router",
    "Schedule",
    "create_optimizer",
    "list_optimizers",
    "register_optimizer",
    "route",
]
