"""Classification's report from predicted and true label ids: accuracy, macro-F1, per-class precision and recall,
and the confusion table. Pure Python, so it is checked against hand counts and needs no torch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def classification_report(
    predicted: Sequence[int], targets: Sequence[int], labels: Sequence[str]
) -> dict[str, Any]:
    """Scores of `predicted` label ids against `targets` (ids index `labels`).

    Returns flat metrics — `accuracy`, `macro_f1`, and `precision.<label>`, `recall.<label>` for every label —
    plus `confusion`: {"labels": [...], "matrix": rows = true label, columns = predicted label, cells = row
    counts}, which is a table, not a metric. Rules (scikit-learn's with zero_division=0): precision is 0 for a
    label never predicted, recall 0 for a label no row has; per-class F1 = 2TP / (2TP + FP + FN); macro-F1 is the
    unweighted mean of F1 over the labels that occur as a true or a predicted label (a label with neither is left
    out, since it cannot be right or wrong). ValueError for empty or mismatched lists and out-of-range ids.
    """
    if len(predicted) != len(targets):
        raise ValueError(f"{len(predicted)} predictions for {len(targets)} targets")
    if not targets:
        raise ValueError("no rows to score")
    count = len(labels)
    for value in (*predicted, *targets):
        if not 0 <= int(value) < count:
            raise ValueError(f"label id {value} is outside 0..{count - 1} ({count} labels)")
    matrix = [[0] * count for _ in range(count)]
    for guess, truth in zip(predicted, targets, strict=True):
        matrix[int(truth)][int(guess)] += 1
    report: dict[str, Any] = {"accuracy": sum(matrix[i][i] for i in range(count)) / len(targets)}
    f1_scores = []
    for index, label in enumerate(labels):
        true_positive = matrix[index][index]
        predicted_as = sum(matrix[row][index] for row in range(count))
        support = sum(matrix[index])
        report[f"precision.{label}"] = true_positive / predicted_as if predicted_as else 0.0
        report[f"recall.{label}"] = true_positive / support if support else 0.0
        if predicted_as or support:
            f1_scores.append(2 * true_positive / (predicted_as + support))  # 2TP / (2TP + FP + FN)
    report["macro_f1"] = sum(f1_scores) / len(f1_scores)
    report["confusion"] = {"labels": [str(label) for label in labels], "matrix": matrix}
    return report
