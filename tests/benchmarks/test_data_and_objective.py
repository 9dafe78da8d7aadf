"""Benchmark data and objectives: no eval row repeats a training row, and the plain TRL side's
`--completion-only` trains on exactly the tokens ftkit's default (`train_on: completion`) trains on."""

from __future__ import annotations

import json

from benchmarks.assets import CHAT_FILE, content_key, data_split, distinct_rows
from benchmarks.plain_trl import MARKED_TEMPLATE

from tests.conftest import build_tokenizer, require_shared_data

# SmolLM2-135M-Instruct's own chat template, as its tokenizer ships it
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def test_distinct_rows_ignore_case_and_whitespace():
    rows = [
        {"messages": [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello."}]},
        {
            "messages": [
                {"role": "user", "content": " hi  THERE"},
                {"role": "assistant", "content": "hello.\n"},
            ]
        },
        {"messages": [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"}]},
        {"question": "1 + 1?", "answer": "2"},
        {"answer": "2", "question": "1 +  1?"},
    ]
    assert distinct_rows(rows) == [rows[0], rows[2], rows[3]]
    assert content_key(rows[3]) == content_key(rows[4])


def test_chat_split_has_no_eval_row_in_train_and_uses_distinct_conversations(tmp_path):
    require_shared_data(CHAT_FILE)
    source = [json.loads(line) for line in CHAT_FILE.read_text().splitlines() if line.strip()]
    distinct = {content_key({"messages": row["messages"]}) for row in source}
    assert len(source) == 2026 and len(distinct) == 899  # the corpus repeats conversations
    split = data_split("chat", 800, 99, tmp_path)  # every distinct conversation, on one side or the other
    train = [content_key(json.loads(line)) for line in split.train.read_text().splitlines()]
    evaluation = [content_key(json.loads(line)) for line in split.eval.read_text().splitlines()]
    assert len(train) == 800 and len(evaluation) == 99
    assert not set(train) & set(evaluation)
    assert set(train) | set(evaluation) == distinct


def test_plain_trl_completion_only_marks_the_tokens_ftkit_trains_on(tmp_path):
    from ftkit.data.render import render_example

    tokenizer = build_tokenizer(tmp_path)
    tokenizer.chat_template = SMOLLM2_TEMPLATE
    conversations = [
        [
            {"role": "user", "content": "what is the color of the cat"},
            {"role": "assistant", "content": "red"},
        ],
        [
            {"role": "user", "content": "what is the fox"},
            {"role": "assistant", "content": "the fox is blue"},
            {"role": "user", "content": "and the owl"},
            {"role": "assistant", "content": "green owl"},
        ],
        [
            {"role": "system", "content": "answer"},
            {"role": "user", "content": "cow"},
            {"role": "assistant", "content": "black"},
        ],  # fmt: skip
    ]
    for messages in conversations:
        own = tokenizer.apply_chat_template(messages, tokenize=False)
        assert tokenizer.apply_chat_template(messages, tokenize=False, chat_template=MARKED_TEMPLATE) == own
        marked = tokenizer.apply_chat_template(
            messages,
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
            chat_template=MARKED_TEMPLATE,
        )
        rendered = render_example({"messages": messages}, tokenizer, 512, "completion")
        assert marked["input_ids"] == rendered.input_ids
        assert marked["assistant_masks"] == [int(label != -100) for label in rendered.labels]
        assert sum(marked["assistant_masks"]) > 0
