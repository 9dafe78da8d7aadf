"""The plain TRL script a user writes instead of ftkit: load a model, load a JSONL file, SFTTrainer, train, save.

It is the baseline side of the ftkit benchmarks. Everything a user would leave at TRL's defaults stays at TRL's
defaults (padding to the longest row in each batch, loss on every token of a conversation, loss on the completion of
prompt/completion rows), except what a comparison asks to match on the command line: model, data, batch size,
steps, max length, learning rate, seed, precision and gradient checkpointing (`default` keeps TRL's own: bf16
autocast and gradient checkpointing on, with the model loaded in its saved dtype; on a machine without a GPU, TRL
refuses its own bf16 default unless `use_cpu=True`, which the script then sets), and with `--completion-only`
the objective (loss on assistant replies only, as ftkit's default `train_on: completion`). The instrumentation (a
timing callback, `include_num_input_tokens_seen="non_padding"`, the JSON line) measures and changes nothing that is
trained.

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
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16", "default"),
        default="fp32",
        help="default: TRL's (bf16 autocast, model in its saved dtype)",
    )
    parser.add_argument("--gradient-checkpointing", choices=("on", "off", "default"), default="off")
    parser.add_argument(
        "--completion-only",
        action="store_true",
        help="loss on assistant replies only (chat: TRL assistant_only_loss with a template marking the replies)",
    )
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


# SmolLM2-135M-Instruct's chat template (ChatML with its default system prompt) with TRL's `{% generation %}`
# markers around each assistant reply and its end token: what a TRL user writes for `assistant_only_loss` on a
# model whose template TRL cannot patch. It must render every row exactly as the model's own template does.
MARKED_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\n' }}{% generation %}"
    "{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def use_marked_template(tokenizer, conversations) -> None:
    """Switch to MARKED_TEMPLATE after checking it renders every conversation as the model's own template."""
    own = tokenizer.chat_template
    for messages in conversations:
        expected = tokenizer.apply_chat_template(messages, tokenize=False, chat_template=own)
        marked = tokenizer.apply_chat_template(messages, tokenize=False, chat_template=MARKED_TEMPLATE)
        if marked != expected:
            raise SystemExit(
                "plain_trl.py: --completion-only needs SmolLM2's ChatML template; this model renders "
                f"differently:\n{expected!r}\nvs\n{marked!r}"
            )
    tokenizer.chat_template = MARKED_TEMPLATE


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

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if args.precision == "default":  # what a user who writes no dtype gets
        model = AutoModelForCausalLM.from_pretrained(args.model)
    else:
        # as ftkit does: a frozen base is stored in bf16; trained weights stay fp32 under bf16 autocast
        dtype = torch.bfloat16 if args.precision == "bf16" and args.method == "lora" else torch.float32
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
        if args.completion_only:
            use_marked_template(tokenizer, dataset["messages"])

    peft_config = None
    if args.method == "lora":
        peft_config = LoraConfig(
            r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
        )
    choices = {}  # only what the command line sets; everything else stays at SFTConfig's defaults
    if not torch.cuda.is_available():
        # On a machine without a GPU, SFTConfig's default bf16=True refuses to start ("Your setup doesn't support
        # bf16/gpu. You need to assign use_cpu if you want to train the model on CPU."): a CPU user sets this.
        choices["use_cpu"] = True
    if args.precision != "default":
        choices["bf16"] = args.precision == "bf16"
    if args.gradient_checkpointing != "default":
        choices["gradient_checkpointing"] = args.gradient_checkpointing == "on"
    if args.completion_only:
        choices.update(
            {"assistant_only_loss": True} if args.format == "chat" else {"completion_only_loss": True}
        )
    config = SFTConfig(
        output_dir=args.output,
        **choices,
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        max_length=args.max_length,
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
    # every position the model computes, pads included, and the positions that carry loss (measurement only)
    processed = {"tokens": 0, "loss_tokens": 0}
    collate = trainer.data_collator

    def counting_collator(features):
        batch = collate(features)
        processed["tokens"] += int(batch["input_ids"].numel())
        processed["loss_tokens"] += int((batch["labels"][:, 1:] != -100).sum())
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
            "train.bf16": bool(config.bf16),
            "train.gradient_checkpointing": bool(config.gradient_checkpointing),
            "train.loss_tokens": processed["loss_tokens"],
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
