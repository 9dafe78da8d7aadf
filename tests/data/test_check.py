"""`ftkit data check`: formats and file types, exit codes, statistics, preview, tokenizer counts, no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ftkit.data.check import check_file

from .conftest import cli, write_lines

CHAT = {
    "messages": [
        {"role": "user", "content": "what is the color of the fox"},
        {"role": "assistant", "content": "orange"},
    ]
}


def _rows(n: int, make) -> list[dict]:
    return [make(i) for i in range(n)]


FORMAT_ROWS = {
    "text": lambda i: {"text": f"row number {i} of some plain text"},
    "completion": lambda i: {"prompt": f"what is {i} plus one?", "completion": f" {i + 1}"},
    "instruction": lambda i: {"instruction": "add one", "input": f"{i}", "output": f"{i + 1} it is"},
    "chat": lambda i: {
        "system": "be brief",
        "messages": [
            {"role": "user", "content": f"count to {i}"},
            {"role": "assistant", "content": " ".join(map(str, range(i + 1)))},
        ],
    },
    "classification": lambda i: {
        "text": f"message number {i} here",
        "label": "even" if i % 2 == 0 else "odd",
    },
    "preference": lambda i: {"prompt": f"say {i}", "chosen": f"{i}, as asked", "rejected": "no, not today"},
}


@pytest.mark.parametrize("fmt", list(FORMAT_ROWS))
def test_each_format_is_detected_with_its_reason_and_checks_clean(tmp_path, fmt):
    path = write_lines(tmp_path / f"{fmt}.jsonl", _rows(12, FORMAT_ROWS[fmt]))
    result = cli("data", "check", str(path), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["format"] == fmt
    assert report["format_reason"].startswith("found")
    assert report["errors"] == report["warnings"] == 0, report["problems"]
    assert report["valid_rows"] == 12


def test_sharegpt_conversations_map_from_and_value(tmp_path):
    rows = [
        {"conversations": [{"from": "human", "value": f"hi {i}"}, {"from": "gpt", "value": f"hello {i}!"}]}
        for i in range(3)
    ]
    report = check_file(write_lines(tmp_path / "sg.jsonl", rows))
    assert report.format == "chat" and "ShareGPT" in report.format_reason
    assert report.examples[0].data["messages"] == [
        {"role": "user", "content": "hi 0"},
        {"role": "assistant", "content": "hello 0!"},
    ]


def _write_all_types(tmp_path: Path, rows: list[dict]) -> dict[str, Path]:
    import csv

    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset

    paths = {"jsonl": write_lines(tmp_path / "d.jsonl", rows)}
    paths["json-array"] = tmp_path / "array.json"
    paths["json-array"].write_text(json.dumps(rows, indent=2))
    paths["json-records"] = tmp_path / "records.json"
    paths["json-records"].write_text(json.dumps({key: [r[key] for r in rows] for key in rows[0]}))
    for name, delimiter in (("csv", ","), ("tsv", "\t")):
        paths[name] = tmp_path / f"d.{name}"
        with paths[name].open("w", newline="") as handle:
            writer = csv.DictWriter(handle, list(rows[0]), delimiter=delimiter)
            writer.writeheader()
            writer.writerows(rows)
    paths["parquet"] = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(rows), paths["parquet"])
    paths["datasets-folder"] = tmp_path / "saved"
    Dataset.from_list(rows).save_to_disk(str(paths["datasets-folder"]))
    return paths


def test_every_file_type_reads_the_same_examples(tmp_path):
    rows = [{"prompt": f"question {i}, with a comma", "completion": f"answer {i}"} for i in range(5)]
    for kind, path in _write_all_types(tmp_path, rows).items():
        report = check_file(path)
        assert report.format == "completion", kind
        assert not report.problems, (kind, report.problems)
        assert [e.data for e in report.examples] == rows, kind
    lines = [e.line for e in check_file(tmp_path / "array.json").examples]
    assert lines == [2, 6, 10, 14, 18]  # each element's opening line in the indented array


def test_columns_remap_and_question_answer_is_completion(tmp_path):
    rows = [{"q": f"what is {i}?", "a": f"it is {i}"} for i in range(3)]
    path = write_lines(tmp_path / "qa.jsonl", rows)
    assert cli("data", "check", str(path)).exit_code == 2  # unknown format
    result = cli("data", "check", str(path), "--columns", "prompt=q", "--columns", "completion=a", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["format"] == "completion"
    qa = write_lines(tmp_path / "gsm.jsonl", [{"question": "2+2?", "answer": "#### 4"}] * 1)
    report = check_file(qa)
    assert report.format == "completion" and report.examples[0].data == {
        "prompt": "2+2?",
        "completion": "#### 4",
    }


def test_classification_labels_map_to_ids_and_warn_on_one_class_and_imbalance(tmp_path):
    balanced = write_lines(tmp_path / "b.jsonl", _rows(10, FORMAT_ROWS["classification"]))
    report = check_file(balanced)
    assert report.stats["label_ids"] == {"even": 0, "odd": 1}
    one = write_lines(tmp_path / "one.jsonl", [{"text": f"row {i} text", "label": "x"} for i in range(4)])
    assert [p.code for p in check_file(one).warnings] == ["single-class"]
    skewed = [{"text": f"row {i} text", "label": "a" if i else "b"} for i in range(10)]
    assert [p.code for p in check_file(write_lines(tmp_path / "s.jsonl", skewed)).warnings] == [
        "class-imbalance"
    ]


def test_warnings_exit_0_unless_strict_then_1(tmp_path):
    rows = [{"text": "the same row again"}] * 3 + [{"text": "hi"}]
    path = write_lines(tmp_path / "w.jsonl", rows)
    result = cli("data", "check", str(path), "--json")
    assert result.exit_code == 0
    codes = [(p["line"], p["code"]) for p in json.loads(result.stdout)["problems"]]
    assert codes == [(2, "duplicate"), (3, "duplicate"), (4, "short")]
    assert cli("data", "check", str(path), "--strict").exit_code == 1
    clean = write_lines(
        tmp_path / "c.jsonl", [{"text": "one distinct row"}, {"text": "another distinct row"}]
    )
    assert cli("data", "check", str(clean), "--strict").exit_code == 0


def test_first_20_problems_shown_and_json_gives_all(tmp_path):
    rows = [{"text": "a fine first row"}] + [{"text": i} for i in range(30)]
    path = write_lines(tmp_path / "many.jsonl", rows)
    human = cli("data", "check", str(path))
    assert human.exit_code == 2
    assert human.stdout.count("must be a string") == 20
    assert "and 10 more" in human.stdout
    machine = json.loads(cli("data", "check", str(path), "--json").stdout)
    assert len(machine["problems"]) == 30 and machine["exit_code"] == 2


def test_errors_are_listed_before_warnings(tmp_path):
    rows = [{"text": "dup row text"}] * 25 + [{"text": 7}]
    result = cli("data", "check", str(write_lines(tmp_path / "m.jsonl", rows)))
    first_problem = [line for line in result.stdout.splitlines() if line.startswith("  ")][0]
    assert "error" in first_problem and ":26:" in first_problem


def test_statistics_histogram_estimate_and_preview_without_a_model(tmp_path):
    rows = [
        CHAT,
        {"messages": [{"role": "user", "content": "x" * 400}, {"role": "assistant", "content": "y" * 40}]},
    ]
    path = write_lines(tmp_path / "chat.jsonl", rows)
    result = cli("data", "check", str(path), "--max-seq-len", "64", "--json")
    report = json.loads(result.stdout)
    stats = report["stats"]
    assert stats["tokens_estimated"] is True and "estimated" in stats["token_count"]
    assert stats["truncated_rows"] == 1 and stats["truncated_tokens"] > 0
    assert [(p["line"], p["code"]) for p in report["problems"]] == [(2, "too-long")]
    assert "(estimated)" in report["problems"][0]["message"]
    assert stats["tokens_per_epoch"] == sum(
        min(n, 64) for n in (stats["length"]["min"], stats["length"]["max"])
    )
    assert "assumes" in stats["time_assumes"]
    assert sum(b["rows"] for b in stats["histogram"]) == 2
    trained = "".join(text for text, is_trained in report["preview"]["segments"] if is_trained)
    assert trained == "orange<|im_end|>"
    human = cli("data", "check", str(path), "--max-seq-len", "64")
    assert "Tokens per row" in human.stdout and "█" in human.stdout
    assert "Preview (line 1)" in human.stdout and "orange" in human.stdout
    assert "time per epoch" in human.stdout


def test_model_tokenizer_gives_exact_counts_and_a_token_preview(tmp_path, tiny_tokenizer, tiny_tokenizer_dir):
    from ftkit.data.render import render_example

    rows = [
        CHAT,
        {
            "messages": [
                {"role": "user", "content": "the cat " * 40},
                {"role": "assistant", "content": "red dog"},
            ]
        },
    ]
    path = write_lines(tmp_path / "chat.jsonl", rows)
    result = cli(
        "data", "check", str(path), "--model", str(tiny_tokenizer_dir), "--max-seq-len", "48", "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    stats = report["stats"]
    exact = [render_example(row, tiny_tokenizer, 10_000) for row in rows]
    assert stats["tokens_estimated"] is False
    assert stats["tokens"] == sum(len(r.input_ids) for r in exact)
    assert stats["truncated_rows"] == 1 and stats["truncated_tokens"] == len(exact[1].input_ids) - 48
    assert stats["dropped_rows"] == 1  # the assistant reply is past the cut: nothing left to train on
    assert [p["code"] for p in report["problems"]] == ["too-long"] and "dropped" in report["problems"][0][
        "message"
    ]
    assert report["preview"]["by"] == "tokens"
    trained = "".join(text for text, is_trained in report["preview"]["segments"] if is_trained)
    assert trained == "orange<|im_end|>"


def test_labels_option_declares_the_set(tmp_path):
    path = write_lines(tmp_path / "c.jsonl", _rows(6, FORMAT_ROWS["classification"]))
    assert cli("data", "check", str(path), "--labels", "even,odd").exit_code == 0
    result = cli("data", "check", str(path), "--labels", "even", "--json")
    assert result.exit_code == 2
    problems = json.loads(result.stdout)["problems"]
    assert {p["line"] for p in problems if p["code"] == "unknown-label"} == {2, 4, 6}


@pytest.mark.parametrize(
    "args",
    [
        ["/nonexistent/train.jsonl"],
        ["data.xlsx"],
        ["x.jsonl", "--columns", "prompt"],
        ["x.jsonl", "--format", "csv"],
        ["x.jsonl", "--train-on", "half"],
    ],
    ids=["missing-file", "unsupported-type", "bad-columns", "bad-format", "bad-train-on"],
)
def test_bad_invocations_exit_2_without_a_traceback(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.xlsx").write_bytes(b"PK")
    write_lines(tmp_path / "x.jsonl", [{"text": "fine text row"}])
    result = cli("data", "check", *args)
    assert result.exit_code == 2, result.output
    assert (
        "Traceback" not in result.output
        and result.exception is None
        or isinstance(result.exception, SystemExit)
    )


def test_hub_id_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    result = cli("data", "check", "nobody-here/no-such-dataset")
    assert result.exit_code == 2
    assert "Hub dataset" in result.stderr and "Traceback" not in result.output


def test_data_check_json_does_not_import_torch(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", _rows(5, FORMAT_ROWS["chat"]))
    code = (
        "import sys\n"
        "from ftkit.cli.app import main\n"
        f"sys.argv = ['ftkit', 'data', 'check', {str(path)!r}, '--json']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'datasets', 'pyarrow') if m in sys.modules)\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stderr
    assert json.loads(result.stdout)["format"] == "chat"
