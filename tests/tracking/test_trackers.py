"""Experiment tracking against the real components: an `mlflow server` process (SQLite backend, a free localhost
port) read back with the MLflow client, a `file:` MLflow store without a server, TensorBoard's own event reader,
and W&B's offline files. Each trains the tiny model through the real CLI and compares what the tracker holds with
what the registry recorded (the independent reference: the run's history and metrics as committed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.registry.store import RunRegistry

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def _run(recipe: Path, registry: Path, *extra: str):
    result = CliRunner().invoke(
        app, ["run", str(recipe), "--registry", str(registry), "--json", *extra], catch_exceptions=False
    )
    return result


def _recorded(registry: Path) -> dict:
    reg = RunRegistry.open(registry)
    with reg:
        return reg.load_run(reg.resolve("@latest"))


def _losses(history: list[dict], key: str = "loss") -> dict[int, float]:
    return {row["step"]: row[key] for row in history if isinstance(row.get(key), (int, float))}


def _tracked_recipe(recipe_file: Path, tracking: str) -> Path:
    recipe_file.write_text(recipe_file.read_text() + tracking)
    return recipe_file


def test_mlflow_server_holds_params_steps_metrics_artifacts_and_the_link(
    tmp_path, recipe_file, mlflow_server
):
    recipe = _tracked_recipe(
        recipe_file, f"tracking:\n  mlflow:\n    tracking_uri: {mlflow_server}\n    experiment: tiny-team\n"
    )
    result = _run(recipe, tmp_path / "reg", "--set", "evaluation.every_steps=6")
    assert result.exit_code == 0, result.output
    recorded = _recorded(tmp_path / "reg")
    run = recorded["run"]
    facts = run["tracking"]["mlflow"]
    assert facts["tracking_uri"] == mlflow_server and facts["experiment"] == "tiny-team"

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server)
    tracked = client.get_run(facts["run_id"])
    assert tracked.info.status == "FINISHED"
    assert tracked.info.experiment_id == client.get_experiment_by_name("tiny-team").experiment_id
    assert tracked.data.tags["ftkit.run_id"] == run["id"]
    assert tracked.data.tags["ftkit.status"] == "succeeded"
    assert tracked.data.tags["mlflow.runName"] == run["name"]
    # params: the resolved recipe, flattened (values as the registry's resolved.yaml holds them)
    resolved = recorded["resolved"]
    params = tracked.data.params
    assert params["training.learning_rate"] == str(resolved["training"]["learning_rate"])
    assert params["method.r"] == str(resolved["method"]["r"])
    assert params["model"] == resolved["model"]
    # per-step loss: every history row, step by step
    history = recorded["history"]
    steps = {m.step: m.value for m in client.get_metric_history(facts["run_id"], "train/loss")}
    expected = _losses(history)
    assert set(expected) <= set(steps) and len(expected) >= 12
    for step, value in expected.items():
        assert steps[step] == pytest.approx(value, rel=1e-6)
    eval_steps = {m.step for m in client.get_metric_history(facts["run_id"], "eval/loss")}
    assert set(_losses(history, "eval_loss")) <= eval_steps
    # final metrics: base and tuned, as the registry holds them
    metrics = recorded["metrics"]
    assert tracked.data.metrics["eval.loss"] == pytest.approx(metrics["eval.loss"], rel=1e-6)
    assert tracked.data.metrics["base.eval.loss"] == pytest.approx(metrics["base.eval.loss"], rel=1e-6)
    # artifacts: the resolved recipe and the model card
    names = {item.path for item in client.list_artifacts(facts["run_id"])}
    assert {"resolved.yaml", "model_card.md"} <= names
    local = Path(client.download_artifacts(facts["run_id"], "model_card.md", str(tmp_path)))
    card = local.read_text()
    assert card.startswith("---\n") and f"`{run['id']}`" in card
    # `ftkit show` links the MLflow run
    shown = CliRunner().invoke(
        app, ["show", run["id"], "--registry", str(tmp_path / "reg")], env={"COLUMNS": "250"}
    )
    assert facts["run_id"] in shown.output and "tiny-team" in shown.output


def test_mlflow_file_store_without_a_server_and_track_flag(tmp_path, recipe_file):
    store = tmp_path / "mlruns"
    result = _run(
        recipe_file,
        tmp_path / "reg",
        "--track",
        "mlflow",
        "--set",
        f"tracking.mlflow.tracking_uri=file:{store}",
    )
    assert result.exit_code == 0, result.output
    recorded = _recorded(tmp_path / "reg")
    facts = recorded["run"]["tracking"]["mlflow"]
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"file:{store}")
    tracked = client.get_run(facts["run_id"])
    assert tracked.info.status == "FINISHED"
    steps = {m.step: m.value for m in client.get_metric_history(facts["run_id"], "train/loss")}
    assert steps == pytest.approx(_losses(recorded["history"]), rel=1e-6)
    assert "tracking.mlflow.tracking_uri=file:" + str(store) in recorded["run"]["overrides"]


def test_tensorboard_event_files_read_back_with_tensorboard(tmp_path, recipe_file):
    result = _run(_tracked_recipe(recipe_file, "tracking: [tensorboard]\n"), tmp_path / "reg")
    assert result.exit_code == 0, result.output
    recorded = _recorded(tmp_path / "reg")
    log_dir = Path(recorded["run"]["tracking"]["tensorboard"]["log_dir"])
    assert log_dir == Path(recorded["run"]["output_dir"]) / "tensorboard"

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    scalars = events.Tags()["scalars"]
    loss = {event.step: event.value for event in events.Scalars("train/loss")}
    assert loss == pytest.approx(_losses(recorded["history"]), rel=1e-5)  # float32 in the event file
    assert "final/base.eval.loss" in scalars
    final = events.Scalars("final/base.eval.loss")[-1].value
    assert final == pytest.approx(recorded["metrics"]["base.eval.loss"], rel=1e-5)
    texts = events.Tags()["tensors"]
    assert "ftkit/resolved.yaml/text_summary" in texts and "ftkit/model_card.md/text_summary" in texts


def _wandb_payloads(path: Path) -> list[bytes]:
    """The records of a W&B binary run log (`*.wandb`): a 7-byte file header, then 32 KiB blocks of records, each with
    a 7-byte header (crc32c 4, length 2 little-endian, type 1: full, first, middle, last) that never straddles a
    block; a block's tail too short for a header is padding. (W&B's own reader now lives in its Go core.)"""
    data = path.read_bytes()
    assert data[:4] == b":W&B", "not a W&B run log"
    payloads, parts, at, block = [], b"", 7, 32768
    while at + 7 <= len(data):
        if block - at % block < 7:
            at += block - at % block
            continue
        length, kind = int.from_bytes(data[at + 4 : at + 6], "little"), data[at + 6]
        chunk = data[at + 7 : at + 7 + length]
        at += 7 + length
        if kind == 0:
            continue  # zero padding
        parts = chunk if kind in (1, 2) else parts + chunk
        if kind in (1, 4):
            payloads.append(parts)
    return payloads


def _wandb_records(run_dir: Path) -> dict:
    """The history rows, summary and config W&B wrote into an offline run's binary log (W&B's protobuf records)."""
    import json

    from wandb.proto import wandb_internal_pb2

    found: dict = {"history": [], "summary": {}, "config": {}}

    def items(updates) -> dict:  # noqa: ANN001 - protobuf repeated items
        return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in updates}

    for data in _wandb_payloads(next(run_dir.glob("*.wandb"))):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            found["history"].append(items(record.history.item))
        elif kind == "summary":
            found["summary"].update(items(record.summary.update))
        elif kind == "run":  # the run's config travels with the run record
            found["config"].update(items(record.run.config.update))
    return found


def test_wandb_offline_files(tmp_path, recipe_file, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    recipe = _tracked_recipe(recipe_file, "tracking:\n  wandb: {project: tiny, mode: offline}\n")
    result = _run(recipe, tmp_path / "reg")
    assert result.exit_code == 0, result.output
    recorded = _recorded(tmp_path / "reg")
    facts = recorded["run"]["tracking"]["wandb"]
    assert facts["mode"] == "offline"
    run_dir = Path(facts["dir"])
    assert (
        run_dir.is_dir()
        and run_dir.name.startswith("offline-run-")
        and run_dir.name.endswith(facts["run_id"])
    )
    assert (run_dir / "files" / "resolved.yaml").read_text().startswith("#")
    assert (run_dir / "files" / "model_card.md").read_text().startswith("---\n")
    logged = _wandb_records(run_dir)
    steps = {row["_step"]: row["train/loss"] for row in logged["history"] if "train/loss" in row}
    assert steps == pytest.approx(_losses(recorded["history"]), rel=1e-6)
    summary = logged["summary"]
    assert summary["eval.loss"] == pytest.approx(recorded["metrics"]["eval.loss"], rel=1e-6)
    assert summary["ftkit.run_id"] == recorded["run"]["id"] and summary["ftkit.status"] == "succeeded"
    assert logged["config"]["training"]["learning_rate"] == recorded["resolved"]["training"]["learning_rate"]
