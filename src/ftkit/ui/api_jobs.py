"""The JSON API of the one-click job: uploads, the data check, recent models, the plan, and jobs (start, list,
stop, rerun). See /api docs in ui_contract terms:

- POST /api/uploads (multipart, field `file`) → {"upload": {id, name, path, bytes}}; 413 past the size limit.
- POST /api/data/check {"path"} | {"upload"} → `ftkit data check --json`'s report plus `task` (what `ftkit tune`
  would train: task, format, columns, reason) or `task_error`, and `ok`. A file that reads as rows gets 200 even
  with errors (`errors` > 0, each located in `problems`, `ok` false): the page shows them. A file that cannot be
  read as data at all (a PNG, a missing path) is a 400 error, as `ftkit data check` exits 2 on it.
- GET /api/models/recent → {"models": [{model, runs, last_used}]}, the registry's base models, newest first.
- POST /api/plan {"data", "model", "method"?, "set"?} → `ftkit tune ... --dry-run --json`'s document. It runs as
  that very command in a subprocess: the plan loads the model and measures probe steps, which would otherwise put
  torch, its threads and its memory into the server for good and hold the server's GIL for tens of seconds; a
  probe that crashes takes only its own process down; and the answer is the CLI's by construction.
- POST /api/jobs {"data", "model", "method"?, "name"?, "set"?} → {"job"}: `ftkit tune` as a background job
  (ui/jobs.py), after the data passed tune's own check here (bad data: 400 with the located problems, nothing
  started). POST /api/runs/{ref}/rerun {"set"?} → {"job"}: `ftkit rerun RUN`. GET /api/jobs, GET /api/jobs/{id},
  POST /api/jobs/{id}/stop.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ftkit.data.readers import refuse_special_file
from ftkit.errors import DataError, ExitCode, FtkitError, ModelError, UsageError
from ftkit.ui import jobs, uploads
from ftkit.ui.errors import NotFound
from ftkit.ui.settings import UiSettings

PLAN_TIMEOUT_S = 900
# `--set`'s KEY=VALUE (spaces around the key allowed, as the CLI strips them)
OVERRIDE = re.compile(r"^ *[A-Za-z_][\w.\[\]-]* *=[^\r\n\x00]*\Z")
METHOD = re.compile(r"^[A-Za-z0-9][\w-]*\Z")


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise UsageError(
            "the request body is not JSON", hint='send a JSON object, e.g. {"data": ...}'
        ) from None
    if not isinstance(body, dict):
        raise UsageError("the request body must be a JSON object")
    return body


def _text(body: dict[str, Any], key: str, default: str | None = None) -> str | None:
    """A string field (None or `default` when absent); refuses what argv would read as an option."""
    value = body.get(key, default)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"`{key}` must be a non-empty string, got {value!r}")
    if value.startswith("-") or any(ch in value for ch in "\r\n\x00"):
        raise UsageError(f"`{key}`: {value!r} cannot start with '-' or hold line breaks")
    return value


def _overrides(body: dict[str, Any]) -> list[str]:
    items = body.get("set") or []
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise UsageError("`set` must be a list of KEY=VALUE strings")
    bad = [item for item in items if not OVERRIDE.match(item)]
    if bad:
        raise UsageError(f"`set`: {bad[0]!r} is not KEY=VALUE", hint="e.g. training.max_steps=100")
    return [arg for item in items for arg in ("--set", item)]


def data_path(settings: UiSettings, value: str) -> Path:
    """An upload id's stored file, or a path on this machine (relative to the server's folder), made absolute;
    DataError when no such file exists."""
    if uploads.UPLOAD_ID.match(value):
        return uploads.find_upload(settings, value)
    path = Path(value).expanduser()
    path = path if path.is_absolute() else Path.cwd() / path
    if not path.exists():
        raise DataError(
            f"{value}: no such file or folder on this machine ({path})",
            hint="give the data file's full path, or upload it",
        )
    refuse_special_file(path)  # a FIFO or a device would hold a server thread forever
    return path.resolve()


def model_argument(value: str) -> str:
    """A local model folder or .gguf file (made absolute), or a hub id; ModelError otherwise."""
    from ftkit.hub_ids import is_hub_model_id

    path = Path(value).expanduser()
    if path.exists():
        return str(path.resolve())
    if value.startswith((".", "/", "~")) or value.endswith(".gguf") or not is_hub_model_id(value):
        raise ModelError(
            f"model {value}: no such folder or .gguf file on this machine, and not a hub id (owner/name)",
            hint="give the folder holding config.json and the weights, a .gguf file, or a hub id",
        )
    return value


def check_data(path: Path) -> dict[str, Any]:
    """`ftkit data check --json`'s report on `path` (no model: token counts estimated) plus tune's task."""
    from ftkit.data.check import check_file
    from ftkit.data.preview import preview
    from ftkit.tune.detect import choose_task

    report = check_file(path)
    if report.examples:
        try:
            report.preview = preview(
                report.examples[0], None, report.stats.get("max_seq_len", 512), "completion"
            )
        except Exception as error:  # a preview is a courtesy, as in the CLI
            report.preview = {"error": f"{type(error).__name__}: {error}"}
    payload = {**report.to_dict(), "exit_code": report.exit_code()}
    try:
        choice = choose_task(path)
        payload["task"] = {
            "task": choice.task,
            "format": choice.format,
            "columns": choice.columns,
            "reason": choice.reason,
        }
        payload["task_error"] = None
    except FtkitError as error:
        payload["task"], payload["task_error"] = None, error.to_dict()
    payload["ok"] = not report.errors and payload["task"] is not None
    return payload


def recent_models(settings: UiSettings) -> list[dict[str, Any]]:
    """The base models of the registry's runs, most recently used first, with how many runs used each."""
    from ftkit.registry.store import RunRegistry

    if not (settings.registry / ".git").is_dir():
        return []
    try:
        with RunRegistry.open(settings.registry, create=False) as registry:
            runs = registry.summaries()
    except FtkitError:  # a registry with no history yet
        return []
    models: dict[str, dict[str, Any]] = {}
    for run in runs:  # newest first
        model = run.get("model")
        if isinstance(model, str) and model:
            entry = models.setdefault(model, {"model": model, "runs": 0, "last_used": run.get("started_at")})
            entry["runs"] += 1
    return list(models.values())


def _cli(settings: UiSettings, args: list[str], timeout: float) -> dict[str, Any]:
    """Run `python -m ftkit ARGS --registry R --json` and return its JSON document; its error document as an
    FtkitError (400 for bad input)."""
    command = [sys.executable, "-m", "ftkit", *args, "--registry", str(settings.registry), "--json"]
    try:
        done = subprocess.run(  # noqa: S603 - an argument list, no shell
            command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise FtkitError(f"`ftkit {args[0]}` took longer than {timeout:.0f} s") from None
    try:
        document = json.loads(done.stdout)
    except ValueError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("error"), dict):
        found = document["error"]
        error = FtkitError(str(found.get("message")), hint=found.get("hint"), problems=found.get("problems"))
        error.exit_code = found.get("exit_code", ExitCode.BAD_INPUT)
        raise error
    if not isinstance(document, dict) or done.returncode:
        tail = done.stderr.strip().splitlines()[-5:]
        error = FtkitError(f"`ftkit {args[0]}` exited {done.returncode} without a JSON answer", problems=tail)
        error.exit_code = ExitCode.RUN_FAILED
        raise error
    return document


def _tune_args(settings: UiSettings, body: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """(argv after `ftkit`, facts for job.json) of `ftkit tune` from a request body."""
    data = _text(body, "data")
    model = _text(body, "model")
    if data is None or model is None:
        raise UsageError("`data` and `model` are required", hint="a data path or upload id, and a base model")
    method = _text(body, "method", "auto") or "auto"
    if not METHOD.match(method):
        raise UsageError(
            f"`method`: {method!r} is not a method name", hint="auto, or a name `ftkit methods` lists"
        )
    name = _text(body, "name")
    path = data_path(settings, data)
    model = model_argument(model)
    sets = _overrides(body)
    args = [
        "tune",
        str(path),
        "--model",
        model,
        "--method",
        method,
        *(["--name", name] if name else []),
        *sets,
    ]
    facts = {"kind": "tune", "data": str(path), "model": model, "method": method, "name": name,
             "set": sets[1::2], "parent": None}  # fmt: skip
    return args, facts


def _start_tune(settings: UiSettings, body: dict[str, Any]) -> dict[str, Any]:
    from ftkit.tune.detect import choose_task

    args, facts = _tune_args(settings, body)
    choose_task(Path(facts["data"]))  # tune's own data check: bad rows are refused here, located, with no job
    return jobs.describe(settings, jobs.start_job(settings, args, facts))


def _start_rerun(settings: UiSettings, ref: str, body: dict[str, Any]) -> dict[str, Any]:
    from ftkit.registry.store import RunRegistry

    sets = _overrides(body)
    if not (settings.registry / ".git").is_dir():
        raise NotFound(f"no run {ref!r}: the registry has no runs yet")
    try:
        with RunRegistry.open(settings.registry, create=False) as registry:
            run_id = registry.resolve(ref)
            run = registry.load_run(run_id)["run"]
    except FtkitError as error:
        raise NotFound(error.message, hint=error.hint) from None
    facts = {"kind": "rerun", "data": None, "model": run.get("model"), "method": run.get("method"),
             "name": None, "set": sets[1::2], "parent": run_id}  # fmt: skip
    return jobs.describe(settings, jobs.start_job(settings, ["rerun", run_id, *sets], facts))


# -- routes -----------------------------------------------------------------------------------------------------


async def upload_route(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    try:
        stored = await uploads.receive(request, settings)
    except uploads.TooLarge:
        limit = settings.max_upload_bytes
        return JSONResponse(
            {
                "error": f"the upload is larger than this server's limit of {limit:,} bytes",
                "hint": "give the file's path on this machine instead (or start ftkit ui with a larger "
                "--max-upload-mb)",
                "problems": [],
            },
            status_code=413,
        )
    return JSONResponse({"upload": stored})


async def check_route(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    body = await _body(request)
    value = _text(body, "upload") or _text(body, "path")
    if value is None:
        raise UsageError("give `path` (a file on this machine) or `upload` (an upload id)")
    if "upload" in body and not uploads.UPLOAD_ID.match(value):
        raise NotFound(f"no upload {value!r}", hint="upload the file again")
    path = await run_in_threadpool(data_path, settings, value)
    return JSONResponse(await run_in_threadpool(check_data, path))


async def recent_models_route(request: Request) -> JSONResponse:
    return JSONResponse({"models": await run_in_threadpool(recent_models, request.app.state.settings)})


async def plan_route(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    args, _ = _tune_args(settings, await _body(request))
    return JSONResponse(await run_in_threadpool(_cli, settings, [*args, "--dry-run"], PLAN_TIMEOUT_S))


async def jobs_route(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    if request.method == "POST":
        body = await _body(request)
        return JSONResponse({"job": await run_in_threadpool(_start_tune, settings, body)})
    return JSONResponse({"jobs": await run_in_threadpool(jobs.list_jobs, settings)})


async def job_route(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    job = await run_in_threadpool(jobs.load_job, settings, request.path_params["job_id"])
    return JSONResponse({"job": await run_in_threadpool(jobs.describe, settings, job)})


async def stop_route(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    return JSONResponse(
        {"job": await run_in_threadpool(jobs.stop_job, settings, request.path_params["job_id"])}
    )


async def rerun_route(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    body = await _body(request)
    job = await run_in_threadpool(_start_rerun, settings, request.path_params["ref"], body)
    return JSONResponse({"job": job})


def routes() -> list[Route]:
    """The routes of this module (registered through app.API_MODULES)."""
    return [
        Route("/api/uploads", upload_route, methods=["POST"]),
        Route("/api/data/check", check_route, methods=["POST"]),
        Route("/api/models/recent", recent_models_route, methods=["GET"]),
        Route("/api/plan", plan_route, methods=["POST"]),
        Route("/api/jobs", jobs_route, methods=["GET", "POST"]),
        Route("/api/jobs/{job_id}", job_route, methods=["GET"]),
        Route("/api/jobs/{job_id}/stop", stop_route, methods=["POST"]),
        Route("/api/runs/{ref}/rerun", rerun_route, methods=["POST"]),
    ]
