"""The BayesBiNN chapter's claims: the paper's reported accuracies (Meng, Bachmann & Khan, 2020,
mean +- std over 5 runs) and the authors' own per-epoch logs
(:mod:`bnnlib_book.bayesbinn.reference`),
graded on our records by :func:`bayesbinn_claims` (the summary's evaluator)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bnnlib.experiment.config import RunConfig
from bnnlib.experiment.records import RunRecord
from bnnlib_book.bayesbinn.design import (
    CLASSIFICATION_FILES,
    chapter_configs,
    method_of_set,
    seed_file,
)
from bnnlib_book.bayesbinn.reference import (
    SOURCE as REFERENCE_SOURCE,
)
from bnnlib_book.bayesbinn.reference import (
    reference_band,
    reference_config,
    reference_logs,
    reference_values,
)
from bnnlib_book.frames import best_epoch
from bnnlib_book.grading import (
    NO_PAPER_VALUE,
    NOT_RUN,
    Claim,
    Comparison,
    Verdict,
    gap_status,
    judge_comparison,
    judge_epoch_matched,
)
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


# --- grading (the summary's evaluator) -------------------------------------------------------

SEED = "002"
CHAPTER = "06_bayesbinn"


def recipe_differences(record: RunRecord, reference: Mapping[str, Any], dataset: str) -> list[str]:
    """How ``record``'s run differs from the recipe of one of the authors' logged runs
    (``reference``, a ``.config.json``): data set (the true one, not a stand-in), full width and
    training set, validation split, learning rate and its cosine's end and length, batch size,
    temperature, gradient momentum, trainset scale, BatchNorm momentum, dropout, MC samples.
    Empty: the same recipe (lamda starts at the optimizer's default 10, the logs' ``lamda``)."""
    c, h, m = record.config, record.config["hparams"], record.config["model_kwargs"]
    checks = [
        ("data set", c["dataset"], dataset),
        ("optimizer", h.get("optimizer"), "bayesbinn"),
        ("width", float(m.get("width", 1.0)), 1.0),
        ("training subset", h.get("train_subset"), None),
        ("test subset", h.get("test_subset"), None),
        ("validation split", h.get("validation_split"), reference["val_split"]),
        ("lr", h.get("lr"), reference["lr"]),
        ("final lr", h.get("lr_end"), reference["lr_end"]),
        ("cosine epochs", h.get("epochs"), reference["epochs"]),
        ("batch size", h.get("batch_size"), reference["batch_size"]),
        ("temperature", h.get("temperature"), reference["temperature"]),
        ("gradient momentum", h.get("grad_momentum"), reference["momentum"]),
        ("trainset scale", h.get("trainset_scale"), reference["trainset_scale"]),
        ("BatchNorm momentum", m.get("bn_momentum"), reference["bnmomentum"]),
        ("MC samples", h.get("num_samples"), reference["train_samples"]),
    ]
    if "drop_prob" in reference:
        checks.append(("dropout", m.get("drop_prob"), reference["drop_prob"]))
    return [f"{name} {ours!r} (reference {ref!r})" for name, ours, ref in checks if ours != ref]


def per_epoch(records: Sequence[RunRecord], metric: str = "test_acc") -> dict[int, list[float]]:
    """Epoch -> our runs' ``metric`` in % (records hold fractions)."""
    out: dict[int, list[float]] = {}
    for rec in records:
        for h in rec.history:
            if h.get(metric) is not None:
                out.setdefault(int(h["epoch"]), []).append(100.0 * h[metric])
    return out


def run_label(records: Sequence[RunRecord]) -> str:
    """The runs' setting as evidence: data, training images, width, epochs of the cosine, seeds."""
    first = records[0]
    p, h = first.provenance, first.config["hparams"]
    seeds = sorted({r.config["seed"] for r in records})
    return (
        f"ours: {p.get('dataset_label', first.config['dataset'])}, {p.get('train_size')} training "
        f"images, width {float(first.config['model_kwargs'].get('width', 1.0)):g}, "
        f"{p.get('epochs')} of {h.get('epochs')} cosine epochs, seeds "
        f"{', '.join(str(s) for s in seeds)}, {p.get('hardware', 'unknown hardware')}"
    )


def chapter_runs(
    records: Sequence[RunRecord], params: Mapping[str, Any]
) -> dict[tuple[str, str], list[RunRecord]]:
    """(family, method) -> the records of the page's MNIST and CIFAR runs, joined by run key to
    the configs :func:`~bnnlib_book.bayesbinn.design.chapter_configs` builds from ``params``."""
    plan = chapter_configs(params, params.get("profile"))
    by_key = {r.key: r for r in records if r.status == "complete"}
    out: dict[tuple[str, str], list[RunRecord]] = {}
    for config in plan["mnist"] + plan["cifar"]:
        rec = by_key.get(RunConfig.from_dict(config).key())
        if rec is None:
            continue
        family = config["dataset"].split("-")[0]
        out.setdefault((family, method_of_set(config["hparams_set"])), []).append(rec)
    return out


def _epoch_claim(family: str, logs: Any, ours: Mapping[int, Sequence[float]]) -> Claim:
    epochs = sorted(ours) or [1, 2, 3]
    band = reference_band(logs, family, epochs=epochs)
    paper = ", ".join(
        f"epoch {e}: {row['mean']:.2f} % ({row['min']:.2f}-{row['max']:.2f})"
        for e, row in band.iterrows()
    )
    return Claim(
        SEED,
        CHAPTER,
        f"BayesBiNN {PAPER_DATASETS[family]} test accuracy follows the reference "
        "implementation's curve over the epochs run",
        f"{REFERENCE_SOURCE}, {family}, 5 runs",
        paper or "no logged epoch",
    )


def bayesbinn_claims(records: list[RunRecord], params: Mapping[str, Any]) -> list[Verdict]:
    """The BayesBiNN chapter's verdicts from its records and parameters (the summary's grader):
    per data set, BayesBiNN's test accuracy per epoch against the authors' logs by
    :func:`~bnnlib_book.grading.judge_epoch_matched` (graded only for runs of the logged recipe:
    MNIST here; CIFAR-10 on the JPEG stand-in is shown as not comparable); the paper's 500-epoch
    numbers of both methods (not run unless our runs trained the whole recipe); continual
    learning over the seeds of its records (:func:`continual_verdict`)."""
    logs = reference_logs()
    runs = chapter_runs(records, params)
    verdicts = []
    for family in PAPER_DATASETS:
        family_records = runs.get((family, "BayesBiNN"), [])
        ours = per_epoch(family_records)
        claim = _epoch_claim(family, logs, ours)
        if not family_records:
            verdicts.append(Verdict(claim, NOT_RUN, "no BayesBiNN run of this data set"))
            continue
        reference = reference_config(family)
        differences = sorted(
            {d for r in family_records for d in recipe_differences(r, reference, family)}
        )
        setting = run_label(family_records)
        if differences:
            note = (
                "epoch-matched but not data-matched ("
                f"{family_records[0].provenance.get('dataset_label', family_records[0].config['dataset'])}"
                f" instead of true {PAPER_DATASETS[family]})"
                if family_records[0].config["dataset"] != family
                else "epoch-matched, other recipe"
            )
            setting = f"{note}; differs in {'; '.join(differences)}; {setting}"
        verdicts.append(
            judge_epoch_matched(
                claim,
                ours,
                reference_values(logs, family),
                same_recipe=not differences,
                setting=setting,
            )
        )
    for family in PAPER_DATASETS:
        for method in PAPER_METHODS:
            verdicts.append(_final_verdict(family, method, runs.get((family, method), [])))
    verdicts.append(continual_verdict(params))
    return verdicts


CONTINUAL_CLAIM = Claim(
    SEED,
    CHAPTER,
    "Continual learning on permuted MNIST: with the previous posterior as prior, the average "
    "accuracy over the tasks is higher than without (earlier tasks are forgotten less)",
    "Meng et al. 2020, arXiv 2002.10778v4, Section 5.2 (figure)",
    "curves only",
)


def continual_runs(params: Mapping[str, Any]) -> dict[int, dict[str, RunRecord]]:
    """The chapter's continual-learning records in ``params["continual_dir"]``: seed -> {"with
    prior", "without prior"} -> record, for the seeds whose two runs are both recorded."""
    from bnnlib.methods.continual import record_key, resolve_config

    folder = Path(params["continual_dir"])
    out: dict[int, dict[str, RunRecord]] = {}
    for config in chapter_configs(params, params.get("profile"))["continual"]:
        cfg = resolve_config(config)
        pair = {}
        for label, use_prior in (("with prior", True), ("without prior", False)):
            path = folder / f"{record_key(cfg, params['cl_tasks'], use_prior, False)}.json"
            if path.is_file():
                pair[label] = RunRecord.load(path)
        if len(pair) == 2:
            out[config["seed"]] = pair
    return out


def prior_verdict(
    final_evals: Mapping[str, Sequence[Mapping[str, float]]], setting: str
) -> Verdict:
    """:data:`CONTINUAL_CLAIM` graded on the average accuracy after the last task, per seed
    (``final_evals``: "with prior"/"without prior" -> the last task evaluation of each seed), by
    the book's comparison rule; a reduced budget is never the paper's setting."""
    values = {label: tuple(ev["avg_acc"] for ev in evals) for label, evals in final_evals.items()}
    comparison = (
        Comparison("with prior", values["with prior"], "without prior", values["without prior"])
        if values["with prior"] and values["without prior"]
        else None
    )
    return judge_comparison(CONTINUAL_CLAIM, comparison, at_paper_scale=False, setting=setting)


def continual_verdict(params: Mapping[str, Any]) -> Verdict:
    """The summary's verdict on :data:`CONTINUAL_CLAIM` from the chapter's continual records."""
    runs = continual_runs(params)
    setting = (
        f"{params['cl_tasks']} permuted tasks x {params['cl_epochs']} epochs, C = "
        f"{params['cl_eval_samples']} (paper: 5 tasks x 100 epochs, C = 100)"
    )
    if runs:
        setting += f"; {next(iter(runs.values()))['with prior'].label}"
    final_evals = {
        label: [pair[label].extras["task_evals"][-1] for pair in runs.values()]
        for label in ("with prior", "without prior")
    }
    return prior_verdict(final_evals, setting)


def _final_verdict(family: str, method: str, family_records: Sequence[RunRecord]) -> Verdict:
    mean, std = paper_entries(family, method)
    claim = Claim(
        SEED,
        CHAPTER,
        f"{PAPER_DATASETS[family]}, {PAPER_METHODS[method]}: {mean.shown} test accuracy after "
        "500 epochs (mean of 5 runs, test at the best validation epoch)",
        f"{mean.source} [{mean.tag}]",
        f"{mean.shown} +- {std.shown}",
    )
    no_log = "; the authors' logs hold no STE run" if method == "STE" else ""
    if not family_records:
        return Verdict(claim, NOT_RUN, f"no {method} run of this data set{no_log}")
    values = [100.0 * test_at_best_val(r) for r in family_records]
    ours = sum(values) / len(values)
    spread = (sum((v - ours) ** 2 for v in values) / len(values)) ** 0.5
    spread_text = f" +- {spread:.2f} % (population std, " if len(values) > 1 else " % ("
    measured = (
        f"ours {ours:.2f}{spread_text}n={len(values)}, test at the best validation epoch of "
        f"those run); {run_label(family_records)}{no_log}"
    )
    paper_epochs = seed_file(CLASSIFICATION_FILES[family][method]).epochs
    full = all(
        r.provenance.get("epochs") == paper_epochs
        and r.config["dataset"] == family
        and float(r.config["model_kwargs"].get("width", 1.0)) == 1.0
        and r.config["hparams"].get("train_subset") is None
        for r in family_records
    )
    if not full:
        return Verdict(claim, NOT_RUN, f"reduced-scale runs, not comparable: {measured}")
    if mean.value is None:
        return Verdict(claim, NO_PAPER_VALUE, measured)
    gap = ours - mean.value
    return Verdict(claim, gap_status(gap), f"{measured}; {gap:+.2f} % from the paper")


def test_at_best_val(record: RunRecord) -> float:
    """The test accuracy (fraction) at the epoch of best validation accuracy among the epochs
    run (the paper's model selection; the first such epoch on ties)."""
    try:
        return best_epoch(record.history)["test_acc"]
    except ValueError:
        raise ValueError(f"record {record.key} has no validation accuracy") from None
