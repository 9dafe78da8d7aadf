"""CLI latency: start-up of `ftkit --help` and every `ftkit CMD --help` against `trl --help`, plus two real commands.

All commands run interleaved: each repetition is one round that runs every command once (the order reversed on
every other round), after one unmeasured warm-up round, so machine load and page cache drift hit every command
alike. A ratio pairs a command with `trl --help` from the same round; its row gives the median and min–max over
the rounds. Targets: `ftkit --help` <= 1.0x `trl --help`, every `ftkit CMD --help` <= 1.25x. `ftkit` and `trl`
start through their console scripts next to this interpreter, as a user's shell starts them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.assets import data_split
from benchmarks.context import Context
from benchmarks.harness import REPO_ROOT, BenchResult, Row, Stat, check_target, child_env, ratio_stat

NAME = "cli_latency"
HELP_TARGET = 1.0
COMMAND_HELP_TARGET = 1.25


def console_script(name: str, fallback: list[str]) -> list[str]:
    """The console script `name` next to this interpreter, else on PATH, else `fallback`."""
    script = Path(sys.executable).with_name(name)
    if script.exists():
        return [str(script)]
    found = shutil.which(name)
    return [found] if found else fallback


def time_once(argv: list[str], env: dict[str, str]) -> tuple[float | None, str | None]:
    """Wall seconds of one run (blocking wait, no polling), or None and the error's last line."""
    started = time.perf_counter()
    child = subprocess.run(
        argv, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    wall = time.perf_counter() - started
    if child.returncode != 0:
        lines = child.stderr.strip().splitlines()
        return None, (lines[-1] if lines else f"exit code {child.returncode}")[:160]
    return wall, None


def interleaved(
    cases: dict[str, list[str]], reps: int, ctx: Context
) -> tuple[dict[str, list[float | None]], dict[str, str]]:
    """Per-case wall times over `reps` rounds (round i runs every case once; odd rounds in reverse order)."""
    env = child_env()
    labels = list(cases)
    times: dict[str, list[float | None]] = {label: [] for label in labels}
    errors: dict[str, str] = {}
    for round_ in range(reps + 1):  # round 0 warms the page cache and is not kept
        order = labels if round_ % 2 == 0 else labels[::-1]
        for label in order:
            wall, error = time_once(cases[label], env)
            if error:
                errors.setdefault(label, error)
            if round_:
                times[label].append(wall)
        if round_:
            ctx.log(f"{NAME}: round {round_}/{reps} done")
    return times, errors


def validate_recipe(ctx: Context) -> Path:
    split = data_split("chat", 32, 8, ctx.workdir, seed=3)
    recipe = ctx.workdir / "recipes" / "validate.yaml"
    recipe.parent.mkdir(parents=True, exist_ok=True)
    recipe.write_text(
        f"model: {ctx.model_dir or 'HuggingFaceTB/SmolLM2-135M-Instruct'}\n"
        f"data:\n  train: {split.train}\n  eval: {split.eval}\n"
        "method:\n  name: lora\n  r: 16\n"
        "training:\n  max_steps: 10\n  batch_size: 8\n"
    )
    return recipe


def run(ctx: Context) -> BenchResult:
    from ftkit.cli.app import COMMANDS  # the command table only: typer, no command module, no torch

    result = BenchResult(NAME)
    command = ctx.command(NAME)
    reps = ctx.reps_override or ctx.preset.cli_reps
    ftkit = console_script("ftkit", [sys.executable, "-m", "ftkit"])
    trl = console_script(
        "trl", [sys.executable, "-c", "import sys; from trl.cli import main; sys.exit(main())"]
    )
    reference = "trl --help"
    cases = {reference: [*trl, "--help"], "ftkit --help": [*ftkit, "--help"]}
    cases.update({f"ftkit {name} --help": [*ftkit, name, "--help"] for name in COMMANDS})
    cases["ftkit validate RECIPE"] = [*ftkit, "validate", str(validate_recipe(ctx))]
    cases["ftkit runs (empty registry)"] = [*ftkit, "runs", "--registry", str(ctx.workdir / "cli-registry")]
    ctx.log(f"{NAME}: {len(cases)} commands × {reps} interleaved rounds")
    times, errors = interleaved(cases, reps, ctx)

    for label, values in times.items():
        row = Row(NAME, label, "s", Stat.of(values), command, key="help_s" if label == "ftkit --help" else "")
        if label in errors:
            row.note = f"failed: {errors[label]}"
            result.notes.append(f"`{label}` failed: {errors[label]}")
        result.rows.append(row)
    worst: tuple[float, str] | None = None
    for label, values in times.items():
        if label == reference or not label.endswith("--help"):
            continue
        stat = ratio_stat(values, times[reference])
        limit = HELP_TARGET if label == "ftkit --help" else COMMAND_HELP_TARGET
        row = Row(
            NAME, f"{label} / {reference}", "x", stat, command, key="help" if label == "ftkit --help" else ""
        )
        row.target = f"<= {limit}x"
        row.status = check_target(stat.median, maximum=limit)
        result.rows.append(row)
        if label != "ftkit --help" and stat.median is not None and (worst is None or stat.median > worst[0]):
            worst = (stat.median, label)
    if worst:
        worst_stat = ratio_stat(times[worst[1]], times[reference])
        row = Row(
            NAME, f"slowest command help: {worst[1]} / {reference}", "x", worst_stat, command, key="cmd_help"
        )
        row.target, row.status = (
            f"<= {COMMAND_HELP_TARGET}x",
            check_target(worst_stat.median, maximum=COMMAND_HELP_TARGET),
        )
        result.rows.append(row)
    result.details["seconds"] = times
    floor, _ = time_once([sys.executable, "-c", "pass"], child_env())
    result.notes.append(f"a bare `python -c pass` takes {floor or 0:.3f} s here (interpreter start-up floor)")
    return result
