"""The review's rules on synthetic runs, just past and just short of each stated threshold."""

from __future__ import annotations

import shlex

import pytest

from ftkit.review import Review, curves, outcome, review_run

RUN_ID = "20260101-000000-abcdef"


def make_run(
    losses: list[float] | None = None,
    evals: list[float] | None = None,
    metrics: dict | None = None,
    *,
    method: str = "lora",
    task: str = "causal-lm",
    status: str = "succeeded",
    training: dict | None = None,
    rows: int = 500,
    auto: dict | None = None,
) -> dict:
    """A run in the `load_run` shape: train losses at steps 1..n, evaluations evenly spaced ending at n."""
    losses = losses if losses is not None else [2.0 - 0.1 * i for i in range(4)] + [1.6] * 8
    history = [{"step": i, "loss": loss, "epoch": i / len(losses)} for i, loss in enumerate(losses, 1)]
    for k, value in enumerate(evals or [], 1):
        history.append({"step": round(k * len(losses) / len(evals)), "eval_loss": value})
    return {
        "id": RUN_ID,
        "run": {"id": RUN_ID, "status": status, "method": method, "task": task, "auto": auto or {}},
        "resolved": {
            "task": task,
            "method": {"name": method, "r": 8},
            "data": {"train": "/data/train.jsonl", "eval": "/data/eval.jsonl", "train_on": "completion"},
            "training": {
                "learning_rate": 1e-3,
                "epochs": 2.0,
                "max_steps": None,
                "max_seq_len": 256,
                "max_grad_norm": 1.0,
                **(training or {}),
            },
        },
        "metrics": {
            "train.steps": len(losses),
            "data.train_rows": rows,
            "data.eval_rows": 100,
            **(metrics or {}),
        },
        "history": history,
        "data": {"train": {"rows": rows}, "eval": {"rows": 100}},
    }


def ids(run: dict) -> list[str]:
    return [finding.id for finding in review_run(run).findings]


def finding(run: dict, rule: str):
    return next(item for item in review_run(run).findings if item.id == rule)


def sets(command: str) -> list[str]:
    parts = shlex.split(command)
    assert parts[:3] == ["ftkit", "rerun", RUN_ID]
    return [parts[i + 1] for i, part in enumerate(parts) if part == "--set"]


def test_a_healthy_run_has_no_finding_and_one_line():
    run = make_run(evals=[1.9, 1.7, 1.65, 1.64], metrics={"base.eval.loss": 2.5, "eval.loss": 1.64})
    review = review_run(run)
    assert review.findings == [] and review.healthy
    assert review.summary.startswith("healthy: eval loss 2.5 → 1.64 against the base model (-34%)")
    assert "\n" not in review.summary


# -- divergence --------------------------------------------------------------------------------------------


def test_nan_loss_is_divergence_with_the_step_and_a_ten_fold_lower_rate():
    run = make_run([2.0, 1.9, 1.8, 1.7, "NaN", "NaN", "NaN", "NaN", "NaN"], training={"max_grad_norm": 5.0})
    found = finding(run, "divergence")
    assert found.severity == "high"
    assert found.evidence == "train loss became NaN at step 5 of 9 (last finite value 1.7 at step 4)"
    assert sets(found.command) == ["training.learning_rate=0.0001", "training.max_grad_norm=1.0"]


@pytest.mark.parametrize(
    ("spike", "diverged"),
    [(2.0, True), (1.99, False)],  # lowest 1.0: a spike needs 2× (2.0) and +1 nat (2.0)
)
def test_a_spike_needs_twice_the_lowest_and_one_nat(spike, diverged):
    run = make_run([1.5, 1.0, 1.2, spike, 1.1, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert ("divergence" in ids(run)) is diverged
    if diverged:
        assert finding(run, "divergence").evidence == (
            "train loss jumped to 2 at step 4 from a lowest 1 before it (2.0×)"
        )


def test_a_small_loss_doubling_is_noise_not_a_spike():
    run = make_run([0.3, 0.2, 0.5, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2])  # 2.5× but only +0.3 nats
    assert "divergence" not in ids(run)


@pytest.mark.parametrize(("end", "diverged"), [(2.21, True), (2.19, False)])  # first quarter 2.0; limit +10 %
def test_a_run_that_ends_ten_percent_above_its_start_diverged(end, diverged):
    run = make_run([2.0, 2.0, 2.0, 2.1, 2.1, 2.1, 2.1, 2.1, 2.1, end, end, end])
    assert ("divergence" in ids(run)) is diverged


# -- overfitting ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("last", "found"), [(1.84, True), (1.83, False)])  # lowest 1.8; limit +2 % = 1.836
def test_overfitting_needs_eval_two_percent_above_its_lowest_while_train_falls(last, found):
    losses = [2.0, 1.9, 1.8, 1.7, 1.6, 1.5, 1.4, 1.3, 1.2, 1.1, 1.0, 0.9]
    run = make_run(losses, evals=[2.0, 1.8, 1.9, last])
    assert ("overfitting" in ids(run)) is found
    if found:
        item = finding(run, "overfitting")
        assert item.evidence == (
            "eval loss 1.8 → 1.84 over the last 3 evaluations (steps 6 → 12) while train loss 1.6 → 1"
        )
        assert sets(item.command) == ["training.epochs=1.0"]  # 2 epochs × step 6 of 12


def test_overfitting_with_select_best_says_the_output_already_is_the_kept_step():
    losses = [2.0 - 0.1 * i for i in range(12)]
    run = make_run(losses, evals=[2.0, 1.8, 1.9, 2.0], metrics={"train.best_step": 6})
    item = finding(run, "overfitting")
    assert item.severity == "low"
    assert "saved output is step 6's" in item.title
    assert item.action.startswith("nothing is lost in the output")
    assert sets(item.command) == ["training.epochs=1.0"]


def test_eval_rising_with_train_rising_is_not_overfitting():
    losses = [1.0] * 6 + [1.1] * 6
    assert "overfitting" not in ids(make_run(losses, evals=[2.0, 1.8, 1.9, 2.0]))


def test_overfitting_stops_at_the_best_step_when_max_steps_capped_the_run():
    losses = [2.0 - 0.1 * i for i in range(12)]
    run = make_run(losses, evals=[2.0, 1.8, 1.9, 2.0], training={"max_steps": 12})
    assert sets(finding(run, "overfitting").command) == ["training.max_steps=6"]


def test_overfitting_needs_three_evaluations_and_says_so():
    review = review_run(make_run(evals=[2.0, 2.5]))
    assert "overfitting" not in [item.id for item in review.findings]
    assert review.skipped["overfitting"].startswith(
        "2 eval loss measurement(s) during training; the check needs 3"
    )


# -- underfitting --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last", "found"), [(1.7, True), (1.8, False)]
)  # thirds 3.0, 2.0, last: share 23 % / 17 %
def test_underfitting_when_the_last_third_brings_a_fifth_of_the_fall(last, found):
    run = make_run([3.0] * 4 + [2.0] * 4 + [last] * 4)
    assert ("underfitting" in ids(run)) is found
    if found:
        item = finding(run, "underfitting")
        assert item.evidence.startswith("train loss still falling at the end: 3 → 2 → 1.7")
        assert sets(item.command) == ["training.epochs=4.0"]  # twice the 2 epochs


@pytest.mark.parametrize(("final", "found"), [(1.99, True), (1.997, False)])  # previous 2.0; needs −0.2 %
def test_underfitting_needs_eval_still_falling_when_measured(final, found):
    run = make_run([3.0] * 4 + [2.0] * 4 + [1.7] * 4, evals=[2.5, 2.2, 2.0, final])
    assert ("underfitting" in ids(run)) is found


def test_interrupted_and_short_runs_skip_underfitting_with_the_reason():
    interrupted = review_run(make_run([3.0] * 4 + [2.0] * 4 + [1.0] * 4, status="interrupted"))
    assert interrupted.skipped["underfitting"] == "the run was interrupted before its planned end"
    short = review_run(make_run([3.0, 2.0, 1.0]))
    assert short.skipped["underfitting"].startswith("3 logged train losses; the trend needs 9")


# -- base vs tuned ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tuned", "expected"),
    [(1.979, []), (1.981, ["no_gain"]), (2.039, ["no_gain"]), (2.041, ["worse_than_base"])],
)
def test_eval_loss_against_the_base_model(tuned, expected):
    run = make_run(metrics={"base.eval.loss": 2.0, "eval.loss": tuned})
    assert [rule for rule in ids(run) if rule in ("no_gain", "worse_than_base")] == expected


def test_no_gain_with_a_hand_set_rate_suggests_auto_and_with_auto_ten_fold():
    metrics = {"base.eval.loss": 2.0, "eval.loss": 2.0}
    assert sets(finding(make_run(metrics=metrics), "no_gain").command) == ["training.learning_rate=auto"]
    auto = {"training.learning_rate": {"value": 1e-3, "rule": "r", "evidence": "e"}}
    assert sets(finding(make_run(metrics=metrics, auto=auto), "no_gain").command) == [
        "training.learning_rate=0.01"
    ]


@pytest.mark.parametrize(
    ("tuned", "expected"),
    # 100 eval rows: no gain under one more row right (1 point), worse from two rows fewer (2 points)
    [(0.51, []), (0.505, ["no_gain"]), (0.49, ["no_gain"]), (0.48, ["worse_than_base"])],
)
def test_classification_accuracy_against_the_base_model(tuned, expected):
    run = make_run(
        metrics={"base.eval.accuracy": 0.5, "eval.accuracy": tuned, "base.eval.loss": 1.0, "eval.loss": 0.5},
        task="classification",
    )
    assert [rule for rule in ids(run) if rule in ("no_gain", "worse_than_base")] == expected


# -- data ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cut", "severity"), [(4, None), (5, "low"), (10, "medium")]
)  # of 100 rows; 5 % / 10 %
def test_truncation_from_five_percent_of_rows(cut, severity):
    run = make_run(
        metrics={"data.truncated_rows": cut, "data.truncated_tokens": 40 * cut, "data.train_rows": 100}
    )
    found = [item for item in review_run(run).findings if item.id == "truncation"]
    assert (found[0].severity if found else None) == severity
    if found:
        share = f"{cut:.1f}%" if cut < 10 else f"{cut}%"  # one decimal under 10 %
        assert found[0].evidence == (
            f"{cut} of 100 train rows ({share}) were cut at max_seq_len=256: {cut} kept with {40 * cut} tokens "
            "lost (40 per row on average)"
        )
        assert sets(found[0].command) == ["training.max_seq_len=auto"]


def test_truncation_under_auto_max_seq_len_suggests_a_number_with_its_cost():
    auto = {"training.max_seq_len": {"value": 256, "rule": "p99", "evidence": "capped"}}
    metrics = {
        "data.truncated_rows": 20,
        "data.truncated_tokens": 2000,  # 100 per cut row: 256 + 2 × 100 → 512 (a multiple of 64)
        "data.train_rows": 100,
        "train.tokens": 40000,  # the history reaches epoch 1.0: 40,000 tokens per epoch
        "train.tokens_per_sec": 500.0,
    }
    item = finding(make_run(metrics=metrics, auto=auto), "truncation")
    assert sets(item.command) == ["training.max_seq_len=512"]
    assert (
        "2,000 more tokens per epoch for the cut rows (+5.0% of the 40,000 trained per epoch now)"
        in item.action
    )
    assert "about +4.0 s per epoch at this run's 500 tokens/s" in item.action


@pytest.mark.parametrize(
    ("repeated", "severity"), [(0, None), (9, "low"), (10, "medium")]
)  # of 100 eval rows
def test_eval_rows_repeating_training_rows(repeated, severity):
    run = make_run(metrics={"data.eval_overlap_rows_normalized": repeated})
    found = [item for item in review_run(run).findings if item.id == "eval_overlap"]
    assert (found[0].severity if found else None) == severity
    if found:
        assert found[0].evidence.startswith(f"{repeated} of 100 eval rows")
        assert sets(found[0].command) == ["data.eval=null", "data.eval_split=0.1"]
        assert "`ftkit data check /data/train.jsonl --eval /data/eval.jsonl` lists them" in found[0].action


@pytest.mark.parametrize(
    ("method", "rows", "command"),
    [
        ("full", 999, ["method.name=lora"]),
        ("full", 1000, None),
        ("lora", 49, ["method.r=4"]),
        ("lora", 50, None),
    ],
)
def test_too_few_rows_for_the_method(method, rows, command):
    found = [
        item for item in review_run(make_run(method=method, rows=rows)).findings if item.id == "too_few_rows"
    ]
    assert (sets(found[0].command) if found else None) == command


# -- the review as a whole -----------------------------------------------------------------------------------


def test_divergence_hides_its_symptoms_and_worse_than_base_points_at_it():
    run = make_run([2.0, "NaN"] + ["NaN"] * 10, metrics={"base.eval.loss": 2.0, "eval.loss": 9.0})
    review = review_run(run)
    assert [item.id for item in review.findings] == ["divergence", "worse_than_base"]
    assert review.skipped["underfitting"] == review.skipped["no_gain"] == "the run diverged"
    assert "divergence" in review.findings[1].action


def test_findings_are_ordered_by_severity_and_survive_review_json():
    run = make_run(
        [2.0, 1.0, 4.0] + [1.0] * 9,
        metrics={"base.eval.loss": 2.0, "eval.loss": 2.5, "data.eval_overlap_rows_normalized": 3},
    )
    review = review_run(run)
    assert [item.severity for item in review.findings] == ["high", "high", "low"]
    again = Review.from_dict(review.to_dict())
    assert again == review and again.to_dict()["healthy"] is False


def test_thresholds_are_the_documented_ones():
    """The README states these numbers; a change here must change it too."""
    assert (curves.SPIKE_FACTOR, curves.SPIKE_MIN_RISE, curves.END_RISE) == (2.0, 1.0, 1.10)
    assert (curves.OVERFIT_RISE, curves.UNDERFIT_SHARE, curves.EVAL_STILL_FALLING) == (1.02, 0.2, 0.998)
    assert (outcome.NO_GAIN_LOSS, outcome.WORSE_LOSS, outcome.TRUNCATION_SHARE) == (0.01, 0.02, 0.05)
    assert (outcome.FULL_MIN_ROWS, outcome.ADAPTER_MIN_ROWS) == (1000, 50)


@pytest.mark.parametrize(("base", "tuned", "found"), [(3.0, 3.0, True), (3.0, 2.5, True), (3.0, 3.01, False)])
def test_margin_not_growing_for_preference_runs(base, tuned, found):
    metrics = {"base.eval.logp_margin": base, "eval.logp_margin": tuned,
               "base.eval.preference_accuracy": 0.5, "eval.preference_accuracy": 0.5}  # fmt: skip
    run = make_run(metrics=metrics, task="preference")
    run["resolved"]["preference"] = {"beta": 0.1}
    review = review_run(run)
    ids = [item.id for item in review.findings]
    assert ("margin_not_growing" in ids) is found
    if found:
        item = next(item for item in review.findings if item.id == "margin_not_growing")
        assert f"{base:g} → {tuned:g}" in item.evidence and "50% → 50%" in item.evidence
        assert "--set training.learning_rate=0.01" in (item.command or "")
    sft = make_run(metrics=metrics)  # a causal-lm run with the same numbers: not a preference finding
    assert "margin_not_growing" not in [item.id for item in review_run(sft).findings]
