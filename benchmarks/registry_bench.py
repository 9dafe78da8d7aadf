"""Registry benchmark: `ftkit runs` and `ftkit diff` on a registry of 1,000 runs (target: under 1 s each).

    python benchmarks/registry_bench.py [--runs 1000] [--keep DIR]

Runs are generated through the registry API (RunRegistry.commit_run, the same path `ftkit run` takes; no
training), then each command is timed as a subprocess, the way a user or CI calls it. `ftkit runs` is timed once
with a cold summary cache (the first listing after the runs were recorded elsewhere, e.g. after a pull) and then
warm; the figures include Python start-up and importing the CLI.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ftkit.registry.store import RunRecord, RunRegistry


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
        raise SystemExit(f"ftkit {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def median_of(args: list[str], env: dict[str, str], repeat: int) -> tuple[float, float]:
    samples = [timed(args, env) for _ in range(repeat)]
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="build the registry here and keep it")
    options = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ftkit-bench-"))
    root = options.keep or workdir / "registry"
    try:
        if not (root / ".git").exists():
            seconds = build(root, options.runs)
            print(f"built {options.runs} runs through RunRegistry.commit_run in {seconds:.1f} s "
                  f"({1000 * seconds / options.runs:.1f} ms per run)")  # fmt: skip
        env = {**os.environ, "FTKIT_REGISTRY": str(root), "COLUMNS": "200"}
        baseline = median_of(["--version"], env, options.repeat)
        (root / ".git" / "ftkit-cache" / "summaries.json").unlink(missing_ok=True)
        cold = timed(["runs"], env)
        figures = {
            "ftkit --version (start-up floor)": baseline,
            "ftkit runs (cold summary cache)": cold,
        }
        commands = {
            "ftkit runs": ["runs"],
            "ftkit runs --all --limit 0 --json": ["runs", "--all", "--limit", "0", "--json"],
            "ftkit runs --sort eval.loss": ["runs", "--sort", "eval.loss"],
            "ftkit diff @latest~1 @latest": ["diff", "@latest~1", "@latest"],
            "ftkit diff (first vs last, --md)": [
                "diff",
                "@latest~999" if options.runs >= 1000 else "@latest~1",
                "@latest",
                "--md",
            ],  # fmt: skip
            "ftkit show @latest": ["show", "@latest"],
            "ftkit log": ["log"],
        }
        for label, args in commands.items():
            figures[label] = median_of(args, env, options.repeat)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"registry: {root} ({options.runs} runs); {os.cpu_count()} CPUs, load average {load:.1f}")
        print(f"  {'command (median of ' + str(options.repeat) + ')':<40} {'wall':>8} {'cpu':>8}")
        for label, (wall, cpu) in figures.items():
            flag = "" if wall < 1.0 or "floor" in label else "  <-- wall over the 1 s target"
            print(f"  {label:<40} {wall * 1000:6.0f} ms {cpu * 1000:5.0f} ms{flag}")
    finally:
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
