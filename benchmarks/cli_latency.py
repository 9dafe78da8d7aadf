"""CLI latency: wall time of `ftkit --help`, `ftkit validate RECIPE` and `ftkit runs` vs `python -c "import trl"`.

Each command runs N times in a fresh process after one unmeasured warm-up (so every command sees a warm page
cache). `ftkit` is started the way its console script does (`python -m ftkit`'s entry point, same interpreter).
Target: `ftkit --help` <= 0.3 s.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from benchmarks.assets import data_split
from benchmarks.context import Context
from benchmarks.harness import REPO_ROOT, BenchResult, Row, Stat, check_target, child_env, run_child

NAME = "cli_latency"


def ftkit_executable() -> list[str]:
    """The installed `ftkit` console script next to this interpreter, else `python -m ftkit`."""
    script = Path(sys.executable).with_name("ftkit")
    if script.exists():
        return [str(script)]
    found = shutil.which("ftkit")
    return [found] if found else [sys.executable, "-m", "ftkit"]


def time_command(command: list[str], reps: int, cwd: Path) -> tuple[Stat, str | None]:
    env = child_env()
    warm = run_child(command, cwd=cwd, env=env, timeout=300)
    if not warm.ok:
        return Stat.of([]), warm.tail(3) or f"exit code {warm.returncode}"
    times = []
    for _ in range(reps):
        child = run_child(command, cwd=cwd, env=env, timeout=300)
        if not child.ok:
            return Stat.of(times), child.tail(3) or f"exit code {child.returncode}"
        times.append(child.wall_s)
    return Stat.of(times), None


def run(ctx: Context) -> BenchResult:
    preset = ctx.preset
    result = BenchResult(NAME)
    command = ctx.command(NAME)
    split = data_split("chat", 32, 8, ctx.workdir, seed=3)
    recipe = ctx.workdir / "recipes" / "validate.yaml"
    recipe.parent.mkdir(parents=True, exist_ok=True)
    recipe.write_text(
        f"model: {ctx.model_dir or 'HuggingFaceTB/SmolLM2-135M-Instruct'}\n"
        f"data:\n  train: {split.train}\n  eval: {split.eval}\n"
        "method:\n  name: lora\n  r: 16\n"
        "training:\n  max_steps: 10\n  batch_size: 8\n"
    )
    registry = ctx.workdir / "cli-registry"
    ftkit = ftkit_executable()
    cases = [
        ("ftkit --help", [*ftkit, "--help"], preset.cli_reps, 0.3),
        ("ftkit validate RECIPE", [*ftkit, "validate", str(recipe)], preset.cli_reps, None),
        ("ftkit runs", [*ftkit, "runs", "--registry", str(registry)], preset.cli_reps, None),
        ('python -c "import trl"', [sys.executable, "-c", "import trl"], preset.import_reps, None),
    ]
    stats: dict[str, Stat] = {}
    for label, argv, reps, limit in cases:
        ctx.log(f"{NAME}: {label} × {reps}")
        stat, error = time_command(argv, reps, REPO_ROOT)
        stats[label] = stat
        row = Row(NAME, label, "s", stat, command, key="help" if label == "ftkit --help" else "")
        if limit is not None:
            row.target = f"<= {limit} s"
            row.status = check_target(stat.median, maximum=limit)
        if error:
            row.note = f"unavailable: {error.splitlines()[-1][:120]}"
            result.notes.append(f"`{label}` failed: {error}")
        result.rows.append(row)
    trl = stats['python -c "import trl"'].median
    for label in ("ftkit --help", "ftkit validate RECIPE", "ftkit runs"):
        value = stats[label].median
        if value is not None and trl:
            result.rows.append(Row(NAME, f"{label} / import trl", "x", Stat.of([value / trl]), command))
    floor = run_child([sys.executable, "-c", "pass"], cwd=REPO_ROOT, timeout=60)
    result.notes.append(
        f"a bare `python -c pass` takes {floor.wall_s:.3f} s here (interpreter start-up floor)"
    )
    return result
