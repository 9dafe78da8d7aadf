"""The one-click job API against a real `ftkit ui` process: uploads (bounded, kept under the UI's folder), the data
check (the CLI's report), the plan, background `ftkit tune` / `ftkit rerun` jobs recorded in the registry exactly
as the CLI records them, stopping a job (interrupted), and jobs surviving a server restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from ftkit.registry.store import RunRegistry
from ftkit.ui.jobs import jobs_root
from ftkit.ui.settings import UiSettings, ui_home
from ftkit.ui.uploads import safe_name, uploads_root
from tests.conftest import chat_rows, write_jsonl
from tests.ui.conftest import start_ui, stop_ui

JOB_DEADLINE_S = 600  # a safeguard against a hung job, not a speed assertion
CHEAP = ["training.max_steps=3", "evaluation.generate=0"]
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)


def call(server, method: str, path: str, body: dict | None = None, upload: tuple[str, bytes] | None = None):
    """(status, JSON body) of a request carrying the page's token, as the page sends it."""
    headers = {"X-Ftkit-Token": server.token, "Origin": server.url}
    data = None
    if upload is not None:
        name, content = upload
        boundary = "ftkit-test-boundary"
        data = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + content
            + f"\r\n--{boundary}--\r\n".encode()
        )
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(server.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=900) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_job(server, job_id: str, done=lambda job: job["status"] != "running") -> dict:
    """Poll GET /api/jobs/{id} until `done(job)`."""
    deadline = time.monotonic() + JOB_DEADLINE_S
    while time.monotonic() < deadline:
        status, body = call(server, "GET", f"/api/jobs/{job_id}")
        assert status == 200, body
        if done(body["job"]):
            return body["job"]
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still running after {JOB_DEADLINE_S} s: {body['job']['log_tail']}")


def load_run(registry: Path, run_id: str) -> dict:
    with RunRegistry.open(registry, create=False) as reg:
        return reg.load_run(run_id)


def run_count(registry: Path) -> int:
    if not (registry / ".git").is_dir():
        return 0
    with RunRegistry.open(registry, create=False) as reg:
        return len(reg.list_runs(include_all=True))


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ui-jobs")


@pytest.fixture(scope="module")
def server(home):
    """One server for the module, in `home` (so jobs write outputs/ there), uploads limited to 1 MiB."""
    started = start_ui(home / "registry", "--max-upload-mb", "1", cwd=home)
    yield started
    stop_ui(started)


@pytest.fixture(scope="module")
def train_file(home) -> Path:
    return write_jsonl(home / "data" / "train.jsonl", chat_rows(60, seed=1))


@pytest.fixture(scope="module")
def uploaded(server, train_file) -> dict:
    status, body = call(server, "POST", "/api/uploads", upload=("train.jsonl", train_file.read_bytes()))
    assert status == 200, body
    return body["upload"]


@pytest.fixture(scope="module")
def tune_body(uploaded, tiny_model_dir) -> dict:
    return {
        "data": uploaded["id"],
        "model": str(tiny_model_dir),
        "method": "lora",
        "name": "ui-job",
        "set": CHEAP,
    }


@pytest.fixture(scope="module")
def finished_job(server, tune_body) -> dict:
    status, body = call(server, "POST", "/api/jobs", tune_body)
    assert status == 200, body
    return wait_job(server, body["job"]["id"])


# -- uploads and the data check -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("../../x.jsonl", "x.jsonl"),
        ("/etc/passwd", "passwd"),
        ("..\\..\\win.csv", "win.csv"),
        (".hidden.jsonl", "hidden.jsonl"),
        ("my data (v2).jsonl", "my_data_v2.jsonl"),
        ("..", "upload"),
    ],
)
def test_safe_name_keeps_only_the_last_component_and_the_extension(sent, stored):
    assert safe_name(sent) == stored


def test_an_upload_is_checked_as_ftkit_data_check_reports_it(server, uploaded, train_file):
    stored = Path(uploaded["path"])
    assert stored.read_bytes() == train_file.read_bytes() and uploaded["bytes"] == train_file.stat().st_size
    assert stored.parent.parent == uploads_root(UiSettings(server.registry))
    status, report = call(server, "POST", "/api/data/check", {"upload": uploaded["id"]})
    assert status == 200, report
    cli = subprocess.run(
        [sys.executable, "-m", "ftkit", "data", "check", str(train_file), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    expected = json.loads(cli.stdout)
    for key in ("format", "rows", "valid_rows", "errors", "warnings", "columns"):
        assert report[key] == expected[key], key
    assert report["stats"]["tokens"] == expected["stats"]["tokens"]
    assert [p["line"] for p in report["problems"]] == [p["line"] for p in expected["problems"]]
    assert report["task"]["task"] == "causal-lm" and report["task"]["format"] == "chat" and report["ok"]
    # the same file given by its path on this machine
    status, by_path = call(server, "POST", "/api/data/check", {"path": str(train_file)})
    assert status == 200 and by_path["rows"] == expected["rows"]


@pytest.mark.parametrize(
    ("name", "content", "status", "located"),
    [
        (
            "rows.jsonl",
            b'{"messages": [{"role": "user", "content": "hi"}]}\n{"text": "x"}\nnot json\n',
            200,
            3,
        ),
        ("table.csv", b"a,b\n1,2\n3,4\n", 200, 0),
        ("picture.png", PNG, 400, None),
    ],
)
def test_a_bad_upload_shows_located_errors_and_starts_nothing(
    server, tiny_model_dir, name, content, status, located
):
    jobs_before = call(server, "GET", "/api/jobs")[1]["jobs"]
    runs_before = run_count(server.registry)
    got, upload = call(server, "POST", "/api/uploads", upload=(name, content))
    assert got == 200, upload
    got, report = call(server, "POST", "/api/data/check", {"upload": upload["upload"]["id"]})
    assert got == status, report
    if status == 200:
        assert report["errors"] >= 1 and not report["ok"] and report["exit_code"] == 2
        assert located in [p["line"] for p in report["problems"] if p["severity"] == "error"]
    else:
        assert "unsupported file type" in report["error"] and report["hint"]
    got, refused = call(
        server, "POST", "/api/jobs", {"data": upload["upload"]["id"], "model": str(tiny_model_dir)}
    )
    assert got == 400 and refused["error"], refused
    if located:
        assert any(f":{located}:" in problem for problem in refused["problems"])
    assert call(server, "GET", "/api/jobs")[1]["jobs"] == jobs_before
    assert run_count(server.registry) == runs_before


def test_an_oversized_upload_is_refused_and_nothing_is_kept(server):
    root = uploads_root(UiSettings(server.registry))
    before = sorted(root.iterdir()) if root.is_dir() else []
    status, body = call(server, "POST", "/api/uploads", upload=("big.jsonl", b"x" * (3 * 2**19)))  # 1.5 MiB
    assert status == 413 and "larger than" in body["error"]
    assert (sorted(root.iterdir()) if root.is_dir() else []) == before


def test_traversal_file_names_stay_under_uploads(server, home):
    root = uploads_root(UiSettings(server.registry)).resolve()
    for name in ("../../../escaped.jsonl", "/tmp/escaped-abs.jsonl", "..%2f..%2fescaped.jsonl"):
        status, body = call(server, "POST", "/api/uploads", upload=(name, b'{"text": "hello there"}\n'))
        assert status == 200, body
        stored = Path(body["upload"]["path"]).resolve()
        assert stored.parent.parent == root and stored.suffix == ".jsonl" and stored.is_file()
    escaped = list(home.rglob("*escaped*.jsonl"))
    assert len(escaped) == 3 and all(root in path.resolve().parents for path in escaped)
    assert not Path("/tmp/escaped-abs.jsonl").exists()
    status, body = call(server, "POST", "/api/data/check", {"upload": "../../etc"})
    assert status == 404


# -- plan, jobs, stop, rerun ---------------------------------------------------------------------------------------


def test_the_plan_is_tune_dry_run_and_the_job_records_its_recipe(server, tune_body, finished_job, home):
    status, plan = call(server, "POST", "/api/plan", tune_body)
    assert status == 200, plan
    assert plan["status"] == "dry-run" and plan["tune"]["task"] == "causal-lm"
    assert plan["tune"]["plan"]["recommended"] == "lora" and plan["tune"]["plan"]["auto"]
    assert finished_job["status"] == "succeeded" and finished_job["returncode"] in (0, None)
    assert finished_job["command"].startswith("ftkit tune ") and "--registry" in finished_job["command"]
    loaded = load_run(server.registry, finished_job["run_id"])
    assert loaded["run"]["status"] == "succeeded" and loaded["run"]["name"] == "ui-job"
    assert loaded["run"]["process"]["pid"] == finished_job["pid"]
    assert yaml.safe_load(loaded["recipe"]) == plan["tune"]["recipe"]  # tune's generated recipe, as planned
    assert loaded["run"]["overrides"] == CHEAP
    assert (
        Path(loaded["run"]["output_dir"]).parent == home / "outputs"
    )  # where `ftkit tune` run there puts it


def test_missing_or_special_paths_and_models_are_refused(server, uploaded, home):
    for path in ("/api/plan", "/api/jobs"):
        status, body = call(server, "POST", path, {"data": uploaded["id"], "model": str(home / "nothing")})
        assert status == 400 and "no such folder" in body["error"]
    status, body = call(server, "POST", "/api/jobs", {"data": "--registry=/tmp", "model": "x"})
    assert status == 400 and "cannot start with '-'" in body["error"]
    status, body = call(server, "POST", "/api/data/check", {"path": str(home / "missing.jsonl")})
    assert status == 400 and "no such file" in body["error"]
    fifo = home / "pipe.jsonl"
    os.mkfifo(fifo)
    status, body = call(server, "POST", "/api/data/check", {"path": str(fifo)})
    assert status == 400 and "not a regular file" in body["error"]


def test_recent_models_count_the_registry_runs(server, finished_job, tiny_model_dir):
    status, body = call(server, "GET", "/api/models/recent")
    assert status == 200
    with RunRegistry.open(server.registry, create=False) as reg:
        runs = reg.list_runs(include_all=True)
    expected = sum(run["model"] == str(tiny_model_dir) for run in runs)
    assert body["models"][0] == {
        "model": str(tiny_model_dir),
        "runs": expected,
        "last_used": runs[0]["started_at"],
    }


def test_rerun_starts_a_child_run_recorded_with_its_parent(server, finished_job):
    parent = finished_job["run_id"]
    status, body = call(server, "POST", f"/api/runs/{parent}/rerun", {"set": ["training.max_steps=2"]})
    assert status == 200, body
    job = wait_job(server, body["job"]["id"])
    assert job["status"] == "succeeded" and job["parent"] == parent
    child = load_run(server.registry, job["run_id"])
    assert child["run"]["parent"] == parent and child["run"]["overrides"] == ["training.max_steps=2"]
    assert job["run_id"] in load_run(server.registry, parent)["children"]
    status, _ = call(server, "POST", "/api/runs/no-such-run/rerun", {"set": []})
    assert status == 404


def test_stopping_a_job_mid_training_records_the_run_interrupted(server, finished_job, home):
    status, body = call(
        server, "POST", f"/api/runs/{finished_job['run_id']}/rerun", {"set": ["training.max_steps=100000"]}
    )
    assert status == 200, body
    job_id = body["job"]["id"]

    def training(job: dict) -> bool:
        events = home / "outputs" / str(job["run_id"]) / "events.jsonl"
        return job["status"] != "running" or (events.is_file() and '"progress"' in events.read_text())

    assert wait_job(server, job_id, training)["status"] == "running"
    status, body = call(server, "POST", f"/api/jobs/{job_id}/stop")
    assert status == 200 and body["job"]["stop_requested_at"]
    job = wait_job(server, job_id)
    assert job["status"] == "interrupted"
    run = load_run(server.registry, job["run_id"])["run"]
    assert run["status"] == "interrupted"
    status, body = call(server, "POST", f"/api/jobs/{job_id}/stop")
    assert status == 400 and "not running" in body["error"]


def test_unknown_jobs_are_404(server):
    for job_id in ("job-20260101-000000-abcdef", "..", "..%2f..%2fetc%2fpasswd", "job.json"):
        assert call(server, "GET", f"/api/jobs/{job_id}")[0] == 404


def test_jobs_survive_a_server_restart(server, finished_job):
    before = {job["id"]: job for job in call(server, "GET", "/api/jobs")[1]["jobs"]}
    assert finished_job["id"] in before
    stop_ui(server)
    again = start_ui(server.registry)
    try:
        status, body = call(again, "GET", "/api/jobs")
        assert status == 200
        after = {job["id"]: job for job in body["jobs"]}
        assert set(after) == set(before)
        for job_id, job in after.items():
            assert (job["status"], job["run_id"]) == (before[job_id]["status"], before[job_id]["run_id"])
        assert (jobs_root(UiSettings(server.registry)) / finished_job["id"] / "job.json").is_file()
        assert jobs_root(UiSettings(server.registry)).parent == ui_home(server.registry)
    finally:
        stop_ui(again)
