"""`ftkit export`: merged exports load with plain transformers in a fresh interpreter that never imports ftkit and
give the unmerged model's logits; adapter exports load with peft; the model card; bad input refused whole."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.inference import load_trained_model
from ftkit.registry.records import RunRecord, now_iso
from ftkit.registry.store import RunRegistry
from tests.conftest import chat_rows, write_jsonl, write_recipe
from tests.generation_runs import generation_runs

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TEXT = "user: what is the color of the cat\nassistant: the cat is"

# Run in `python -I` (no PYTHONPATH, no user site, no cwd on the path): load the export with transformers (and
# peft for an adapter), print the logits of TEXT, and prove ftkit was never imported.
LOADER = """
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, kind, text = sys.argv[1], sys.argv[2], sys.argv[3]
torch.set_num_threads(1)
if kind == "adapter":
    from peft import AutoPeftModelForCausalLM
    model = AutoPeftModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
else:
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
tokenizer = AutoTokenizer.from_pretrained(folder)
ids = tokenizer(text, return_tensors="pt")["input_ids"]
with torch.no_grad():
    logits = model.eval()(input_ids=ids).logits[0]
assert not any(name == "ftkit" or name.startswith("ftkit.") for name in sys.modules), "ftkit was imported"
print(json.dumps({"logits": logits.tolist(), "template": tokenizer.chat_template}))
"""


def _run(args: list[str]):
    return CliRunner().invoke(app, args)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    """The shared lora and prompt runs, plus full, dora and ia3 runs in a registry of this module."""
    shared = generation_runs(tmp_path_factory, tiny_model_dir)
    root = tmp_path_factory.mktemp("export-runs")
    train = write_jsonl(root / "train.jsonl", chat_rows(32, seed=3))
    evaluation = write_jsonl(root / "eval.jsonl", chat_rows(8, seed=4))
    documents = {"lora": (shared.lora, shared.registry), "prompt": (shared.prompt, shared.registry)}
    for method in ("full", "dora", "ia3"):
        recipe = write_recipe(root / f"{method}.yaml", tiny_model_dir, train, evaluation, method)
        result = _run(["run", str(recipe), "--json", "--registry", str(root / "registry"), "--set",
                       f"output={root / 'outputs' / method}", "--set", "training.max_steps=4"])  # fmt: skip
        assert result.exit_code == 0, result.output
        documents[method] = (json.loads(result.stdout), root / "registry")
    return documents


def _reference_logits(output_dir: str):
    """The unmerged trained model's logits, as ftkit loads the run (the adapter on its base)."""
    import torch

    trained = load_trained_model(output_dir)
    ids = trained.tokenizer(TEXT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return trained.model(input_ids=ids).logits[0].float(), trained.tokenizer.chat_template


def _fresh_load(folder: Path, kind: str) -> dict:
    result = subprocess.run([sys.executable, "-I", "-c", LOADER, str(folder), kind, TEXT], capture_output=True,
                            text=True, cwd=folder.parent, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.mark.parametrize("method", ["lora", "full", "dora", "ia3"])
def test_a_merged_export_loads_without_ftkit_and_gives_the_unmerged_logits(
    runs, method, tmp_path, tiny_model_dir
):
    import torch

    document, registry = runs[method]
    out = tmp_path / "merged"
    result = _run(
        ["export", document["run_id"], "-o", str(out), "--merge", "--json", "--registry", str(registry)]
    )
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)["files"]
    assert "model.safetensors" in written and "config.json" in written and "README.md" in written
    assert not any(name.startswith("adapter_") for name in written)
    reference, template = _reference_logits(document["output_dir"])
    loaded = _fresh_load(out, "merged")
    difference = (torch.tensor(loaded["logits"]) - reference).abs().max().item()
    print(f"{method}: max |logit difference| merged export vs unmerged = {difference:.3g}")
    assert difference < 1e-4
    base = _fresh_load(tiny_model_dir, "merged")  # training changed the logits: the export is not the base
    assert (torch.tensor(base["logits"]) - reference).abs().max().item() > 1e-3
    assert loaded["template"] == template and template  # the chat template used in training travels along
    assert not list(tmp_path.glob(".merged.staging-*"))


def test_an_adapter_export_loads_with_peft_and_the_card_describes_the_run(runs, tmp_path):
    import torch

    document, registry = runs["lora"]
    out = tmp_path / "adapter"
    result = _run(["export", document["run_id"], "-o", str(out), "--adapter", "--registry", str(registry)])
    assert result.exit_code == 0, result.output
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    reference, _ = _reference_logits(document["output_dir"])
    loaded = _fresh_load(out, "adapter")
    assert (torch.tensor(loaded["logits"]) - reference).abs().max().item() < 1e-5

    card = (out / "README.md").read_text()
    header = yaml.safe_load(card.split("---\n")[1])
    resolved = yaml.safe_load(Path(document["output_dir"], "resolved.yaml").read_text())
    assert header["base_model"] == resolved["model"] and header["library_name"] == "peft"
    assert "ftkit" in header["tags"] and "lora" in header["tags"]
    train_file = resolved["data"]["train"]
    assert str(Path(train_file).resolve()) in {str(Path(path).resolve()) for path in header["datasets"]}
    import hashlib

    assert hashlib.sha256(Path(train_file).read_bytes()).hexdigest() in card  # the data's fingerprint
    assert "| 64 |" in card  # its row count
    assert f"ftkit rerun {document['run_id']}" in card and "## Resolved recipe" in card


def test_merging_prompt_tuning_is_refused_and_names_adapter(runs, tmp_path):
    document, registry = runs["prompt"]
    out = tmp_path / "out"
    result = _run(["export", document["run_id"], "-o", str(out), "--merge", "--registry", str(registry)])
    assert result.exit_code == 2
    assert "`prompt` cannot be merged" in result.output and "--adapter" in result.output
    assert not out.exists() and not list(tmp_path.iterdir())


def test_bad_input_is_refused_before_anything_is_written(runs, tmp_path):
    document, registry = runs["lora"]
    ref, reg = document["run_id"], ["--registry", str(registry)]
    both = _run(["export", ref, "-o", str(tmp_path / "a"), "--merge", "--adapter", *reg])
    assert both.exit_code == 2 and "--merge and --adapter" in both.output
    unknown = _run(["export", "no-such-run", "-o", str(tmp_path / "b"), *reg])
    assert unknown.exit_code == 2 and "no-such-run" in unknown.output
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    refused = _run(["export", ref, "-o", str(busy), *reg])
    assert refused.exit_code == 2 and "not empty" in refused.output and "--force" in refused.output
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]  # nothing half-written anywhere
    forced = _run(["export", ref, "-o", str(busy), "--force", *reg])
    assert forced.exit_code == 0, forced.output
    assert not (busy / "keep.txt").exists() and (busy / "model.safetensors").is_file()


def test_a_failed_run_without_weights_is_refused_and_nothing_is_written(runs, tmp_path):
    _, registry_path = runs["full"]
    empty = tmp_path / "never-saved"
    empty.mkdir()
    with RunRegistry.open(registry_path, create=False) as registry:
        run_id = registry.new_run_id()
        registry.commit_run(
            RunRecord(run_id=run_id, status="failed", name="broke", method="lora", model="tiny",
                      started_at=now_iso(), ended_at=now_iso(), output_dir=str(empty), error="out of memory"),
            artifacts=[],
        )  # fmt: skip
    out = tmp_path / "out"
    result = _run(["export", run_id, "-o", str(out), "--registry", str(registry_path)])
    assert result.exit_code == 2
    assert (
        f"run {run_id} broke (failed) has no saved weights" in result.output
        and "ftkit rerun" in result.output
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["never-saved"]


def test_a_gguf_based_run_exports_as_a_plain_model_and_the_card_says_so(tiny_model_dir, tmp_path):
    import torch

    from tests.test_inference_targets import write_tiny_gguf

    gguf_file = write_tiny_gguf(tiny_model_dir, tmp_path / "tiny.gguf")
    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(16, seed=5))
    recipe = write_recipe(tmp_path / "gguf.yaml", gguf_file, train)
    registry = ["--registry", str(tmp_path / "registry")]
    trained = _run(["run", str(recipe), "--json", *registry, "--set", "training.max_steps=3"])
    assert trained.exit_code == 0, trained.output
    document = json.loads(trained.stdout)
    out = tmp_path / "exported"
    result = _run(["export", document["run_id"], "-o", str(out), "--merge", *registry])
    assert result.exit_code == 0, result.output
    assert not list(out.glob("*.gguf")) and (out / "model.safetensors").is_file()
    reference, _ = _reference_logits(document["output_dir"])
    loaded = _fresh_load(out, "merged")
    assert (torch.tensor(loaded["logits"]) - reference).abs().max().item() < 1e-4
    assert "loaded from a GGUF file and is exported de-quantized" in (out / "README.md").read_text()
