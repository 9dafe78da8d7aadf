"""What every benchmark receives: the preset, a scratch folder, the model folder and how to name its command."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.presets import Preset


@dataclass
class Context:
    preset: Preset
    workdir: Path  # scratch space for this invocation (recipes, registry, outputs, data samples)
    model_dir: Path | None = None
    shared: dict[str, Any] = field(default_factory=dict)  # results one benchmark leaves for another
    reps_override: int | None = None  # --reps: recorded in every command, so a results file says so

    @property
    def precision(self) -> str:
        """The identical-settings precision on this machine (the preset's, `auto` resolved)."""
        from benchmarks.presets import resolve_precision

        return resolve_precision(self.preset.precision)

    def command(self, name: str) -> str:
        """The command that reproduces one benchmark's rows."""
        reps = f" --reps {self.reps_override}" if self.reps_override else ""
        return f"python -m benchmarks --preset {self.preset.name} --only {name}{reps}"

    def log(self, message: str) -> None:
        import sys
        import time

        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
