"""Fixtures for the method proofs: each method trains once per session on the tiny Llama, then many tests
inspect the same run (metrics, saved output, reloads)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import chat_rows, write_jsonl

ALL_METHODS = ("lora", "dora", "qlora", "prefix", "prompt", "ia3", "full", "freeze")
MERGEABLE = ("lora", "dora", "qlora", "ia3")

# Per-method recipe blocks for the tiny model: a few steps at a learning rate high enough to move the loss.
METHOD_BLOCKS = {
    "lora": ("  r: 8\n  alpha: 16\n", 1e-2),
    "dora": ("  r: 8\n  alpha: 16\n", 1e-2),
    "qlora": ("  r: 8\n  alpha: 16\n  double_quant: true\n", 1e-2),
    "prefix": ("  num_virtual_tokens: 8\n", 3e-2),
    "prompt": ("  num_virtual_tokens: 8\n  init_text: what is the color\n", 1e-1),
    "ia3": ("", 5e-2),
    "full": ("", 1e-2),
    "freeze": ("  layers: 1\n  modules: [lm_head]\n", 1e-2),
}


@dataclass
class MethodRun:
    method: str
    result: Any  # RunResult
    events: list[dict[str, Any]]
    output_dir: Path
    recipe: Path

    @property
    def metrics(self) -> dict[str, Any]:
        return self.result.metrics


def method_recipe(
    directory: Path, model_dir: Path, data: dict[str, Path], method: str, **training: Any
) -> Path:
    options, learning_rate = METHOD_BLOCKS[method]
    settings = {
        "epochs": 1,
        "max_steps": 12,
        "learning_rate": learning_rate,
        "batch_size": 8,
        "max_seq_len": 64,
    }
    settings.update(training)
    path = directory / f"{method}.yaml"
    path.write_text(
        f"name: proof-{method}\nmodel: {model_dir}\ntask: causal-lm\n"
        f"data:\n  train: {data['train']}\n  eval: {data['eval']}\n"
        f"method:\n  name: {method}\n{options}"
        "training:\n"
        + "".join(f"  {key}: {value}\n" for key, value in settings.items())
        + "evaluation:\n  generate: 2\n  max_new_tokens: 6\n"
        f"output: {directory / 'outputs'}\n"
    )
    return path


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """The tiny model gains nothing from threads, and on a busy 2-core machine OpenMP spinning makes a training
    step ~20x slower with 2 threads than with 1."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def method_data(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("method-data")
    return {
        "train": write_jsonl(directory / "train.jsonl", chat_rows(64, seed=1)),
        "eval": write_jsonl(directory / "eval.jsonl", chat_rows(16, seed=2)),
    }


@pytest.fixture(scope="session")
def train_method(tmp_path_factory, wide_model_dir, method_data):
    """train_method(name) -> MethodRun, trained once per session per method, on the tiny Llama with real-model
    widths relative to the 4-bit block (so QLoRA quantizes every layer it would on a real model)."""
    from ftkit.recipe.load import load_recipe
    from ftkit.train.callbacks import SilentReporter
    from ftkit.train.runner import execute_run

    cache: dict[str, MethodRun] = {}

    def train(method: str) -> MethodRun:
        if method not in cache:
            directory = tmp_path_factory.mktemp(f"run-{method}")
            # prefix asks for gradient checkpointing, to prove the automatic (and announced) switch-off
            extra = {"gradient_checkpointing": "true"} if method == "prefix" else {}
            recipe = method_recipe(directory, wide_model_dir, method_data, method, **extra)
            reporter = SilentReporter()
            result = execute_run(load_recipe(recipe), f"run-{method}", f"proof-{method}", reporter)
            assert result.status == "succeeded", result.error
            cache[method] = MethodRun(method, result, reporter.events, Path(result.output_dir), recipe)
        return cache[method]

    return train
