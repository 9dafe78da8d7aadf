"""The plain TRL script a user writes instead of ftkit: load a model, load a JSONL file, SFTTrainer, train, save.

It is the baseline side of the ftkit benchmarks. Everything a user would leave at TRL's defaults stays at TRL's
defaults (padding to the longest row in each batch, loss on every token of a conversation, loss on the completion of
prompt/completion rows), except what must match the ftkit side for the comparison to be fair, which is passed on
the command line: model, data, batch size, steps, max length, learning rate, seed, precision (TRL's own default is
bf16, which ftkit does not use on a CPU) and gradient checkpointing (TRL's default is on; ftkit's is off for small
models on a CPU). The instrumentation (a timing callback, `include_num_input_tokens_seen="non_padding"`, the JSON
line) measures and changes nothing that is trained.

    python benchmarks/plain_trl.py --model DIR --train FILE --format chat --batch-size 4 --steps 4 --json
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
    parser.add_argument("--train", required=True, help="JSONL: `messages` rows, or `question`/`answer` rows")
    parser.add_argument("--format", choices=("chat", "completion"), default="chat")
    parser.add_argument("--method", choices=("lora", "full"), default="lora")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument(
        "--padding-free", action="store_true", help="TRL padding_free=True (default: padding)"
    )
    parser.add_argument(
        "--group-by-length",
        action="store_true",
        help="batch rows of similar length (fewer pads; not a default)",
    )
    parser.add_argument("--output", default="outputs/plain-trl")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the measurements")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()

    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    class StepTimes(TrainerCallback):
        """Wall time and non-pad tokens seen at the end of every optimizer step (measurement only)."""

        def __init__(self) -> None:
            self.began = 0.0
            self.steps: list[dict[str, float]] = []

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

    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype)
    loaded_s = time.perf_counter() - started

    dataset = load_dataset("json", data_files=args.train, split="train")
    if args.format == "completion":  # GSM8K-style question/answer rows become TRL prompt/completion rows
        dataset = dataset.map(
            lambda row: {"prompt": row["question"], "completion": row["answer"]},
            remove_columns=dataset.column_names,
        )
    else:
        dataset = dataset.select_columns(["messages"])

    peft_config = None
    if args.method == "lora":
        peft_config = LoraConfig(
            r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
        )
    config = SFTConfig(
        output_dir=args.output,
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        max_length=args.max_length,
        bf16=args.precision == "bf16",
        gradient_checkpointing=args.gradient_checkpointing,
        padding_free=args.padding_free,
        train_sampling_strategy="group_by_length" if args.group_by_length else "random",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
    )
    timer = StepTimes()
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[timer],
    )
    processed = {"tokens": 0}  # every position the model computes, pads included (measurement only)
    collate = trainer.data_collator

    def counting_collator(features):
        batch = collate(features)
        processed["tokens"] += int(batch["input_ids"].numel())
        return batch

    trainer.data_collator = counting_collator
    train_started = time.perf_counter()
    output = trainer.train()
    train_s = time.perf_counter() - train_started
    trainer.save_model(args.output)
    tokenizer.save_pretrained(args.output)

    tokens = int(trainer.state.num_input_tokens_seen or 0)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in trainer.model.parameters())
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {
        "side": "plain-trl",
        "output_dir": os.path.abspath(args.output),
        "metrics": {
            "train.loss": float(output.training_loss),
            "train.steps": trainer.state.global_step,
            "train.runtime_s": round(train_s, 3),
            "train.trainer_runtime_s": output.metrics.get("train_runtime"),
            "train.tokens": tokens,
            "train.tokens_per_sec": round(tokens / train_s, 2) if train_s else None,
            "train.processed_tokens": processed["tokens"],
            "train.trainable_params": trainable,
            "train.total_params": total,
            "train.peak_memory_mb": round(peak_kib / (2**20 if sys.platform == "darwin" else 2**10), 1),
            "run.load_s": round(loaded_s, 2),
            "run.wall_time_s": round(time.perf_counter() - started, 2),
        },
        "steps": timer.steps,
    }
    if torch.cuda.is_available():
        result["metrics"]["train.peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
