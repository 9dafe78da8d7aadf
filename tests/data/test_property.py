"""Properties of the data checker, each compared with an expectation the test computes on its own.

Rows are generated valid or with a planted defect whose error code and key the test knows, so the checker must
report exactly the planted lines; token statistics must equal sums over lengths the test counts itself; the
reader must keep every line's number. Fully random input must never raise nor lose a row silently.
"""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from ftkit.data.check import check_rows
from ftkit.data.readers import Row, read_rows

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
words = st.from_regex(r"[A-Za-z][A-Za-z ]{0,11}", fullmatch=True)  # never empty after strip


class _CharTokenizer:
    """One token per character, `</s>` as eos (4 tokens) and no bos: token counts are lengths of strings."""

    eos_token = "</s>"
    bos_token_id = None
    chat_template = "set"

    def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False, **_):
        out = {"input_ids": [ord(c) % 1000 for c in text]}
        if return_offsets_mapping:
            out["offset_mapping"] = [(i, i + 1) for i in range(len(text))]
        return out

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        text = "".join(f"[{m['role']}]{m['content']}</s>" for m in messages)
        return text + ("[assistant]" if add_generation_prompt else "")


# -- planted defects: exit code and located errors ---------------------------------------------------------------


@st.composite
def valid_chats(draw) -> dict:
    pairs = draw(st.integers(1, 3))
    messages = []
    for _ in range(pairs):
        messages += [{"role": "user", "content": draw(words)}, {"role": "assistant", "content": draw(words)}]
    return {"messages": messages}


def _set(row: dict, index: int, key: str, value) -> dict:
    messages = [dict(turn) for turn in row["messages"]]
    messages[index][key] = value
    return {"messages": messages}


# defect name -> (make the bad row from a valid one, expected (code, key))
DEFECTS = {
    "blank-reply": (
        lambda r: _set(r, -1, "content", " \t"),
        lambda r: ("empty-field", f"messages[{len(r['messages']) - 1}].content"),
    ),
    "unknown-role": (lambda r: _set(r, 0, "role", "robot"), lambda r: ("unknown-role", "messages[0].role")),
    "number-content": (lambda r: _set(r, 0, "content", 7), lambda r: ("wrong-type", "messages[0].content")),
    "nan-content": (lambda r: _set(r, 0, "content", float("nan")), lambda r: ("nan", "messages[0].content")),
    "ends-with-user": (
        lambda r: {"messages": [*r["messages"], {"role": "user", "content": "and then?"}]},
        lambda r: ("not-ending-in-assistant", "messages"),
    ),
    "no-assistant": (lambda r: {"messages": r["messages"][:1]}, lambda r: ("no-assistant", "messages")),
    "turns-not-a-list": (lambda r: {"messages": "hello"}, lambda r: ("wrong-type", "messages")),
    "no-turns": (lambda r: {"messages": []}, lambda r: ("empty-field", "messages")),
    "not-an-object": (lambda r: ["a", "list"], lambda r: ("not-an-object", None)),
    "no-messages-field": (lambda r: {"text": "hello there"}, lambda r: ("missing-field", "messages")),
}
planted_rows = st.tuples(valid_chats(), st.none() | st.sampled_from(sorted(DEFECTS)))


def _expected_warnings(valid: list[tuple[int, dict]], rows: list[Row]) -> set[tuple[int, str]]:
    """Exact duplicates of an earlier valid row, rows with under 10 characters of content, and a column the
    chat format does not read (a planted `text` field) reported once for the file."""
    expected, seen = set(), []
    if any(isinstance(r.data, dict) and set(r.data) - {"messages"} for r in rows):
        expected.add((0, "unused-column"))
    for line, row in valid:
        if row["messages"] in seen:
            expected.add((line, "duplicate"))
        seen.append(row["messages"])
        if sum(len(turn["content"].strip()) for turn in row["messages"]) < 10:
            expected.add((line, "short"))
    return expected


_HELLO = {"messages": [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi there"}]}


@SETTINGS
@given(planted=st.lists(planted_rows, max_size=8), fmt=st.sampled_from(["chat", "auto"]))
@example(planted=[(_HELLO, "no-messages-field")] * 3, fmt="chat")  # every row lacks the column: one problem
@example(planted=[(_HELLO, "no-messages-field"), (_HELLO, None)], fmt="chat")  # one row lacks it: located
def test_checker_reports_exactly_the_planted_bad_lines(planted, fmt):
    rows, valid, bad = [], [], []
    for line, (good, defect) in enumerate(planted, start=1):
        if defect is None:
            rows.append(Row(line, good))
            valid.append((line, good))
        else:
            make, expect = DEFECTS[defect]
            rows.append(Row(line, make(good)))
            bad.append((line, *expect(good)))
    # auto detects chat from a `messages` column; without one it is another question (not this property's)
    assume(fmt == "chat" or any(isinstance(r.data, dict) and "messages" in r.data for r in rows))
    if (
        len(rows) >= 2
        and all(code == "missing-field" and key == "messages" for _, code, key in bad)
        and (len(bad) == len(rows))
    ):
        bad = [(0, "missing-column", "messages")]  # one problem about the file's columns, not one per row
    if not rows:
        bad = [(0, "empty-file", None)]

    report = check_rows("planted.jsonl", rows, None, fmt)

    assert report.format == "chat"
    assert sorted((p.line, p.code, p.key) for p in report.errors) == sorted(bad, key=lambda b: b[0])
    assert [example.line for example in report.examples] == [line for line, _ in valid]
    assert {(p.line, p.code) for p in report.warnings} == _expected_warnings(valid, rows)
    assert report.exit_code() == (2 if bad else 0)
    assert report.exit_code(strict=True) == (2 if bad else 1 if report.warnings else 0)
    assert json.loads(json.dumps(report.to_dict()))["valid_rows"] == len(valid)


# -- token statistics --------------------------------------------------------------------------------------------

completions = st.tuples(
    st.from_regex(r"[A-Za-z ,.?]{0,30}", fullmatch=True),
    st.from_regex(r"[A-Za-z][a-z ,.]{0,30}", fullmatch=True),
)


@SETTINGS
@given(pairs=st.lists(completions, min_size=1, max_size=8), max_len=st.integers(1, 80))
def test_token_statistics_equal_sums_over_counted_lengths(pairs, max_len):
    rows = [Row(line, {"prompt": p, "completion": c}) for line, (p, c) in enumerate(pairs, start=1)]
    # one token per character; the rendered text is prompt + completion + "</s>", loss on all but the prompt
    totals = [len(p) + len(c) + len("</s>") for p, c in pairs]
    trained = [max(0, min(total, max_len) - len(p)) for total, (p, _) in zip(totals, pairs, strict=True)]

    report = check_rows(
        "pairs.jsonl", rows, None, "completion", tokenizer=_CharTokenizer(), max_seq_len=max_len
    )

    stats = report.stats
    assert not report.errors and stats["tokens_estimated"] is False
    assert stats["tokens"] == sum(totals)
    assert stats["trained_tokens"] == sum(trained)
    assert stats["truncated_rows"] == sum(total > max_len for total in totals)
    assert stats["truncated_tokens"] == sum(max(0, total - max_len) for total in totals)
    assert stats["tokens_per_epoch"] == sum(min(total, max_len) for total in totals)
    assert stats["dropped_rows"] == sum(t > max_len and k == 0 for t, k in zip(totals, trained, strict=True))
    assert (stats["length"]["min"], stats["length"]["max"]) == (min(totals), max(totals))
    assert sum(b["rows"] for b in stats["histogram"]) == len(pairs)
    too_long = [line for line, total in enumerate(totals, start=1) if total > max_len]
    assert sorted(p.line for p in report.warnings if p.code == "too-long") == too_long

    estimated = check_rows("pairs.jsonl", rows, None, "completion", max_seq_len=max_len)
    assert estimated.stats["tokens_estimated"] is True
    assert estimated.stats["tokens"] == sum(math.ceil((len(p) + len(c)) / 4) for p, c in pairs)


# -- reading: every line keeps its number ------------------------------------------------------------------------

objects = st.dictionaries(st.text(max_size=6), st.text(max_size=10) | st.integers(), max_size=3)
no_newline = st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)), max_size=20)
jsonl_lines = st.one_of(
    objects.map(lambda o: ("row", o, json.dumps(o, ensure_ascii=False).encode())),
    no_newline.map(lambda t: ("invalid-json", None, ("{oops " + t).encode())),
    st.just(("nan", None, b'{"x": NaN}')),
    st.just(("invalid-utf8", None, b'{"x": "\xff"}')),
    st.sampled_from([b"", b"   ", b"\t"]).map(lambda b: ("blank", None, b)),
)


@SETTINGS
@given(lines=st.lists(jsonl_lines, max_size=10))
def test_reader_keeps_every_line_number(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("prop") / "rows.jsonl"
    path.write_bytes(b"".join(raw + b"\n" for _, _, raw in lines))

    rows, problems = read_rows(path)

    numbered = list(enumerate(lines, start=1))
    assert [(r.line, r.data) for r in rows] == [(n, o) for n, (kind, o, _) in numbered if kind == "row"]
    expected = [(n, kind) for n, (kind, _, _) in numbered if kind not in ("row", "blank")]
    assert [(p.line, p.code) for p in problems] == expected
    assert check_rows(str(path), rows, problems).rows == len(rows)


# -- anything at all: never raises, never loses a row ------------------------------------------------------------

FIELDS = [
    "text",
    "prompt",
    "completion",
    "instruction",
    "input",
    "output",
    "messages",
    "conversations",
    "label",
]
FIELDS += ["chosen", "rejected", "system", "role", "content", "from", "value", "question", "answer", "Label"]
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=20,
)
turns = st.lists(
    st.dictionaries(
        st.sampled_from(["role", "content", "from", "value"]),
        st.sampled_from(["user", "assistant", "system", "human", "gpt", "tool", "", " "]) | json_values,
        max_size=3,
    ),
    max_size=4,
)
rows = st.dictionaries(st.sampled_from(FIELDS), json_values | turns, max_size=5) | json_values
formats = st.sampled_from(
    ["auto", "text", "completion", "instruction", "chat", "classification", "preference"]
)


@SETTINGS
@given(
    data=st.lists(rows, max_size=8),
    fmt=formats | st.just("nope"),
    columns=st.dictionaries(st.sampled_from(FIELDS), st.sampled_from(FIELDS), max_size=2),
    labels=st.none() | st.lists(st.text(max_size=4), max_size=3),
    max_len=st.integers(1, 64),
    tokenize=st.booleans(),
)
def test_any_rows_give_a_report_that_accounts_for_every_row(data, fmt, columns, labels, max_len, tokenize):
    report = check_rows(
        "random.jsonl",
        [Row(i + 1, value) for i, value in enumerate(data)],
        None,
        fmt,
        columns,
        labels=labels,
        tokenizer=_CharTokenizer() if tokenize else None,
        max_seq_len=max_len,
    )
    example_lines = [example.line for example in report.examples]
    assert len(example_lines) == len(set(example_lines)) and set(example_lines) <= set(
        range(1, len(data) + 1)
    )
    error_lines = {p.line for p in report.errors}
    if 0 not in error_lines:  # with no file-wide error, each row is an example or has an error at its line
        assert set(range(1, len(data) + 1)) <= set(example_lines) | error_lines
    if fmt == "nope" and data:
        assert report.exit_code() == 2 and "unknown-format" in {p.code for p in report.errors}
    assert report.rows == len(data)
    assert json.loads(json.dumps(report.to_dict(), default=str))["valid_rows"] == len(example_lines)
    for problem in report.problems:
        assert problem.severity in ("error", "warning") and problem.message.strip()
