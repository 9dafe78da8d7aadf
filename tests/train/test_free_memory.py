"""Free memory, the one figure `ftkit plan` and the `auto` batch rule both judge a fit against."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from ftkit.train import auto_values
from ftkit.train.hardware import free_memory


def _free_available_bytes() -> int:
    """The `available` column of procps' `free -b`: an independent reading of the same kernel figure."""
    lines = subprocess.run(["free", "-b"], capture_output=True, text=True, check=True).stdout.splitlines()
    header = lines[0].split()
    memory = lines[1].split()[1:]
    return int(memory[header.index("available")])


@pytest.mark.skipif(shutil.which("free") is None, reason="procps `free` is not installed")
def test_free_memory_on_a_cpu_is_what_free_reports_as_available():
    measured, source = free_memory("cpu")
    reference = _free_available_bytes()
    assert source == "MemAvailable in /proc/meminfo"
    assert abs(measured - reference) <= 0.05 * reference  # both read MemAvailable; other processes move it
    assert abs(auto_values.free_memory_bytes("cpu") - reference) <= 0.05 * reference
