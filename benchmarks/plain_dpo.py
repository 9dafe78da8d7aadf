"""The plain TRL script a user writes instead of `ftkit run` of a `task: preference` recipe: load a model, load a
JSONL file of (prompt, chosen, rejected) pairs, DPOTrainer with a peft LoraConfig, train.

It is the baseline side of benchmarks/preference_speed.py, and imports nothing from ftkit. Every training setting
that ftkit states explicitly is stated here too, with the same value (benchmarks/preference_speed.py writes the
recipe from the same numbers): model folder (fp32), rows (the same file; same seed and data seed, so the same
batches in the same order), LoRA (r 16, alpha 32, the given dropout, all-linear), DPO (sigmoid loss, the given
beta; the reference is the base with the adapter switched off, TRL's default for `peft_config`), learning rate
with a linear schedule and no warm-up, no weight decay, gradient clipping at 1.0, batch size, steps, max length,
fp32 and gradient checkpointing. The instrumentation (a timing and loss callback,
`include_num_input_tokens_seen="non_padding"`, the JSON line) measures and changes nothing that is trained.

    python benchmarks/plain_dpo.py --model DIR --train FILE --batch-size 2 --steps 10 --max-length 256 --json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--train", required=True, help="JSONL with `prompt`, `chosen`, `rejected` strings")
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--loss-type", default="sigmoid")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--lora-dropout", type=float, default=0.05)
    parser.add_argument("--gradient-checkpointing", choices=("on", "off"), default="off")
    parser.add_argument("--output", default="outputs/plain-dpo")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the measurements")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()

    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    class StepLog(TrainerCallback):
        """Wall time and non-pad tokens at the end of every optimizer step, and every logged loss."""

        def __init__(self) -> None:
            self.began = 0.0
            self.steps: list[dict[str, float]] = []
            self.losses: list[dict[str, float]] = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.began = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.steps.append(
                {
                    "step": state.global_step,
                    "time_s": time.perf_counter() - self.began,
                    "tokens": int(state.num_input_tokens_seen or 0),
                }
            )

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.losses.append({"step": state.global_step, "loss": float(logs["loss"])})

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    loaded_s = time.perf_counter() - started
    dataset = load_dataset("json", data_files=args.train, split="train").select_columns(
        ["prompt", "chosen", "rejected"]
    )
    peft_config = LoraConfig(
        r=16,
        lora_alpha=32,
        lora_dropout=args.lora_dropout,
        target_modules="all-linear",
        bias="none",
        task_type="CAUSAL_LM",
    )
    config = DPOConfig(
        output_dir=args.output,
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        learning_rate=args.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        seed=args.seed,
        data_seed=args.seed,
        beta=args.beta,
        loss_type=[args.loss_type],
        max_length=args.max_length,
        bf16=False,
        fp16=False,
        use_cpu=not torch.cuda.is_available(),
        gradient_checkpointing=args.gradient_checkpointing == "on",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
    )
    log = StepLog()
    trainer = DPOTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[log],
    )
    train_started = time.perf_counter()
    output = trainer.train()
    train_s = time.perf_counter() - train_started

    tokens = int(trainer.state.num_input_tokens_seen or 0)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in trainer.model.parameters())
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {
        "side": "plain-trl-dpo",
        "output_dir": os.path.abspath(args.output),
        "metrics": {
            "train.loss": float(output.training_loss),
            "train.steps": trainer.state.global_step,
            "train.runtime_s": round(train_s, 3),
            "train.tokens": tokens,
            "train.tokens_per_sec": round(tokens / train_s, 2) if train_s else None,
            "train.gradient_checkpointing": bool(config.gradient_checkpointing),
            "train.bf16": bool(config.bf16),
            "train.trainable_params": trainable,
            "train.total_params": total,
            "train.peak_memory_mb": round(peak_kib / (2**20 if sys.platform == "darwin" else 2**10), 1),
            "run.load_s": round(loaded_s, 2),
            "run.wall_time_s": round(time.perf_counter() - started, 2),
        },
        "steps": log.steps,
        "losses": log.losses,
        "peft_adapters": sorted(getattr(trainer.model, "peft_config", {}) or {}),
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
