"""One run, end to end: data → model → base evaluation → training → tuned evaluation → saved output.

The runner knows nothing about the terminal (it talks to a Reporter) nor about the registry (the caller commits
the RunResult). Heavy libraries are imported here, never at `ftkit` import time.
"""

from __future__ import annotations

import hashlib
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import yaml

from ftkit.data.dataset import RunData, load_run_data
from ftkit.data.readers import data_source
from ftkit.data.render import ensure_chat_template, prompt_text, reference_text, render_example
from ftkit.errors import DataError, FtkitError
from ftkit.methods.base import Method
from ftkit.methods.registry import get_method
from ftkit.recipe.load import LoadedRecipe
from ftkit.train.callbacks import GracefulStop, ProgressCallback, Reporter
from ftkit.train.hardware import TrainingPlan, detect_hardware, plan_training
from ftkit.train.precision import confirm_auto_bf16

NOISE_KEYS = ("name", "output")  # excluded from the config hash: they do not change what is trained


@dataclass
class RunResult:
    """What a run produced, ready to be summarised and committed to the registry."""

    run_id: str
    name: str
    status: str  # succeeded | failed | interrupted
    output_dir: str | None
    metrics: dict[str, Any]
    resolved: dict[str, Any]
    config_hash: str
    started_at: str
    ended_at: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    data_files: dict[str, Any] = field(default_factory=dict)
    hardware: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def config_hash(resolved: dict[str, Any]) -> str:
    """sha256 of the resolved recipe without keys that do not change training (name, output)."""
    relevant = {key: value for key, value in resolved.items() if key not in NOISE_KEYS}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()


class _Run:
    """State of one run; `execute()` is the public entry point."""

    def __init__(self, loaded: LoadedRecipe, run_id: str, run_name: str, reporter: Reporter):
        self.loaded = loaded
        self.recipe = loaded.recipe
        self.run_id = run_id
        self.run_name = run_name
        self.reporter = reporter
        self.method: Method = get_method(self.recipe.method.name)
        self.events: list[dict[str, Any]] = []
        self.metrics: dict[str, Any] = {}
        self.output_dir = loaded.resolve_path(self.recipe.output) / run_id
        self.started = time.perf_counter()

    def event(self, kind: str, message: str, **data: Any) -> None:
        self.events.append({"time": now_iso(), "kind": kind, "message": message, **data})
        self.reporter.event(kind, message, **data)

    # -- preparation ---------------------------------------------------------------------------------------

    def load_data(self) -> RunData:
        data_config = self.recipe.data
        base = self.loaded.base_dir
        eval_path = data_source(data_config.eval, base) if data_config.eval else None
        data = load_run_data(
            data_source(data_config.train, base),  # a local path, or a Hub dataset id kept as given
            eval_path,
            data_config.format,
            data_config.columns,
            data_config.eval_split,
            self.recipe.training.seed,
        )
        if self.recipe.task == "classification" and data.format != "classification":
            raise DataError(
                f"task is classification but the data is in {data.format} format ({data.format_reason})",
                hint="give rows with `text` and `label`, or map columns with data.columns",
            )
        if self.recipe.task == "causal-lm" and data.format in ("classification", "preference"):
            raise DataError(
                f"task is causal-lm but the data is in {data.format} format ({data.format_reason})",
                hint="set task: classification"
                if data.format == "classification"
                else "preference data trains with DPO, which is not available yet",
            )
        self.event(
            "data",
            f"data: {data.format} format ({data.format_reason}); "
            f"{len(data.train)} train rows, {len(data.eval)} eval rows"
            + (f"; {data.split}" if data.split else ""),
        )
        if data.warnings:  # same checker as `ftkit data check`: errors stopped the run above
            self.event(
                "warning",
                f"data check: {len(data.warnings)} warning{'s' if len(data.warnings) > 1 else ''}, "
                f"first: {data.warnings[0]} (`ftkit data check FILE` lists them all)",
            )
        if data.overlap is not None:  # recorded even when 0, so the registry shows it was checked
            overlap = data.overlap
            self.metrics["data.eval_overlap_rows"] = overlap.exact_rows
            self.metrics["data.eval_overlap_rows_normalized"] = overlap.normalized_rows
            if overlap.normalized_rows:
                self.event(
                    "warning",
                    f"eval overlap: {overlap.describe()} (`ftkit data check TRAIN --eval EVAL` lists them)",
                    eval_overlap_rows=overlap.exact_rows,
                    eval_overlap_rows_normalized=overlap.normalized_rows,
                    eval_lines=[match.eval_line for match in overlap.matches[:5]],
                )
        return data

    def resolve(self, data: RunData, plan: TrainingPlan, options: Any) -> dict[str, Any]:
        """The recipe with every default and `auto` filled in: what actually ran, re-runnable as a recipe."""
        resolved = self.recipe.model_dump(mode="json")
        training = resolved["training"]
        if training["epochs"] == "auto":
            training["epochs"] = 3 if len(data.train) < 1000 else 1
        if training["learning_rate"] == "auto":
            training["learning_rate"] = self.method.default_learning_rate
        if training["batch_size"] == "auto":
            training["batch_size"] = max(1, min(8, len(data.train)))
        training["precision"] = plan.precision
        training["gradient_checkpointing"] = plan.gradient_checkpointing
        training["device"] = plan.device
        training["padding_free"] = plan.padding_free
        resolved["method"] = {"name": self.method.name, **options.model_dump(mode="json")}
        resolved["data"]["format"] = data.format
        # Local paths become absolute so the resolved recipe re-runs from anywhere; hub ids stay as they are.
        for section, key in (("data", "train"), ("data", "eval"), (None, "model")):
            holder = resolved[section] if section else resolved
            if holder.get(key) and self.loaded.resolve_path(holder[key]).exists():
                holder[key] = str(self.loaded.resolve_path(holder[key]))
        resolved["output"] = str(self.loaded.resolve_path(self.recipe.output))
        return resolved

    def render(
        self, data: RunData, tokenizer: Any, labels: list[Any] | None
    ) -> tuple[list[dict], list[dict]]:
        """Tokenize train and eval rows; count truncated rows and drop (and count) rows left with no loss."""
        max_len = self.recipe.training.max_seq_len
        stats = {"truncated_rows": 0, "truncated_tokens": 0, "dropped_rows": 0}
        rendered: dict[str, list[dict]] = {}
        for split, examples in (("train", data.train), ("eval", data.eval)):
            out = []
            for example in examples:
                if labels is not None:
                    encoded = tokenizer(example.data["text"], truncation=False, add_special_tokens=True)[
                        "input_ids"
                    ]
                    cut = max(0, len(encoded) - max_len)
                    item = {"input_ids": encoded[:max_len], "labels": labels.index(example.data["label"])}
                else:
                    result = render_example(example.data, tokenizer, max_len, self.recipe.data.train_on)
                    cut = result.truncated_tokens
                    item = {"input_ids": result.input_ids, "labels": result.labels}
                    if result.trained_tokens == 0:
                        if split == "train":
                            stats["dropped_rows"] += 1
                        continue
                if cut and split == "train":
                    stats["truncated_rows"] += 1
                    stats["truncated_tokens"] += cut
                out.append(item)
            rendered[split] = out
        self.metrics.update({f"data.{key}": value for key, value in stats.items()})
        self.metrics["data.train_rows"] = len(rendered["train"])
        self.metrics["data.eval_rows"] = len(rendered["eval"])
        if stats["truncated_rows"]:
            self.event(
                "warning",
                f"{stats['truncated_rows']} train rows longer than max_seq_len={max_len} were "
                f"truncated ({stats['truncated_tokens']} tokens lost)",
            )
        if stats["dropped_rows"]:
            self.event(
                "warning",
                f"{stats['dropped_rows']} train rows had no trainable tokens after truncation "
                "and were dropped",
            )
        if not rendered["train"]:
            raise DataError("no training rows left after rendering", hint="raise training.max_seq_len")
        return rendered["train"], rendered["eval"]

    # -- evaluation ----------------------------------------------------------------------------------------

    def evaluate(
        self, model: Any, tokenizer: Any, eval_rows: list[dict], data: RunData, device: str
    ) -> tuple[dict[str, float], list[dict[str, str]]]:
        """Eval metrics and, when `evaluation.generate` is set, generated samples with exact match."""
        from ftkit.evaluation.metrics import causal_lm_loss, classification_metrics

        settings = self.recipe.evaluation
        rows = eval_rows[: settings.max_rows] if settings.max_rows else eval_rows
        if not rows:
            return {}, []
        if self.recipe.task == "classification":
            return classification_metrics(
                model, rows, tokenizer.pad_token_id, settings.batch_size, device
            ), []
        scores = causal_lm_loss(model, rows, tokenizer.pad_token_id, settings.batch_size, device)
        scores.pop("tokens", None)
        samples: list[dict[str, str]] = []
        if settings.generate:
            samples = self.generate_samples(model, tokenizer, data, device)
            scores["exact_match"] = sum(sample["match"] for sample in samples) / len(samples)
        return scores, samples

    def generate_samples(
        self, model: Any, tokenizer: Any, data: RunData, device: str
    ) -> list[dict[str, Any]]:
        from ftkit.evaluation.generate import exact_match, greedy_generate_batch

        settings = self.recipe.evaluation
        examples = [example.data for example in data.eval[: settings.generate]]
        prompts = [prompt_text(example, tokenizer) for example in examples]
        predictions = greedy_generate_batch(
            model,
            tokenizer,
            prompts,
            settings.max_new_tokens,
            use_cache=self.method.generation_use_cache,
            device=device,
            batch_size=settings.batch_size,
        )
        samples = []
        for example, prompt, prediction in zip(examples, prompts, predictions, strict=True):
            reference = reference_text(example)
            samples.append(
                {
                    "prompt": prompt,
                    "reference": reference,
                    "prediction": prediction,
                    "match": exact_match(prediction, reference),
                }
            )
        return samples

    # -- training ------------------------------------------------------------------------------------------

    def build_trainer(
        self,
        model: Any,
        tokenizer: Any,
        train_rows: list[dict],
        resolved: dict,
        plan: TrainingPlan,
        callbacks: list[Any],
    ) -> Any:
        from datasets import Dataset
        from transformers import DataCollatorWithPadding, Trainer, TrainingArguments
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        training = resolved["training"]
        checkpointing_arg = _checkpointing_arg()
        common = dict(
            output_dir=str(self.output_dir / "checkpoints"),
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
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            disable_tqdm=True,
            bf16=plan.precision == "bf16",
            fp16=plan.precision == "fp16",
            use_cpu=plan.device == "cpu",
            **{checkpointing_arg: plan.gradient_checkpointing},
            # Padding-free batches hold no pads, and counting "non_padding" there drops every real token that
            # equals the pad id (SmolLM2's pad is its end-of-turn token); padded batches count by attention mask.
            include_num_input_tokens_seen="all" if plan.padding_free else "non_padding",
            dataloader_num_workers=0,
            remove_unused_columns=False,
        )
        dataset = Dataset.from_list(train_rows)
        if self.recipe.task == "classification":
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
                # Rows are already truncated (and counted) by render(); TRL re-truncates only when packing.
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
        for noisy in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(noisy)
        return trainer

    def execute(self) -> RunResult:
        started_at = now_iso()
        result = RunResult(self.run_id, self.run_name, "failed", None, self.metrics, {}, "", started_at)
        result.events = self.events
        try:
            self._execute(result)
        except FtkitError:
            raise
        except KeyboardInterrupt:
            result.status = "interrupted"
            result.error = "interrupted by the user before training finished"
        except Exception as error:  # the run itself failed: recorded, reported, exit 1
            result.status = "failed"
            result.error = f"{type(error).__name__}: {error}"
            self.event("error", f"run failed: {result.error}")
        result.ended_at = now_iso()
        self.metrics["run.wall_time_s"] = round(time.perf_counter() - self.started, 2)
        return result

    def _execute(self, result: RunResult) -> None:
        import torch
        from transformers import set_seed

        quiet_libraries()
        from ftkit.train.model_loading import load_model, load_tokenizer, model_skeleton

        recipe = self.recipe
        self.method.check_requirements()
        data = self.load_data()
        result.data_files = data.files
        hardware = detect_hardware()
        result.hardware = hardware.to_dict()

        tokenizer = load_tokenizer(recipe.model, self.loaded.base_dir)
        self.method.tokenizer = tokenizer  # for methods that need it in prepare() (prompt tuning's init text)
        if recipe.task == "causal-lm" and ensure_chat_template(tokenizer):
            self.event("note", "the tokenizer has no chat template; using ChatML (saved with the model)")
        labels = None
        if recipe.task == "classification":
            labels = sorted({example.data["label"] for example in data.train}, key=str)
            unknown = sorted({str(e.data["label"]) for e in data.eval if e.data["label"] not in labels})
            if unknown:
                raise DataError(
                    f"eval labels not seen in train: {', '.join(unknown)}",
                    hint="every eval label needs training examples",
                )
        train_rows, eval_rows = self.render(data, tokenizer, labels)

        set_seed(recipe.training.seed)
        self.event("phase", f"loading {recipe.model}")
        dtype = (
            torch.bfloat16
            if recipe.training.precision == "bf16" and self.method.is_adapter
            else torch.float32
        )
        load_kwargs, load_notes = self.method.base_load_kwargs(
            self.loaded.method_options,
            hardware.device,
            lambda: model_skeleton(
                recipe.model, self.loaded.base_dir, recipe.task, len(labels) if labels else None
            ),
        )
        for note in load_notes:
            self.event("note", note)
        model = load_model(
            recipe.model,
            self.loaded.base_dir,
            recipe.task,
            dtype,
            load_kwargs,
            [str(label) for label in labels] if labels is not None else None,
            pad_token_id=tokenizer.pad_token_id,  # decoder classifiers pool on the last non-pad token
        )
        parameters = sum(p.numel() for p in model.parameters())
        adjustments = self.method.adjust_training(self.loaded.method_options, recipe.training.model_dump())
        training = {**recipe.training.model_dump(), **adjustments.overrides}
        plan = plan_training(hardware, training, parameters, recipe.task, self.method, model.config)
        self.metrics.update(  # auto's bf16 on a CPU: confirmed against fp32 on the first batches, or dropped
            confirm_auto_bf16(
                plan,
                training["precision"],
                model,
                train_rows,
                tokenizer.pad_token_id,
                training["batch_size"] if isinstance(training["batch_size"], int) else 8,
                self.method.is_adapter,
            )
        )
        for note in [*plan.notes, *adjustments.notes]:
            self.event("note", note)
        resolved = self.resolve(data, plan, self.loaded.method_options)
        result.resolved = resolved
        result.config_hash = config_hash(resolved)
        device = plan.device
        model.to(device)

        if recipe.evaluation.compare_base and eval_rows:
            self.event("phase", "evaluating the base model")
            scores, samples = self.evaluate(model, tokenizer, eval_rows, data, device)
            self.metrics.update({f"base.eval.{key}": value for key, value in scores.items()})
            result.samples = [
                {"prompt": s["prompt"], "reference": s["reference"], "base": s["prediction"]} for s in samples
            ]

        set_seed(recipe.training.seed)
        model = self.method.prepare(model, self.loaded.method_options, recipe.task)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        self.metrics.update(
            {
                "train.trainable_params": trainable,
                "train.total_params": total,
                "train.trainable_fraction": trainable / total if total else 0.0,
            }
        )
        self.event(
            "phase",
            f"training {self.method.name}: {trainable:,} of {total:,} parameters "
            f"({100 * trainable / total:.2f}%) on {device}, {plan.precision}",
        )

        progress = ProgressCallback(self.reporter)
        stopper = GracefulStop(self.reporter)
        trainer = self.build_trainer(model, tokenizer, train_rows, resolved, plan, [progress, stopper])
        self.output_dir.mkdir(parents=True, exist_ok=True)
        result.output_dir = str(self.output_dir)
        stopper.install()
        train_started = time.perf_counter()
        try:
            output = trainer.train()
        finally:
            stopper.uninstall()
            result.history = progress.history
        train_seconds = time.perf_counter() - train_started
        losses = [row["loss"] for row in progress.history if "loss" in row]
        self.metrics.update(
            {
                "train.loss": float(output.training_loss),
                "train.loss_first": losses[0] if losses else None,
                "train.loss_last": losses[-1] if losses else None,
                "train.steps": trainer.state.global_step,
                "train.runtime_s": round(train_seconds, 2),
                "train.tokens": progress.tokens_seen,
                "train.tokens_per_sec": round(progress.tokens_seen / train_seconds, 1)
                if train_seconds
                else None,
                "train.peak_memory_mb": peak_memory_mb(device),
            }
        )
        model = trainer.model
        self.save(model, tokenizer, resolved, labels)
        if stopper.requested:
            result.status = "interrupted"
            self.event(
                "interrupt", f"interrupted at step {trainer.state.global_step}; saved to {self.output_dir}"
            )
            self.write_metrics()
            return

        if eval_rows:
            self.event("phase", "evaluating the tuned model")
            scores, samples = self.evaluate(model, tokenizer, eval_rows, data, device)
            self.metrics.update({f"eval.{key}": value for key, value in scores.items()})
            if result.samples:
                for sample, tuned in zip(result.samples, samples, strict=True):
                    sample["tuned"] = tuned["prediction"]
            else:
                result.samples = [
                    {"prompt": s["prompt"], "reference": s["reference"], "tuned": s["prediction"]}
                    for s in samples
                ]
        result.status = "succeeded"
        self.write_metrics()

    def save(self, model: Any, tokenizer: Any, resolved: dict, labels: list | None) -> None:
        self.method.save(model, self.output_dir)
        tokenizer.save_pretrained(str(self.output_dir))
        (self.output_dir / "resolved.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
        if labels is not None:
            (self.output_dir / "labels.json").write_text(json.dumps([str(label) for label in labels]))

    def write_metrics(self) -> None:
        self.metrics["run.wall_time_s"] = round(time.perf_counter() - self.started, 2)
        (self.output_dir / "metrics.json").write_text(json.dumps(self.metrics, indent=2, sort_keys=True))


def quiet_libraries() -> None:
    """Silence library progress bars and advice: ftkit reports progress itself (FTKIT_DEBUG=1 keeps them)."""
    import os
    import warnings

    if os.environ.get("FTKIT_DEBUG") == "1":
        return
    import datasets
    import transformers

    os.environ.setdefault("TQDM_DISABLE", "1")  # raw tqdm bars, e.g. GGUF de-quantization
    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(transformers|trl|peft|torch)\.")


def _checkpointing_arg() -> str:
    """transformers 5.x renamed gradient_checkpointing to activation_checkpointing; use whichever exists."""
    from transformers import TrainingArguments

    fields = TrainingArguments.__dataclass_fields__
    return "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"


def peak_memory_mb(device: str) -> float:
    """Peak GPU memory on CUDA, else the process's peak resident set size."""
    if device == "cuda":
        import torch

        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def execute_run(loaded: LoadedRecipe, run_id: str, run_name: str, reporter: Reporter) -> RunResult:
    """Run a validated recipe end to end. FtkitErrors (bad data, model) propagate; training failures are
    captured in the result with status `failed`, and Ctrl-C yields status `interrupted`."""
    return _Run(loaded, run_id, run_name, reporter).execute()
