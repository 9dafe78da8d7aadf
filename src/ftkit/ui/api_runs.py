"""The read side of `ftkit ui`'s JSON API: the runs table, one run's page, its live events, and compare.

    GET /api/runs?status=&method=&model=&tag=&q=&sort=&order=asc|desc&limit=    the runs table (ui/runs_data.py)
    GET /api/runs/{ref}                    `ftkit show --json` (registry/views.py) plus history, events, progress,
                                           samples, review with suggested overrides, base vs tuned rows
    GET /api/runs/{ref}/events?after=N     the events from index N on, the next index and the run's status
    GET /api/compare?a=REF&b=REF[&all=1]   `ftkit diff --json` plus both runs' curves and every paired answer

A reference is anything `ftkit show` takes (id, unique prefix, name, tag, @latest~N); one that names no run is a
404. A registry folder that does not exist yet lists no runs. Every response carries `Server-Timing: app;dur=MS`,
the time the server spent on it (read by benchmarks/ui_runs_page.py). Reads only: nothing here commits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ftkit.errors import RegistryError, UsageError
from ftkit.registry import views
from ftkit.registry.answers import answer_rows
from ftkit.ui import runs_data
from ftkit.ui.errors import NotFound

# One registry reader at a time per server: GitPython's persistent `git cat-file` pipes are not thread-safe.
_LOCK = threading.Lock()


def _open(root: Path) -> Any:
    """The registry at `root`, or None when none exists there yet."""
    from ftkit.registry.store import RunRegistry

    if not (root / ".git").exists():
        return None
    return RunRegistry.open(root, create=False)


def _read(root: Path, work: Callable[[Any], Any], empty: Callable[[], Any] | None = None) -> Any:
    """`work(registry)` under the lock; `empty()` when there is no registry (else 404). A reference that names no
    run (RegistryError from resolve or load) becomes NotFound with the registry's message and hint."""
    with _LOCK:
        registry = _open(root)
        if registry is None:
            if empty is not None:
                return empty()
            raise NotFound(
                f"no registry at {root} yet", hint="runs appear here once a job or `ftkit run` records one"
            )
        with registry:
            return work(registry)


def _resolve(registry: Any, ref: str) -> str:
    try:
        return registry.resolve(ref)
    except RegistryError as error:
        raise NotFound(str(error), hint=error.hint, problems=error.problems) from None


def _timed(started: float, body: Any) -> Response:
    response = JSONResponse(body)
    response.headers["server-timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    return response


def _progress(run: dict) -> dict | None:
    """Live progress of a running run (its live events file), else None."""
    if run.get("status") != "running":
        return None
    rows = runs_data.live_events(run)
    return runs_data.progress_of(rows) if rows else None


def runs_list(root: Path, params: dict[str, str]) -> dict:
    """The GET /api/runs document for the registry at `root`."""
    limit = params.get("limit")
    if limit and not limit.isdigit():
        raise UsageError(
            f"limit={limit!r}: not a whole number", hint="limit=50, or leave it out for all runs"
        )
    if params.get("order") not in (None, "", "asc", "desc"):
        raise UsageError(f"order={params['order']!r}: use asc or desc")

    def work(registry: Any) -> dict:
        summaries = registry.summaries()
        progress = {s["id"]: _progress(s) for s in summaries if s.get("status") == "running"}
        return runs_data.runs_table(summaries, params, progress)

    empty = {"runs": [], "total": 0, "metric_keys": [], "filters": {name: [] for name in runs_data.FILTERS}}
    return _read(root, work, lambda: empty)


def run_page(root: Path, ref: str) -> dict:
    """The GET /api/runs/{ref} document: `ftkit show --json` plus what the run page draws."""

    def work(registry: Any) -> dict:
        payload = views.run_view(registry, _resolve(registry, ref))
        events = runs_data.events_of(payload)
        running = payload["run"].get("status") == "running"
        total = ((payload.get("resolved") or {}).get("training") or {}).get("max_steps")
        payload["events"] = events
        payload["progress"] = runs_data.progress_of(events, total) if running else None
        if running and not payload["history"]:
            payload["history"] = runs_data.live_history(events)
        payload["samples"] = runs_data.samples_view(payload.get("samples") or [])
        payload["review"] = runs_data.review_view(payload.get("review"))
        payload["base_vs_tuned"] = runs_data.base_vs_tuned(payload.get("metrics") or {})
        return payload

    return _read(root, work)


def run_events(root: Path, ref: str, after: int) -> dict:
    """The GET /api/runs/{ref}/events document: events from index `after` on."""

    def work(registry: Any) -> dict:
        loaded = registry.load_run(_resolve(registry, ref))
        events = runs_data.events_of(loaded)
        status = loaded["run"].get("status")
        progress = runs_data.progress_of(events) if status == "running" else None
        return {"events": events[after:], "next": len(events), "status": status, "progress": progress}

    return _read(root, work)


def compare(root: Path, ref_a: str, ref_b: str, include_all: bool) -> dict:
    """The GET /api/compare document: `ftkit diff --json` plus curves and every paired answer."""

    def work(registry: Any) -> dict:
        a, b, lineup = views.load_pair(registry, _resolve(registry, ref_a), _resolve(registry, ref_b))
        payload = views.diff_payload(a, b, lineup, include_all=include_all)
        payload["curves"] = {"a": a.get("history") or [], "b": b.get("history") or []}
        rows = answer_rows(a.get("samples") or [], b.get("samples") or [], include_all=True)["rows"]
        payload["samples"] = [
            {key: row[key] for key in ("kind", "prompt", "label", "reference", "a", "b", "changed")}
            for row in rows
        ]
        return payload

    return _read(root, work)


async def list_route(request: Request) -> Response:
    started = time.perf_counter()
    params = {key: value for key, value in request.query_params.items() if value != ""}
    root = request.app.state.settings.registry
    return _timed(started, await run_in_threadpool(runs_list, root, params))


async def run_route(request: Request) -> Response:
    started = time.perf_counter()
    root = request.app.state.settings.registry
    return _timed(started, await run_in_threadpool(run_page, root, request.path_params["ref"]))


async def events_route(request: Request) -> Response:
    started = time.perf_counter()
    after = request.query_params.get("after") or "0"
    if not after.isdigit():
        raise UsageError(f"after={after!r}: not a whole number", hint="after=0 lists every event")
    root = request.app.state.settings.registry
    body = await run_in_threadpool(run_events, root, request.path_params["ref"], int(after))
    return _timed(started, body)


async def compare_route(request: Request) -> Response:
    started = time.perf_counter()
    a, b = request.query_params.get("a"), request.query_params.get("b")
    if not a or not b:
        raise UsageError(
            "compare needs two runs: ?a=REF&b=REF", hint="e.g. /api/compare?a=@latest~1&b=@latest"
        )
    include_all = request.query_params.get("all") in ("1", "true")
    root = request.app.state.settings.registry
    return _timed(started, await run_in_threadpool(compare, root, a, b, include_all))


def routes() -> list[Route]:
    """The read-side routes (registered through ftkit.ui.app.API_MODULES)."""
    return [
        Route("/api/runs", list_route, methods=["GET"]),
        Route("/api/runs/{ref}", run_route, methods=["GET"]),
        Route("/api/runs/{ref}/events", events_route, methods=["GET"]),
        Route("/api/compare", compare_route, methods=["GET"]),
    ]
