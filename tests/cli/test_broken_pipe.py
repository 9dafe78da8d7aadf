"""A reader that closes the pipe early (`ftkit log | head -1`) ends ftkit quietly, as it ends git."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.registry_bench import build


def test_a_closed_pipe_exits_141_without_an_error_message(tmp_path):
    registry = tmp_path / "registry"
    build(registry, 200)  # enough output to overflow the pipe buffer after the reader has gone
    ftkit = Path(sys.executable).with_name("ftkit")
    result = subprocess.run(
        f'"{ftkit}" log --registry "{registry}" | head -1; exit "${{PIPESTATUS[0]}}"',
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.startswith("run\t")
    assert result.returncode == 141, result.stderr
    assert result.stderr == ""
