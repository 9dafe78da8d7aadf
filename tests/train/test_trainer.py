"""build_trainer states every setting itself: TRL's defaults (bf16, gradient checkpointing, re-truncation) never
decide, the plan does; library printers and progress bars are gone, ftkit's callbacks are in."""

from __future__ import annotations

import pytest

from ftkit.compat import checkpointing_name
from ftkit.train.callbacks import ProgressTracker, SilentReporter, trainer_callback
from ftkit.train.hardware import TrainingPlan
from ftkit.train.trainer import build_trainer

TRAINING = {
    "epochs": 2,
    "max_steps": None,
    "learning_rate": 1e-3,
    "batch_size": 4,
    "grad_accum": 2,
    "warmup_steps": 1,
    "weight_decay": 0.0,
    "lr_scheduler": "cosine",
    "max_grad_norm": 1.0,
    "seed": 7,
    "logging_steps": 1,
    "max_seq_len": 64,
    "packing": False,
}


@pytest.mark.parametrize("task", ["causal-lm", "classification"])
def test_the_trainer_takes_the_plan_and_the_resolved_settings(tmp_path, tiny_model_dir, task):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from transformers import trainer_callback as hf_callbacks

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    if task == "classification":
        model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2)
        rows = [{"input_ids": [5, 6, 7], "labels": 1}, {"input_ids": [8, 9], "labels": 0}]
    else:
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        rows = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8, 9], "labels": [8, 9]}]
    on = (
        task == "causal-lm"
    )  # the plan's switches on for one task, off for the other: the trainer follows both
    plan = TrainingPlan("cpu", "fp32", gradient_checkpointing=on, padding_free=on, notes=[])
    tracker = trainer_callback(ProgressTracker, SilentReporter())
    trainer = build_trainer(
        model, tokenizer, rows, {"training": TRAINING}, plan, [tracker], task=task, output_dir=tmp_path
    )
    args = trainer.args
    assert (args.num_train_epochs, args.max_steps, args.learning_rate) == (2.0, -1, 1e-3)
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps, args.seed) == (4, 2, 7)
    assert args.lr_scheduler_type == "cosine" and args.output_dir == str(tmp_path / "checkpoints")
    assert not args.bf16 and not args.fp16 and args.use_cpu
    assert getattr(args, checkpointing_name()) is on
    assert args.include_num_input_tokens_seen == ("all" if on else "non_padding")
    if task == "causal-lm":
        assert type(trainer).__name__ == "SFTTrainer"
        assert args.max_length is None and not args.packing  # rows are cut (and counted) already
        assert args.padding_free is True
    callbacks = trainer.callback_handler.callbacks
    assert tracker in callbacks
    assert not any(
        isinstance(c, (hf_callbacks.PrinterCallback, hf_callbacks.ProgressCallback)) for c in callbacks
    )
