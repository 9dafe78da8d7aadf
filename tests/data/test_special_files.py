"""Data that is not a regular file (a FIFO, /dev/zero behind a symlink) is refused before it is opened, exit 2.

Each command runs in a subprocess with a timeout, so a hang fails the test instead of blocking the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_recipe

FTKIT = Path(sys.executable).with_name("ftkit")
TIMEOUT_S = 30


def ftkit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(FTKIT), *args], capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL
    )


@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "train.jsonl"
    os.mkfifo(path)
    return path


@pytest.fixture
def zero_link(tmp_path) -> Path:
    path = tmp_path / "zero.jsonl"
    path.symlink_to("/dev/zero")
    return path


def test_data_check_refuses_a_fifo(fifo):
    result = ftkit("data", "check", str(fifo))
    assert result.returncode == 2, result.stderr
    assert str(fifo) in result.stderr and "FIFO" in result.stderr


def test_data_check_refuses_a_symlink_to_dev_zero(zero_link):
    result = ftkit("data", "check", str(zero_link))
    assert result.returncode == 2, result.stderr
    assert str(zero_link) in result.stderr and "character device" in result.stderr


@pytest.mark.parametrize("command", [["validate"], ["run", "--dry-run"]])
def test_recipe_commands_refuse_a_fifo_as_data_train(tmp_path, fifo, command):
    recipe = write_recipe(tmp_path / "recipe.yaml", "org/model", fifo)
    result = ftkit(*command, str(recipe))
    assert result.returncode == 2, result.stderr
    line = recipe.read_text().splitlines().index(f"  train: {fifo}") + 1
    assert f"{recipe}:{line}: data.train" in result.stderr
    assert "FIFO" in result.stderr
