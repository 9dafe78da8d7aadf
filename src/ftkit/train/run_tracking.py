"""The runner's side of experiment tracking (ftkit.tracking): start the recipe's trackers once the run's output
folder exists, and finish them with the run's final metrics and files, whatever the run's end."""

from __future__ import annotations

from typing import Any

from ftkit.tracking.session import RunInfo, Tracking, start_tracking


def start_run_tracking(run: Any, resolved: dict[str, Any], config_hash: str) -> Tracking:
    """Start the trackers of `run` (the runner's _Run); each that cannot start is one warning event."""
    recipe = run.recipe
    info = RunInfo(
        run_id=run.run_id,
        run_name=run.run_name,
        resolved={key: value for key, value in resolved.items() if key != "tracking"},  # not a hyperparameter
        output_dir=run.output_dir,
        method=run.method.name,
        model=recipe.model,
        config_hash=config_hash,
    )
    return start_tracking(
        recipe.tracking,
        info,
        lambda message: run.event("warning", message),
        lambda key: _where(run.loaded, key),
    )


def finish_run_tracking(tracking: Tracking, run: Any, result: Any) -> None:
    """Close the trackers with the run's status, final metrics and files (resolved recipe, model card)."""
    if not tracking:
        return
    files: dict[str, str] = {}
    if result.resolved:
        from ftkit import yamlio
        from ftkit.export.model_card import model_card

        files["resolved.yaml"] = yamlio.dump(result.resolved, header=f"resolved recipe of run {run.run_id}")
        record = {
            "run": {"name": run.run_name, "status": result.status},
            "data": result.data_files,
            "metrics": run.metrics,
        }
        mode = "adapter" if run.method.is_adapter else "full"
        files["model_card.md"] = model_card(
            result.resolved, run.method, mode, str(result.resolved.get("training", {}).get("precision")),
            record, [], run.run_id,
        )  # fmt: skip
    tracking.finish(result.status, run.metrics, files)


def _where(loaded: Any, key: str) -> str:
    """`recipe.yaml:12 tracking.mlflow`, or `--set tracking.mlflow` / `--track`, for a warning about `key`."""
    from ftkit.recipe.load import line_map, split_override

    path = tuple(key.split("."))
    if any(split_override(item)[0][: len(path)] == path for item in loaded.overrides):
        return f"--track/--set {key}"
    lines = line_map(loaded.text)
    line = lines.get(path) or lines.get(path[:1])  # `tracking: [mlflow]` has a line for `tracking` only
    return f"{loaded.path}:{line} {key}" if line else f"{loaded.path} {key}"
