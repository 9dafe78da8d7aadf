"""Tiny trained runs for the generation tests (`ftkit generate`, `ftkit chat`, ftkit.targets): one LoRA run and
one prompt-tuning run (decoded without a KV cache) in one registry, trained once per test session and shared."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from ftkit.cli.app import app
from tests.conftest import chat_rows, write_jsonl, write_recipe

_CACHE: dict[str, GenerationRuns] = {}


@dataclass
class GenerationRuns:
    root: Path
    registry: Path
    eval_file: Path
    lora: dict  # `ftkit run --json` documents: run_id, output_dir, ...
    prompt: dict


def generation_runs(tmp_path_factory, tiny_model_dir: Path) -> GenerationRuns:
    """The shared runs (trained on the first call of the session)."""
    if "runs" not in _CACHE:
        root = tmp_path_factory.mktemp("generation-runs")
        train = write_jsonl(root / "data" / "train.jsonl", chat_rows(64, seed=1))
        evaluation = write_jsonl(root / "data" / "eval.jsonl", chat_rows(8, seed=2))
        documents = {}
        for method in ("lora", "prompt"):
            recipe = write_recipe(root / f"{method}.yaml", tiny_model_dir, train, evaluation, method)
            result = CliRunner().invoke(
                app, ["run", str(recipe), "--json", "--registry", str(root / "registry"), "--set",
                      f"output={root / 'outputs' / method}", "--set", "training.max_steps=6"],
            )  # fmt: skip
            assert result.exit_code == 0, result.output
            documents[method] = json.loads(result.stdout)
        _CACHE["runs"] = GenerationRuns(
            root, root / "registry", evaluation, documents["lora"], documents["prompt"]
        )
    return _CACHE["runs"]
