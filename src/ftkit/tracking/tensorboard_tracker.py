"""TensorBoard: event files (default `OUTPUT/<run-id>/tensorboard`) with a scalar per curve and step (`train/loss`,
`eval/loss`, ...), the final metrics at the last step (`final/eval.loss`, `final/base.eval.loss`, ...) and the
resolved recipe and model card as text. Written through torch's SummaryWriter, whose own thread does the writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftkit.tracking.session import RunInfo


def make_tracker(options: Any) -> TensorBoardTracker:
    """The tracker for the recipe's `tracking.tensorboard` options."""
    return TensorBoardTracker(options.log_dir)


class TensorBoardTracker:
    """Writes one run's event files."""

    name = "tensorboard"

    def __init__(self, log_dir: str | None):
        self.log_dir = log_dir
        self.writer: Any = None

    def start(self, run: RunInfo) -> dict[str, Any]:
        from torch.utils.tensorboard import SummaryWriter

        folder = Path(self.log_dir).expanduser() if self.log_dir else run.output_dir / "tensorboard"
        folder = folder.resolve()
        folder.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(log_dir=str(folder))
        self.writer.add_text(
            "ftkit/run", f"ftkit run `{run.run_id}` ({run.run_name}): {run.method} on {run.model}"
        )
        return {"log_dir": str(folder)}

    def log(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)

    def finish(self, status: str, step: int, final: dict[str, float], files: dict[str, str]) -> None:
        for name, value in final.items():
            self.writer.add_scalar(f"final/{name}", value, step)
        for name, text in files.items():  # four-space indent: TensorBoard renders text as Markdown
            self.writer.add_text(f"ftkit/{name}", "    " + text.replace("\n", "\n    "), step)
        self.writer.add_text("ftkit/status", status, step)
        self.writer.close()
