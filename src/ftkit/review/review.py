"""`review_run(run)`: every check over one run, most severe finding first, or one line saying it is healthy."""

from __future__ import annotations

from typing import Any

from ftkit.review import curves, outcome
from ftkit.review.facts import Facts
from ftkit.review.model import SEVERITIES, Finding, Review
from ftkit.review.series import fmt, pct


def review_run(run: dict[str, Any]) -> Review:
    """The review of `run`: a `RunRegistry.load_run` dict, or the same shape built before the commit
    (`run_of_record`). Reads only the run's own files: history, metrics, data, resolved recipe."""
    facts = Facts.of(run)
    findings: list[Finding] = []
    skipped: dict[str, str] = {}

    def check(name: str, finding: Finding | None) -> Finding | None:
        if finding is not None:
            findings.append(finding)
        return finding

    diverged = check("divergence", curves.divergence(facts)) is not None
    if len(facts.evals) >= curves.MIN_EVALS_FOR_OVERFIT:
        check("overfitting", curves.overfitting(facts))
    else:
        skipped["overfitting"] = (
            f"{len(facts.evals)} eval loss measurement(s) during training; the check needs "
            f"{curves.MIN_EVALS_FOR_OVERFIT} (eval data and evaluation.during_training ≥ 3)"
        )
    if diverged:
        skipped["underfitting"] = skipped["no_gain"] = "the run diverged"
    elif facts.status == "interrupted":
        skipped["underfitting"] = "the run was interrupted before its planned end"
    elif len(facts.train) < curves.MIN_LOSSES_FOR_TREND:
        skipped["underfitting"] = (
            f"{len(facts.train)} logged train losses; the trend needs {curves.MIN_LOSSES_FOR_TREND} "
            "(lower training.logging_steps)"
        )
    else:
        check("underfitting", curves.underfitting(facts))
    if outcome.base_comparison(facts) is None:
        skipped["worse_than_base"] = skipped["no_gain"] = (
            "no base vs tuned eval scores (no eval data, evaluation.compare_base off, or the run did not finish)"
        )
    else:
        check("worse_than_base", outcome.worse_than_base(facts, diverged))
        if not diverged and not any(item.id == "worse_than_base" for item in findings):
            check("no_gain", outcome.no_gain(facts))
    check("truncation", outcome.truncation(facts))
    check("margin_not_growing", outcome.margin_not_growing(facts))
    check("eval_overlap", outcome.eval_overlap(facts))
    check("too_few_rows", outcome.too_few_rows(facts))
    findings.sort(key=lambda item: SEVERITIES.index(item.severity) if item.severity in SEVERITIES else 9)
    return Review(facts.run_id, facts.status, findings, _summary(facts, findings, skipped), skipped)


def _summary(facts: Facts, findings: list[Finding], skipped: dict[str, str]) -> str:
    state = "" if facts.status == "succeeded" else f"run {facts.status}; "
    if findings:
        listed = ", ".join(f"{item.id} ({item.severity})" for item in findings)
        return f"{state}{len(findings)} finding{'s' if len(findings) > 1 else ''}: {listed}"
    parts = []
    compared = outcome.base_comparison(facts)
    if compared:
        name, base, tuned = compared
        if name == "accuracy":
            parts.append(f"eval accuracy {pct(base)} → {pct(tuned)} against the base model")
        else:
            parts.append(
                f"eval loss {fmt(base)} → {fmt(tuned)} against the base model ({pct(tuned / base - 1)})"
            )
    if facts.train:
        parts.append(f"train loss {fmt(facts.train[0][1])} → {fmt(facts.train[-1][1])}")
    not_checked = sorted(skipped)
    tail = f"; not checked: {', '.join(not_checked)} (`ftkit review` says why)" if not_checked else ""
    verdict = "healthy" if facts.status == "succeeded" else "no problem found"
    return f"{state}{verdict}: " + ("; ".join(parts) or "nothing to measure") + f"; nothing to change{tail}"


def run_of_record(record: Any) -> dict[str, Any]:
    """The `load_run` shape of a RunRecord (registry/records.py) not yet committed, for `review_run`."""
    return {
        "id": record.run_id,
        "run": {
            "id": record.run_id,
            "status": record.status,
            "method": record.method,
            "model": record.model,
            "task": record.task,
            "auto": getattr(record, "auto", None) or {},
        },
        "resolved": record.resolved or {},
        "metrics": record.metrics or {},
        "history": record.history or [],
        "data": record.data or {},
    }
