"""benchmarks/checkpoint_speed.py: rows from checkpoint events (median, min, max worked out by hand), registered
like the other benchmarks, and the events of a real tiny run feed it one time and one size per checkpoint (no timing
is asserted)."""

from __future__ import annotations

import json

import pytest
from benchmarks.__main__ import NEEDS_MODEL
from benchmarks.checkpoint_speed import METHODS, NAME, checkpoint_events, method_rows
from benchmarks.presets import PRESETS
from typer.testing import CliRunner

from benchmarks import report
from ftkit.cli.app import app
from tests.conftest import write_recipe

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_rows_give_median_and_spread_of_the_saves():
    events = [
        {"kind": "checkpoint", "step": 1, "seconds": 0.5, "bytes": 1048576},
        {"kind": "note", "message": "not a checkpoint"},
        {"kind": "checkpoint", "step": 2, "seconds": 0.2, "bytes": 2097152},
        {"kind": "checkpoint", "step": 3, "seconds": 0.3, "bytes": 1048576},
        {"kind": "checkpoint", "step": 4},  # an older record without the figures: left out
    ]
    assert [e["step"] for e in checkpoint_events(events)] == [1, 2, 3]
    time, size = method_rows("lora", events, "cmd", "what")
    assert (time.stat.median, time.stat.min, time.stat.max, time.stat.n) == (0.3, 0.2, 0.5, 3)
    assert (size.stat.median, size.stat.min, size.stat.max) == (1.0, 1.0, 2.0)
    assert (time.key, size.key, time.unit, size.unit) == ("time_lora", "size_lora", "s", "MiB")


def test_registered_like_the_others():
    assert NAME in report.ORDER and NAME in NEEDS_MODEL
    quoted = {key for name, keys, _ in report.SUMMARY if name == NAME for key in keys}
    assert quoted == {f"{kind}_{method}" for kind in ("time", "size") for method in METHODS}
    assert PRESETS["small"].reps >= 5


def test_a_real_run_gives_one_time_and_size_per_checkpoint(tmp_path, tiny_model_dir, chat_data):
    recipe = write_recipe(tmp_path / "recipe.yaml", tiny_model_dir, chat_data["train"], chat_data["eval"])
    text = recipe.read_text().replace("max_steps: 12", "max_steps: 3")
    recipe.write_text(text.replace("  seed: 42\n", "  seed: 42\n  save_every: 1\n  keep_checkpoints: 1\n"))
    result = CliRunner().invoke(app, ["run", str(recipe), "--json", "--registry", str(tmp_path / "reg")])
    assert result.exit_code == 0, result.output
    from ftkit.registry.store import RunRegistry

    run_id = json.loads(result.stdout)["run_id"]
    events = RunRegistry.open(tmp_path / "reg", create=False).load_run(run_id)["events"]
    time, size = method_rows("lora", events, "cmd", "what")
    assert time.stat.n == size.stat.n == 3
    kept = tmp_path / "outputs" / run_id / "checkpoints" / "checkpoint-3"
    on_disk = sum(path.stat().st_size for path in kept.rglob("*") if path.is_file()) / 1048576
    assert size.stat.values[-1] == pytest.approx(on_disk)
