"""A battery of malformed files, one problem each: `ftkit data check` exits 2 and names the right line."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import cli

OK_TEXT = '{"text": "a perfectly fine row of text"}'
OK_CHAT = '{"messages": [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "hello, friend"}]}'
OK_SGPT = (
    '{"conversations": [{"from": "human", "value": "hi there"}, {"from": "gpt", "value": "hello, friend"}]}'
)
OK_COMP = '{"prompt": "two plus two is", "completion": " four"}'
OK_INST = '{"instruction": "add the numbers", "input": "2 and 2", "output": "four"}'
OK_CLS = '{"text": "what a lovely day", "label": "pos"}'
OK_CLS2 = '{"text": "what an awful day", "label": "neg"}'
OK_PREF = '{"prompt": "say hi", "chosen": "hello there!", "rejected": "go away."}'


@dataclass
class Case:
    name: str
    suffix: str
    content: str | bytes | list
    line: int
    code: str
    args: list[str] = field(default_factory=list)


def chat(*turns: object) -> str:
    return json.dumps({"messages": list(turns)})


U = {"role": "user", "content": "a question here"}
A = {"role": "assistant", "content": "an answer here"}

CASES = [
    # --- JSON Lines: syntax and encoding
    Case(
        "jsonl-trailing-comma", ".jsonl", [OK_TEXT, OK_TEXT, '{"text": "x y z",}', OK_TEXT], 3, "invalid-json"
    ),
    Case(
        "jsonl-unterminated-string",
        ".jsonl",
        [OK_TEXT, '{"text": "never closed}', OK_TEXT],
        2,
        "invalid-json",
    ),
    Case("jsonl-bare-nan", ".jsonl", [OK_TEXT, '{"text": NaN}', OK_TEXT], 2, "nan"),
    Case("jsonl-bare-infinity", ".jsonl", [OK_TEXT, OK_TEXT, OK_TEXT, '{"text": -Infinity}'], 4, "nan"),
    Case(
        "jsonl-invalid-utf8",
        ".jsonl",
        b'{"text": "fine row here"}\n{"text": "caf\xe9 latin-1"}\n',
        2,
        "invalid-utf8",
    ),
    Case("jsonl-row-is-a-list", ".jsonl", [OK_TEXT, '["text", "in a list"]', OK_TEXT], 2, "not-an-object"),
    Case("jsonl-row-is-a-number", ".jsonl", [OK_TEXT, OK_TEXT, "42"], 3, "not-an-object"),
    Case("jsonl-two-objects-on-a-line", ".jsonl", [OK_TEXT, OK_TEXT + " " + OK_TEXT], 2, "invalid-json"),
    # --- text
    Case(
        "text-missing-field", ".jsonl", [OK_TEXT, OK_TEXT, '{"txt": "typo in the key"}'], 3, "missing-field"
    ),
    Case("text-empty", ".jsonl", [OK_TEXT, '{"text": "   "}'], 2, "empty-field"),
    Case("text-number", ".jsonl", [OK_TEXT, '{"text": 12345}'], 2, "wrong-type"),
    Case("text-null", ".jsonl", [OK_TEXT, OK_TEXT, OK_TEXT, '{"text": null}', OK_TEXT], 4, "missing-field"),
    # --- completion / instruction
    Case("completion-empty", ".jsonl", [OK_COMP, '{"prompt": "p", "completion": ""}'], 2, "empty-field"),
    Case(
        "completion-prompt-list",
        ".jsonl",
        [OK_COMP, '{"prompt": ["a"], "completion": "b c"}'],
        2,
        "wrong-type",
    ),
    Case(
        "instruction-missing-output",
        ".jsonl",
        [OK_INST, OK_INST, '{"instruction": "do it", "out": "x"}'],
        3,
        "missing-field",
        ["--format", "instruction"],
    ),
    Case(
        "instruction-input-number",
        ".jsonl",
        [OK_INST, '{"instruction": "add", "input": 7, "output": "x"}'],
        2,
        "wrong-type",
    ),
    # --- chat
    Case(
        "chat-unknown-role", ".jsonl", [OK_CHAT, chat({"role": "bot", "content": "hm"}, A)], 2, "unknown-role"
    ),
    Case(
        "chat-no-assistant",
        ".jsonl",
        [OK_CHAT, chat(U, {"role": "system", "content": "be nice"})],
        2,
        "no-assistant",
    ),
    Case("chat-ends-with-user", ".jsonl", [OK_CHAT, OK_CHAT, chat(U, A, U)], 3, "not-ending-in-assistant"),
    Case("chat-messages-string", ".jsonl", [OK_CHAT, '{"messages": "user: hi"}'], 2, "wrong-type"),
    Case("chat-messages-empty", ".jsonl", [OK_CHAT, '{"messages": []}'], 2, "empty-field"),
    Case(
        "chat-content-empty",
        ".jsonl",
        [OK_CHAT, chat(U, {"role": "assistant", "content": " "})],
        2,
        "empty-field",
    ),
    Case("chat-role-missing", ".jsonl", [OK_CHAT, chat({"content": "who am i"}, A)], 2, "missing-field"),
    Case("chat-turn-string", ".jsonl", [OK_CHAT, chat("user: hi", A)], 2, "wrong-type"),
    Case(
        "chat-content-number",
        ".jsonl",
        [OK_CHAT, chat(U, {"role": "assistant", "content": 4})],
        2,
        "wrong-type",
    ),
    Case(
        "chat-system-list",
        ".jsonl",
        [OK_CHAT, json.dumps({"system": ["x"], "messages": [U, A]})],
        2,
        "wrong-type",
    ),
    Case(
        "sharegpt-unknown-from",
        ".jsonl",
        [
            OK_SGPT,
            '{"conversations": [{"from": "narrator", "value": "once"}, {"from": "gpt", "value": "ok"}]}',
        ],
        2,
        "unknown-role",
    ),
    Case(
        "sharegpt-ends-with-human",
        ".jsonl",
        [OK_SGPT, '{"conversations": [{"from": "human", "value": "hi"}]}'],
        2,
        "no-assistant",
    ),
    # --- classification
    Case(
        "classification-null-label",
        ".jsonl",
        [OK_CLS, OK_CLS2, '{"text": "meh", "label": null}'],
        3,
        "missing-field",
    ),
    Case(
        "classification-undeclared-label",
        ".jsonl",
        [OK_CLS, OK_CLS2, '{"text": "so so", "label": "neutral"}'],
        3,
        "unknown-label",
        ["--labels", "pos,neg"],
    ),
    Case(
        "classification-label-list", ".jsonl", [OK_CLS, '{"text": "hmm", "label": ["pos"]}'], 2, "wrong-type"
    ),
    Case(
        "classification-empty-label",
        ".jsonl",
        [OK_CLS, OK_CLS2, '{"text": "hmm", "label": ""}'],
        3,
        "empty-field",
    ),
    # --- preference
    Case(
        "preference-missing-chosen",
        ".jsonl",
        [OK_PREF, '{"prompt": "p", "choosen": "typo", "rejected": "r"}'],
        2,
        "missing-field",
        ["--format", "preference"],
    ),
    Case(
        "preference-chosen-boolean",
        ".jsonl",
        [OK_PREF, '{"prompt": "true?", "chosen": true, "rejected": "yes"}'],
        2,
        "wrong-type",
    ),
    # --- CSV / TSV
    Case(
        "csv-extra-field",
        ".csv",
        "text,label\ngood text,pos\nstray,comma,neg\nother text,neg\n",
        3,
        "field-count",
    ),
    Case(
        "csv-missing-field",
        ".csv",
        "text,label\ngood text,pos\nbad text,neg\nno label here\n",
        4,
        "field-count",
    ),
    Case(
        "csv-unbalanced-quote",
        ".csv",
        'text,label\ngood text,pos\n"never closed,neg\nmore,pos\n',
        3,
        "field-count",
    ),
    Case("csv-empty-text", ".csv", "text,label\ngood text,pos\n,neg\n", 3, "empty-field"),
    Case(
        "tsv-no-tab",
        ".tsv",
        "Label\tSMS\nham\thello there\nspam no tab here\nham\tbye now\n",
        3,
        "field-count",
    ),
    Case(
        "tsv-empty-label",
        ".tsv",
        "label\ttext\nham\thello there\n\tempty label\nspam\twin money\n",
        3,
        "empty-field",
    ),
    # --- JSON documents
    Case(
        "json-missing-comma",
        ".json",
        '[\n  {"text": "one fine row"},\n  {"text": "two"}\n  {"text": "three"}\n]\n',
        4,
        "invalid-json",
    ),
    Case(
        "json-element-missing-field",
        ".json",
        '[\n  {"text": "one fine row"},\n  {"text": "two fine"},\n  {"txt": "three"}\n]\n',
        4,
        "missing-field",
    ),
    Case("json-bare-nan", ".json", '[\n  {"text": "one fine row"},\n  {"text": NaN}\n]\n', 3, "nan"),
    Case("json-not-an-array", ".json", "42\n", 1, "not-an-array"),
]


def _write(tmp_path: Path, case: Case) -> Path:
    path = tmp_path / f"{case.name}{case.suffix}"
    if isinstance(case.content, bytes):
        path.write_bytes(case.content)
    elif isinstance(case.content, list):
        path.write_text("".join(line + "\n" for line in case.content))
    else:
        path.write_text(case.content)
    return path


def test_the_battery_is_large_enough():
    assert len(CASES) >= 30
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_malformed_file_exits_2_at_the_right_line(tmp_path, case):
    path = _write(tmp_path, case)
    result = cli("data", "check", str(path), "--json", *case.args)
    assert result.exit_code == 2, result.output
    report = json.loads(result.stdout)
    errors = [p for p in report["problems"] if p["severity"] == "error"]
    assert [(p["line"], p["code"]) for p in errors] == [(case.line, case.code)], errors
    human = cli("data", "check", str(path), *case.args)
    assert human.exit_code == 2
    assert f"{path}:{case.line}:" in human.stdout.replace("\n", ""), human.stdout
    assert "Traceback" not in human.output


def _parquet(path: Path, columns: dict) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path)
    return path


@pytest.mark.parametrize(
    ("texts", "labels", "line", "code"),
    [
        (
            ["one fine row", "two fine", "three fine"],
            [0.0, float("nan"), 1.0],
            2,
            "nan",
        ),  # pandas' missing value
        (["one fine row", "two fine", None], [0, 1, 1], 3, "missing-field"),
    ],
    ids=["parquet-nan-label", "parquet-null-text"],
)
def test_malformed_parquet_names_the_record(tmp_path, texts, labels, line, code):
    path = _parquet(tmp_path / "rows.parquet", {"text": texts, "label": labels})
    result = cli("data", "check", str(path), "--json")
    assert result.exit_code == 2
    errors = [p for p in json.loads(result.stdout)["problems"] if p["severity"] == "error"]
    assert [(p["line"], p["code"]) for p in errors] == [(line, code)]


def test_every_fixture_file_fails_at_its_declared_line():
    """Files in fixtures/ declare their expected `line` and `code` in their name: NAME.L<line>.<code>.<ext>."""
    files = sorted(p for p in (Path(__file__).parent / "fixtures").iterdir() if p.name.count(".") >= 3)
    assert files
    for path in files:
        _, line, code, _ = path.name.split(".", 3)
        result = cli("data", "check", str(path), "--json")
        assert result.exit_code == 2, path
        errors = [p for p in json.loads(result.stdout)["problems"] if p["severity"] == "error"]
        assert (int(line[1:]), code) in [(p["line"], p["code"]) for p in errors], (path, errors)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the file has no rows"),
        ('{"color": "red", "size": 3}\n{"color": "blue", "size": 4}\n', "cannot tell the data format"),
    ],
    ids=["empty-file", "unknown-columns"],
)
def test_file_level_errors_exit_2(tmp_path, content, message):
    path = tmp_path / "data.jsonl"
    path.write_text(content)
    result = cli("data", "check", str(path))
    assert result.exit_code == 2
    assert message in result.stdout


def test_a_column_missing_everywhere_is_one_problem_naming_the_columns(tmp_path):
    path = tmp_path / "sms.tsv"
    path.write_text("Kind\tSMS\tExtra\nham\thello\tx\nspam\twin\ty\n")
    result = cli("data", "check", str(path), "--format", "classification", "--json")
    assert result.exit_code == 2
    problems = json.loads(result.stdout)["problems"]
    errors = [p for p in problems if p["severity"] == "error"]
    assert [(p["code"], p["key"], p["line"]) for p in errors] == [("missing-column", "label", 0)]
    assert "Extra, Kind, SMS" in problems[0]["message"]
    assert "--columns" in problems[0]["message"]
