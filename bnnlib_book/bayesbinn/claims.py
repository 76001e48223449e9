"""The BayesBiNN paper's reported accuracies (Meng, Bachmann & Khan, 2020, mean +- std over 5
runs) that the chapter sets beside ours; the grading of its claims is still to be written."""

from __future__ import annotations

from bnnlib_book.papers import Reported, reported

PAPER_DATASETS = {"mnist": "MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}


PAPER_METHODS = {"BayesBiNN": "BayesBiNN (mode)", "STE": "STE Adam"}


def paper_entries(family: str, method: str) -> tuple[Reported, Reported]:
    """The paper's (mean, population std) test accuracy for ``family`` and ``method``."""
    if family not in PAPER_DATASETS or method not in PAPER_METHODS:
        raise ValueError(
            f"no paper numbers for ({family!r}, {method!r}); families: "
            f"{', '.join(PAPER_DATASETS)}; methods: {', '.join(PAPER_METHODS)}"
        )
    setting = f"{PAPER_DATASETS[family]}, {PAPER_METHODS[method]}, 500 epochs"
    found = {e.metric: e for e in reported("bayesbinn") if e.setting == setting}
    return found["test accuracy"], found["test accuracy std"]
