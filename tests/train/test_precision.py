"""`training.precision: auto` on a CPU: bf16 where the CPU computes bf16 natively and the loss agrees with fp32.

The feature detection is fed literal /proc/cpuinfo text (no need for each CPU family); the numerics check runs on
a real model against a loss computed independently here (token-level cross-entropy of unpadded rows); the runs go
through `execute_run` as `ftkit run` does, and assert the branch this CPU's own flags call for.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from ftkit.train.hardware import Hardware, TrainingPlan, plan_training
from ftkit.train.precision import (
    MIN_PARAMETERS,
    TOLERANCE,
    check_bf16,
    confirm_auto_bf16,
    cpu_flags,
    native_bf16,
)
from tests.conftest import build_llama, build_tokenizer, chat_rows, write_jsonl, write_recipe

SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"
EPYC_ZEN3 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"
SKYLAKE_AVX512 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512vl\n"
GRAVITON3 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def mid_model_dir(tmp_path_factory) -> Path:
    """A 2-layer Llama of 1.4M parameters (hidden 256): above the size where auto considers bf16 on a CPU."""
    directory = tmp_path_factory.mktemp("llama-256")
    tokenizer = build_tokenizer(directory)
    model = build_llama(directory, len(tokenizer), hidden_size=256, intermediate_size=512)
    assert sum(p.numel() for p in model.parameters()) > MIN_PARAMETERS
    return directory


def _rows(directory: Path, count: int = 16) -> tuple[list[dict], int]:
    from transformers import AutoTokenizer

    from ftkit.data.render import render_example

    tokenizer = AutoTokenizer.from_pretrained(directory)
    rows = []
    for row in chat_rows(count, seed=3):
        rendered = render_example(row, tokenizer, 64)
        rows.append({"input_ids": rendered.input_ids, "labels": rendered.labels})
    return rows, tokenizer.pad_token_id


def _plan(bf16_native: bool, parameters: int):
    hardware = Hardware("cpu", "test", 1, 2, bf16_native)
    training = {
        "device": "auto",
        "precision": "auto",
        "gradient_checkpointing": "auto",
        "padding_free": False,
    }
    return plan_training(hardware, training, parameters, "causal-lm")


def test_native_bf16_comes_from_the_cpu_feature_flags():
    assert native_bf16(cpu_flags(SAPPHIRE_RAPIDS)) == ["amx_bf16", "avx512_bf16"]
    assert native_bf16(cpu_flags(GRAVITON3)) == ["bf16"]
    assert native_bf16(cpu_flags(EPYC_ZEN3)) == []
    assert native_bf16(cpu_flags(SKYLAKE_AVX512)) == []  # AVX-512 without BF16: oneDNN would emulate bf16
    assert native_bf16(set()) == []


def test_auto_picks_fp32_on_a_cpu_without_native_bf16():
    plan = _plan(bool(native_bf16(cpu_flags(EPYC_ZEN3))), 135_000_000)
    assert plan.precision == "fp32"
    assert any("no native bf16" in note for note in plan.notes)


def test_auto_picks_fp32_for_a_model_too_small_to_gain():
    plan = _plan(True, MIN_PARAMETERS - 1)
    assert plan.precision == "fp32"
    assert any("too small to gain from bf16" in note for note in plan.notes)


def test_auto_proposes_bf16_on_a_native_bf16_cpu_and_explicit_choices_stay():
    assert _plan(bool(native_bf16(cpu_flags(SAPPHIRE_RAPIDS))), 135_000_000).precision == "bf16"
    hardware = Hardware("cpu", "test", 1, 2, False)
    for explicit in ("fp32", "bf16"):
        training = {
            "device": "auto",
            "precision": explicit,
            "gradient_checkpointing": False,
            "padding_free": False,
        }
        assert plan_training(hardware, training, 10, "causal-lm").precision == explicit


def _reference_loss(model, rows: list[dict], autocast: bool) -> float:
    """Token-level mean cross-entropy over the label tokens of every row, each row run alone (no padding)."""
    import torch
    import torch.nn.functional as F

    total, count = 0.0, 0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        for row in rows:
            logits = model(input_ids=torch.tensor([row["input_ids"]])).logits[0, :-1].float()
            labels = torch.tensor(row["labels"][1:])
            keep = labels != -100
            total += float(F.cross_entropy(logits[keep], labels[keep], reduction="sum"))
            count += int(keep.sum())
    return total / count


def test_check_measures_the_first_batch_in_fp32_and_bf16(mid_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(mid_model_dir)
    model.train()
    rows, pad_id = _rows(mid_model_dir)
    check = check_bf16(model, rows, pad_id, batch_size=8, batches=1)
    assert model.training  # the model's mode is restored
    assert check.rows == 8
    assert check.fp32_loss == pytest.approx(_reference_loss(model, rows[:8], autocast=False), rel=1e-5)
    assert check.bf16_loss == pytest.approx(_reference_loss(model, rows[:8], autocast=True), rel=2e-3)
    assert check.bf16_loss != check.fp32_loss  # bf16 really ran
    assert check.relative_difference == pytest.approx(
        abs(check.bf16_loss - check.fp32_loss) / check.fp32_loss
    )


def test_nothing_to_check_bf16_on_keeps_fp32_with_a_note():
    """A preference run hands no SFT batches to the check: auto's bf16 is never used unchecked."""
    plan = _plan(True, 135_000_000)
    assert plan.precision == "bf16"  # what auto would pick on this CPU
    assert confirm_auto_bf16(plan, "auto", None, [], 0, 8, adapter=True) == {}
    assert plan.precision == "fp32"
    assert any("this run has none" in note for note in plan.notes)


def test_auto_bf16_on_a_gpu_is_checked_against_fp32_too(mid_model_dir):
    """`auto` picks bf16 on a bf16 GPU and confirms it with the same loss check (no GPU here: the plan says cuda,
    the model stays on the CPU, so this covers the decision, not CUDA numerics)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(mid_model_dir)
    rows, pad_id = _rows(mid_model_dir)
    plan = TrainingPlan("cuda", "bf16", False, False, [])
    metrics = confirm_auto_bf16(plan, "auto", model, rows, pad_id, 8, adapter=False, tolerance=1e-9)
    assert plan.precision == "fp32" and "this GPU computes bf16 natively" in plan.notes[0]
    assert metrics["precision.relative_difference"] > 1e-9
    passing = TrainingPlan("cuda", "bf16", False, False, [])
    confirm_auto_bf16(passing, "auto", model, rows, pad_id, 8, adapter=False)
    assert passing.precision == "bf16" and "bf16 autocast — this GPU" in passing.notes[0]
    nothing = TrainingPlan("cuda", "bf16", False, False, [])  # preference pairs: GPUs keep bf16, unchecked
    assert confirm_auto_bf16(nothing, "auto", None, [], 0, 8, adapter=True) == {}
    assert nothing.precision == "bf16" and "no fp32 check" in nothing.notes[0]


def test_a_failing_check_falls_back_to_fp32_with_a_note(mid_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(mid_model_dir)
    rows, pad_id = _rows(mid_model_dir)
    plan = _plan(True, 135_000_000)
    metrics = confirm_auto_bf16(plan, "auto", model, rows, pad_id, 8, adapter=True, tolerance=1e-9)
    assert plan.precision == "fp32"
    assert any("bf16 changes this model's loss too much" in note for note in plan.notes)
    assert metrics["precision.relative_difference"] > 1e-9
    assert all(p.dtype.is_floating_point and p.dtype == model.dtype for p in model.parameters())
    assert str(model.dtype) == "torch.float32"  # a failed check leaves the weights in fp32


def _run(recipe: Path):
    from ftkit.recipe.load import load_recipe
    from ftkit.train.callbacks import SilentReporter
    from ftkit.train.runner import execute_run

    reporter = SilentReporter()
    result = execute_run(load_recipe(recipe), "20260101-000000-abcdef", "test-run", reporter)
    assert result.status == "succeeded", result.error
    notes = [event["message"] for event in reporter.events if event["kind"] == "note"]
    return result, [note for note in notes if note.startswith("precision:")]


def _recipe(root: Path, model_dir: Path) -> Path:
    train = write_jsonl(root / "data" / "train.jsonl", chat_rows(32, seed=1))
    evaluation = write_jsonl(root / "data" / "eval.jsonl", chat_rows(8, seed=2))
    recipe = write_recipe(root / "recipe.yaml", model_dir, train, evaluation)
    text = recipe.read_text().replace("max_steps: 12", "max_steps: 2")
    recipe.write_text(text)
    return recipe


def test_run_on_this_cpu_records_precision_why_and_the_measured_difference(tmp_path, mid_model_dir):
    """On a CPU with native bf16 (this machine class: AMX / AVX-512 BF16) auto trains in bf16 with the measured
    difference in the notes and metrics; elsewhere fp32 with the reason. The reloaded model reproduces the
    run's own eval loss either way (the base is stored as the resolved precision says)."""
    import torch

    from ftkit.inference import load_trained_model
    from tests.cli.test_run import eval_loss_of

    result, notes = _run(_recipe(tmp_path, mid_model_dir))
    resolved = yaml.safe_load((Path(result.output_dir) / "resolved.yaml").read_text())
    assert len(notes) == 1
    if native_bf16():
        assert resolved["training"]["precision"] == "bf16"
        difference = result.metrics["precision.relative_difference"]
        assert 0 < difference <= TOLERANCE
        assert difference == pytest.approx(
            abs(result.metrics["precision.bf16_loss"] - result.metrics["precision.fp32_loss"])
            / result.metrics["precision.fp32_loss"],
            rel=1e-3,
        )
        assert "bf16 autocast — this CPU computes bf16 natively" in notes[0]
        assert f"tolerance {TOLERANCE:g}" in notes[0]
    else:
        assert resolved["training"]["precision"] == "fp32"
        assert "no native bf16" in notes[0]
        assert "precision.relative_difference" not in result.metrics
    trained = load_trained_model(result.output_dir)
    bf16 = resolved["training"]["precision"] == "bf16"
    with torch.autocast(
        "cpu", dtype=torch.bfloat16, enabled=bf16
    ):  # the trainer evaluates under autocast too
        reloaded = eval_loss_of(trained.model, Path(result.output_dir))
    assert reloaded == pytest.approx(result.metrics["eval.loss"], rel=1e-6)


def test_a_model_whose_loss_bf16_changes_trains_in_fp32(tmp_path, mid_model_dir):
    """Every logit shifted by the same ~2,000 (one hidden unit weighted 2,000 for every token): softmax ignores a
    common shift in fp32, but bf16 keeps 8 bits of mantissa, so the logits' differences round away."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    if not native_bf16():
        pytest.skip("auto never proposes bf16 on a CPU without native bf16 (covered by the flags tests)")
    sharp = tmp_path / "sharp-model"
    shutil.copytree(mid_model_dir, sharp)
    model = AutoModelForCausalLM.from_pretrained(sharp)
    with torch.no_grad():
        model.lm_head.weight[:, 0] += 2000.0
    model.save_pretrained(sharp)
    result, notes = _run(_recipe(tmp_path, sharp))
    assert yaml.safe_load((Path(result.output_dir) / "resolved.yaml").read_text())["training"][
        "precision"
    ] == ("fp32")
    assert result.metrics["precision.relative_difference"] > TOLERANCE
    assert len(notes) == 1 and "bf16 changes this model's loss too much" in notes[0]
    assert math.isfinite(result.metrics["train.loss"])
