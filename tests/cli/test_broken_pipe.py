"""A reader that closes the pipe early (`ftkit runs | head -1`) ends ftkit quietly, as it ends git."""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

from benchmarks.registry_bench import build


def test_a_closed_pipe_exits_141_without_an_error_message(tmp_path):
    registry = tmp_path / "registry"
    build(registry, 300)  # ~32 KB of listing: far more than the shrunken pipe below holds
    ftkit = Path(sys.executable).with_name("ftkit")
    process = subprocess.Popen(
        [str(ftkit), "runs", "--all", "--limit", "0", "--registry", str(registry)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # A one-page pipe (Linux F_SETPIPE_SZ) makes ftkit block on writing long before it has written everything,
    # so closing our end surely happens while it still has output to write.
    fcntl.fcntl(process.stdout.fileno(), fcntl.F_SETPIPE_SZ, 4096)
    first_line = process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 141, stderr
    assert first_line.startswith(b"# ") or b"\t" in first_line
    assert stderr == b""
