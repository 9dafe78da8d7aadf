"""Weights & Biases: the resolved recipe as the run's config, per-step metrics, the final metrics in the run's
summary, the resolved recipe and model card as run files, and the exit code from ftkit's status. `mode: offline`
(or WANDB_MODE=offline) writes everything under the run's folder for a later `wandb sync`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftkit.tracking.session import RunInfo


def make_tracker(options: Any) -> WandbTracker:
    """The tracker for the recipe's `tracking.wandb` options."""
    return WandbTracker(options.project, options.entity, options.mode, options.dir, list(options.tags))


class WandbTracker:
    """Reports one ftkit run to W&B (online, or offline files)."""

    name = "wandb"

    def __init__(
        self, project: str, entity: str | None, mode: str | None, folder: str | None, tags: list[str]
    ):
        self.project = project
        self.entity = entity
        self.mode = mode
        self.folder = folder
        self.tags = tags
        self.run: Any = None

    def start(self, run: RunInfo) -> dict[str, Any]:
        import wandb

        folder = Path(self.folder).expanduser().resolve() if self.folder else run.output_dir
        folder.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=self.project,
            entity=self.entity,
            name=run.run_name,
            dir=str(folder),
            mode=self.mode,
            config=run.resolved,
            tags=[*self.tags, f"ftkit:{run.method}"],
            notes=f"ftkit run {run.run_id}",
            reinit="create_new",
            settings=wandb.Settings(console="off", silent=True),
        )
        self.run.summary["ftkit.run_id"] = run.run_id
        facts = {"run_id": self.run.id, "project": self.project, "dir": str(Path(self.run.dir).parent)}
        facts["mode"] = "offline" if self.run.offline else "online"
        if not self.run.offline and self.run.url:
            facts["url"] = self.run.url
        return facts

    def log(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def finish(self, status: str, step: int, final: dict[str, float], files: dict[str, str]) -> None:
        self.run.summary.update({**final, "ftkit.status": status})
        for name, text in files.items():  # files in run.dir are the run's files (synced with it)
            (Path(self.run.dir) / name).write_text(text, encoding="utf-8")
        self.run.finish(exit_code=0 if status == "succeeded" else 1)
