"""The loss-mask preview: which text of an example carries loss, by characters or by the model's tokens."""

from __future__ import annotations

from ftkit.data.formats import Example
from ftkit.data.preview import preview

CHAT = {
    "messages": [
        {"role": "user", "content": "what is the color of the fox"},
        {"role": "assistant", "content": "orange"},
    ]
}


def test_without_a_tokenizer_the_completion_is_the_trained_span():
    example = Example("f.jsonl", 4, {"prompt": "Q: 2+2?", "completion": " 4"})
    assert preview(example, None, 512, "completion") == {
        "line": 4,
        "segments": [["Q: 2+2?", False], [" 4", True]],
        "note": None,
        "by": "characters (no tokenizer)",
    }
    assert preview(example, None, 512, "all")["segments"] == [["Q: 2+2? 4", True]]


def test_with_a_tokenizer_only_the_reply_and_its_end_token_are_trained(tiny_tokenizer):
    shown = preview(Example("c.jsonl", 1, CHAT), tiny_tokenizer, 512, "completion")
    whole = tiny_tokenizer.apply_chat_template(CHAT["messages"], tokenize=False)
    assert "".join(text for text, _ in shown["segments"]) == whole
    assert "".join(text for text, trained in shown["segments"] if trained) == "orange<|im_end|>"
    assert shown["by"] == "tokens" and shown["ignore_index"] == -100
    assert shown["trained_tokens"] == len(tiny_tokenizer("orange<|im_end|>")["input_ids"])


def test_classification_and_preference_say_what_is_learned():
    label = preview(Example("l.jsonl", 2, {"text": "great film", "label": "pos"}), None, 512, "completion")
    assert label["segments"] == [["great film", False]] and "'pos'" in label["note"]
    pair = {"prompt": "Say hi.", "chosen": " Hi!", "rejected": " No."}
    shown = preview(Example("p.jsonl", 3, pair), None, 512, "completion")
    assert shown["segments"] == [["Say hi.", False], [" Hi!", True]] and "DPO" in shown["note"]
