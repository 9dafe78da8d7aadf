"""Registry benchmark: `ftkit runs` and `ftkit diff` on a registry of 1,000 runs (target: under 1 s each).

    python -m benchmarks --only registry

Runs are generated through the registry API (RunRegistry.commit_run, the same path `ftkit run` takes; no
training), then each command is timed as a subprocess, the way a user or CI calls it. `ftkit runs` is timed once
with a cold summary cache (the first listing after the runs were recorded elsewhere, e.g. after a pull) and then
warm; the figures include Python start-up and importing the CLI. CPU time (user + system of the child) is recorded
next to wall time, because wall time on a shared machine includes waiting for a core.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.context import Context
from benchmarks.harness import BenchResult, Row, Stat, check_target, child_env
from ftkit.registry.store import RunRecord, RunRegistry

NAME = "registry"


def build(root: Path, count: int) -> float:
    """Commit `count` fake runs; return the seconds it took."""
    registry = RunRegistry.open(root)
    start = time.perf_counter()
    parent = None
    for i in range(count):
        run_id = registry.new_run_id()
        lr = [1e-4, 2e-4, 3e-4][i % 3]
        record = RunRecord(
            run_id=run_id,
            name=registry.new_run_name(run_id),
            status="failed" if i % 10 == 7 else "succeeded",
            method=["lora", "dora", "full"][i % 3],
            model="Qwen/Qwen2.5-0.5B",
            task="causal-lm",
            config_hash=f"{i:064x}",
            parent=parent if i % 5 == 4 else None,
            started_at="2025-01-01T00:00:00+00:00",
            ended_at="2025-01-01T00:10:00+00:00",
            recipe_text=f"model: Qwen/Qwen2.5-0.5B\ndata:\n  train: data/train.jsonl\ntraining:\n  learning_rate: {lr}\n",
            resolved={
                "model": "Qwen/Qwen2.5-0.5B",
                "data": {"train": "/data/train.jsonl", "format": "chat"},
                "method": {"name": "lora", "r": 8 * (1 + i % 4), "alpha": 16},
                "training": {"learning_rate": lr, "epochs": 1 + i % 2, "batch_size": 8, "seed": i},
                "output": f"/outputs/{run_id}",
            },
            metrics={
                "eval": {"loss": 2.0 - (i % 50) / 100, "accuracy": 0.5 + (i % 40) / 100},
                "train": {"loss": 1.9, "tokens_per_sec": 1000.0 + i, "steps": 100},
                "run": {"wall_time_s": 600.0},
            },
            history=[{"step": s, "loss": 3.0 - s / 100, "lr": lr} for s in range(100)],
            events=[{"type": "start"}, {"type": "end"}],
            env={"packages": {"torch": "2.4.0", "transformers": "4.56.0"}, "python": "3.11.9", "seed": i},
            data={"train": {"path": "/data/train.jsonl", "sha256": "ab" * 32, "rows": 1000}},
        )
        registry.commit_run(record)
        parent = run_id
    registry.close()
    return time.perf_counter() - start


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one `python -m ftkit ARGS` subprocess.

    CPU time (user + system of the child) is reported too because wall time on a shared machine includes
    waiting for a core; on an idle machine the two are close.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ftkit", *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"ftkit {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def run(ctx: Context) -> BenchResult:
    preset = ctx.preset
    result = BenchResult(NAME)
    command = ctx.command(NAME)
    root = ctx.workdir / "registry-bench"
    seconds = build(root, preset.registry_runs)
    result.rows.append(
        Row(
            NAME,
            f"record {preset.registry_runs:,} runs (RunRegistry.commit_run), per run",
            "s",
            Stat.of([seconds / preset.registry_runs]),
            command,
        )
    )
    env = {**child_env(), "FTKIT_REGISTRY": str(root), "COLUMNS": "200"}
    (root / ".git" / "ftkit-cache" / "summaries.json").unlink(missing_ok=True)
    cold_wall, cold_cpu = timed(["runs"], env)
    cases = {
        "floor": ("ftkit --version (start-up floor)", ["--version"]),
        "runs": ("ftkit runs", ["runs"]),
        "runs_all_json": ("ftkit runs --all --limit 0 --json", ["runs", "--all", "--limit", "0", "--json"]),
        "runs_sort": ("ftkit runs --sort eval.loss", ["runs", "--sort", "eval.loss"]),
        "diff": ("ftkit diff @latest~1 @latest", ["diff", "@latest~1", "@latest"]),
        "diff_far": (
            "ftkit diff (first vs last run, --md)",
            ["diff", f"@latest~{preset.registry_runs - 1}", "@latest", "--md"],
        ),
        "show": ("ftkit show @latest", ["show", "@latest"]),
        "log": ("ftkit log", ["log"]),
    }
    result.rows.append(
        Row(
            NAME,
            f"ftkit runs, cold summary cache ({preset.registry_runs:,} runs), wall",
            "s",
            Stat.of([cold_wall]),
            command,
            target="< 1 s",
            status=check_target(cold_wall, maximum=1.0),
            key="runs_cold",
        )
    )
    for key, (label, args) in cases.items():
        samples = [timed(args, env) for _ in range(preset.registry_reps)]
        wall = Stat.of([sample[0] for sample in samples])
        target = "" if key == "floor" else "< 1 s"
        result.rows.append(
            Row(
                NAME,
                f"{label} ({preset.registry_runs:,} runs), wall",
                "s",
                wall,
                command,
                target=target,
                status=check_target(wall.median, maximum=1.0) if target else "",
                key=key,
            )
        )
        result.rows.append(
            Row(
                NAME,
                f"{label}, CPU time of the process",
                "s",
                Stat.of([sample[1] for sample in samples]),
                command,
            )
        )
    result.details = {"runs": preset.registry_runs, "build_seconds": seconds, "cold_cpu_s": cold_cpu}
    return result
