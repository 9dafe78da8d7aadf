"""Pure comparisons: flatten, noise, metric direction, provenance, CI gates."""

from __future__ import annotations

import math

import pytest

from ftkit.errors import UsageError
from ftkit.registry import diff


def test_flatten():
    assert diff.flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}, "f": None}) == {
        "a.b": 1,
        "a.c.d": [1, 2],
        "e": {},
        "f": None,
    }


def test_config_changes_skip_noise_and_show_only_changes():
    a = {"name": "x", "output": "/o/1", "training": {"lr": 1e-4, "epochs": 1}, "data": {"train": "t"}}
    b = {"name": "y", "output": "/o/2", "training": {"lr": 2e-4, "epochs": 1}, "method": {"r": 8}}
    rows = diff.config_changes(a, b)
    assert [(r["key"], r["a"], r["b"]) for r in rows] == [
        ("data.train", "t", None),
        ("method.r", None, 8),
        ("training.lr", 1e-4, 2e-4),
    ]
    everything = diff.config_changes(a, b, include_all=True)
    assert {r["key"] for r in everything} == {"data.train", "method.r", "training.lr", "training.epochs"}
    assert [r["changed"] for r in everything if r["key"] == "training.epochs"] == [False]


@pytest.mark.parametrize(
    ("metric", "sense"),
    [
        ("eval.loss", -1),
        ("base.eval.loss", -1),
        ("eval.perplexity", -1),
        ("run.wall_time_s", -1),
        ("train.peak_memory_mb", -1),
        ("eval.accuracy", 1),
        ("train.tokens_per_sec", 1),
        ("eval.exact_match", 1),
        ("train.steps", 0),
        ("evals.test.judge.pass_rate", 1),
        ("evals.test.judge.mean_score", 1),
        ("evals.test.judge.agreement.exact_match", 1),
        ("evals.test.judge.kappa.exact_match", 1),
        ("evals.test.judge_pairwise.win_rate", 1),
        ("evals.test.judge_pairwise.loss_rate", -1),
        ("evals.test.judge_pairwise.position_consistency", 1),
        ("evals.test.judge.unparsed", -1),
    ],
)
def test_direction(metric, sense):
    assert diff.direction(metric) == sense


def test_metric_rows_verdicts():
    rows = {r["metric"]: r for r in diff.metric_rows(
        {"eval.loss": 2.0, "eval.accuracy": 0.5, "train.steps": 10, "only.a": 1.0, "note": "x"},
        {"eval.loss": 1.5, "eval.accuracy": 0.4, "train.steps": 12, "only.b": 1.0, "note": "y"},
    )}  # fmt: skip
    assert rows["eval.loss"]["delta"] == -0.5 and rows["eval.loss"]["delta_pct"] == -25.0
    assert rows["eval.loss"]["verdict"] == "better"
    assert rows["eval.accuracy"]["verdict"] == "worse"
    assert rows["train.steps"]["verdict"] is None
    assert rows["only.a"]["delta"] is None and rows["note"]["delta"] is None


def test_relative_delta_from_zero():
    row = diff.metric_rows({"x.loss": 0.0}, {"x.loss": 1.0})[0]
    assert row["delta_pct"] == math.inf


def test_headline_metric():
    assert diff.headline_metric({"train.loss": 1.0, "eval.loss": 2.0}) == "eval.loss"
    assert diff.headline_metric({"train.loss": 1.0}) == "train.loss"
    assert diff.headline_metric({"eval.loss": "NaN"}) is None


def _run(model="m", torch="2.4", sha="a" * 64, commit="c1", dirty=False):
    return {
        "run": {"model": model},
        "env": {"packages": {"torch": torch}, "python": "3.11", "code": {"commit": commit, "dirty": dirty}},
        "data": {"train": {"sha256": sha, "rows": 3}},
    }


def test_provenance_warnings():
    assert diff.provenance_warnings(_run(), _run()) == []
    warnings = diff.provenance_warnings(
        _run(), _run(model="n", torch="2.5", sha="b" * 64, commit="c2", dirty=True)
    )
    text = "\n".join(warnings)
    assert "base model differs: m → n" in text
    assert "package torch: 2.4 → 2.5" in text
    assert "data train fingerprint differs" in text
    assert "code commit: c1 → c2" in text
    assert "uncommitted changes" in text


@pytest.mark.parametrize(
    ("expression", "a", "b", "failed"),
    [
        ("eval.loss>+0.02", 1.0, 1.03, True),
        ("eval.loss>+0.02", 1.0, 1.01, False),
        ("eval.loss>+0.02", 1.0, 0.5, False),
        ("eval.loss>+5%", 1.0, 1.06, True),
        ("eval.loss>+5%", 2.0, 2.06, False),
        ("eval.accuracy<-0.01", 0.8, 0.78, True),
        ("eval.accuracy<-0.01", 0.8, 0.795, False),
        ("eval.accuracy<-2%", 0.5, 0.489, True),
        ("eval.accuracy<-2%", 0.5, 0.495, False),
        ("eval.loss >= 0", 1.0, 1.0, True),
        ("eval.loss>0.02", 1.0, 1.03, True),
    ],
)
def test_gates(expression, a, b, failed):
    metric = expression.split(">")[0].split("<")[0].strip()
    result = diff.parse_gate(expression).check({metric: a}, {metric: b})
    assert result["failed"] is failed, result["message"]


@pytest.mark.parametrize(
    "bad", ["", "eval.loss", "eval.loss>", "eval.loss>+x", "eval.loss=+1", ">+1", "a>+1%%"]
)
def test_bad_gate_expressions(bad):
    with pytest.raises(UsageError, match="invalid --fail-on"):
        diff.parse_gate(bad)


def test_gate_on_missing_metric_is_an_error():
    with pytest.raises(UsageError, match="missing from run B"):
        diff.parse_gate("eval.loss>+1").check({"eval.loss": 1.0}, {})
