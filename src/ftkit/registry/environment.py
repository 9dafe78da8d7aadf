"""What a run ran on, for `env.json`: package versions, Python, platform, code commit, seed, hardware.

Torch-free: versions come from `importlib.metadata`, never from importing the packages. Environment variables
are not recorded at all (they are where secrets live).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("ftkit", "torch", "transformers", "peft", "trl", "datasets", "accelerate", "bitsandbytes")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution, or None when it is absent."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def code_state(workdir: Path | None = None) -> dict:
    """Commit, branch and dirty flag of the git repository enclosing `workdir` (all None outside a repository)."""
    state: dict = {"repository": None, "commit": None, "branch": None, "dirty": None}
    folder = Path(workdir or Path.cwd())
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(
                ["git", *args], cwd=folder, env=env, capture_output=True, text=True, timeout=20
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if not top:
        return state
    state["repository"] = top
    state["commit"] = git("rev-parse", "--verify", "--quiet", "HEAD")
    state["branch"] = git("rev-parse", "--abbrev-ref", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    state["dirty"] = None if status is None else bool(status)
    return state


def collect_environment(seed: int | None, hardware: dict | None = None, workdir: Path | None = None) -> dict:
    """The env.json payload: versions, Python, platform, CPU count, code commit and dirty flag, seed, hardware."""
    return {
        "packages": package_versions(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "code": code_state(workdir),
        "seed": seed,
        "hardware": dict(hardware or {}),
    }
