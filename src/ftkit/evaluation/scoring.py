"""Task metrics: what each one compares, which task it applies to, and how generated answers are scored.

`METRICS` is the one list of metrics (README's "Metrics" table is checked against it). Generation metrics score
greedy answers against references with pure-Python rules (`score_generations`); the text rules themselves
(normalisation, answer extraction, numbers, JSON) live in `ftkit.evaluation.scoring_text`; classification's report
(accuracy, macro-F1, per-class precision and recall, confusion table) in `ftkit.evaluation.scoring_classification`.
`check_metrics` / `metric_problems` validate a metric list for the recipe loader and the command line alike.
No heavy import here: the recipe loader and `ftkit validate` use this module.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ftkit.errors import FtkitError, RecipeError
from ftkit.evaluation import scoring_text as text
from ftkit.evaluation.scoring_classification import classification_report
from ftkit.suggest import did_you_mean

__all__ = [
    "METRICS",
    "MetricSpec",
    "check_metrics",
    "classification_report",
    "default_metrics",
    "generation_metrics",
    "metric_problems",
    "resolve_metrics",
    "score_generations",
]

TASKS = ("causal-lm", "classification")


@dataclass(frozen=True)
class MetricSpec:
    """One metric: the tasks it applies to, its kind (`loss`: from the loss loop; `generation`: scores greedy
    answers; `classification`: from the predicted labels), its direction, and exactly what it compares."""

    name: str
    tasks: tuple[str, ...]
    kind: str
    higher_is_better: bool
    compares: str


_SPECS = [
    MetricSpec(
        "loss",
        TASKS,
        "loss",
        False,
        "Mean cross-entropy of the reference: over every labelled token of the eval rows (causal-lm), or over the "
        "rows' true labels (classification). Always reported.",
    ),
    MetricSpec(
        "perplexity",
        ("causal-lm",),
        "loss",
        False,
        "exp(loss), the loss capped at 50 before exponentiating. Always reported for causal-lm.",
    ),
    MetricSpec(
        "exact_match",
        ("causal-lm",),
        "generation",
        True,
        "The normalised answer equals the normalised reference; normalised = Unicode NFKC, case-folded, every "
        "whitespace run one space, ends trimmed, trailing . ! ? ; : , removed.",
    ),
    MetricSpec(
        "exact_match_strict",
        ("causal-lm",),
        "generation",
        True,
        "The answer equals the reference once every whitespace run is one space and the ends are trimmed; case "
        "and punctuation count (what `exact_match` meant in ftkit 0.1.0, kept so older runs' numbers compare).",
    ),
    MetricSpec(
        "answer_match",
        ("causal-lm",),
        "generation",
        True,
        "The last match of `answer_regex` (group 1 if the pattern has a group, else the whole match) in the "
        "answer equals the same extraction from the reference (the whole reference if it has no match), both "
        "normalised as for exact_match; no match in the answer is wrong.",
    ),
    MetricSpec(
        "numeric_match",
        ("causal-lm",),
        "generation",
        True,
        "The last number in the answer equals the last number in the reference within `numeric_tolerance` "
        "(absolute, default 1e-6); numbers may have a sign, thousands commas, decimals, an exponent, or be a "
        "fraction a/b; no number in either is wrong.",
    ),
    MetricSpec(
        "json_valid",
        ("causal-lm",),
        "generation",
        True,
        "The whole answer (trimmed, or the inside of one markdown code fence that is the whole answer) parses as a "
        "JSON object; any other text around it, or NaN/Infinity, makes it invalid.",
    ),
    MetricSpec(
        "json_fields",
        ("causal-lm",),
        "generation",
        True,
        "Per row, the fraction of the reference JSON object's keys whose values the answer's object has equal "
        "(exact JSON equality: strings case-sensitive, 1 == 1.0, true != 1), averaged over rows whose reference "
        "is an object with keys; also `json_field.<key>`, that key's rate over the rows whose reference has it.",
    ),
    MetricSpec(
        "contains",
        ("causal-lm",),
        "generation",
        True,
        "The normalised reference occurs inside the normalised answer (normalised as for exact_match).",
    ),
    MetricSpec(
        "accuracy",
        ("classification",),
        "classification",
        True,
        "Fraction of rows whose predicted label (the highest logit) is the true label. Always reported.",
    ),
    MetricSpec(
        "macro_f1",
        ("classification",),
        "classification",
        True,
        "Unweighted mean of per-class F1 = 2TP / (2TP + FP + FN) over the classes that occur as a true or a "
        "predicted label (a class with neither is left out), as scikit-learn's f1_score(average='macro').",
    ),
    MetricSpec(
        "precision",
        ("classification",),
        "classification",
        True,
        "Per class, `precision.<label>` = TP / (TP + FP): of the rows predicted as that label, the fraction "
        "truly that label; 0 when it is never predicted.",
    ),
    MetricSpec(
        "recall",
        ("classification",),
        "classification",
        True,
        "Per class, `recall.<label>` = TP / (TP + FN): of the rows truly that label, the fraction predicted as "
        "it; 0 when no row has that label.",
    ),
]
METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in _SPECS}

# Measured whatever `evaluation.metrics` says: review, curves and best-checkpoint selection read them, and they
# come from the forward pass every evaluation makes anyway.
ALWAYS: dict[str, tuple[str, ...]] = {
    "causal-lm": ("loss", "perplexity"),
    "classification": ("loss", "accuracy"),
}


def default_metrics(task: str, generate: int = 0) -> list[str]:
    """The metrics `evaluation.metrics: auto` means: causal-lm loss and perplexity, plus exact_match when answers
    are generated (`generate` > 0); classification loss, accuracy, macro_f1 and per-class precision and recall."""
    if task == "classification":
        return ["loss", "accuracy", "macro_f1", "precision", "recall"]
    return ["loss", "perplexity", *(["exact_match"] if generate > 0 else [])]


def resolve_metrics(task: str, chosen: Sequence[str] | str | None, generate: int = 0) -> list[str]:
    """The metrics an evaluation reports: the task's always-measured ones (see ALWAYS) followed by `chosen`
    (`"auto"` or None: `default_metrics(task, generate)`), in order, without repeats."""
    names = default_metrics(task, generate) if chosen is None or chosen == "auto" else list(chosen)
    return list(dict.fromkeys([*ALWAYS[task], *names]))


def generation_metrics(names: Iterable[str]) -> list[str]:
    """The names among `names` that score generated answers (and so need answers to be generated)."""
    return [name for name in names if name in METRICS and METRICS[name].kind == "generation"]


def metric_problems(
    names: Sequence[str], task: str, answer_regex: str | None = None, *, generate: int | None = None
) -> list[tuple[tuple[str, ...], str]]:
    """Every problem with a metric list, as (key path relative to `evaluation`, message): an unknown metric (with
    "did you mean"), a metric for another task, an `answer_regex` that does not compile, `answer_match` without
    one, and — when `generate` (the recipe's `evaluation.generate`) is given — generation metrics with no answers
    to score (generate 0). Empty when the list is usable."""
    problems: list[tuple[tuple[str, ...], str]] = []
    usable = [spec.name for spec in _SPECS if task in spec.tasks]
    if not names:
        problems.append(
            (("metrics",), f"list at least one metric, or write auto ({task}: {', '.join(usable)})")
        )
    for index, name in enumerate(names):
        where = ("metrics", str(index))
        spec = METRICS.get(name) if isinstance(name, str) else None
        if spec is None:
            close = did_you_mean(str(name), usable) or did_you_mean(str(name), METRICS)
            hint = f"did you mean `{close[0]}`? " if close else ""
            problems.append((where, f"unknown metric `{name}`; {hint}({task} metrics: {', '.join(usable)})"))
        elif task not in spec.tasks:
            problems.append(
                (
                    where,
                    f"`{name}` is a {'/'.join(spec.tasks)} metric, not for a {task} task ({task} metrics: "
                    f"{', '.join(usable)})",
                )
            )
    wanted = generation_metrics(names)
    if generate == 0 and wanted and task == "causal-lm":
        problems.append(
            (
                ("metrics",),
                f"{', '.join(wanted)} score{'s' if len(wanted) == 1 else ''} generated answers, and "
                "evaluation.generate is 0; set evaluation.generate to the number of eval rows to answer (e.g. 20)",
            )
        )
    if answer_regex is not None:
        try:
            re.compile(answer_regex)
        except re.error as error:
            problems.append((("answer_regex",), f"the pattern {answer_regex!r} does not compile: {error}"))
    elif "answer_match" in names:
        where = ("metrics", str(list(names).index("answer_match")))
        problems.append((where, "answer_match needs `evaluation.answer_regex`, e.g. '#### (.+)' for GSM8K"))
    return problems


def check_metrics(
    names: Sequence[str],
    task: str,
    answer_regex: str | None = None,
    *,
    where: str = "evaluation",
    error: type[FtkitError] = RecipeError,
) -> None:
    """Raise `error` (exit 2) listing every problem `metric_problems` finds, each prefixed by `where` (a recipe
    location such as `recipe.yaml:12`, or an option such as `--metric`). Returns None when the list is usable."""
    problems = metric_problems(names, task, answer_regex)
    if problems:
        raise error(
            f"{where}: {len(problems)} problem{'s' if len(problems) > 1 else ''} with the metrics",
            problems=[f"{where}: {'.'.join(path)}: {message}" for path, message in problems],
            hint="README.md's Metrics section lists every metric and what it compares",
        )


def score_generations(
    names: Sequence[str],
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    answer_regex: str | re.Pattern[str] | None = None,
    numeric_tolerance: float = 1e-6,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Score generated answers against references with the generation metrics among `names` (others are ignored).

    Returns (aggregate, per_row). `aggregate[name]` is the mean of the rows' values (rows a metric cannot score,
    such as json_fields on a reference that is not a JSON object, are left out; a metric no row could score is
    absent), plus `json_field.<key>` rates when json_fields is asked for. Each per-row dict has `scores`
    ({name: 1.0/0.0, a fraction for json_fields, or None}), `extracted` ({metric: {"prediction", "reference"}}
    for the metrics that extract something) and `failures` ({metric: why the row scored 0 or None}).
    ValueError for an unknown name or answer_match without `answer_regex` (check_metrics says so earlier).
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics: {', '.join(unknown)}")
    chosen = list(dict.fromkeys(generation_metrics(names)))
    pattern = re.compile(answer_regex) if isinstance(answer_regex, str) else answer_regex
    if "answer_match" in chosen and pattern is None:
        raise ValueError("answer_match needs answer_regex")
    per_row = [
        _score_row(chosen, prediction, reference, pattern, numeric_tolerance)
        for prediction, reference in zip(predictions, references, strict=True)
    ]
    aggregate: dict[str, float] = {}
    for name in chosen:
        values = [row["scores"][name] for row in per_row if row["scores"][name] is not None]
        if values:
            aggregate[name] = sum(values) / len(values)
    if "json_fields" in chosen:
        aggregate.update(_field_rates(per_row))
    return aggregate, per_row


def _score_row(
    names: list[str], prediction: str, reference: str, pattern: re.Pattern[str] | None, tolerance: float
) -> dict[str, Any]:
    scores: dict[str, float | None] = {}
    extracted: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    for name in names:
        if name == "exact_match":
            scores[name] = float(text.normalize_answer(prediction) == text.normalize_answer(reference))
        elif name == "exact_match_strict":
            scores[name] = float(text.exact_match_strict(prediction, reference))
        elif name == "contains":
            scores[name] = float(text.normalize_answer(reference) in text.normalize_answer(prediction))
        elif name == "answer_match":
            assert pattern is not None
            got, expected = text.extract_answer(prediction, pattern), text.extract_answer(reference, pattern)
            extracted[name] = {
                "prediction": got,
                "reference": expected if expected is not None else reference,
            }
            if got is None:
                failures[name] = f"no match for {pattern.pattern!r} in the answer"
                scores[name] = 0.0
            else:
                scores[name] = float(
                    text.normalize_answer(got) == text.normalize_answer(extracted[name]["reference"])
                )
        elif name == "numeric_match":
            got, expected = text.last_number(prediction), text.last_number(reference)
            extracted[name] = {"prediction": got and got[0], "reference": expected and expected[0]}
            if got is None or expected is None:
                failures[name] = f"no number in the {'answer' if got is None else 'reference'}"
                scores[name] = 0.0
            else:
                scores[name] = float(abs(got[1] - expected[1]) <= tolerance)
        elif name == "json_valid":
            _, why = text.parse_json_object(prediction)
            scores[name] = float(why is None)
            if why:
                failures[name] = why
        elif name == "json_fields":
            scores[name] = _json_fields(prediction, reference, extracted, failures)
    return {"scores": scores, "extracted": extracted, "failures": failures}


def _json_fields(
    prediction: str, reference: str, extracted: dict[str, dict[str, Any]], failures: dict[str, str]
) -> float | None:
    expected, why_reference = text.parse_json_object(reference)
    if expected is None or not expected:
        failures["json_fields"] = f"reference not scored: {why_reference or 'an object with no keys'}"
        return None
    got, why = text.parse_json_object(prediction)
    fields = {
        key: got is not None and key in got and text.json_equal(got[key], value)
        for key, value in expected.items()
    }
    extracted["json_fields"] = {"prediction": got, "reference": expected, "fields": fields}
    if why:
        failures["json_fields"] = why
    return sum(fields.values()) / len(fields)


def _field_rates(per_row: list[dict[str, Any]]) -> dict[str, float]:
    hits: dict[str, list[bool]] = {}
    for row in per_row:
        for key, ok in row["extracted"].get("json_fields", {}).get("fields", {}).items():
            hits.setdefault(key, []).append(ok)
    return {f"json_field.{key}": sum(values) / len(values) for key, values in hits.items()}
