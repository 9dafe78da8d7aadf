"""Checkpoint cost per method: the wall time of one `training.save_every` checkpoint (the Trainer's write of
weights, optimizer, scheduler, RNG and trainer state, every file fsynced, the marker, the rename; see
src/ftkit/train/checkpoints.py) and its size on disk, on SmolLM2-135M-Instruct.

One `ftkit run` per method with `save_every: 1`, so each of its `reps` steps writes a checkpoint; the times and
sizes are the run's own `checkpoint` events (measured around the whole save, in the training process), read from
the registry. The first save of a run is counted like the others. Adapters (lora, ia3, prefix) save the adapter and
its optimizer state; full fine-tuning saves every weight and two Adam moments for each, so its size is about three
times the model's fp32 weights.
"""

from __future__ import annotations

import sys
from typing import Any

from benchmarks.context import Context
from benchmarks.harness import REPO_ROOT, BenchResult, Row, Stat, child_env, run_child

NAME = "checkpoint_speed"
METHODS = ("lora", "ia3", "prefix", "full")


def checkpoint_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `checkpoint` events of a run that carry a time and a size."""
    return [
        e for e in events if e.get("kind") == "checkpoint" and e.get("seconds") is not None and e.get("bytes")
    ]


def method_rows(method: str, events: list[dict[str, Any]], command: str, what: str) -> list[Row]:
    """Write time (s) and size (MiB) of one method's checkpoints: median, min, max over the saves."""
    saves = checkpoint_events(events)
    return [
        Row(NAME, f"{method}: checkpoint write time ({what})", "s", Stat.of([e["seconds"] for e in saves]), command,
            key=f"time_{method}"),
        Row(NAME, f"{method}: checkpoint size on disk", "MiB", Stat.of([e["bytes"] / 1048576 for e in saves]),
            command, key=f"size_{method}"),
    ]  # fmt: skip


def recipe_for(ctx: Context, method: str, split: Any, reps: int) -> Any:
    """The benchmark's recipe for `method`: `reps` steps, a checkpoint after each, the last one kept."""
    import yaml

    from benchmarks.sides import TrainSpec, write_recipe

    size = ctx.preset.checkpoint
    spec = TrainSpec(model=ctx.model_dir, split=split, method=method, batch_size=size.batch_size, steps=reps,
                     max_seq_len=size.max_seq_len, precision=ctx.precision)  # fmt: skip
    path = write_recipe(spec, ctx.workdir / "recipes" / f"{NAME}-{method}.yaml", ctx.workdir / "out")
    recipe = yaml.safe_load(path.read_text())
    recipe["training"].update(save_every=1, keep_checkpoints=1)
    path.write_text(f"# written by benchmarks/checkpoint_speed.py\n{yaml.safe_dump(recipe, sort_keys=False)}")
    return path


def run(ctx: Context) -> BenchResult:
    from benchmarks.assets import data_split

    size = ctx.preset.checkpoint
    reps = ctx.preset.reps
    split = data_split("chat", size.batch_size * reps, 4, ctx.workdir)
    result, command = BenchResult(NAME), ctx.command(NAME)
    what = f"SmolLM2-135M, {ctx.precision}, {reps} saves, fsynced"
    details: dict[str, Any] = {
        "settings": {"saves": reps, "batch_size": size.batch_size, "precision": ctx.precision}
    }
    registry = ctx.workdir / "registry"
    for method in METHODS:
        ctx.log(f"{NAME}: {method}, {reps} checkpoints")
        recipe = recipe_for(ctx, method, split, reps)
        child = run_child(
            [sys.executable, "-m", "ftkit", "run", str(recipe), "--json", "--registry", str(registry)],
            cwd=REPO_ROOT, env=child_env(), timeout=ctx.preset.child_timeout_s,
        )  # fmt: skip
        payload = child.json() or {}
        events: list[dict[str, Any]] = []
        if payload.get("run_id"):
            from ftkit.registry.store import RunRegistry

            events = RunRegistry.open(registry, create=False).load_run(payload["run_id"])["events"]
        if payload.get("status") != "succeeded" or not checkpoint_events(events):
            result.notes.append(f"{method}: {str(payload.get('error') or child.tail())[-300:]}")
        result.rows += method_rows(method, events, command, what)
        details[method] = [
            {"step": e["step"], "seconds": e["seconds"], "bytes": e["bytes"]}
            for e in checkpoint_events(events)
        ]
    result.details = details
    return result
