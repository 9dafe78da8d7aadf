"""Classification's report against hand counts; metric lists checked for the recipe (`ftkit validate`: file, line,
key, exit 2) and for a command line; README's Metrics table against `METRICS`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.errors import ExitCode, RecipeError, UsageError
from ftkit.evaluation.scoring import METRICS, check_metrics, classification_report, metric_problems

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_classification_report_by_hand():
    labels = ["ham", "spam", "other", "unused"]
    targets = [0, 0, 0, 1, 1, 2]
    predicted = [0, 1, 0, 1, 0, 1]
    report = classification_report(predicted, targets, labels)
    # rows: true label, columns: predicted
    assert report["confusion"] == {
        "labels": labels,
        "matrix": [[2, 1, 0, 0], [1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]],
    }
    assert report["accuracy"] == pytest.approx(3 / 6)
    assert report["precision.ham"] == pytest.approx(2 / 3)  # 2 of the 3 rows predicted ham
    assert report["recall.ham"] == pytest.approx(2 / 3)  # 2 of the 3 ham rows
    assert report["precision.spam"] == pytest.approx(1 / 3)
    assert report["recall.spam"] == pytest.approx(1 / 2)
    assert report["precision.other"] == 0.0  # never predicted
    assert report["recall.other"] == 0.0
    assert report["precision.unused"] == report["recall.unused"] == 0.0
    # F1: ham 2*2/(3+3) = 2/3, spam 2*1/(3+2) = 2/5, other 0; `unused` (no row, no prediction) is left out
    assert report["macro_f1"] == pytest.approx((2 / 3 + 2 / 5 + 0) / 3)
    flat = {key for key, value in report.items() if not isinstance(value, float)}
    assert flat == {"confusion"}  # the table is the only entry that is not a number


def test_classification_report_refuses_bad_input():
    with pytest.raises(ValueError, match="2 predictions for 1 targets"):
        classification_report([0, 1], [0], ["a", "b"])
    with pytest.raises(ValueError, match="no rows"):
        classification_report([], [], ["a"])
    with pytest.raises(ValueError, match="label id 2 is outside 0..1"):
        classification_report([2], [0], ["a", "b"])


def test_metric_problems_are_located_by_key():
    problems = dict(
        metric_problems(["exat_match", "accuracy", "answer_match"], "causal-lm", None, generate=0)
    )
    assert "did you mean `exact_match`" in problems[("metrics", "0")]
    assert "`accuracy` is a classification metric" in problems[("metrics", "1")]
    assert "answer_match needs `evaluation.answer_regex`" in problems[("metrics", "2")]
    assert "evaluation.generate is 0" in problems[("metrics",)]
    assert metric_problems(["exact_match"], "causal-lm", "#### (.+)", generate=4) == []
    assert metric_problems(["macro_f1", "precision"], "classification") == []
    assert "exact_match" in dict(metric_problems(["exact_match"], "classification"))[("metrics", "0")]
    assert ("answer_regex",) in dict(metric_problems(["answer_match"], "causal-lm", "(unclosed"))
    assert "list at least one metric" in dict(metric_problems([], "causal-lm"))[("metrics",)]


def test_check_metrics_raises_the_error_the_caller_asks_for():
    with pytest.raises(UsageError) as caught:
        check_metrics(["exact", "json_valid"], "causal-lm", "[", where="--metric", error=UsageError)
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    assert caught.value.message == "--metric: 2 problems with the metrics"
    assert caught.value.problems[0].startswith("--metric: metrics.0: unknown metric `exact`")
    assert "does not compile" in caught.value.problems[1]
    with pytest.raises(RecipeError):
        check_metrics(["bleu"], "causal-lm")
    check_metrics(["answer_match", "numeric_match"], "causal-lm", r"#### (\S+)")  # usable: no error


def _recipe(tmp_path: Path, task: str, evaluation: str) -> Path:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "train.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    path = tmp_path / "recipe.yaml"
    path.write_text(f"model: ./model\ntask: {task}\ndata:\n  train: train.jsonl\nevaluation:\n{evaluation}")
    return path


@pytest.mark.parametrize(
    ("task", "evaluation", "located"),
    [
        (
            "causal-lm",
            "  generate: 4\n  metrics:\n    - exact_match\n    - exact_mach\n",
            ":9: evaluation.metrics.1: unknown metric `exact_mach`; did you mean `exact_match`?",
        ),
        (
            "classification",
            "  metrics: [accuracy, json_valid]\n",
            ":6: evaluation.metrics.1: `json_valid` is a causal-lm metric, not for a classification task",
        ),
        (
            "causal-lm",
            "  generate: 4\n  metrics: [answer_match]\n  answer_regex: '#### (.+'\n",
            ":8: evaluation.answer_regex: the pattern '#### (.+' does not compile",
        ),
        (
            "causal-lm",
            "  metrics: [json_fields]\n",
            ":6: evaluation.metrics: json_fields scores generated answers, and evaluation.generate is 0",
        ),
    ],
)
def test_validate_locates_metric_problems(tmp_path, task, evaluation, located):
    path = _recipe(tmp_path, task, evaluation)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "Traceback" not in result.output + result.stderr
    assert f"{path}{located}" in " ".join(result.stderr.split()), result.stderr


def test_validate_accepts_chosen_metrics_and_a_lone_name(tmp_path):
    path = _recipe(
        tmp_path, "causal-lm", "  generate: 4\n  metrics: numeric_match\n  numeric_tolerance: 0.5\n"
    )
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.stderr


def test_readme_metrics_table_lists_every_metric_with_what_it_compares():
    """README's table rows are `| name | tasks | direction | compares |`, word for word from METRICS."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("\n## Metrics") :]
    section = section[: section.index("\n## ", 1)]
    pattern = r"^\| `([a-z0-9_]+)` \| ([^|]+) \| ([^|]+) \| (.+) \|$"
    rows = {name: rest for name, *rest in re.findall(pattern, section, re.MULTILINE)}
    for name, spec in METRICS.items():
        assert name in rows, f"README's Metrics table has no row for {name}"
        tasks, direction, compares = rows[name]
        assert tasks == ", ".join(spec.tasks)
        assert direction == ("higher" if spec.higher_is_better else "lower")
        assert compares == spec.compares.replace("|", "\\|")
    assert set(rows) == set(METRICS)


def test_ftkit_diff_reads_every_metric_in_its_declared_direction():
    """`ftkit diff` (the registry, which may not import evaluation) guesses directions from names; they must agree
    with METRICS for every key an evaluation writes, per-class and per-field keys included."""
    from ftkit.registry.diff import direction

    keys = {name: name for name in METRICS}
    keys.update({"precision.spam": "precision", "recall.ham": "recall", "json_field.city": "json_fields"})
    for key, name in keys.items():
        expected = 1 if METRICS[name].higher_is_better else -1
        for prefix in ("eval.", "base.eval."):
            assert direction(prefix + key) == expected, prefix + key
