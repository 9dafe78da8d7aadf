"""Tracking overhead (issue 15): the same short LoRA run of SmolLM2-135M without tracking and with each tracker —
MLflow against a real `mlflow server` (SQLite backend, 127.0.0.1, started and stopped here), TensorBoard, and W&B
offline (WANDB_MODE=offline; never online) — logging every step, no evaluation during training, one torch thread.

Each repetition runs the four sides in turn, forward (none, mlflow, tensorboard, wandb) then backward, so a steady
drift in machine load falls on both sides of each pair alike. Every side goes through benchmarks/tracking_probe.py
(the same `ftkit run`, with timers around the tracking hooks), so both sides run identical code.

Step time: the run's own history (`time_s` after each step, from the training callback): the mean step time from the
end of step 1 to the end of the last step, (t_N - t_1) / (N - 1). It leaves out the first, slower step and every
tracker start and finish, which happen before and after the train loop. Reported per tracker: the ratio
with / without of each repetition (median, min, max; target <= 1.02), the same for the median single-step time,
the start + finish wall time in seconds (measured around the runner's hooks; the start imports the tracker), the
training thread's time per `log_row` call and the background thread's CPU time per row inside the tracker.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.context import Context
from benchmarks.harness import (
    BENCH_DIR,
    REPO_ROOT,
    BenchResult,
    Row,
    Stat,
    check_target,
    child_env,
    run_child,
)

NAME = "tracking_overhead"
TRACKERS = ("mlflow", "tensorboard", "wandb")
SIDES = ("none", *TRACKERS)
TARGET = 1.02
SERVER_START_S = 120


def step_times(history: list[dict[str, Any]]) -> dict[str, float | None]:
    """Mean step time after step 1 ((t_N - t_1) / (N - 1)) and the median single-step time, from the training
    rows (those with a loss) of a run's history."""
    points = sorted((row["step"], row["time_s"]) for row in history if "loss" in row and "time_s" in row)
    if len(points) < 2:
        return {"mean_s": None, "median_s": None}
    (s0, t0), (s1, t1) = points[0], points[-1]
    single = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(points, points[1:], strict=False) if b[0] > a[0]]
    return {"mean_s": (t1 - t0) / (s1 - s0), "median_s": statistics.median(single)}


def paired_ratios(runs: dict[str, list[dict[str, Any]]], tracker: str, key: str) -> Stat:
    """Per repetition: the tracker side's `key` over the no-tracking side's, median and spread."""
    ratios = [
        with_[key] / without[key]
        for with_, without in zip(runs[tracker], runs["none"], strict=False)
        if with_.get(key) and without.get(key)
    ]
    return Stat.of(ratios)


def tracker_rows(runs: dict[str, list[dict[str, Any]]], command: str, what: str) -> list[Row]:
    """The rows of each tracker: step-time ratios, start + finish seconds, per-row costs."""
    rows = [Row(NAME, f"no tracking: mean step time after step 1 ({what})", "s",
                Stat.of([run.get("mean_s") for run in runs["none"]]), command, key="step_none")]  # fmt: skip
    for tracker in TRACKERS:
        ratio = paired_ratios(runs, tracker, "mean_s")
        ms = [run for run in runs[tracker]]
        rows += [
            Row(NAME, f"{tracker}: step time with / without, mean after step 1", "x", ratio, command,
                target=f"<= {TARGET:.2f}", status=check_target(ratio.median, maximum=TARGET), key=f"ratio_{tracker}"),
            Row(NAME, f"{tracker}: step time with / without, median single step", "x",
                paired_ratios(runs, tracker, "median_s"), command, key=f"median_ratio_{tracker}"),
            Row(NAME, f"{tracker}: start + finish wall time (outside the train loop)", "s",
                Stat.of([run.get("start_finish_s") for run in ms]), command, key=f"start_finish_{tracker}"),
            Row(NAME, f"{tracker}: training thread per logged step (log_row)", "ms",
                Stat.of([run.get("log_row_ms") for run in ms]), command, key=f"log_row_{tracker}"),
            Row(NAME, f"{tracker}: background thread CPU per logged step (tracker log)", "ms",
                Stat.of([run.get("tracker_log_ms") for run in ms]), command, key=f"tracker_log_{tracker}"),
        ]  # fmt: skip
    return rows


# -- the MLflow server ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_mlflow_server(folder: Path) -> tuple[subprocess.Popen, str]:
    """A real `mlflow server` (SQLite backend store, one worker) on a free 127.0.0.1 port; returns it and its URI."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
               "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]  # fmt: skip
    log = (folder / "server.log").open("w")
    server = subprocess.Popen(
        command, cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_S
    while True:
        try:
            with urllib.request.urlopen(uri + "/health", timeout=2) as answer:
                if answer.status == 200:
                    return server, uri
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            stop_server(server)
            raise RuntimeError("mlflow server did not start: " + (folder / "server.log").read_text()[-1000:])
        time.sleep(0.5)


def stop_server(server: subprocess.Popen) -> None:
    """Stop a server started by start_mlflow_server: SIGTERM to its group, then SIGKILL for what outlives it."""
    with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(server.pid, 15)
        server.wait(5)
    with contextlib.suppress(ProcessLookupError):  # the server's job consumers outlive a SIGTERM to the group
        os.killpg(server.pid, 9)


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of one process group (the server's)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state ppid pgrp ...; utime, stime at 11, 12
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


# -- one side ---------------------------------------------------------------------------------------------


def tracked_recipe(ctx: Context, split: Any, side: str, uri: str | None) -> Path:
    """The benchmark's recipe for one side: the same training, plus the side's tracker."""
    import yaml

    from benchmarks.sides import TrainSpec, write_recipe

    size = ctx.preset.tracking
    spec = TrainSpec(model=ctx.model_dir, split=split, method="lora", batch_size=size.batch_size, steps=size.steps,
                     max_seq_len=size.max_seq_len, precision=ctx.precision)  # fmt: skip
    path = write_recipe(spec, ctx.workdir / "recipes" / f"{NAME}-{side}.yaml", ctx.workdir / "outputs")
    recipe = yaml.safe_load(path.read_text())
    recipe["training"]["logging_steps"] = 1
    recipe["evaluation"]["during_training"] = (
        0  # no evaluation inside the train loop: step time is training only
    )
    if side == "mlflow":
        recipe["tracking"] = {"mlflow": {"tracking_uri": uri, "experiment": "bench"}}
    elif side == "tensorboard":
        recipe["tracking"] = ["tensorboard"]
    elif side == "wandb":
        recipe["tracking"] = {"wandb": {"project": "bench", "mode": "offline"}}
    path.write_text(f"# written by benchmarks/{NAME}.py\n{yaml.safe_dump(recipe, sort_keys=False)}")
    return path


def run_side(ctx: Context, recipe: Path, tag: str) -> dict[str, Any]:
    """One `ftkit run` through the probe: its step times, tracking hook timings, wall time and error if any."""
    from benchmarks.sides import ftkit_history

    registry, probe = ctx.workdir / "registry", ctx.workdir / f"{tag}.probe.json"
    command = [sys.executable, str(BENCH_DIR / "tracking_probe.py"), "run", str(recipe), "--json",
               "--registry", str(registry)]  # fmt: skip
    # One torch thread on every side: on a 2-core machine shared with other work, OpenMP spinning with 2 threads
    # makes step times swing several-fold, far more than the 2 % measured here.
    env = child_env({"FTKIT_BENCH_PROBE": str(probe), "WANDB_MODE": "offline", "WANDB_SILENT": "true",
                     "OMP_NUM_THREADS": "1"})  # fmt: skip
    child = run_child(command, cwd=REPO_ROOT, env=env, timeout=ctx.preset.child_timeout_s)
    payload = child.json() or {}
    out: dict[str, Any] = {"tag": tag, "wall_s": round(child.wall_s, 2), "load_average": os.getloadavg()}
    if payload.get("status") != "succeeded" or not probe.is_file():
        out["error"] = str(payload.get("error") or child.tail())[-300:]
        return out
    times = json.loads(probe.read_text())
    rows = max(times["log_rows"], 1)
    out.update(step_times(ftkit_history(registry, payload["run_id"])))
    out.update(
        train_runtime_s=payload["metrics"].get("train.runtime_s"),
        trackers=times["trackers"],
        start_s=round(times["start_s"], 3),
        finish_s=round(times["finish_s"], 3),
        start_finish_s=round(times["start_s"] + times["finish_s"], 3),
        log_row_ms=1000 * times["log_row_s"] / rows,
        tracker_log_ms=1000 * times["tracker_log_cpu_s"] / max(times["tracker_logs"], 1),
        warnings=[e["message"] for e in payload.get("events", []) if e.get("kind") == "warning"][:3],
    )
    return out


def run(ctx: Context) -> BenchResult:
    from benchmarks.assets import data_split

    size, reps = ctx.preset.tracking, ctx.preset.reps
    split = data_split("chat", size.batch_size * size.steps, 4, ctx.workdir)
    result, command = BenchResult(NAME), ctx.command(NAME)
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    server, uri = start_mlflow_server(ctx.workdir / "mlflow-server")
    server_cpu: list[float] = []
    try:
        recipes = {side: tracked_recipe(ctx, split, side, uri) for side in SIDES}
        for rep in range(reps):
            for side in SIDES if rep % 2 == 0 else SIDES[::-1]:
                cpu_before = group_cpu_s(server.pid)
                outcome = run_side(ctx, recipes[side], f"{side}-{rep}")
                if side == "mlflow":
                    server_cpu.append(group_cpu_s(server.pid) - cpu_before)
                runs[side].append(outcome)
                ctx.log(f"{NAME}: rep {rep + 1}/{reps} {side}: " + (
                    f"failed: {outcome['error']}" if "error" in outcome else
                    f"mean step {outcome['mean_s']:.3f} s, start+finish {outcome['start_finish_s']:.2f} s"))  # fmt: skip
    finally:
        stop_server(server)
    what = (f"LoRA r16, SmolLM2-135M, chatterbot-chat, batch {size.batch_size}, {size.steps} steps, "
            f"{ctx.precision}, logging every step")  # fmt: skip
    result.rows = tracker_rows(runs, command, what)
    result.rows.append(Row(NAME, "mlflow server process CPU per tracked run", "s", Stat.of(server_cpu), command,
                           key="server_cpu"))  # fmt: skip
    result.details = {
        "settings": {"batch_size": size.batch_size, "steps": size.steps, "max_seq_len": size.max_seq_len,
                     "precision": ctx.precision, "reps": reps, "order": "none mlflow tensorboard wandb, then reversed"},
        "runs": runs,
    }  # fmt: skip
    failures = [run for side in SIDES for run in runs[side] if "error" in run]
    if failures:
        result.error = "; ".join(f"{run['tag']}: {run['error']}" for run in failures)
    lost = [
        run["tag"]
        for side in TRACKERS
        for run in runs[side]
        if "error" not in run and side not in run["trackers"]
    ]
    if lost:
        result.error = (result.error or "") + f" tracker did not start in: {', '.join(lost)}"
    busy = [f"{run['tag']} ({run['load_average'][0]:.1f})" for side in SIDES for run in runs[side]
            if run["load_average"][0] > (os.cpu_count() or 1) + 0.5]  # fmt: skip
    if busy:
        result.notes.append("1-minute load average above the core count when these runs ended (other processes "
                            "competed for the cores): " + ", ".join(busy))  # fmt: skip
    result.notes.append(
        "step time from the run's history (time_s after each logged step), step 1 left out; tracker start and "
        "finish happen outside the train loop and are reported separately as seconds"
    )
    return result
