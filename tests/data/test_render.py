"""Loss masks, the saved chat template, the runner's truncation counts, splits and fingerprints."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ftkit.data.check import check_file
from ftkit.data.dataset import deterministic_split, load_run_data
from ftkit.data.render import (
    DEFAULT_CHAT_TEMPLATE,
    IGNORE_INDEX,
    ensure_chat_template,
    loss_mask_segments,
    render_example,
    render_text,
)
from ftkit.errors import DataError

from .conftest import write_lines

CONVERSATION = {
    "messages": [
        {"role": "system", "content": "answer with a color"},
        {"role": "user", "content": "what is the color of the fox"},
        {"role": "assistant", "content": "orange"},
        {"role": "user", "content": "and the owl"},
        {"role": "assistant", "content": "white and black"},
    ]
}


def test_ignore_index_is_the_label_torch_cross_entropy_skips():
    import torch

    assert torch.nn.CrossEntropyLoss().ignore_index == IGNORE_INDEX
    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 5.0]]), torch.tensor([0, IGNORE_INDEX])
    only_first = torch.nn.functional.cross_entropy(logits[:1], labels[:1])
    assert torch.nn.functional.cross_entropy(logits, labels).item() == pytest.approx(only_first.item())


def test_only_assistant_replies_and_their_end_token_carry_loss(tiny_tokenizer):
    rendered = render_example(CONVERSATION, tiny_tokenizer, max_seq_len=512)
    end = tiny_tokenizer.convert_tokens_to_ids("<|im_end|>")
    trained = [i for i, label in enumerate(rendered.labels) if label != IGNORE_INDEX]
    # Labels equal the inputs wherever loss is taken (the trainer shifts them), -100 elsewhere.
    assert all(rendered.labels[i] == rendered.input_ids[i] for i in trained)
    segments = loss_mask_segments(rendered, tiny_tokenizer)
    assert [text for text, is_trained in segments if is_trained] == [
        "orange<|im_end|>",
        "white and black<|im_end|>",
    ]
    untrained = "".join(text for text, is_trained in segments if not is_trained)
    for piece in (
        "<|im_start|>system",
        "answer with a color",
        "<|im_start|>user",
        "what is the color of the fox",
        "and the owl",
        "<|im_start|>assistant\n",
    ):
        assert piece in untrained
    # Exactly the reply tokens and one <|im_end|> per reply; the newline after it is not trained.
    reply_tokens = [
        tiny_tokenizer(t, add_special_tokens=False)["input_ids"] for t in ("orange", "white and black")
    ]
    expected = reply_tokens[0] + [end] + reply_tokens[1] + [end]
    assert [rendered.input_ids[i] for i in trained] == expected
    assert (
        rendered.input_ids[trained[-1] + 1 :] == tiny_tokenizer("\n", add_special_tokens=False)["input_ids"]
    )


def test_train_on_all_and_completion_and_text_masks(tiny_tokenizer):
    everything = render_example(CONVERSATION, tiny_tokenizer, 512, train_on="all")
    assert everything.labels == everything.input_ids
    completion = render_example({"prompt": "the cat is", "completion": " red"}, tiny_tokenizer, 512)
    segments = loss_mask_segments(completion, tiny_tokenizer)
    assert segments == [("the cat is", False), (" red<|im_end|>", True)]
    text = render_example({"text": "red fox"}, tiny_tokenizer, 512)
    assert text.labels == text.input_ids and text.input_ids[-1] == tiny_tokenizer.eos_token_id


def test_the_character_mask_without_a_tokenizer_matches_the_token_mask(tiny_tokenizer):
    text, spans = render_text(CONVERSATION)
    assert text == tiny_tokenizer.apply_chat_template(CONVERSATION["messages"], tokenize=False)
    assert [text[a:b] for a, b in spans] == ["orange<|im_end|>", "white and black<|im_end|>"]
    assert render_text(CONVERSATION, train_on="all")[1] == [(0, len(text))]


def test_truncation_keeps_the_mask_aligned_and_counts_what_is_cut(tiny_tokenizer):
    full = render_example(CONVERSATION, tiny_tokenizer, 10_000)
    cut = render_example(CONVERSATION, tiny_tokenizer, 20)
    assert cut.input_ids == full.input_ids[:20] and cut.labels == full.labels[:20]
    assert cut.truncated_tokens == len(full.input_ids) - 20


def test_the_chat_template_used_in_training_is_saved_with_the_model(tmp_path, tiny_tokenizer):
    from transformers import AutoTokenizer

    from ftkit.methods.base import Method
    from ftkit.train.runner import save_output

    class NoWeights(Method):  # the tokenizer is under test; a real method would also write weights
        name = "no-weights"
        description = "saves nothing"

        def save(self, model, output_dir):
            pass

    tokenizer = AutoTokenizer.from_pretrained(_save(tiny_tokenizer, tmp_path / "base"))
    tokenizer.chat_template = None  # a base model's tokenizer: ftkit adds its default template
    assert ensure_chat_template(tokenizer) is True
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    save_output(NoWeights(), None, tokenizer, output_dir, {"model": "tiny"}, None)
    reloaded = AutoTokenizer.from_pretrained(output_dir)
    assert reloaded.chat_template == DEFAULT_CHAT_TEMPLATE
    messages = CONVERSATION["messages"][:3]
    assert reloaded.apply_chat_template(messages, tokenize=False) == tokenizer.apply_chat_template(
        messages, tokenize=False
    )


def _save(tokenizer, directory: Path) -> Path:
    tokenizer.save_pretrained(directory)
    return directory


def test_encoding_counts_truncated_rows_like_the_checker(tmp_path, tiny_tokenizer):
    from ftkit.data.dataset import RunData
    from ftkit.data.encode import encode_rows

    long_reply = {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "the red fox " * 20}]
    }
    dropped = {
        "messages": [{"role": "user", "content": "the cat " * 40}, {"role": "assistant", "content": "red"}]
    }
    short = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    path = write_lines(tmp_path / "train.jsonl", [short, long_reply, dropped])
    report = check_file(path, tokenizer=tiny_tokenizer, max_seq_len=32)
    data = RunData("chat", "test", report.examples, [])
    encoded = encode_rows(data, tiny_tokenizer, max_seq_len=32, train_on="completion")
    assert len(encoded.train) == 2
    metrics = encoded.metrics()
    assert metrics["data.truncated_rows"] == 1  # the long reply, cut but still trained
    assert metrics["data.dropped_rows"] == 1  # the long prompt: nothing trainable left
    assert metrics["data.train_rows"] == 2 and metrics["data.eval_rows"] == 0
    long_cut = render_example(long_reply, tiny_tokenizer, 10_000)
    assert metrics["data.truncated_tokens"] == len(long_cut.input_ids) - 32
    assert report.stats["truncated_rows"] == 2 and report.stats["dropped_rows"] == 1
    assert encoded.warnings == [
        f"1 train rows longer than max_seq_len=32 were truncated ({len(long_cut.input_ids) - 32} tokens lost)",
        "1 train rows had no trainable tokens after truncation and were dropped",
    ]


def test_deterministic_split_by_seed():
    items = list(range(100))
    train, held = deterministic_split(items, 0.2, seed=7)
    assert (train, held) == deterministic_split(items, 0.2, seed=7)
    assert held != deterministic_split(items, 0.2, seed=8)[1]
    assert len(held) == 20 and sorted(train + held) == items and not set(train) & set(held)
    assert len(deterministic_split(list(range(3)), 0.01, seed=0)[1]) == 1  # at least one eval row
    with pytest.raises(DataError):
        deterministic_split([1, 2], 0.99, seed=0)


def test_run_data_fingerprints_and_split(tmp_path):
    rows = [{"text": f"row number {i}"} for i in range(30)]
    path = write_lines(tmp_path / "train.jsonl", rows)
    data = load_run_data(path, None, "auto", {}, 0.2, seed=3)
    assert data.files["train"] == {
        "path": str(path),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "rows": 30,
    }
    assert len(data.eval) == 6 and "seed 3" in data.split
    again = load_run_data(path, None, "auto", {}, 0.2, seed=3)
    assert [e.line for e in again.eval] == [e.line for e in data.eval]


def test_run_data_refuses_bad_rows_with_located_errors(tmp_path):
    path = write_lines(tmp_path / "train.jsonl", [{"text": "fine text row"}, "{broken", {"text": ""}])
    with pytest.raises(DataError) as caught:
        load_run_data(path, None, "auto", {}, None, seed=0)
    assert f"{path}:2:" in caught.value.problems[0] and "invalid JSON" in caught.value.problems[0]
    assert f"{path}:3:" in caught.value.problems[1] and "empty" in caught.value.problems[1]
    assert "ftkit data check" in caught.value.hint


def test_run_data_keeps_the_checkers_warnings(tmp_path):
    path = write_lines(tmp_path / "train.jsonl", [{"text": "the same text"}] * 3)
    data = load_run_data(path, None, "auto", {}, None, seed=0)
    assert data.warnings == [f"{path}:2: exact duplicate of line 1", f"{path}:3: exact duplicate of line 1"]


def test_dry_run_refuses_bad_data_exit_2(tmp_path):
    from .conftest import cli

    path = write_lines(tmp_path / "train.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}] * 2)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"model: {tmp_path}\ntask: causal-lm\ndata:\n  train: {path}\nmethod:\n  name: lora\n"
        f"output: {tmp_path / 'out'}\n"
    )
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    result = cli("run", str(recipe), "--dry-run")
    assert result.exit_code == 2, result.output
    assert f"{path}:1:" in result.stderr and f"{path}:2:" in result.stderr
    assert "no assistant turn" in result.stderr
