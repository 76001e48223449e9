"""The BayesBiNN authors' logs (package data), the epoch-matched rule and seed 002's evaluator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bnnlib.experiment.config import RunConfig
from bnnlib.experiment.records import RunRecord
from bnnlib_book.bayesbinn import claims as bayesbinn_claims
from bnnlib_book.bayesbinn import frames, reference
from bnnlib_book.chapters import CHAPTERS
from bnnlib_book.grading import (
    EPOCH_MATCHED,
    INCONSISTENT_REDUCED,
    NO_PAPER_VALUE,
    NOT_REPRODUCED,
    NOT_RUN,
    STATUSES,
    TOO_FEW_SEEDS,
    Claim,
    judge_epoch_matched,
)
from bnnlib_book.runner import chapter_params

CLAIM = Claim("002", "test", "follows the curve", "test")
REF = {1: [96.5, 96.7, 97.0], 2: [97.0, 97.2, 97.3]}


def test_logs_load_with_five_runs_of_500_epochs_each_in_percent() -> None:
    logs = reference.reference_logs()
    assert list(logs.columns) == list(reference.COLUMNS)
    assert len(logs) == 3 * 5 * 500
    for dataset in reference.DATASETS:
        rows = logs[logs["dataset"] == dataset]
        assert sorted(rows["run"].unique()) == [0, 1, 2, 3, 4]
        assert (rows.groupby("run")["epoch"].apply(sorted) == [list(range(1, 501))] * 5).all()
        assert rows["test_acc"].between(1, 100).all()  # percent, not fractions
    mnist = reference.reference_band(logs, "mnist", epochs=[1, 3, 500])
    assert mnist["count"].tolist() == [5, 5, 5]
    # the means the README states
    assert mnist["mean"].round(2).tolist() == [96.77, 97.46, 98.88]
    assert reference.reference_config("mnist", 2)["experiment_id"] == 2


def test_a_missing_log_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(reference, "REFERENCE_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="mnist_run0.csv is missing"):
        reference.reference_logs(["mnist"])
    with pytest.raises(ValueError, match="no reference logs"):
        reference.reference_logs(["imagenet"])


def test_epoch_matched_is_a_status_with_every_epoch_inside() -> None:
    assert EPOCH_MATCHED in STATUSES
    ours = {1: [96.6, 96.8, 96.9], 2: [97.1, 97.2, 97.3]}
    v = judge_epoch_matched(CLAIM, ours, REF, same_recipe=True, setting="s")
    assert v.status == EPOCH_MATCHED
    assert "epochs 1, 2 all inside" in v.evidence


def test_the_margin_widens_the_band_by_a_tenth_of_a_point() -> None:
    ours = {1: [97.08, 97.08, 97.08]}  # 0.08 above the max
    v = judge_epoch_matched(CLAIM, ours, REF, same_recipe=True, setting="s")
    assert v.status == EPOCH_MATCHED and "inside the margin, 0.08 points above" in v.evidence
    v = judge_epoch_matched(CLAIM, ours, REF, same_recipe=True, setting="s", margin=0.0)
    assert v.status == INCONSISTENT_REDUCED and "OUTSIDE, 0.08 points above the max" in v.evidence


def test_outside_the_band_at_any_epoch_is_inconsistent_and_names_the_epochs() -> None:
    ours = {1: [96.0, 96.1, 96.2], 2: [97.1, 97.2, 97.3]}
    v = judge_epoch_matched(CLAIM, ours, REF, same_recipe=True, setting="s")
    assert v.status == INCONSISTENT_REDUCED
    assert v.evidence.startswith("outside at epochs 1 of 1, 2:")
    assert "epoch 1: ours 96.10" in v.evidence and "0.40 points below the min" in v.evidence
    ours = {1: [96.0, 96.1, 96.2], 2: [98.0, 98.0, 98.0]}
    v = judge_epoch_matched(CLAIM, ours, REF, same_recipe=True, setting="s")
    assert v.status == INCONSISTENT_REDUCED and "0.70 points above the max" in v.evidence
    assert v.evidence.startswith("outside at epochs 1, 2 of 1, 2:")
    # a truncated run of the recipe never refutes its final number
    assert v.status != NOT_REPRODUCED


def test_missing_epochs_runs_and_seeds() -> None:
    inside = [96.7, 96.8, 96.9]
    # an epoch the reference did not log is named and not judged; the logged ones decide
    v = judge_epoch_matched(CLAIM, {1: inside, 3: inside}, REF, same_recipe=True, setting="s")
    assert v.status == EPOCH_MATCHED and v.evidence.startswith("epochs 1 all inside")
    assert "epochs 3 not in the reference logs, not judged" in v.evidence
    v = judge_epoch_matched(CLAIM, {7: inside}, REF, same_recipe=True, setting="s")
    assert v.status == NO_PAPER_VALUE
    assert judge_epoch_matched(CLAIM, {}, REF, same_recipe=True, setting="s").status == NOT_RUN
    v = judge_epoch_matched(CLAIM, {1: inside[:2]}, REF, same_recipe=True, setting="s")
    assert v.status == TOO_FEW_SEEDS
    v = judge_epoch_matched(CLAIM, {1: inside}, REF, same_recipe=False, setting="smaller")
    assert v.status == NOT_RUN and v.evidence.startswith("not comparable") and "96.80" in v.evidence


def _params(**over: Any) -> dict[str, Any]:
    return chapter_params("06_bayesbinn", "cpu") | over


def _record(config: dict[str, Any], test_acc: list[float], dataset_label: str) -> RunRecord:
    cfg = RunConfig.from_dict(config).resolve()
    history = [{"epoch": i + 1, "test_acc": a, "val_acc": a} for i, a in enumerate(test_acc)]
    return RunRecord(
        key=cfg.key(),
        config=cfg.to_dict(),
        history=history,
        final={"test_acc": test_acc[-1], "val_acc": test_acc[-1]},
        provenance={
            "dataset_label": dataset_label,
            "epochs": len(test_acc),
            "train_size": 54000,
            "hardware": "test",
        },
    )


def _records(params: dict[str, Any], curves: dict[str, list[list[float]]]) -> list[RunRecord]:
    from bnnlib_book.bayesbinn.design import chapter_configs, method_of_set

    plan = chapter_configs(params, params["profile"])
    out = []
    for family in ("mnist", "cifar"):
        by_method: dict[str, int] = {}
        for c in plan[family]:
            method = method_of_set(c["hparams_set"])
            i = by_method.setdefault(method, 0)
            by_method[method] += 1
            label = "MNIST" if family == "mnist" else "CIFAR-10 (JPEG re-encoded)"
            out.append(_record(c, curves[f"{family} {method}"][i], label))
    return out


def test_the_evaluator_grades_mnist_by_the_authors_logs_and_not_cifar() -> None:
    params = _params()
    inside = [[0.9677, 0.9716, 0.9746]] * 3
    below = [[0.950, 0.955, 0.960]] * 3
    cifar = [[0.28, 0.29, 0.42, 0.40, 0.44]]
    records = _records(
        params,
        {
            "mnist BayesBiNN": inside,
            "mnist STE": below,
            "cifar BayesBiNN": cifar,
            "cifar STE": cifar,
        },
    )
    verdicts = bayesbinn_claims.bayesbinn_claims(records, params)
    by = {v.claim.statement: v for v in verdicts}
    mnist = by[
        "BayesBiNN MNIST test accuracy follows the reference implementation's curve over the "
        "epochs run"
    ]
    assert mnist.status == EPOCH_MATCHED, mnist.evidence
    cifar10 = next(v for v in verdicts if v.claim.statement.startswith("BayesBiNN CIFAR-10 "))
    assert cifar10.status == NOT_RUN and "not data-matched" in cifar10.evidence
    assert "width 0.125" in cifar10.evidence
    finals = [v for v in verdicts if "after 500 epochs" in v.claim.statement]
    assert len(finals) == 6 and {v.status for v in finals} == {NOT_RUN}
    ste = next(v for v in finals if v.claim.statement.startswith("MNIST, STE"))
    assert "no STE run" in ste.evidence
    # our BayesBiNN curve below the band at every epoch
    records = _records(
        params,
        {
            "mnist BayesBiNN": below,
            "mnist STE": below,
            "cifar BayesBiNN": cifar,
            "cifar STE": cifar,
        },
    )
    mnist = bayesbinn_claims.bayesbinn_claims(records, params)[0]
    assert mnist.status == INCONSISTENT_REDUCED and "points below the min" in mnist.evidence


def test_the_evaluator_without_records_and_at_reduced_scale(tmp_path: Path) -> None:
    verdicts = bayesbinn_claims.bayesbinn_claims([], _params(continual_dir=str(tmp_path)))
    assert verdicts and {v.status for v in verdicts} == {NOT_RUN}
    params = _params(width=0.5)
    inside = [[0.9677, 0.9716, 0.9746]] * 3
    cifar = [[0.28, 0.29, 0.42, 0.40, 0.44]]
    records = _records(
        params,
        {
            "mnist BayesBiNN": inside,
            "mnist STE": inside,
            "cifar BayesBiNN": cifar,
            "cifar STE": cifar,
        },
    )
    mnist = bayesbinn_claims.bayesbinn_claims(records, params)[0]
    assert mnist.status == NOT_RUN and "width 0.5 (reference 1.0)" in mnist.evidence


def test_the_epoch_table_has_no_empty_cells() -> None:
    params = _params()
    inside = [[0.9677, 0.9716, 0.9746]] * 3
    cifar = [[0.28, 0.29, 0.42, 0.40, 0.44]]
    records = _records(
        params,
        {
            "mnist BayesBiNN": inside,
            "mnist STE": inside,
            "cifar BayesBiNN": cifar,
            "cifar STE": cifar,
        },
    )
    logs = reference.reference_logs(["mnist", "cifar10"])
    table = frames.epoch_table(records[:6], logs, "mnist", graded=True)
    assert len(table) == 3 and not table.isna().any().any()
    assert table["our BayesBiNN mean vs their band"].tolist() == ["inside"] * 3
    table = frames.epoch_table(records[6:], logs, "cifar10", graded=False)
    assert not table.isna().any().any() and set(table.iloc[:, -1]) == {"not comparable"}


def test_seed_002_is_a_graded_chapter() -> None:
    chapter = next(c for c in CHAPTERS if c.seed == "002")
    assert chapter.name == "06_bayesbinn" and chapter.evaluator is bayesbinn_claims.bayesbinn_claims
