"""Building the transformers Trainer (classification) or TRL SFTTrainer (causal-lm) for a run, with every setting
stated explicitly: TRL's defaults (bf16, gradient checkpointing, re-truncation) are never left to decide."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftkit.compat import checkpointing_name
from ftkit.train.callbacks import ProgressTracker
from ftkit.train.hardware import TrainingPlan, peak_memory_mb


def common_arguments(training: dict[str, Any], plan: TrainingPlan, output_dir: Path) -> dict[str, Any]:
    """TrainingArguments every ftkit trainer shares (SFT, classification, preference): the resolved `training`
    settings and the plan's device, precision and checkpointing, stated explicitly."""
    return dict(
        output_dir=str(output_dir / "checkpoints"),
        num_train_epochs=float(training["epochs"]),
        max_steps=training["max_steps"] or -1,
        learning_rate=float(training["learning_rate"]),
        per_device_train_batch_size=int(training["batch_size"]),
        gradient_accumulation_steps=training["grad_accum"],
        warmup_steps=training["warmup_steps"],
        weight_decay=training["weight_decay"],
        lr_scheduler_type=training["lr_scheduler"],
        max_grad_norm=training["max_grad_norm"],
        seed=training["seed"],
        data_seed=training["seed"],
        logging_steps=training["logging_steps"],
        # Checkpoints (training.save_every) are written atomically and rotated by train/checkpoints.py, so the
        # Trainer's own rotation is off; the data position is kept and skipped to on resume (ignore_data_skip).
        save_strategy="steps" if training.get("save_every") else "no",
        save_steps=training.get("save_every") or 500,
        save_total_limit=None,
        save_only_model=False,
        ignore_data_skip=False,
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        bf16=plan.precision == "bf16",
        fp16=plan.precision == "fp16",
        use_cpu=plan.device == "cpu",
        **{checkpointing_name(): plan.gradient_checkpointing},
        # Padding-free batches hold no pads, and counting "non_padding" there drops every real token that
        # equals the pad id (SmolLM2's pad is its end-of-turn token); padded batches count by attention mask.
        include_num_input_tokens_seen="all" if plan.padding_free else "non_padding",
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )


def build_trainer(
    model: Any,
    tokenizer: Any,
    train_rows: list[dict],
    resolved: dict[str, Any],
    plan: TrainingPlan,
    callbacks: list[Any],
    *,
    task: str,
    output_dir: Path,
) -> Any:
    """A trainer for encoded `train_rows` with the resolved recipe's training settings and the plan's device,
    precision, checkpointing and padding-free choice. Checkpoints go under `output_dir/checkpoints`; library
    progress bars and printing are removed (ftkit's callbacks report instead)."""
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    training = resolved["training"]
    common = common_arguments(training, plan, output_dir)
    dataset = Dataset.from_list(train_rows)
    if task == "classification":
        trainer = Trainer(
            model=model,
            args=TrainingArguments(**common),
            train_dataset=dataset,
            data_collator=DataCollatorWithPadding(tokenizer),
            callbacks=callbacks,
        )
    else:
        from trl import SFTConfig, SFTTrainer

        config = SFTConfig(
            **common,
            # Rows are already truncated (and counted) by encode_rows(); TRL re-truncates only when packing.
            max_length=training["max_seq_len"] if training["packing"] else None,
            packing=training["packing"],
            padding_free=plan.padding_free,
            completion_only_loss=False,
            dataset_num_proc=None,
        )
        trainer = SFTTrainer(
            model=model,
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=callbacks,
        )
        from ftkit.evaluation.chunked_loss import install

        # TRL's fused LM head scores every position in large fp32 tiles on a CPU; this one scores only trained
        # positions in small chunks. Where it cannot (an adapter on the LM head, scaled logits), TRL's stays.
        reason = install(trainer.model)
        if reason:
            trainer.loss_note = f"loss: TRL's fused LM head (ftkit's chunked loss does not apply: {reason})"
    return quiet_trainer(trainer)


def quiet_trainer(trainer: Any) -> Any:
    """Remove transformers' own printer and tqdm bar (its ProgressCallback, not ftkit's ProgressTracker)."""
    from transformers import trainer_callback as hf_callbacks

    for noisy in (hf_callbacks.PrinterCallback, hf_callbacks.ProgressCallback):
        trainer.remove_callback(noisy)
    return trainer


def training_metrics(
    output: Any, trainer: Any, progress: ProgressTracker, seconds: float, device: str
) -> dict[str, Any]:
    """`train.*` metrics of a finished `trainer.train()` (its `output`) that took `seconds` on `device`."""
    losses = [row["loss"] for row in progress.history if "loss" in row]
    return {
        "train.loss": float(output.training_loss),
        "train.loss_first": losses[0] if losses else None,
        "train.loss_last": losses[-1] if losses else None,
        "train.steps": trainer.state.global_step,
        "train.runtime_s": round(seconds, 2),
        "train.tokens": progress.tokens_seen,
        "train.tokens_per_sec": round(progress.tokens_seen / seconds, 1) if seconds else None,
        "train.peak_memory_mb": peak_memory_mb(device),
    }
