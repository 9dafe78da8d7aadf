"""The trainer of a `task: preference` run: TRL's DPOTrainer (objective dpo), or its experimental reference-free
trainers (ORPO; CPO with the SimPO loss), on the same settings every ftkit trainer states explicitly.

TRL tokenizes the pairs itself, as its SFT path does: plain strings as prompt + answer + EOS, message lists through
the tokenizer's chat template. ftkit adds, for DPO, the prompt cut (`max_prompt_len`, keeping the prompt's end) and
the counts of what was cut or dropped, reported like SFT's truncation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftkit.train.hardware import TrainingPlan
from ftkit.train.trainer import common_arguments, quiet_trainer


@dataclass
class Truncation:
    """What the preference trainer's tokenization cut, per dataset (train, eval)."""

    rows: dict[str, int] = field(default_factory=dict)  # pairs given
    dropped: dict[str, int] = field(default_factory=dict)  # pairs whose prompt alone filled max_seq_len
    prompts_cut: dict[str, int] = field(default_factory=dict)  # prompts shortened to max_prompt_len
    answers_cut: dict[str, int] = field(
        default_factory=dict
    )  # pairs whose longer answer ran past max_seq_len

    def metrics(self) -> dict[str, int]:
        """`data.<name>_...` counts for the run's metrics."""
        found: dict[str, int] = {}
        for name, rows in self.rows.items():
            found[f"data.{name}_pairs"] = rows
            found[f"data.{name}_pairs_dropped"] = self.dropped.get(name, 0)
            found[f"data.{name}_prompts_truncated"] = self.prompts_cut.get(name, 0)
            found[f"data.{name}_answers_truncated"] = self.answers_cut.get(name, 0)
        return found


def build_preference_trainer(
    model: Any,
    ref_model: Any,
    tokenizer: Any,
    train_rows: list[dict],
    eval_rows: list[dict],
    resolved: dict[str, Any],
    plan: TrainingPlan,
    callbacks: list[Any],
    output_dir: Path,
) -> tuple[Any, Truncation]:
    """The objective's trainer for the (prompt, chosen, rejected) rows, and what its tokenization cut."""
    from datasets import Dataset

    training, settings = resolved["training"], resolved["preference"]
    common = common_arguments(training, plan, output_dir)
    common["include_num_input_tokens_seen"] = "non_padding"  # preference batches are padded
    common["per_device_eval_batch_size"] = int(resolved["evaluation"]["batch_size"])
    train, evaluation = Dataset.from_list(train_rows), Dataset.from_list(eval_rows) if eval_rows else None
    truncation = Truncation()
    objective = settings["objective"]
    options: dict[str, Any] = {"beta": float(settings["beta"]), "max_length": int(training["max_seq_len"])}
    references: dict[str, Any] = {}
    if objective == "dpo":
        from trl import DPOConfig as Config

        Trainer = _counting_dpo_trainer(settings.get("max_prompt_len"), truncation)  # noqa: N806 - a class
        options |= {"loss_type": [settings["loss_type"]], "padding_free": False,
                    "precompute_ref_log_probs": settings["reference"] == "precompute"}  # fmt: skip
        references = {"ref_model": ref_model}
    elif objective == "orpo":
        from trl.experimental.orpo import ORPOConfig as Config
        from trl.experimental.orpo import ORPOTrainer as Trainer
    else:  # simpo: CPO's trainer with the SimPO loss and no SFT term
        from trl.experimental.cpo import CPOConfig as Config
        from trl.experimental.cpo import CPOTrainer as Trainer

        options |= {"loss_type": "simpo", "cpo_alpha": 0.0, "simpo_gamma": float(settings["simpo_gamma"])}
    trainer = Trainer(
        model=model,
        args=Config(**common, **options, dataset_num_proc=None),
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        callbacks=callbacks,
        **references,
    )
    if objective != "dpo":  # their own tokenization: only the pairs given are counted
        truncation.rows = {"train": len(train_rows), **({"eval": len(eval_rows)} if eval_rows else {})}
    adapters = getattr(trainer.model, "peft_config", None)
    if objective == "dpo" and isinstance(adapters, dict) and "ref" in adapters:
        # TRL copies an already-wrapped model's fresh adapter as a frozen "ref" adapter. A fresh adapter is the
        # identity (LoRA's B = 0, IA3's ones), so the reference is the base: drop the copy and TRL computes the
        # reference with the adapter switched off (no extra adapter forward, no ref/ folder in the output).
        trainer.model.delete_adapter("ref")
    quiet_trainer(trainer)
    return trainer, truncation


def _counting_dpo_trainer(max_prompt_len: int | None, truncation: Truncation) -> type:
    """DPOTrainer whose dataset preparation also cuts prompts to their last `max_prompt_len` tokens and counts
    what was cut and dropped. The cut happens inside preparation, so precomputed reference log-probs see it."""
    from trl import DPOTrainer

    class CountingDPOTrainer(DPOTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):  # noqa: ANN001, ANN202
            given = len(dataset)
            prepared = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
            if max_prompt_len:
                before = sum(1 for ids in prepared["prompt_ids"] if len(ids) > max_prompt_len)
                prepared = prepared.map(lambda row: {"prompt_ids": row["prompt_ids"][-max_prompt_len:]})
                truncation.prompts_cut[dataset_name] = before
            limit = args.max_length
            truncation.rows[dataset_name] = given
            truncation.dropped[dataset_name] = given - len(prepared)
            truncation.answers_cut[dataset_name] = sum(
                1
                for prompt, chosen, rejected in zip(
                    prepared["prompt_ids"], prepared["chosen_ids"], prepared["rejected_ids"], strict=True
                )
                if limit is not None and len(prompt) + max(len(chosen), len(rejected)) > limit
            )
            return prepared

    return CountingDPOTrainer
