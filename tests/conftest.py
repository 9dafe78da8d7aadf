"""Shared fixtures: a tiny Llama-style model and tokenizer built from a config (random weights, no network)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
COLORS = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white"]
ANIMALS = ["cat", "dog", "fox", "owl", "bee", "cow", "pig", "hen"]


def _corpus() -> list[str]:
    words = COLORS + ANIMALS + ["what", "is", "the", "color", "of", "user", "assistant", "system", "answer"]
    rng = random.Random(0)
    return [" ".join(rng.choice(words) for _ in range(12)) for _ in range(400)] + [
        "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,:;!?{}[]()\"'-_=+/\\#@"
    ]


def ci_requires_everything() -> bool:
    """True under CI=true: CI must run every test, so missing test inputs fail there instead of skipping."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_shared_data(path: Path) -> Path:
    """A file under ../shared/data (beside the repository), or a skip that says why; a failure under CI=true."""
    if path.exists():
        return path
    message = f"real data not present: {path} (see ../shared/data/README.md)"
    if ci_requires_everything():
        pytest.fail(f"{message}; CI=true, so a missing data folder fails instead of skipping", pytrace=False)
    pytest.skip(message)


def build_tokenizer(directory: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token=None))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(_corpus(), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        bos_token="<|endoftext|>",
        pad_token="<pad>",
    )
    tokenizer.chat_template = CHATML
    tokenizer.save_pretrained(directory)
    return tokenizer


def build_llama(
    directory: Path,
    vocab_size: int,
    seed: int = 0,
    hidden_size: int = 32,
    intermediate_size: int = 64,
    pad_token_id: int | None = 3,
):
    """A 2-layer Llama with random weights, saved to `directory`. The default widths (32, 64) are narrower than
    bitsandbytes' 4-bit block (64): 4-bit tests use 64/128, the widths real models have relative to the block.
    `pad_token_id=None` leaves the config without a pad, as many decoder checkpoints ship."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(directory)
    return model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A folder holding a 2-layer Llama (random weights) and a byte-level BPE tokenizer with a chat template."""
    directory = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = build_tokenizer(directory)
    build_llama(directory, len(tokenizer))
    return directory


@pytest.fixture
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core machine OpenMP spinning makes a step many times
    slower with 2 threads than with 1. Use with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def wide_model_dir(tmp_path_factory) -> Path:
    """The tiny Llama with layer widths a 4-bit base needs (hidden 64, intermediate 128: multiples of
    bitsandbytes' 64-value quantization block, as in real models), same tokenizer."""
    directory = tmp_path_factory.mktemp("tiny-llama-wide")
    tokenizer = build_tokenizer(directory)
    build_llama(directory, len(tokenizer), hidden_size=64, intermediate_size=128)
    return directory


def chat_rows(count: int, seed: int = 0) -> list[dict]:
    """A learnable chat task: the animal's colour is fixed by a lookup table."""
    rng = random.Random(seed)
    table = dict(zip(ANIMALS, COLORS, strict=True))
    rows = []
    for _ in range(count):
        animal = rng.choice(ANIMALS)
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": f"what is the color of the {animal}"},
                    {"role": "assistant", "content": table[animal]},
                ]
            }
        )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def chat_data(tmp_path) -> dict[str, Path]:
    return {
        "train": write_jsonl(tmp_path / "data" / "train.jsonl", chat_rows(64, seed=1)),
        "eval": write_jsonl(tmp_path / "data" / "eval.jsonl", chat_rows(16, seed=2)),
    }


def write_recipe(
    path: Path,
    model: Path | str,
    train: Path,
    eval_: Path | None = None,
    method: str = "lora",
    extra: str = "",
) -> Path:
    """Write the issue's minimal recipe shape, pointed at local files."""
    eval_line = f"  eval: {eval_}\n" if eval_ else ""
    method_block = (
        "method:\n  name: lora\n  r: 8\n  alpha: 16\n  target_modules: all-linear\n"
        if method == "lora"
        else f"method:\n  name: {method}\n"
    )
    path.write_text(
        f"name: tiny-demo\nmodel: {model}\ntask: causal-lm\ndata:\n  train: {train}\n{eval_line}  format: auto\n"
        f"{method_block}"
        "training:\n  epochs: 1\n  max_steps: 12\n  learning_rate: 1.0e-2\n  batch_size: 8\n  grad_accum: 1\n"
        "  max_seq_len: 64\n  seed: 42\n"
        f"output: {path.parent / 'outputs'}\n{extra}"
    )
    return path


@pytest.fixture
def recipe_file(tmp_path, tiny_model_dir, chat_data) -> Path:
    return write_recipe(tmp_path / "recipe.yaml", tiny_model_dir, chat_data["train"], chat_data["eval"])


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    """A 2-layer BERT encoder (the MiniLM architecture family) with the same tiny tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    directory = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = build_tokenizer(directory)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
    )
    BertModel(config).save_pretrained(directory)
    return directory


def classification_rows(count: int, seed: int = 0) -> list[dict]:
    """Warm colours vs cool colours, with distractor words: learnable in a few steps."""
    rng = random.Random(seed)
    warm, cool = ["red", "orange", "yellow"], ["blue", "green", "purple"]
    rows = []
    for _ in range(count):
        label = rng.choice(["warm", "cool"])
        colour = rng.choice(warm if label == "warm" else cool)
        rows.append({"text": f"the {rng.choice(ANIMALS)} is {colour}", "label": label})
    return rows
