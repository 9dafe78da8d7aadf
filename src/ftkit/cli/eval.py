"""`ftkit eval RUN|MODEL --data FILE`: evaluate a registry run (or any model) on a data file and commit the result
to the registry as an eval record (`ftkit show RUN` lists it, `ftkit diff A B` lines records up by data fingerprint
as `evals.<stem>.<metric>`, usable by `--fail-on`).

Everything is checked before a model loads, and nothing is written until every row is scored (and judged): bad
input exits 2 with the registry unchanged, Ctrl-C exits 130 with nothing recorded. A plain model's record goes to
the registry's `models` group; when no registry exists yet, one is created for it (a run's registry always exists).
The job itself is `ftkit.evaluation.eval_job` (no printing there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ftkit.cli._options import json_option, registry_option
from ftkit.cli._output import Output
from ftkit.cli._target import REF_HELP
from ftkit.errors import ExitCode, UsageError


def eval_command(
    ref: str = typer.Argument(..., metavar="RUN|MODEL", help=REF_HELP),
    data: Path = typer.Option(..., "--data", "-d", help="The rows to evaluate on (a run's data format)."),
    metric: list[str] | None = typer.Option(
        None, "--metric", "-m", help="A metric (repeat for more; default: the run's recipe, else the task's)."
    ),
    answer_regex: str | None = typer.Option(
        None, "--answer-regex", help="Regex for answer_match, e.g. '#### (.+)' (alone, it adds answer_match)."
    ),
    numeric_tolerance: float | None = typer.Option(
        None, "--numeric-tolerance", min=0.0, help="numeric_match: largest absolute difference counted equal."
    ),
    max_rows: int | None = typer.Option(None, "--max-rows", min=1, help="Evaluate the first N rows only."),
    max_new_tokens: int | None = typer.Option(
        None, "--max-new-tokens", min=1, help="Tokens per generated answer (default: the run's, else 64)."
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=1, help="Rows per batch (default: the run's, else 8)."
    ),
    base: bool = typer.Option(False, "--base", help="Also evaluate the run's base model on the same rows."),
    judge: str | None = typer.Option(
        None,
        "--judge",
        help="Grade answers with a judge: a model (run, folder, hub id, .gguf) or an http(s) URL.",
    ),
    judge_model: str | None = typer.Option(
        None, "--judge-model", help="The model name sent to a --judge URL (key: FTKIT_JUDGE_API_KEY)."
    ),
    rubric: Path | None = typer.Option(None, "--rubric", help="The judge's rubric file (default: built in)."),
    judge_pairwise: str | None = typer.Option(
        None,
        "--judge-pairwise",
        metavar="OTHER",
        help="Pairwise: the judge compares RUN's answers with OTHER's.",
    ),
    judge_max_new_tokens: int = typer.Option(
        256, "--judge-max-new-tokens", min=1, help="Tokens a local judge may write per verdict."
    ),
    json_mode: bool = json_option(),
    registry: Path | None = registry_option(),
) -> None:
    """Evaluate a run or model on a data file and record the result in the registry."""
    from ftkit.cli._runs_common import open_or_none
    from ftkit.evaluation.eval_job import EvalRequest, JudgeRequest, prepare

    out = Output(json_mode)
    if judge is None and (judge_pairwise or judge_model or rubric):
        given = next(name for name, value in (("--judge-pairwise", judge_pairwise), ("--judge-model", judge_model),
                                              ("--rubric", rubric)) if value)  # fmt: skip
        raise UsageError(f"{given} needs --judge MODEL|URL (the judge that reads the answers)")
    request = EvalRequest(
        ref, data, list(metric) if metric else None, answer_regex, numeric_tolerance, max_rows, max_new_tokens,
        batch_size, base,
        JudgeRequest(judge, judge_model, rubric, judge_pairwise, judge_max_new_tokens) if judge else None,
    )  # fmt: skip
    reg = open_or_none(registry)
    eval_id = None
    try:
        plan = prepare(request, reg)
        outcome = _evaluate(plan, out)
        created = reg is None
        if reg is None:
            from ftkit.cli._runs_common import open_registry

            reg = open_registry(registry, create=True)
        eval_id = _record(outcome, reg)
        _report(out, outcome, eval_id, reg, created)
    except KeyboardInterrupt:
        recorded = f"eval {eval_id} was recorded before the interrupt" if eval_id else "nothing was recorded"
        out.error(f"interrupted by the user: {recorded}")
        out.emit({"error": {"kind": "interrupted", "message": f"interrupted by the user: {recorded}",
                            "exit_code": int(ExitCode.INTERRUPTED)}})  # fmt: skip
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    finally:
        if reg is not None:
            reg.close()


def _evaluate(plan: Any, out: Output) -> Any:
    from ftkit.evaluation.eval_job import execute

    metrics = ", ".join(plan.metrics) if plan.metrics else "the task's (read from the model)"
    out.note(
        f"data: {plan.request.data}: {len(plan.examples)} of {plan.file_rows} rows, {plan.data_format} format "
        f"({plan.format_reason}); metrics: {metrics}"
    )
    outcome = execute(plan, say=lambda text: out.note(f"… {text}"))
    for note in outcome.notes:
        out.warn(note)
    return outcome


def _record(outcome: Any, reg: Any) -> str:
    from ftkit.evaluation.eval_job import record

    return record(outcome, reg)


def _report(out: Output, outcome: Any, eval_id: str, reg: Any, created: bool) -> None:
    from ftkit.registry import diff as diffing
    from ftkit.registry.evals import group_of

    plan = outcome.plan
    run_id = plan.source.run_id
    stem = diffing.eval_label({"data": {"name": plan.request.data.name}})
    keys = [f"evals.{stem}.{name}" for name in outcome.metrics]
    record_path = f"evals/{group_of(run_id)}/{eval_id}/eval.json"
    truncation = outcome.truncation
    document = {
        "eval_id": eval_id,
        "registry": str(reg.root),
        "created_registry": created,
        "record": record_path,
        "run": run_id,
        "model": outcome.model_label,
        "base": outcome.base_label,
        "data": {
            "path": str(plan.request.data.absolute()),
            "rows": len(plan.examples),
            "file_rows": plan.file_rows,
            "format": plan.data_format,
            **truncation,
        },  # fmt: skip
        "settings": plan.settings,
        "metrics": outcome.metrics,
        "base_metrics": outcome.base_metrics,
        "confusion": outcome.confusion,
        "base_confusion": outcome.base_confusion,
        "failed_rows": outcome.failed_rows,
        "judge": {k: v for k, v in outcome.judge.items() if k != "transcript"} or None,
        "fail_on_keys": keys,
    }
    _human(out, outcome, truncation)  # on stderr with --json
    out.emit(document)
    if created:
        out.note(
            f"created a run registry at {reg.root} for this record (plain models' records go under evals/models/)"
        )
    out.note(f"recorded eval {eval_id} of {outcome.model_label} in {reg.root} ({record_path})")
    flag = f" --registry {reg.root}"
    if run_id:
        out.hint(f"next: `ftkit show {run_id}{flag}` lists it; `ftkit diff {run_id} OTHER{flag} --fail-on "
                 f"'{keys[0]}>+0'` gates on it once OTHER is evaluated on the same file "
                 f"(keys: {', '.join(keys[:6])}{', …' if len(keys) > 6 else ''})")  # fmt: skip
    else:
        out.hint("next: evaluate a run on the same file, then `ftkit diff A B --fail-on 'evals.<stem>.<metric>...'` "
                 f"compares runs (keys: {', '.join(keys[:6])})")  # fmt: skip


def _human(out: Output, outcome: Any, truncation: dict) -> None:
    """The summary: the metrics table (base, tuned and Δ with --base), the confusion table, failures, judge."""
    from rich.text import Text

    from ftkit.cli._runs_common import VERDICT_STYLE
    from ftkit.cli.formatting import fmt, fmt_delta
    from ftkit.cli.table_fit import Cell, Column
    from ftkit.registry import diff as diffing

    if truncation.get("truncated_rows") or truncation.get("dropped_rows"):
        out.warn(
            f"{truncation['truncated_rows']} rows longer than max_seq_len={outcome.plan.settings['max_seq_len']} "
            f"were truncated ({truncation['truncated_tokens']} tokens lost); {truncation['dropped_rows']} rows "
            "kept no answer token and carry no loss"
        )
    if outcome.base_label:
        rows = []
        for r in diffing.metric_rows(outcome.base_metrics, outcome.metrics):
            delta, _ = fmt_delta(r["delta"], r["delta_pct"])
            style = VERDICT_STYLE.get(r["verdict"] or "", "")
            rows.append([r["metric"], r["a"], r["b"], Cell(r["delta"], Text(delta, style=style))])
        out.table(
            f"Metrics of {outcome.model_label}", [Column("metric", key=True), "base", "tuned", "Δ"], rows
        )
    else:
        rows = [[name, value] for name, value in sorted(outcome.metrics.items())]
        out.table(f"Metrics of {outcome.model_label}", [Column("metric", key=True), "value"], rows)
    for title, table in (("Confusion (rows: true label, columns: predicted)", outcome.confusion),
                         ("Confusion of the base model", outcome.base_confusion)):  # fmt: skip
        if table:
            labels = table["labels"]
            body = [[label, *row] for label, row in zip(labels, table["matrix"], strict=True)]
            out.table(title, [Column("true \\ predicted", key=True), *labels], body)
    if outcome.failed_rows:
        out.note(f"{outcome.failed_rows} of {len(outcome.rows)} rows had a scoring failure (no match, no number, "
                 "invalid JSON); predictions.jsonl in the record says why, per row")  # fmt: skip
    for name, result in (outcome.judge.get("agreement") or {}).items():
        percent, kappa = result.get("percent_agreement"), result.get("kappa")
        out.note(f"judge vs {name}: {fmt(percent)}% agreement, Cohen's kappa {fmt(kappa)} over {result['rows']} "
                 f"rows ({result['skipped']} unparsed verdicts left out)")  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add `ftkit eval`."""
    app.command("eval")(eval_command)
