"""Library noise stays out of ftkit's output: no bitsandbytes import chatter (peft imports it whenever it is
installed), no library progress bars or warnings; FTKIT_DEBUG=1 shows them again."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from tests.conftest import write_recipe

# bitsandbytes logs its missing-kernel message when the optional `kernels` package is absent.
BNB_COMPLAINS = importlib.util.find_spec("bitsandbytes") and not importlib.util.find_spec("kernels")
BAR = "█"  # tqdm's bar fill (with the "it/s" rate it prints)

# tqdm imported first, as in a notebook or a test session: its TQDM_DISABLE variable is read only at import.
PROBE = """
import tqdm.auto
from ftkit.train.quiet import quiet_libraries
quiet_libraries()
import peft  # imports bitsandbytes when installed
for _ in tqdm.auto.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors"):
    pass
"""


def child_env(debug: bool) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("FTKIT_DEBUG", "TQDM_DISABLE")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    if debug:
        env["FTKIT_DEBUG"] = "1"
    return env


def noise(text: str) -> list[str]:
    """The library noise found in a process's output."""
    markers = ("kernels-community", "Failed to load", BAR, "it/s]", "Warning:")
    return [marker for marker in markers if marker in text]


@pytest.mark.parametrize("debug", [False, True])
def test_quiet_libraries_hides_raw_bars_and_bitsandbytes_unless_debug(debug):
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=child_env(debug), timeout=600
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    if not debug:
        assert noise(output) == []
    else:
        assert BAR in output and "de-quantizing" in output
        assert ("kernels-community" in output) == bool(BNB_COMPLAINS)


@pytest.mark.slow
def test_lora_run_prints_no_library_noise(tmp_path, tiny_model_dir, chat_data):
    recipe = write_recipe(tmp_path / "recipe.yaml", tiny_model_dir, chat_data["train"], chat_data["eval"])
    result = subprocess.run(
        [sys.executable, "-m", "ftkit", "run", str(recipe), "--registry", str(tmp_path / "registry")]
        + ["--set", "training.max_steps=2"],
        capture_output=True,
        text=True,
        env=child_env(debug=False),
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert noise(result.stdout + result.stderr) == [], result.stdout + result.stderr
