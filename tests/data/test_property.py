"""Property: whatever rows hold, the checker returns a report and never raises."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftkit.data.readers import Row, read_rows
from ftkit.data.validate import check_rows

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
    "chosen",
    "rejected",
    "system",
    "role",
    "content",
    "from",
    "value",
    "question",
    "answer",
    "Label",
]

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
    ["auto", "text", "completion", "instruction", "chat", "classification", "preference", "nope"]
)


class _TinyTokenizer:
    """A stand-in tokenizer (one token per character) so the tokenized path runs without transformers."""

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


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.lists(rows, max_size=8),
    fmt=formats,
    columns=st.dictionaries(st.sampled_from(FIELDS), st.sampled_from(FIELDS), max_size=2),
    labels=st.none() | st.lists(st.text(max_size=4), max_size=3),
    max_len=st.integers(1, 64),
    tokenize=st.booleans(),
)
def test_checker_never_raises(data, fmt, columns, labels, max_len, tokenize):
    report = check_rows(
        "random.jsonl",
        [Row(i + 1, value) for i, value in enumerate(data)],
        None,
        fmt,
        columns,
        labels=labels,
        tokenizer=_TinyTokenizer() if tokenize else None,
        max_seq_len=max_len,
    )
    assert report.exit_code() in (0, 2)
    assert len(report.examples) + len({p.line for p in report.errors if p.line}) >= 0
    json.dumps(report.to_dict(), default=str)  # the --json output always serialises
    for problem in report.problems:
        assert problem.severity in ("error", "warning") and str(problem)


@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(
        st.text(max_size=40) | json_values.map(lambda v: json.dumps(v, allow_nan=True)), max_size=8
    )
)
def test_reading_random_jsonl_lines_never_raises(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("prop") / "rows.jsonl"
    path.write_text(
        "\n".join(line.replace("\n", " ") for line in lines) + "\n", encoding="utf-8", errors="surrogatepass"
    )
    found, problems = read_rows(path)
    report = check_rows(str(path), found, problems)
    assert report.rows == len(found)
