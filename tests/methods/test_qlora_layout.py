"""QLoRA on bases whose layers bitsandbytes' 4-bit layout cannot hold, and training after a 4-bit evaluation.

bitsandbytes' own CPU inference packer (pure torch, the same function on every CPU) is the reference for which
layers 4-bit can hold: on CPUs with AVX512-BF16 it runs in every eval-mode forward without gradients, and a
layer it rejects crashes the run there ("shape '[32, 0]' is invalid").
"""

from __future__ import annotations

import re

import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import build_llama, build_tokenizer
from tests.methods.conftest import method_recipe

pytestmark = pytest.mark.slow


def _cpu_packer_accepts(weight: torch.Tensor) -> bool:
    """Whether bitsandbytes' CPU inference layout takes this weight once quantized to 4-bit (nf4, nested)."""
    import bitsandbytes as bnb
    from bitsandbytes import functional

    quantized = bnb.nn.Params4bit(weight.detach().float().clone(), requires_grad=False, quant_type="nf4")
    quantized = quantized.to("cpu")
    try:
        functional._convert_weight_packed_for_cpu(quantized.data, quantized.quant_state)
    except (RuntimeError, AssertionError):
        return False
    return True


def _float_weight(module) -> torch.Tensor:
    import bitsandbytes as bnb

    if isinstance(module, bnb.nn.Linear4bit):
        return bnb.functional.dequantize_4bit(module.weight.data, module.weight.quant_state)
    return module.weight


def test_qlora_keeps_layers_4bit_cannot_hold_in_full_precision_says_so_and_runs(
    tmp_path, tiny_model_dir, method_data
):
    """The default tiny Llama (hidden 32, intermediate 64) is narrower than the 4-bit block (64)."""
    import bitsandbytes as bnb

    from ftkit.inference import generate, load_trained_model
    from ftkit.recipe.load import load_recipe
    from ftkit.train.callbacks import SilentReporter
    from ftkit.train.runner import execute_run

    recipe = method_recipe(tmp_path, tiny_model_dir, method_data, "qlora", max_steps=3)
    reporter = SilentReporter()
    result = execute_run(load_recipe(recipe), "run-narrow", "narrow", reporter)
    assert result.status == "succeeded", result.error
    # Both evaluations ran (eval mode, no gradients: where the CPU repack used to crash).
    assert result.metrics["base.eval.loss"] > 0 and result.metrics["eval.loss"] > 0

    notes = [e["message"] for e in reporter.events if e["kind"] == "note"]
    note = next((n for n in notes if n.startswith("qlora: ")), None)
    assert note is not None, notes
    # 2 layers x (q, k, v, o, gate, up) read 32 inputs; head_dim 8 x 2 kv heads gives k/v 16 outputs.
    assert "12 linear layers stay in full precision (78% of the linear weights)" in note
    assert "in_features a multiple of 64" in note and "out_features a multiple of 32" in note
    for layer in ("self_attn.q_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj"):
        assert re.search(rf"model\.layers\.\*\.{re.escape(layer)} ×2 \(in 32, out (32|64)\)", note), note
    assert "model.layers.*.self_attn.k_proj ×2 (in 32, out 16)" in note
    assert "down_proj" not in note

    # The reloaded base holds in 4-bit exactly the layers bitsandbytes' CPU layout accepts.
    trained = load_trained_model(result.output_dir)
    base = trained.model.get_base_model()
    linear = {
        name.removesuffix(".base_layer"): module  # peft's wrapper holds the original layer as `base_layer`
        for name, module in base.named_modules()
        if isinstance(module, (torch.nn.Linear, bnb.nn.Linear4bit))
        and name != "lm_head"
        and "lora" not in name
    }
    in_4bit = {name for name, module in linear.items() if isinstance(module, bnb.nn.Linear4bit)}
    accepted = {name for name, module in linear.items() if _cpu_packer_accepts(_float_weight(module))}
    assert in_4bit == accepted == {"model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj"}
    assert isinstance(generate(trained, "what is the color of the fox", max_new_tokens=4), str)


def test_qlora_stops_before_loading_when_no_layer_fits_4bit(tmp_path, method_data, monkeypatch):
    """hidden 32 and intermediate 32: no linear layer is a multiple of the block. Exit 2, located, with the layers
    and what to do, and the weights never load."""
    import ftkit.train.model_loading as model_loading
    from ftkit.cli.app import app

    model_dir = tmp_path / "too-narrow"
    model_dir.mkdir()
    build_llama(model_dir, len(build_tokenizer(model_dir)), intermediate_size=32)

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the 4-bit layout check")

    monkeypatch.setattr(model_loading, "load_model", refuse)
    recipe = method_recipe(tmp_path, model_dir, method_data, "qlora")
    result = CliRunner().invoke(
        app, ["run", str(recipe), "--registry", str(tmp_path / "registry")], env={"COLUMNS": "400"}
    )
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert "method.name: qlora: no linear layer of this model can be stored in 4-bit" in output
    assert "model.layers.*.mlp.down_proj ×2 (in 32, out 32)" in output
    assert "`method.name: lora`" in output


def test_training_after_a_4bit_evaluation_backpropagates_through_the_4bit_layers(wide_model_dir):
    """bitsandbytes' AVX512-BF16 repack (first eval-mode forward without gradients) leaves layers without a
    backward: the base evaluation before training must not change the gradients of the first step."""
    from ftkit.methods.catalog import get_method
    from ftkit.train.model_loading import load_model

    method = get_method("qlora")
    options = method.parse_options({"r": 8})
    ids = torch.arange(5, 25).unsqueeze(0)

    def first_step_gradients(evaluate_first: bool) -> dict[str, torch.Tensor]:
        model = load_model(
            str(wide_model_dir),
            wide_model_dir,
            "causal-lm",
            torch.float32,
            method.model_load_kwargs(options, "cpu"),
        )
        if evaluate_first:
            model.eval()
            with torch.no_grad():
                model(input_ids=ids)
        torch.manual_seed(0)
        peft = method.prepare(model, options, "causal-lm")
        peft.train()
        peft(input_ids=ids, labels=ids).loss.backward()
        return {name: p.grad.clone() for name, p in peft.named_parameters() if p.grad is not None}

    fresh, after_eval = first_step_gradients(False), first_step_gradients(True)
    # The first layer's attention adapters get gradient only through the 4-bit layers above them.
    first_layer = [name for name in fresh if "layers.0.self_attn.q_proj.lora_B" in name]
    assert first_layer and fresh[first_layer[0]].abs().max() > 0
    assert fresh.keys() == after_eval.keys()
    for name, gradient in fresh.items():
        assert torch.equal(gradient, after_eval[name]), name
