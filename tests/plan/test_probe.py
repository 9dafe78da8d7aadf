"""probe_training_step: real optimizer steps timed and measured; the analytic estimate against that measurement."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# The analytic training-phase memory (weights, gradients, AdamW states, activations) must be within this share of
# the probe's measured peak for a model whose weights dominate the library noise (tens of MB of allocator slack).
TOLERANCE = 0.35


def test_probe_counts_steps_and_parameters(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from ftkit.plan.probe import probe_training_step

    probe = probe_training_step(str(tiny_model_dir), method="full", batch_size=4, max_seq_len=32, steps=3)
    reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert probe.steps_probed == 3 and len(probe.step_seconds) == 3
    assert probe.seconds_per_step > 0
    assert probe.total_params == probe.trainable_params == sum(p.numel() for p in reference.parameters())
    assert probe.tokens_per_step == 4 * 32  # synthetic rows are max_seq_len long
    assert probe.peak_memory_bytes > 0 and probe.memory_measure
    assert "3 steps probed at batch 4 × 32 tokens" in probe.describe()


def test_lora_probe_trains_only_the_adapters(tiny_model_dir):
    from ftkit.plan.probe import probe_training_step

    probe = probe_training_step(
        str(tiny_model_dir), method="lora", method_options={"r": 4}, batch_size=2, max_seq_len=16, steps=1
    )
    # r × (in + out) per adapted Linear: q, k, v, o, gate, up, down in each of 2 layers (hidden 32, kv 16, mlp 64)
    per_layer = 4 * ((32 + 32) + (32 + 16) + (32 + 16) + (32 + 32) + (32 + 64) * 2 + (64 + 32))
    assert probe.trainable_params == 2 * per_layer
    assert probe.steps_probed == 1


def test_analytic_memory_is_within_tolerance_of_the_measured_peak(broad_model_dir, tiny_model_dir):
    from ftkit.methods.catalog import get_method
    from ftkit.plan.estimate import estimate_memory, model_facts
    from ftkit.plan.probe import probe_training_step

    # a first probe pays the one-time costs (library imports, kernel caches) that are not the model's memory
    probe_training_step(str(tiny_model_dir), method="full", batch_size=1, max_seq_len=8, steps=1)
    probe = probe_training_step(
        str(broad_model_dir),
        method="full",
        batch_size=4,
        max_seq_len=64,
        steps=2,
        training={"precision": "fp32"},
    )
    facts = model_facts(str(broad_model_dir), broad_model_dir)
    estimate = estimate_memory(
        facts,
        method=get_method("full"),
        trainable=probe.trainable_params,
        batch_size=4,
        max_seq_len=64,
        precision="fp32",
        runtime=0,
        chunked_loss=True,  # the probe trains through the run's own trainer, with its chunked loss
    )
    measured = probe.peak_memory_bytes
    assert abs(estimate.training - measured) <= TOLERANCE * measured, (estimate.to_dict(), measured)


def test_the_chunked_loss_bounds_the_loss_term_whatever_the_batch():
    """SmolLM2-135M's shape: full logits cost 16 bytes per token and vocabulary entry (3 GB at 8 × 384); the chunked
    loss holds a few 64 MB chunks at any batch, plus an fp32 LM-head gradient buffer when the head trains."""
    from ftkit.methods.catalog import get_method
    from ftkit.plan.estimate import ModelFacts, estimate_memory

    facts = ModelFacts(134_515_008, 30, 576, 1536, 49_152, 0, 4, 0)
    common = dict(trainable=4_884_480, max_seq_len=384, precision="bf16", runtime=0)
    lora = get_method("lora")
    full = estimate_memory(facts, method=lora, batch_size=8, **common)
    small = estimate_memory(facts, method=lora, batch_size=1, chunked_loss=True, **common)
    large = estimate_memory(facts, method=lora, batch_size=8, chunked_loss=True, **common)
    logits = 8 * 384 * 16 * 49_152
    assert full.activations - large.activations == logits - 3.5 * 64 * 2**20
    per_token = (large.activations - small.activations) / (7 * 384)
    assert per_token == 30 * (16 * 576 + 5 * 1536) * 2  # activations alone grow with the batch
    head = estimate_memory(facts, method=get_method("full"), batch_size=8, chunked_loss=True, **common)
    assert head.activations - large.activations == 49_152 * 576 * 4
