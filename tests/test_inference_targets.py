"""ftkit.targets (what a model reference names, loaded) and the generation API (sampling, batches, streaming) on
tiny models: a plain folder, a run output, registry runs (LoRA, and prompt tuning decoded without a KV cache)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ftkit.errors import ModelError, RegistryError
from ftkit.inference import generate, generate_batch, load_trained_model, stream
from ftkit.registry.records import RunRecord, now_iso
from ftkit.registry.store import RunRegistry
from ftkit.targets import load_target, locate_target
from tests.generation_runs import generation_runs

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PROMPTS = ["what is the color of the cat", "what is the color of the owl", "hi"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    return generation_runs(tmp_path_factory, tiny_model_dir)


def _registry(runs) -> RunRegistry:
    return RunRegistry.open(runs.registry, create=False)


def reference_greedy(model_dir: Path, prompt: str, max_new_tokens: int = 12) -> str:
    """Greedy answer straight from transformers, token by token with argmax: the independent reference."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)  # fmt: skip
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    new = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            token = int(model(input_ids=ids).logits[0, -1].argmax())
            new.append(token)
            if token in (tokenizer.eos_token_id, tokenizer.pad_token_id):
                break
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return tokenizer.decode(new, skip_special_tokens=True)


def test_a_plain_model_folder_loads_and_answers_as_transformers_does(tiny_model_dir):
    target = load_target(tiny_model_dir)
    assert (target.task, target.run_id, target.labels, target.use_cache) == ("causal-lm", None, None, True)
    assert target.source.kind == "model-folder" and target.max_length == 256
    for prompt in PROMPTS[:2]:
        assert generate(target, prompt, 12) == reference_greedy(tiny_model_dir, prompt)


def test_references_locate_runs_folders_and_hub_ids_without_loading(runs, tiny_model_dir, tmp_path):
    registry = _registry(runs)
    with registry:
        lora_id, prompt_id = runs.lora["run_id"], runs.prompt["run_id"]
        by_id = locate_target(lora_id, registry)
        assert (by_id.kind, by_id.run_id, by_id.task) == ("run", lora_id, "causal-lm")
        assert Path(by_id.path) == Path(runs.lora["output_dir"]).resolve()
        assert by_id.base_model == str(tiny_model_dir) and by_id.data_format == "chat"
        assert locate_target("@latest", registry).run_id == prompt_id  # recorded second
        assert locate_target(lora_id[:17], registry).run_id == lora_id  # a unique prefix
        hub = locate_target("HuggingFaceTB/SmolLM2-135M-Instruct", registry)  # not downloaded: only located
        assert (hub.kind, hub.path) == ("hub", "HuggingFaceTB/SmolLM2-135M-Instruct")
        with pytest.raises(RegistryError, match="no-such-run"):
            locate_target("no-such-run", registry)
    output = locate_target(runs.lora["output_dir"])
    assert (output.kind, output.run_id) == ("run-output", None)
    with pytest.raises(ModelError, match="no such GGUF file"):
        locate_target(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelError, match="not a model folder"):
        locate_target(str(tmp_path))


def test_a_registry_run_loads_its_method_and_decoding(runs):
    with _registry(runs) as registry:
        lora = load_target(runs.lora["run_id"], registry)
        prompt = load_target(runs.prompt["run_id"], registry)
    assert (lora.method, lora.use_cache) == ("lora", True)
    assert (prompt.method, prompt.use_cache) == ("prompt", False)
    assert prompt.max_length == 256 - 20  # the soft prompt's 20 virtual tokens take positions
    trained = load_trained_model(runs.prompt["output_dir"])
    assert generate(prompt, PROMPTS[0], 10) == generate(trained, PROMPTS[0], 10)


def test_a_run_whose_output_folder_is_gone_is_rebuilt_from_the_objects_store(runs):
    output = Path(runs.lora["output_dir"])
    expected = generate(load_trained_model(output), PROMPTS[0], 10)
    aside = output.with_name(output.name + "-moved")
    output.rename(aside)
    try:
        with _registry(runs) as registry:
            target = load_target(runs.lora["run_id"], registry)
            again = load_target(runs.lora["run_id"], registry)  # the rebuilt copy is reused
        cache = Path(registry.repo.git_dir) / "ftkit-cache" / "outputs" / runs.lora["run_id"]
        assert Path(target.source.path) == cache
        assert any("rebuilt it from the registry's objects store" in note for note in target.notes)
        assert any("using its copy rebuilt" in note for note in again.notes)
        assert generate(target, PROMPTS[0], 10) == expected
    finally:
        aside.rename(output)


def test_a_run_without_saved_weights_is_refused_with_what_to_do(runs, tmp_path):
    empty = tmp_path / "never-saved"
    empty.mkdir()
    with _registry(runs) as registry:
        run_id = registry.new_run_id()
        registry.commit_run(
            RunRecord(run_id=run_id, status="interrupted", name="cut-short", method="lora", model="tiny",
                      started_at=now_iso(), ended_at=now_iso(), output_dir=str(empty)),
            artifacts=[],
        )  # fmt: skip
        with pytest.raises(ModelError) as caught:
            locate_target(run_id, registry)
    assert f"run {run_id} cut-short (interrupted) has no saved weights" in caught.value.message
    assert f"ftkit rerun {run_id}" in caught.value.hint


@pytest.mark.parametrize("method", ["lora", "prompt"])
def test_batches_and_streams_give_the_single_prompt_answers(runs, method):
    trained = load_trained_model(getattr(runs, method)["output_dir"])
    singles = [generate(trained, prompt, 10) for prompt in PROMPTS]
    assert generate_batch(trained, PROMPTS, 10, batch_size=2) == singles
    pieces = list(stream(trained, PROMPTS[0], 10))
    assert "".join(pieces) == singles[0]


@pytest.mark.parametrize("method", ["lora", "prompt"])
def test_sampling_is_seeded_and_a_tiny_top_p_is_greedy(runs, method):
    trained = load_trained_model(getattr(runs, method)["output_dir"])
    greedy = generate_batch(trained, PROMPTS, 10)
    # top_p near 0 keeps only the most likely token: sampling must then pick exactly the greedy tokens.
    assert generate_batch(trained, PROMPTS, 10, temperature=1.0, top_p=1e-9, seed=3) == greedy
    first = generate_batch(trained, PROMPTS, 10, temperature=1.5, seed=7)
    assert generate_batch(trained, PROMPTS, 10, temperature=1.5, seed=7) == first
    others = [generate_batch(trained, PROMPTS, 10, temperature=1.5, seed=seed) for seed in (8, 9)]
    assert any(other != first for other in others)  # a random tiny model at T=1.5 varies with the seed
    streamed = "".join(stream(trained, PROMPTS[0], 10, temperature=1.5, seed=7))
    assert streamed == generate(trained, PROMPTS[0], 10, temperature=1.5, seed=7)


def test_a_classification_model_folder_is_a_classification_target(tmp_path, tiny_model_dir):
    from transformers import AutoModelForSequenceClassification

    folder = tmp_path / "classifier"
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2,
                                                               id2label={0: "cool", 1: "warm"})  # fmt: skip
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_model_dir / name, folder / name)
    assert locate_target(str(folder)).task == "classification"
    target = load_target(folder)
    assert (target.task, target.labels) == ("classification", ["cool", "warm"])


def write_tiny_gguf(model_dir: Path, path: Path) -> Path:
    """The tiny Llama and its tokenizer written as a float32 GGUF file, as llama.cpp's converter lays it out
    (tensor names, q/k rows permuted for its rotary layout, GPT-2-style BPE vocabulary and merges)."""
    import gguf
    import numpy as np
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    config = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    data = json.loads(tokenizer.backend_tokenizer.to_str())
    tokens = [token for token, _ in sorted(data["model"]["vocab"].items(), key=lambda item: item[1])]
    special = {added["content"] for added in data["added_tokens"]}
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types(
        [gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens]
    )
    writer.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in data["model"]["merges"]])
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_chat_template(tokenizer.chat_template)

    def permute(rows, heads):
        return (
            rows.reshape(heads, 2, rows.shape[0] // heads // 2, *rows.shape[1:])
            .swapaxes(1, 2)
            .reshape(rows.shape)
        )

    top = {
        "model.embed_tokens.weight": "token_embd",
        "model.norm.weight": "output_norm",
        "lm_head.weight": "output",
    }
    parts = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}  # fmt: skip
    for name, tensor in model.state_dict().items():
        array = tensor.float().numpy()
        if name in top:
            out = top[name]
        else:
            layer, part = name.split(".")[2], ".".join(name.split(".")[3:-1])
            out = f"blk.{layer}.{parts[part]}"
            if part == "self_attn.q_proj":
                array = permute(array, config.num_attention_heads)
            elif part == "self_attn.k_proj":
                array = permute(array, config.num_key_value_heads)
        writer.add_tensor(f"{out}.weight", np.ascontiguousarray(array, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_gguf_file_loads_with_the_folder_weights_and_answers(tiny_model_dir, tmp_path):
    import torch

    path = write_tiny_gguf(tiny_model_dir, tmp_path / "tiny.gguf")
    target = load_target(path)
    assert (target.source.kind, target.task, target.use_cache) == ("gguf", "causal-lm", True)
    folder = load_target(tiny_model_dir)
    ours, theirs = target.model.state_dict(), folder.model.state_dict()
    assert all(torch.equal(ours[key], theirs[key]) for key in theirs)
    for prompt in PROMPTS[:2]:
        assert generate(target, prompt, 12) == reference_greedy(tiny_model_dir, prompt)
