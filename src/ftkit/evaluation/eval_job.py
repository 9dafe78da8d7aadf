"""`ftkit eval`'s job, without the CLI: check everything, evaluate, then hand back what to record.

    plan = prepare(EvalRequest(ref="@latest", data=Path("test.jsonl"), base=True), registry)  # no torch yet
    outcome = execute(plan, say=print)       # loads the model(s), scores every row, judges when asked
    eval_id = record(outcome, registry)      # one registry commit; nothing is written before this

`prepare` raises a located FtkitError (exit 2) for every bad input it can find without loading a model: a missing
file, a bad line, a file in another format than the run trained on, a metric for another task, a regex that does
not compile, `--base` on a plain model, a run that saved no weights, a judge that cannot be used. Rows are read by
the checker `ftkit run` uses (same readers, format detection, column mapping) and, for a run, rendered and encoded
as the run did (its saved tokenizer and chat template, `training.max_seq_len`, `data.train_on`). Scoring reuses
`ftkit.evaluation.evaluate` (loss, greedy answers through each method's decoding, the generation metrics) and
`classification_report`. Judge glue: `ftkit.evaluation.judging`; reading, rows and artifacts: `ftkit.evaluation.eval_rows`.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftkit.errors import DataError, UsageError
from ftkit.evaluation import eval_rows
from ftkit.evaluation.scoring import generation_metrics, metric_problems, resolve_metrics

# Formats whose rows have a prompt and a reference answer, so answers can be generated and scored.
ANSWERABLE = ("chat", "instruction", "completion")
PLAIN_MAX_SEQ_LEN = 2048  # a plain model's rows are cut here (or at its positions, when fewer)


@dataclass
class JudgeRequest:
    """`--judge` and its options: a model reference or an http(s) URL, the model name sent to a URL, a rubric
    file, and `pairwise` (another run or model that answers the same rows; then the judge compares the two)."""

    spec: str
    model_name: str | None = None
    rubric: Path | None = None
    pairwise: str | None = None
    max_new_tokens: int = 256


@dataclass
class EvalRequest:
    """What `ftkit eval` was asked. None means: the run's recipe value, else the default."""

    ref: str
    data: Path
    metrics: list[str] | None = None
    answer_regex: str | None = None
    numeric_tolerance: float | None = None
    max_rows: int | None = None
    max_new_tokens: int | None = None
    batch_size: int | None = None
    base: bool = False
    judge: JudgeRequest | None = None


@dataclass
class EvalPlan:
    """Everything checked before a model loads."""

    request: EvalRequest
    source: Any  # ftkit.targets.TargetSource
    task: str | None  # None for a Hub id until its config is read
    data_format: str
    format_reason: str
    examples: list[Any]  # ftkit.data.formats.Example, the first max_rows
    file_rows: int
    metrics: list[str]
    settings: dict[str, Any]
    recipe: dict[str, Any]  # the run's resolved recipe ({} for a plain model)
    labels: list[str] | None = None
    judge: Any = None  # ftkit.evaluation.judging.JudgePlan

    @property
    def generation(self) -> list[str]:
        """The chosen metrics that score generated answers."""
        return generation_metrics(self.metrics)


@dataclass
class EvalOutcome:
    """What `execute` measured, ready for `record`."""

    plan: EvalPlan
    model_label: str
    base_label: str | None
    metrics: dict[str, Any]
    base_metrics: dict[str, Any]
    rows: list[dict[str, Any]]  # one per evaluated row: the predictions artifact
    truncation: dict[str, int]
    started_at: str
    ended_at: str
    confusion: dict[str, Any] | None = None
    base_confusion: dict[str, Any] | None = None
    judge: dict[str, Any] = field(default_factory=dict)  # agreement, transcript rows, settings
    notes: list[str] = field(default_factory=list)

    @property
    def failed_rows(self) -> int:
        """Rows for which some metric could not score or an extraction failed (tuned model)."""
        return sum(1 for row in self.rows if row.get("failures"))


# -- checking -----------------------------------------------------------------------------------------------


def prepare(request: EvalRequest, registry: Any) -> EvalPlan:
    """Locate the model and read, check and choose everything; raises a located FtkitError (exit 2) for bad
    input. `registry` is an open RunRegistry or None (a path or Hub id needs none)."""
    from ftkit.targets import locate_target

    eval_rows.check_file(request.data)
    source = locate_target(request.ref, registry)
    is_run = source.kind in ("run", "run-output")
    if request.base and not is_run:
        raise UsageError(
            f"--base: {source.label} is a plain model ({source.kind}), so it has no base model to compare with",
            hint="--base needs a registry run or a run output folder; evaluate the base model on its own by "
            "passing its folder or Hub id as RUN|MODEL",
        )
    recipe = _resolved(source) if is_run else {}
    evaluation = recipe.get("evaluation") or {}
    data_format, reason, examples, file_rows = eval_rows.read(request, source, recipe)
    task = source.task
    plan = EvalPlan(request, source, task, data_format, reason, examples, file_rows, [], {}, recipe)
    plan.labels = eval_rows.label_names(source)
    if task is not None:
        finish_checks(plan)
    settings = plan.settings
    settings["batch_size"] = request.batch_size or int(evaluation.get("batch_size") or 8)
    settings["max_new_tokens"] = request.max_new_tokens or int(evaluation.get("max_new_tokens") or 64)
    tolerance = request.numeric_tolerance
    settings["numeric_tolerance"] = float(
        tolerance if tolerance is not None else evaluation.get("numeric_tolerance", 1e-6)
    )
    settings["max_rows"] = request.max_rows
    settings["decoding"] = "greedy"
    if is_run:
        settings["max_seq_len"] = int((recipe.get("training") or {}).get("max_seq_len") or PLAIN_MAX_SEQ_LEN)
        settings["train_on"] = (recipe.get("data") or {}).get("train_on", "completion")
    if request.judge is not None:
        from ftkit.evaluation.judging import plan_judge

        plan.judge = plan_judge(request.judge, registry, plan)
    return plan


def finish_checks(plan: EvalPlan) -> None:
    """The checks that need the task (known before loading, except for a Hub id): data fits the task, labels
    are the model's, the metrics apply and the regex compiles. Fills plan.metrics and plan.settings."""
    task, fmt, request = plan.task or "causal-lm", plan.data_format, plan.request
    where = f"{request.data}"
    if task == "classification" and fmt != "classification":
        raise DataError(
            f"{where}: {plan.source.label} is a classification model, but the rows are in {fmt} format "
            f"({plan.format_reason})",
            hint="give rows with `text` and `label` (the labels the model was trained on)",
        )
    if task == "causal-lm" and fmt in ("classification", "preference"):
        raise DataError(
            f"{where}: {plan.source.label} is a causal-lm model, but the rows are in {fmt} format "
            f"({plan.format_reason})",
            hint="evaluate it on chat, instruction, completion or text rows",
        )
    if task == "classification" and plan.labels is not None:
        eval_rows.check_labels(plan)
    evaluation = plan.recipe.get("evaluation") or {}
    regex = request.answer_regex if request.answer_regex is not None else evaluation.get("answer_regex")
    answerable = fmt in ANSWERABLE
    recipe_metrics = evaluation.get("metrics")
    chosen = request.metrics or (recipe_metrics if isinstance(recipe_metrics, list) else None)
    names = resolve_metrics(task, chosen, len(plan.examples) if answerable else 0)
    if request.answer_regex is not None and not request.metrics and "answer_match" not in names:
        names.append("answer_match")  # --answer-regex alone asks for the metric it feeds
    option = "--metric" if request.metrics else "evaluation.metrics of the run's recipe"
    problems = []
    for path, message in metric_problems(names, task, regex):
        if path[0] == "answer_regex":
            source = "--answer-regex" if request.answer_regex is not None else "evaluation.answer_regex"
            problems.append(f"{source}: {message}")
        else:
            problems.append(f"{option}: {message.replace('evaluation.answer_regex', '--answer-regex')}")
    wanted = generation_metrics(names)
    if wanted and not answerable:
        problems.append(
            f"{option}: {', '.join(wanted)} score generated answers, and {where} holds {fmt} rows, which have no "
            "prompt and reference answer (chat, instruction or completion rows do)"
        )
    if problems:
        raise UsageError(
            f"{len(problems)} problem{'s' if len(problems) > 1 else ''} with the metrics; nothing was evaluated",
            problems=problems,
            hint="README.md's Metrics section lists every metric, its task and what it compares",
        )
    plan.metrics = names
    plan.settings.update({"metrics": names, "answer_regex": regex})


def _resolved(source: Any) -> dict[str, Any]:
    from ftkit.inference import read_resolved

    return read_resolved(source.path) or {}


# -- evaluating ---------------------------------------------------------------------------------------------


def execute(plan: EvalPlan, say: Callable[[str], None] = lambda text: None) -> EvalOutcome:
    """Load the model (and its base, the pairwise opponent, the judge), score every row, judge when asked.
    Writes nothing anywhere. `say` receives progress lines."""
    import torch

    from ftkit.registry.records import now_iso
    from ftkit.targets import load_model_target
    from ftkit.train.quiet import quiet_libraries

    quiet_libraries()
    started = now_iso()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    say(f"loading {plan.source.label}")
    target = load_model_target(plan.source, device=device)
    notes = list(target.notes)
    if plan.task is None:  # a Hub id: its config told the task
        plan.task = target.task
        plan.labels = target.labels
        finish_checks(plan)
    tokenizer = target.tokenizer
    if plan.task == "causal-lm":
        from ftkit.data.render import ensure_chat_template

        if ensure_chat_template(tokenizer):
            notes.append("the tokenizer has no chat template; using ChatML, as ftkit trains such a model")
    if "max_seq_len" not in plan.settings:
        plan.settings["max_seq_len"] = min(target.max_length or PLAIN_MAX_SEQ_LEN, PLAIN_MAX_SEQ_LEN)
        plan.settings["train_on"] = "completion"
    rows, truncation = eval_rows.encode(plan, tokenizer)
    plan.settings["use_cache"] = target.use_cache
    say(f"evaluating {target.label} on {len(plan.examples)} rows")
    tuned = eval_rows.score(plan, target.model, tokenizer, rows, target.use_cache, device)
    base_label, base = None, None
    if plan.request.base:
        from ftkit.inference import load_base_model

        _free(target)
        base_label = str(plan.source.base_model)
        say(f"loading the base model {base_label}")
        base_model = load_base_model(plan.source.path, device=device)
        base_model.to(device)
        say(f"evaluating the base model on {len(plan.examples)} rows")
        base = eval_rows.score(plan, base_model, tokenizer, rows, True, device)
        del base_model
    else:
        _free(target)
    outcome = EvalOutcome(
        plan, target.label, base_label, tuned.metrics, base.metrics if base else {},
        eval_rows.merge(plan, tuned, base), truncation, started, started, tuned.confusion,
        base.confusion if base else None, notes=notes,
    )  # fmt: skip
    if plan.judge is not None:
        from ftkit.evaluation.judging import run_judge

        run_judge(plan.judge, outcome, tuned, base, device, say)
    outcome.ended_at = now_iso()
    return outcome


def _free(target: Any) -> None:
    """Drop the model's weights before the next one loads (memory holds one model at a time)."""
    target.model = None
    gc.collect()


# -- recording ----------------------------------------------------------------------------------------------


def record(outcome: EvalOutcome, registry: Any) -> str:
    """Commit the outcome as one eval record with its artifacts (predictions.jsonl, judge.jsonl,
    confusion.json); returns the eval id. The only write `ftkit eval` makes."""
    import tempfile

    from ftkit.registry.environment import package_versions
    from ftkit.registry.evals import EvalRecord, data_fingerprint

    plan = outcome.plan
    data = data_fingerprint(plan.request.data, rows=len(plan.examples), format=plan.data_format)
    data.update({"file_rows": plan.file_rows, **outcome.truncation})
    settings = dict(plan.settings)
    source = plan.source
    evaluated = None if source.run_id else (source.path if source.kind != "hub" else source.ref)
    eval_record = EvalRecord(
        run=source.run_id,
        model=f"run {source.run_id}" if source.run_id else evaluated,
        base=outcome.base_label,
        data=data,
        metrics=outcome.metrics,
        base_metrics=outcome.base_metrics,
        settings=settings,
        started_at=outcome.started_at,
        ended_at=outcome.ended_at,
        env={"packages": package_versions()},
    )
    with tempfile.TemporaryDirectory(prefix="ftkit-eval-") as folder:
        files = eval_rows.write_artifacts(outcome, Path(folder))
        return registry.commit_eval(eval_record, files)
