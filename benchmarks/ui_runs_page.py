"""`ftkit ui` runs page on a registry of 1,000 runs: server time (target: at most 1 s).

    python -m benchmarks --only ui_runs_page

The registry is built once through the registry API (benchmarks/registry_bench.py's `build`: RunRegistry.commit_run,
the path `ftkit run` takes; no training), then a real `ftkit ui --port 0` serves it. The runs page is its shell
(`GET /runs`) plus the table's data (`GET /api/runs`, every run); the browser's own drawing is not server time. The
API's server time is its `Server-Timing: app;dur=MS` header (measured in the route, from the request's arrival to the
encoded JSON, ftkit/ui/api_runs.py); the shell's is its wall time at the client, an upper bound. The page's figure
pairs the two of one repetition. The first `/api/runs` after the summary cache is removed (a registry just pulled
from elsewhere) is reported apart, as is a sorted and filtered listing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from benchmarks.context import Context
from benchmarks.harness import BenchResult, Row, Stat, check_target, child_env

NAME = "ui_runs_page"
TARGET_S = 1.0
SORTED = "/api/runs?sort=eval.loss&status=succeeded&method=lora"


def server_seconds(header: str | None) -> float | None:
    """Seconds from a `Server-Timing` header's `app;dur=MS` entry, or None when it has none."""
    for entry in (header or "").split(","):
        name, *params = [part.strip() for part in entry.split(";")]
        if name != "app":
            continue
        for param in params:
            key, _, value = param.partition("=")
            if key == "dur":
                try:
                    return float(value) / 1000
                except ValueError:
                    return None
    return None


def paired_sums(first: list[float | None], second: list[float | None]) -> list[float | None]:
    """Per repetition: first + second (None where either side is missing)."""
    return [a + b if a is not None and b is not None else None for a, b in zip(first, second, strict=True)]


def page_rows(samples: dict[str, list[float | None]], runs: int, command: str) -> list[Row]:
    """The benchmark's rows from its per-repetition samples (seconds): `api` (server time of /api/runs), `api_wall`,
    `shell` (wall of GET /runs), `sorted` (server time of the sorted, filtered listing) and `cold` (one value)."""
    label = f"({runs:,} runs)"
    page = Stat.of(paired_sums(samples["shell"], samples["api"]))
    api = Stat.of(samples["api"])
    cold = Stat.of(samples["cold"])
    sorted_ = Stat.of(samples["sorted"])
    rows = [
        Row(
            NAME, f"runs page: GET /runs + GET /api/runs, server time {label}", "s", page, command, key="page"
        ),
        Row(NAME, f"GET /api/runs, server time {label}", "s", api, command, key="api"),
        Row(
            NAME,
            f"GET /api/runs, first after the summary cache is removed, server time {label}",
            "s",
            cold,
            command,
            key="cold",
        ),  # fmt: skip
        Row(NAME, f"GET {SORTED}, server time {label}", "s", sorted_, command, key="sorted"),
    ]
    for row in rows:
        row.target, row.status = f"<= {TARGET_S:g} s", check_target(row.stat.median, maximum=TARGET_S)
    rows += [
        Row(NAME, f"GET /api/runs, wall at the client {label}", "s", Stat.of(samples["api_wall"]), command),
        Row(NAME, "GET /runs (page shell), wall at the client", "s", Stat.of(samples["shell"]), command),
    ]
    return rows


def start_server(root: Path) -> tuple[subprocess.Popen, str]:
    """A real `ftkit ui --port 0` on `root`; (process, base URL) once its server.json names it."""
    from ftkit.ui.settings import ui_home

    state = ui_home(root) / "server.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "ftkit", "ui", "--registry", str(root), "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=child_env(),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ftkit ui exited {process.returncode}: {process.stderr.read()[-500:]!r}")
        try:
            info = json.loads(state.read_text())
            if info["pid"] == process.pid:
                return process, info["url"]
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("ftkit ui did not start within 60 s")


def fetch(url: str) -> tuple[float, float | None, bytes]:
    """(wall seconds at the client, server seconds from Server-Timing, body) of one GET."""
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:  # noqa: S310 - the local server
        body = response.read()
        header = response.headers.get("server-timing")
    return time.perf_counter() - started, server_seconds(header), body


def run(ctx: Context) -> BenchResult:
    from benchmarks.registry_bench import build

    preset = ctx.preset
    result = BenchResult(NAME)
    command = ctx.command(NAME)
    root = ctx.workdir / "ui-runs-registry"
    runs = preset.registry_runs
    reps = ctx.reps_override or max(preset.registry_reps, 5 if preset.name != "smoke" else 1)
    ctx.log(f"{NAME}: recording {runs:,} runs through the registry API")
    built = build(root, runs)
    (root / ".git" / "ftkit-cache" / "summaries.json").unlink(missing_ok=True)
    process, url = start_server(root)
    samples: dict[str, list[float | None]] = {k: [] for k in ("api", "api_wall", "shell", "sorted", "cold")}
    try:
        _, cold, body = fetch(f"{url}/api/runs")
        samples["cold"].append(cold)
        fetch(f"{url}/runs")  # warm-up of the shell route
        for rep in range(reps):
            wall, server, body = fetch(f"{url}/api/runs")
            samples["api"].append(server)
            samples["api_wall"].append(wall)
            samples["shell"].append(fetch(f"{url}/runs")[0])
            samples["sorted"].append(fetch(f"{url}{SORTED}")[1])
            ctx.log(f"{NAME}: repetition {rep + 1}/{reps}: /api/runs {server or 0:.3f} s in the server")
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    result.rows = page_rows(samples, runs, command)
    size, listed = len(body), json.loads(body)["total"]
    result.details = {
        "runs": runs,
        "listed": listed,
        "build_seconds": built,
        "api_runs_bytes": size,
        "samples": samples,
    }
    if listed != runs:
        result.error = f"/api/runs listed {listed} runs of the {runs} recorded"
    result.notes.append(
        f"/api/runs returns all {runs:,} runs in one {size / 1e6:.2f} MB JSON document (the table filters and sorts "
        "in the server; the page asks with the same query string)"
    )
    return result
