"""`ftkit review RUN` and `ftkit show RUN` on recorded runs: the stored review.json, or one computed now for a run
recorded before reviews existed (and saying so); review.json is optional in a run folder, parsed when present."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.registry.store import RunRecord, RunRegistry
from ftkit.review import review_run, run_of_record


def record(run_id: str, losses: list, **extra) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        status="succeeded",
        name="r",
        method="lora",
        task="causal-lm",
        resolved={"training": {"learning_rate": 2e-4, "max_grad_norm": 1.0, "epochs": 1.0}},
        metrics={"train.steps": len(losses), "data.train_rows": 500},
        history=[{"step": i, "loss": loss} for i, loss in enumerate(losses, 1)],
        **extra,
    )


def test_review_reads_the_stored_review_and_computes_one_for_older_runs(tmp_path):
    registry = RunRegistry.open(tmp_path / "reg", create=True)
    diverged = [2.0, 1.5, float("nan"), float("nan")]
    stored = record("20260101-000000-aaaaaa", diverged)
    stored.review = review_run(run_of_record(stored)).to_dict()
    registry.commit_run(stored, artifacts=[])
    older = record("20260101-000001-bbbbbb", diverged)  # no review: as recorded before reviews existed
    registry.commit_run(older, artifacts=[])
    assert registry.load_run(older.run_id)["review"] is None
    assert registry.load_run(stored.run_id)["review"] == json.loads(json.dumps(stored.review))
    runner = CliRunner()
    flag = ["--registry", str(tmp_path / "reg")]

    first = json.loads(runner.invoke(app, ["review", stored.run_id, "--json", *flag]).stdout)
    second = json.loads(runner.invoke(app, ["review", older.run_id, "--json", *flag]).stdout)
    assert first["computed_now"] is False and second["computed_now"] is True
    # The same run data gives the same finding whether stored at commit time or computed from the registry.
    assert [f["evidence"] for f in first["findings"]] == [f["evidence"] for f in second["findings"]]
    assert (
        first["findings"][0]["evidence"]
        == "train loss became NaN at step 3 of 4 (last finite value 1.5 at step 2)"
    )

    human = runner.invoke(app, ["review", older.run_id, *flag], terminal_width=200)
    assert human.exit_code == 0
    assert "computed now: this run was recorded before ftkit stored reviews" in human.output
    assert "evidence: train loss became NaN at step 3" in human.output
    assert (
        f"command:  ftkit rerun {older.run_id} --set training.learning_rate=2e-05 --registry {tmp_path / 'reg'}"
        in human.output
    )
    shown = runner.invoke(app, ["show", older.run_id, *flag], terminal_width=200).output
    assert f"`ftkit review {older.run_id}` computes one" in shown
    shown = runner.invoke(app, ["show", stored.run_id, *flag], terminal_width=200).output
    assert "training diverged" in shown


def test_a_healthy_review_prints_one_line(tmp_path):
    registry = RunRegistry.open(tmp_path / "reg", create=True)
    healthy = record("20260101-000000-cccccc", [2.0, 1.2, 1.0, 0.95, 0.93, 0.92, 0.92, 0.91, 0.91])
    healthy.review = review_run(run_of_record(healthy)).to_dict()
    registry.commit_run(healthy, artifacts=[])
    result = CliRunner().invoke(app, ["review", healthy.run_id, "--registry", str(tmp_path / "reg")])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[1].startswith("healthy: train loss 2 → 0.91; nothing to change; not checked:")
    assert len(lines) > 2 and all(line.startswith(("  ", "not checked")) for line in lines[2:])


def test_unknown_run_is_exit_2(tmp_path):
    RunRegistry.open(tmp_path / "reg", create=True)
    result = CliRunner().invoke(app, ["review", "nope", "--registry", str(tmp_path / "reg")])
    assert result.exit_code == 2
