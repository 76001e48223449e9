"""What the trainer may ask an optimizer: sub-optimizers, flip counts, evaluation networks."""

from __future__ import annotations

import torch

from bnnlib.optim import (
    BayesBiNN,
    Bop,
    EvaluationNetworks,
    FlipCounting,
    Router,
    SubOptimizers,
    counts_flips,
    sub_optimizers,
)
from bnnlib.train.trainer import Trainer
from tests.conftest import FixedBatches


def _param() -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.ones(3, 2))


def test_sub_optimizers_of_a_router_and_of_a_plain_optimizer() -> None:
    adam = torch.optim.Adam([_param()])
    bop = Bop([_param()], track_flips=True)
    router = Router([bop, adam])
    assert isinstance(router, SubOptimizers) and not isinstance(adam, SubOptimizers)
    assert sub_optimizers(router) == [bop, adam]
    assert sub_optimizers(adam) == [adam]


def test_flip_counting_and_evaluation_networks_are_recognised_by_isinstance() -> None:
    counting, silent = Bop([_param()], track_flips=True), Bop([_param()])
    adam = torch.optim.Adam([_param()])
    bayes = BayesBiNN([_param()], lr=1e-3, train_set_size=10)
    assert isinstance(counting, FlipCounting) and not isinstance(adam, FlipCounting)
    assert counts_flips(counting) and not counts_flips(silent) and not counts_flips(adam)
    assert isinstance(bayes, EvaluationNetworks)
    assert not any(isinstance(o, EvaluationNetworks) for o in (counting, adam))


def test_trainer_reports_flips_only_of_optimizers_that_count_them() -> None:
    torch.manual_seed(0)
    batches = FixedBatches([(torch.randn(4, 2), torch.randint(0, 3, (4,))) for _ in range(2)])
    for track, expect in ((True, True), (False, False)):
        model = torch.nn.Linear(2, 3, bias=False)
        trainer = Trainer(
            model,
            Bop(model.parameters(), track_flips=track),
            torch.nn.functional.cross_entropy,
            progress=False,
        )
        metrics = trainer.fit(batches, 1)[0]
        assert ("flip_ratio" in metrics) is expect
        assert set(metrics.get("flip_ratio", {"": 0})) <= {"", "weight"}
