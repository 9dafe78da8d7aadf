"""`data.skip_invalid_rows`: rows the data check refuses are dropped only when a recipe asks, each reported and
counted in the run metrics; without the key a file with row errors refuses the run (exit 2), naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftkit.data.encode import encode_rows
from ftkit.errors import DataError
from ftkit.recipe.load import load_recipe
from ftkit.train.run_io import load_recipe_data
from tests.conftest import chat_rows, write_jsonl, write_recipe

from .conftest import cli, shared, write_lines

PANDALM_BAD = [140, 141, 142, 144, 145, 147, 248]


def _recipe(tmp_path: Path, train: Path, eval_: Path | None = None, extra: str = "") -> Path:
    data = f"  train: {train}\n" + (f"  eval: {eval_}\n" if eval_ else "") + extra
    path = tmp_path / "recipe.yaml"
    path.write_text(f"model: some/model\ndata:\n{data}training:\n  seed: 3\n")
    return path


def _chat_with_bad_rows(path: Path, bad_lines: dict[int, str]) -> Path:
    lines = [json.dumps(row) for row in chat_rows(30, seed=4)]
    for line, text in bad_lines.items():
        lines[line - 1] = text
    return write_lines(path, lines)


BAD = {
    5: '{"messages": [{"role": "user", "content": "hi"}]}',  # no assistant turn
    9: '{"messages": "not a list"}',
    12: "{not json",
}


def test_without_the_key_row_errors_refuse_and_the_hint_names_it(tmp_path):
    train = _chat_with_bad_rows(tmp_path / "train.jsonl", BAD)
    with pytest.raises(DataError) as caught:
        load_recipe_data(load_recipe(_recipe(tmp_path, train)))
    error = caught.value
    assert [line.split(":")[1] for line in error.problems] == ["5", "9", "12"]
    assert "data.skip_invalid_rows: true" in error.hint and "27 valid rows" in error.hint


def test_with_the_key_bad_rows_are_dropped_reported_and_counted(tmp_path, tiny_tokenizer):
    train = _chat_with_bad_rows(tmp_path / "train.jsonl", BAD)
    evaluation = _chat_with_bad_rows(tmp_path / "eval.jsonl", {2: '{"messages": []}'})
    data = load_recipe_data(load_recipe(_recipe(tmp_path, train, evaluation, "  skip_invalid_rows: true\n")))
    kept = {example.line for example in data.train}
    assert kept == set(range(1, 31)) - set(BAD) and len(data.eval) == 29
    assert data.skipped_rows == 4 and data.skip_metrics() == {"data.skipped_rows": 4}
    warning = data.skip_warning()
    assert warning.startswith("data: skipped 4 invalid rows (skip_invalid_rows: true): ")
    assert f"{train}:5:" in warning and f"{train}:9:" in warning and "... and 1 more" in warning
    encoded = encode_rows(
        data, tiny_tokenizer, max_seq_len=64
    )  # how the runner records it: metrics, warnings
    assert encoded.metrics()["data.skipped_rows"] == 4 and warning in encoded.warnings


def test_with_the_key_and_a_clean_file_zero_is_recorded_and_nothing_warned(tmp_path, tiny_tokenizer):
    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(30, seed=4))
    data = load_recipe_data(load_recipe(_recipe(tmp_path, train, extra="  skip_invalid_rows: true\n")))
    assert data.skipped_rows == 0 and data.skip_warning() is None
    assert encode_rows(data, tiny_tokenizer, max_seq_len=64).metrics()["data.skipped_rows"] == 0
    without = load_recipe_data(load_recipe(_recipe(tmp_path, train)))
    assert without.skipped_rows is None
    assert "data.skipped_rows" not in encode_rows(without, tiny_tokenizer, max_seq_len=64).metrics()


def test_file_wide_errors_and_files_with_no_valid_row_still_refuse(tmp_path):
    key = "  skip_invalid_rows: true\n"
    no_valid = write_lines(tmp_path / "none.jsonl", ['{"messages": []}', '{"messages": 3}'])
    with pytest.raises(DataError, match="2 errors"):
        load_recipe_data(load_recipe(_recipe(tmp_path, no_valid, extra=key)))
    missing_column = write_lines(tmp_path / "cols.jsonl", [{"prompt": "a", "answer": "b"}] * 3)
    with pytest.raises(DataError) as caught:
        load_recipe_data(load_recipe(_recipe(tmp_path, missing_column, extra=key + "  format: completion\n")))
    assert "no row has a `completion` field" in caught.value.problems[0]


def test_pandalm_bad_rows_are_reported_and_skipped_only_when_asked(tmp_path):
    path = shared("pandalm-preference/pairs_majority.jsonl")
    lines = path.read_text().splitlines()
    assert [json.loads(lines[n - 1])["chosen"] for n in PANDALM_BAD] == [True] * 6 + [""]  # the file itself
    result = cli("data", "check", str(path), "--json")
    assert result.exit_code == 2
    errors = [p for p in json.loads(result.stdout)["problems"] if p["severity"] == "error"]
    assert [(p["line"], p["key"]) for p in errors] == [(n, "chosen") for n in PANDALM_BAD]
    human = " ".join(cli("data", "check", str(path)).output.split())
    assert f"{path}:140: chosen:" in human and f"{path}:248: chosen: `chosen` is empty" in human
    assert "unless the recipe sets data.skip_invalid_rows: true" in human
    with pytest.raises(DataError) as caught:
        load_recipe_data(load_recipe(_recipe(tmp_path, path)))
    assert [int(line.split(":")[1]) for line in caught.value.problems] == PANDALM_BAD
    assert "data.skip_invalid_rows: true" in caught.value.hint
    data = load_recipe_data(load_recipe(_recipe(tmp_path, path, extra="  skip_invalid_rows: true\n")))
    assert data.format == "preference" and data.files["train"]["rows"] == 894 - 7 == 887
    assert data.skipped_rows == 7
    assert [int(line.split(":")[1]) for line in data.skipped] == PANDALM_BAD
    kept = {e.line for e in data.train} | {e.line for e in data.eval}
    assert not kept & set(PANDALM_BAD)


def test_ftkit_run_refuses_with_exit_2_naming_the_key(tmp_path, tiny_model_dir):
    train = _chat_with_bad_rows(tmp_path / "train.jsonl", {5: BAD[5]})
    recipe = write_recipe(tmp_path / "r.yaml", tiny_model_dir, train)
    result = cli("run", str(recipe), "--registry", str(tmp_path / "reg"))
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert f"{train}:5:" in output and "data.skip_invalid_rows: true" in output
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("one_torch_thread")
def test_ftkit_run_with_the_key_trains_and_records_the_skipped_rows(tmp_path, tiny_model_dir):
    train = _chat_with_bad_rows(tmp_path / "train.jsonl", BAD)
    extra = "evaluation:\n  generate: 0\n"
    recipe = write_recipe(tmp_path / "r.yaml", tiny_model_dir, train, extra=extra)
    recipe.write_text(
        recipe.read_text().replace("  format: auto\n", "  format: auto\n  skip_invalid_rows: true\n")
    )
    result = cli(
        "run", str(recipe), "--registry", str(tmp_path / "reg"), "--json", "--set", "training.max_steps=2"
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["metrics"]["data.skipped_rows"] == 3
    shown = cli("show", record["run_id"], "--registry", str(tmp_path / "reg"), "--json")
    events = json.loads(shown.stdout)["events"]
    warnings = [e["message"] for e in events if e["kind"] == "warning"]
    assert any(w.startswith("data: skipped 3 invalid rows") and f"{train}:12:" in w for w in warnings)
