"""Tracker failures never lose a run: a server that is down, a URI that is not an MLflow server, a server killed
while the run trains, a tracker package that is missing — each is one located warning, the run trains and is
recorded in full. Bad tracking input in the recipe or on the command line exits 2 with its location."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from benchmarks.tracking_overhead import free_port
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.registry.store import RunRegistry
from tests.tracking.conftest import SERVERS

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
WAIT_S = 300  # a guard against a hung child, never a speed assertion


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _latest(registry: Path) -> dict:
    reg = RunRegistry.open(registry)
    with reg:
        return reg.load_run(reg.resolve("@latest"))


def _add(recipe_file: Path, text: str) -> int:
    """Append `text` to the recipe; returns the 1-based line its first line lands on."""
    before = recipe_file.read_text()
    recipe_file.write_text(before + text)
    return before.count("\n") + 1


def test_unreachable_server_warns_once_at_its_recipe_line_and_the_run_is_recorded(tmp_path, recipe_file):
    port = free_port()  # nothing listens there
    line = _add(recipe_file, f"tracking:\n  mlflow: {{tracking_uri: 'http://127.0.0.1:{port}'}}\n")
    result = _invoke("run", str(recipe_file), "--registry", str(tmp_path / "reg"))
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert output.count("no MLflow server answers") == 1
    assert f"recipe.yaml:{line + 1} tracking.mlflow" in output and "the run goes on without it" in output
    recorded = _latest(tmp_path / "reg")
    assert recorded["run"]["status"] == "succeeded"
    assert "tracking" not in recorded["run"]  # no tracker run to link
    assert sum(1 for row in recorded["history"] if "loss" in row) == 12
    warnings = [e for e in recorded["events"] if e["kind"] == "warning" and "tracking:" in e["message"]]
    assert len(warnings) == 1


class _NotMlflow(http.server.BaseHTTPRequestHandler):
    """A web server that answers /health (as many do) and 404 to everything else."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b"OK")

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args):  # quiet
        pass


def test_a_uri_that_is_not_an_mlflow_server_warns_and_the_run_goes_on(tmp_path, recipe_file):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotMlflow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        result = _invoke(
            "run", str(recipe_file), "--registry", str(tmp_path / "reg"),
            "--track", "mlflow", "--track", "tensorboard", "--set", f"tracking.mlflow.tracking_uri={uri}",
        )  # fmt: skip
    finally:
        server.shutdown()
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert output.count("mlflow could not start") == 1 and "--track/--set tracking.mlflow" in output
    recorded = _latest(tmp_path / "reg")
    assert recorded["run"]["status"] == "succeeded"
    assert set(recorded["run"]["tracking"]) == {"tensorboard"}  # the other tracker still works
    assert any(Path(recorded["run"]["tracking"]["tensorboard"]["log_dir"]).glob("events.out.tfevents.*"))


def test_missing_tracker_package_is_a_warning_with_the_install_hint(tmp_path, recipe_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed: `import wandb` raises ImportError
    _add(recipe_file, "tracking: [wandb]\n")
    result = _invoke("run", str(recipe_file), "--registry", str(tmp_path / "reg"))
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "wandb is not installed" in output and "pip install 'ftkit[track]'" in output
    assert _latest(tmp_path / "reg")["run"]["status"] == "succeeded"


def test_server_killed_while_the_run_trains(tmp_path, recipe_file, mlflow_server):
    from mlflow import MlflowClient

    _add(recipe_file, f"tracking:\n  mlflow: {{tracking_uri: '{mlflow_server}', experiment: dying}}\n")
    registry = tmp_path / "reg"
    env = dict(os.environ, OMP_NUM_THREADS="1", FTKIT_TEST_PAUSE_AT="")
    run = subprocess.Popen(
        [sys.executable, "-m", "ftkit", "run", str(recipe_file), "--registry", str(registry), "--json",
         "--set", "training.max_steps=400", "--set", "evaluation.during_training=0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    client = MlflowClient(tracking_uri=mlflow_server)
    deadline = time.monotonic() + WAIT_S
    while True:  # until the server holds some of the run's steps
        experiment = client.get_experiment_by_name("dying")
        found = client.search_runs([experiment.experiment_id]) if experiment else []
        if found and len(client.get_metric_history(found[0].info.run_id, "train/loss")) >= 3:
            break
        assert run.poll() is None and time.monotonic() < deadline, "the run never reported to the server"
        time.sleep(0.2)
    server = SERVERS[mlflow_server]
    os.killpg(server.pid, signal.SIGKILL)  # the server and its workers (their own process group)
    server.wait(WAIT_S)
    stdout, stderr = run.communicate(timeout=WAIT_S)
    assert run.returncode == 0, stderr[-3000:]
    text = " ".join(stderr.split())
    assert text.count("tracking: mlflow stopped reporting") == 1, text[-3000:]
    summary = json.loads(stdout)
    recorded = _latest(registry)
    assert recorded["run"]["id"] == summary["run_id"] and recorded["run"]["status"] == "succeeded"
    assert sum(1 for row in recorded["history"] if "loss" in row) == 400  # nothing lost with the tracker
    assert recorded["run"]["tracking"]["mlflow"]["run_id"] == found[0].info.run_id


@pytest.mark.parametrize(
    ("tracking", "expected"),
    [
        ("tracking: [mlfow]\n", "tracking.mlfow: unknown key; did you mean `mlflow`?"),
        ("tracking:\n  wandb: {mode: sometimes}\n", "tracking.wandb.mode: must be 'online' or 'offline'"),
        ("tracking:\n  mlflow: {experiment: ''}\n", "tracking.mlflow.experiment"),
    ],
)
def test_bad_tracking_keys_exit_2_located(tmp_path, recipe_file, tracking, expected):
    line = _add(recipe_file, tracking)
    result = _invoke("validate", str(recipe_file))
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert expected in output and "recipe.yaml:" in output
    assert any(f"recipe.yaml:{n}" in output for n in (line, line + 1))


def test_unknown_track_flag_exits_2_before_anything_runs(tmp_path, recipe_file):
    result = _invoke("run", str(recipe_file), "--registry", str(tmp_path / "reg"), "--track", "tensorbord")
    assert result.exit_code == 2
    assert "--track tensorbord: unknown tracker; did you mean `tensorboard`?" in " ".join(
        result.output.split()
    )
    assert not (tmp_path / "reg").exists() and not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(("status", "expected"), [("failed", "FAILED"), ("interrupted", "KILLED")])
def test_mlflow_run_ends_with_ftkit_status(tmp_path, status, expected, monkeypatch):
    """The MLflow tracker on a real SQLite store (no server): a failed or interrupted ftkit run ends its MLflow run
    as FAILED or KILLED, with the metrics and files it had."""
    monkeypatch.chdir(tmp_path)  # a SQLite store keeps artifacts in ./mlruns by MLflow's default
    from mlflow import MlflowClient

    from ftkit.recipe.tracking_config import MlflowOptions
    from ftkit.tracking.mlflow_tracker import make_tracker
    from ftkit.tracking.session import RunInfo

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = make_tracker(MlflowOptions(tracking_uri=uri, experiment="ends"))
    info = RunInfo("run-1", "name-1", {"training": {"learning_rate": 0.1}}, tmp_path, "lora", "m", "abc")
    facts = tracker.start(info)
    tracker.log(1, {"train/loss": 2.0})
    tracker.finish(status, 1, {"train.loss": 2.0}, {"resolved.yaml": "training: {}\n"})
    run = MlflowClient(tracking_uri=uri).get_run(facts["run_id"])
    assert run.info.status == expected and run.data.tags["ftkit.status"] == status
    assert run.data.params == {"training.learning_rate": "0.1"}
    assert run.data.metrics == {"train/loss": 2.0, "train.loss": 2.0}
    assert (tmp_path / "mlruns").is_dir()
