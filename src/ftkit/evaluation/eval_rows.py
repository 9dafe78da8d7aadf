"""`ftkit eval`'s rows: read and checked as `ftkit run` reads eval data, encoded as the run encoded them, scored by the same loop `ftkit run` uses, merged into one
per-row record (tuned beside base), and written as the eval record's artifacts.

The predictions file (`predictions.jsonl`) has one JSON object per evaluated row, in file order:
`line` (1-based line in the data file), `prompt` (the user's text), `reference`, `prediction`, `base_prediction`
(with --base), `scores` / `base_scores` ({metric: 1.0, 0.0, a fraction, or null when the row cannot be scored}),
`extracted` (what answer_match, numeric_match and json_fields took from the answer and the reference), `failures`
({metric: why the row scored 0 or null}), and `judge` / `judge_score` / `base_judge` when a judge ran.
Classification rows: `line`, `text`, `reference` (true label), `prediction`, `correct`, and the base's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftkit.data.render import reference_text
from ftkit.errors import DataError

if TYPE_CHECKING:
    from ftkit.evaluation.eval_job import EvalOutcome, EvalPlan, EvalRequest


# Formats that render to the same canonical rows (`messages`), so a run trained on one reads the other identically.
SAME_ROWS = {"chat": {"chat", "instruction"}, "instruction": {"chat", "instruction"}}


@dataclass
class Scored:
    """One model's scores on the plan's rows: metrics, generated samples (causal-lm, in row order), predicted
    labels (classification, in row order) and the confusion table."""

    metrics: dict[str, Any]
    samples: list[dict[str, Any]] = field(default_factory=list)
    predicted: list[str] = field(default_factory=list)
    confusion: dict[str, Any] | None = None


def question_text(example: dict[str, Any]) -> str:
    """The user's text of a canonical row, as a judge or a person reads it (not the chat-templated string): the
    one user turn, or each turn before the answer as `role: content`; a completion row's prompt."""
    if "messages" in example:
        turns = [turn for turn in example["messages"][:-1] if turn["role"] != "system"]
        if len(turns) == 1:
            return str(turns[0]["content"])
        return "\n\n".join(f"{turn['role']}: {turn['content']}" for turn in turns)
    return str(example.get("prompt", ""))


def check_file(path: Path) -> None:
    """DataError (exit 2) unless `path` is an existing file."""
    if not path.exists():
        raise DataError(f"{path}: no such data file", hint="check the path given to --data")
    if not path.is_file():
        raise DataError(
            f"{path}: not a file",
            hint="--data takes one .jsonl, .json, .csv, .tsv or .parquet file (its bytes are fingerprinted)",
        )


def label_names(source: Any) -> list[str] | None:
    """Class names without loading the model: a run's labels.json, a model folder's id2label."""
    folder = Path(source.path)
    try:
        if source.kind in ("run", "run-output") and (folder / "labels.json").is_file():
            return [str(label) for label in json.loads((folder / "labels.json").read_text(encoding="utf-8"))]
        if source.kind == "model-folder" and source.task == "classification":
            id2label = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("id2label") or {}
            return [str(id2label[key]) for key in sorted(id2label, key=int)]
    except (OSError, ValueError, KeyError):
        return None
    return None


def read(request: EvalRequest, source: Any, recipe: dict) -> tuple[str, str, list[Any], int]:
    """Rows read and checked as `ftkit run` reads eval data; for a run, in the format it trained on."""
    from ftkit.data.check import check_file as check_data_file
    from ftkit.data.dataset import load_checked
    from ftkit.data.formats import FORMAT_FIELDS

    data = recipe.get("data") or {}
    columns = {str(k): str(v) for k, v in (data.get("columns") or {}).items()}
    trained = data.get("format") if recipe else None
    detected = check_data_file(request.data, "auto", columns, tokens=False)
    fmt = detected.format
    if trained and fmt in FORMAT_FIELDS and fmt not in SAME_ROWS.get(trained, {trained}):
        fields = ", ".join(FORMAT_FIELDS[trained])
        raise DataError(
            f"{request.data}: the rows are in {fmt} format ({detected.format_reason}), but {source.label} was "
            f"trained on {trained} data",
            hint=f"evaluate it on {trained} rows (fields: {fields}; the run's eval file has that shape), or "
            f"convert the file; `ftkit data check {request.data}` shows how it is read",
        )
    report = load_checked(request.data, fmt if fmt in FORMAT_FIELDS else (trained or "auto"), columns)
    examples = report.examples[: request.max_rows] if request.max_rows else report.examples
    if not examples:
        raise DataError(f"{request.data}: no rows to evaluate", hint="give a file with at least one row")
    reason = detected.format_reason if fmt == report.format else report.format_reason
    return report.format, reason, examples, len(report.examples)


def check_labels(plan: EvalPlan) -> None:
    known = plan.labels or []
    problems = [
        f"{plan.request.data}:{example.line}: label {example.data['label']!r} is not one of the model's labels "
        f"({', '.join(known)})"
        for example in plan.examples
        if str(example.data["label"]) not in known
    ]
    if problems:
        raise DataError(
            f"{plan.request.data}: {len(problems)} row(s) have a label the model does not know",
            problems=problems[:20],
            hint="evaluate on rows labelled with the classes the model was trained on",
        )


def encode(plan: EvalPlan, tokenizer: Any) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Token rows for the loss loop, rendered by `encode_rows` with the run's max_seq_len and train_on (labels
    for classification), and what truncation cost: truncated_rows, truncated_tokens, dropped_rows (rows with no
    answer token left, which carry no loss)."""
    from ftkit.data.dataset import RunData
    from ftkit.data.encode import encode_rows
    from ftkit.data.formats import Example

    examples = plan.examples
    labels = plan.labels if plan.task == "classification" else None
    if labels is not None:  # labels.json holds the class names as text; a file may write them as numbers
        examples = [Example(e.source, e.line, {**e.data, "label": str(e.data["label"])}) for e in examples]
    # The rows go in the train slot: encode_rows counts truncation there (eval rows are encoded identically).
    data = RunData(plan.data_format, plan.format_reason, examples, [])
    max_seq_len = int(plan.settings["max_seq_len"])
    encoded = encode_rows(
        data, tokenizer, max_seq_len=max_seq_len, train_on=plan.settings["train_on"], labels=labels
    )
    if not encoded.train:
        raise DataError(
            f"{plan.request.data}: no row keeps an answer token within max_seq_len={max_seq_len}, so there is "
            "nothing to score",
            hint="evaluate on shorter rows",
        )
    truncation = {
        "truncated_rows": encoded.truncated_rows,
        "truncated_tokens": encoded.truncated_tokens,
        "dropped_rows": encoded.dropped_rows,
    }
    return encoded.train, truncation


def score(
    plan: EvalPlan, model: Any, tokenizer: Any, rows: list[dict], use_cache: bool, device: str
) -> Scored:
    """The plan's metrics for one model on the encoded rows (and greedy answers to every row when a generation
    metric is chosen), with `ftkit run`'s evaluation loop."""
    settings = plan.settings
    if plan.task == "classification":
        from ftkit.evaluation.metrics import classification_outputs
        from ftkit.evaluation.scoring import classification_report

        labels = plan.labels or []
        outputs = classification_outputs(model, rows, tokenizer.pad_token_id, settings["batch_size"], device)
        report = classification_report(outputs["predicted"], outputs["targets"], labels)
        metrics = {"loss": outputs["loss"]}
        metrics.update(
            {k: v for k, v in report.items() if k != "confusion" and k.split(".")[0] in plan.metrics}
        )
        return Scored(
            metrics, predicted=[labels[i] for i in outputs["predicted"]], confusion=report["confusion"]
        )
    from ftkit.evaluation.evaluate import evaluate
    from ftkit.recipe.schema import EvaluationConfig

    config = EvaluationConfig(
        metrics=plan.metrics,
        generate=len(plan.examples) if plan.generation or plan.judge is not None else 0,
        max_new_tokens=settings["max_new_tokens"],
        batch_size=settings["batch_size"],
        answer_regex=settings.get("answer_regex"),
        numeric_tolerance=settings["numeric_tolerance"],
    )
    examples = [example.data for example in plan.examples]
    result = evaluate(model, tokenizer, rows, task="causal-lm", settings=config, examples=examples,
                      use_cache=use_cache, device=device)  # fmt: skip
    return Scored(result.metrics, samples=result.samples)


def merge(plan: EvalPlan, tuned: Scored, base: Scored | None) -> list[dict[str, Any]]:
    """One record per evaluated row: the predictions artifact (see the module docstring)."""
    out = []
    for index, example in enumerate(plan.examples):
        data = example.data
        row: dict[str, Any] = {"line": example.line}
        if plan.task == "classification":
            truth = str(data["label"])
            row.update({"text": data["text"], "reference": truth})
            for prefix, scored in (("", tuned), ("base_", base)):
                if scored is not None:
                    row[f"{prefix}prediction"] = scored.predicted[index]
                    row[f"{prefix}correct"] = scored.predicted[index] == truth
            out.append(row)
            continue
        if "text" in data and "messages" not in data and "prompt" not in data:
            row["text"] = data["text"]
        else:
            row.update({"prompt": question_text(data), "reference": reference_text(data)})
        if tuned.samples:
            sample = tuned.samples[index]
            row.update({"prediction": sample["prediction"], "scores": sample.get("scores", {}),
                        "extracted": sample.get("extracted", {}), "failures": sample.get("failures", {})})  # fmt: skip
        if base is not None and base.samples:
            sample = base.samples[index]
            row.update({"base_prediction": sample["prediction"], "base_scores": sample.get("scores", {}),
                        "base_failures": sample.get("failures", {})})  # fmt: skip
        out.append(row)
    return out


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    return path


def write_artifacts(outcome: EvalOutcome, folder: Path) -> dict[str, Path]:
    """The record's artifact files in `folder`: predictions.jsonl, and judge.jsonl (the judge's exact prompts and
    raw verdicts) and confusion.json (classification's tables) when there are any."""
    files = {"predictions.jsonl": _jsonl(folder / "predictions.jsonl", outcome.rows)}
    if outcome.judge.get("transcript"):
        files["judge.jsonl"] = _jsonl(folder / "judge.jsonl", outcome.judge["transcript"])
    if outcome.confusion is not None:
        tables = {"tuned": outcome.confusion, "base": outcome.base_confusion}
        path = folder / "confusion.json"
        path.write_text(json.dumps(tables, indent=2), encoding="utf-8")
        files["confusion.json"] = path
    return files
