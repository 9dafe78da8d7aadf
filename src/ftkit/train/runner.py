"""One run, end to end: data → model → base evaluation → training → tuned evaluation → saved output.

The runner orchestrates; the steps live with their packages: resolution in `ftkit.recipe.resolve`, tokenization
in `ftkit.data.encode`, evaluation in `ftkit.evaluation.evaluate`, the trainer in `ftkit.train.trainer`. It knows
nothing about the terminal (it talks to a Reporter) nor about the registry (the caller commits the RunResult).
Heavy libraries are imported inside functions, never at `ftkit` import time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from ftkit.data.dataset import RunData
from ftkit.data.encode import EncodedRows, check_task_format, class_labels, encode_rows
from ftkit.data.render import ensure_chat_template
from ftkit.errors import DataError, FtkitError
from ftkit.evaluation import answers
from ftkit.evaluation.evaluate import evaluate_model
from ftkit.methods.base import Method
from ftkit.methods.catalog import get_method
from ftkit.recipe.auto_rules import Choice
from ftkit.recipe.load import LoadedRecipe
from ftkit.recipe.resolve import config_hash, resolve_recipe
from ftkit.registry import testpoints
from ftkit.tracking.session import Tracking
from ftkit.train import auto_values, output_files
from ftkit.train.callbacks import GracefulStop, ProgressTracker, Reporter, trainer_callback
from ftkit.train.checkpoints import Checkpoint
from ftkit.train.distributed import agree
from ftkit.train.event_log import EventLog
from ftkit.train.hardware import detect_hardware, plan_training
from ftkit.train.output_dir import check_output_writable
from ftkit.train.precision import confirm_auto_bf16
from ftkit.train.quiet import quiet_libraries
from ftkit.train.resume import ForkFrom, ResumeFrom, prepare_checkpoints
from ftkit.train.run_evaluation import RunEvaluation
from ftkit.train.run_io import load_recipe_data, save_output
from ftkit.train.run_result import RunResult, now_iso
from ftkit.train.run_tracking import finish_run_tracking, start_run_tracking

__all__ = ["RunResult", "execute_run", "load_recipe_data", "now_iso", "save_output"]


class _Run:
    """State of one run; `execute()` is the public entry point."""

    def __init__(
        self,
        loaded: LoadedRecipe,
        run_id: str,
        run_name: str,
        reporter: Reporter,
        start: ResumeFrom | ForkFrom | None = None,
        on_checkpoint: Callable[[Checkpoint], None] | None = None,
        record_facts: Callable[..., None] | None = None,
    ):
        self.loaded = loaded
        self.record_facts = record_facts  # the registry's update_run for this run (cli/run.py)
        self.start = start  # a checkpoint to continue (resume) or to take the weights from (fork)
        self.on_checkpoint = on_checkpoint
        self.recipe = loaded.recipe
        self.run_id = run_id
        self.run_name = run_name
        self.reporter = reporter
        self.method: Method = get_method(self.recipe.method.name)
        self.events: list[dict[str, Any]] = []
        self.live = EventLog()  # OUTPUT/<run-id>/events.jsonl, written as events happen (train/event_log.py)
        # the recipe's trackers, started with training (run_tracking.py)
        self.tracking = Tracking([], {}, print)
        self.metrics: dict[str, Any] = {}
        self.output_dir = loaded.resolve_path(self.recipe.output) / run_id
        if isinstance(start, ResumeFrom):  # the same run goes on in its own folder
            self.output_dir = start.output_dir
        self.started = time.perf_counter()
        self.device = "cpu"  # the plan's device, once known
        self.auto: dict[str, Choice] = {}  # the `auto` values chosen, by dotted key (train/auto_values.py)
        self.max_seq_len = self.recipe.training.max_seq_len
        self.main_process = (
            True  # False on the other processes of a multi-process run: they train, never write
        )
        self.extra_callbacks: list[
            Any
        ] = []  # train/worker.py's: the processes agree on settings and on stopping

    def event(self, kind: str, message: str, **data: Any) -> None:
        self.events.append({"time": now_iso(), "kind": kind, "message": message, **data})
        self.live.append(self.events[-1])
        self.reporter.event(kind, message, **data)

    def choose(self, key: str, choice: Choice) -> None:
        """Record an `auto` value and show it beside its evidence."""
        self.auto[key] = choice
        self.event("auto", auto_values.describe(key, choice), key=key, **choice.to_dict())

    # -- preparation ---------------------------------------------------------------------------------------

    def load_data(self) -> RunData:
        data = load_recipe_data(self.loaded)
        check_task_format(self.recipe.task, data)
        self.event(
            "data",
            f"data: {data.format} format ({data.format_reason}); "
            f"{len(data.train)} train rows, {len(data.eval)} eval rows"
            + (f"; {data.split}" if data.split else ""),
        )
        for column_warning in data.unused_columns:  # each one, so no column is dropped without a word
            self.event("warning", column_warning)
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

    def encode(self, data: RunData, tokenizer: Any, labels: list[Any] | None) -> EncodedRows:
        encoded = encode_rows(
            data,
            tokenizer,
            max_seq_len=self.max_seq_len,
            train_on=self.recipe.data.train_on,
            labels=labels,
        )
        self.metrics.update(encoded.metrics())
        for warning in encoded.warnings:
            self.event("warning", warning)
        if not encoded.train:
            raise DataError("no training rows left after rendering", hint="raise training.max_seq_len")
        return encoded

    def evaluate(
        self, model: Any, tokenizer: Any, eval_rows: list[dict], data: RunData, device: str
    ) -> tuple[dict[str, float], list[dict[str, Any]]]:
        return evaluate_model(
            model,
            tokenizer,
            eval_rows,
            task=self.recipe.task,
            settings=self.recipe.evaluation,
            examples=[example.data for example in data.eval],
            use_cache=self.method.generation_use_cache,
            device=device,
        )

    # -- the run -------------------------------------------------------------------------------------------

    def execute(self) -> RunResult:
        started_at = now_iso()
        result = RunResult(self.run_id, self.run_name, "failed", None, self.metrics, {}, "", started_at)
        result.events = self.events
        try:
            self._execute(result)
        except FtkitError as error:
            result.error = error.message
            finish_run_tracking(self.tracking, self, result)
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
        finish_run_tracking(self.tracking, self, result)
        return result

    def progress_row(self, row: dict[str, Any], total_steps: int | None = None) -> None:
        """One history row, as it is logged: to the live event log and the trackers."""
        self.live.progress(row, total_steps)
        self.tracking.log_row(row, total_steps)

    def _execute(self, result: RunResult) -> None:
        check_output_writable(self.loaded)  # before anything slow: found now, not when the weights are saved
        quiet_libraries()  # first: importing transformers' set_seed imports peft, hence bitsandbytes
        from transformers import set_seed

        from ftkit.train.model_loading import load_dtype, load_model, load_tokenizer, model_skeleton
        from ftkit.train.packed_attention import attention_note, training_attention
        from ftkit.train.trainer import build_trainer

        recipe = self.recipe
        self.method.check_requirements()
        data = self.load_data()
        result.data_files = data.files
        hardware = detect_hardware()
        result.hardware = hardware.to_dict()

        tokenizer = load_tokenizer(recipe.model, self.loaded.base_dir)
        self.method.tokenizer = tokenizer  # for methods that need it in prepare() (prompt tuning's init text)
        # a preference model is a causal LM: loaded, planned and prepared as one
        model_task = "causal-lm" if recipe.task == "preference" else recipe.task
        if model_task == "causal-lm" and ensure_chat_template(tokenizer):
            self.event("note", "the tokenizer has no chat template; using ChatML (saved with the model)")
        labels = class_labels(data) if recipe.task == "classification" else None
        seq_choice = auto_values.choose_max_seq_len(self.loaded, data.train, tokenizer)
        if seq_choice is not None:
            self.choose("training.max_seq_len", seq_choice)
            self.max_seq_len = seq_choice.value
        if recipe.task == "preference":  # TRL tokenizes the pairs (train/preference_trainer.py)
            train_rows, eval_rows = [ex.data for ex in data.train], [ex.data for ex in data.eval]
            self.metrics.update(data.skip_metrics())
            if skipped := data.skip_warning():
                self.event("warning", skipped)
        else:
            encoded = self.encode(data, tokenizer, labels)
            train_rows, eval_rows = encoded.train, encoded.eval

        set_seed(recipe.training.seed)
        self.event("phase", f"loading {recipe.model}")
        load_kwargs, load_notes = self.method.base_load_kwargs(
            self.loaded.method_options,
            hardware.device,
            lambda: model_skeleton(
                recipe.model, self.loaded.base_dir, model_task, len(labels) if labels else None
            ),
        )
        for note in load_notes:
            self.event("note", note)
        testpoints.pause_at("model-load")
        model = load_model(
            recipe.model,
            self.loaded.base_dir,
            model_task,
            load_dtype(recipe.training.precision, self.method.is_adapter),
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
                [] if recipe.task == "preference" else train_rows,  # pairs are not SFT batches: stays fp32
                tokenizer.pad_token_id,
                training["batch_size"] if isinstance(training["batch_size"], int) else 8,
                self.method.is_adapter,
            )
        )
        for note in [*plan.notes, *adjustments.notes]:
            self.event("note", note)
        chosen = auto_values.choose_training(
            self.loaded,
            self.method,
            train_rows=len(data.train),
            encoded_rows=train_rows,
            model_params=parameters,
            max_seq_len=self.max_seq_len,
            num_labels=len(labels) if labels else None,
            device=plan.device,
            lengths=(  # pairs are not encoded here: measured as TRL tokenizes them
                lambda: auto_values.token_lengths(
                    data.train, tokenizer, recipe.task, recipe.data.train_on, self.max_seq_len
                )
            )
            if recipe.task == "preference"
            else None,
        )
        for key, choice in chosen.items():
            self.choose(key, choice)
        if "method.r" in chosen:  # prepare() below builds the adapter at the chosen rank
            self.loaded.method_options = self.loaded.method_options.model_copy(
                update={"r": chosen["method.r"].value}
            )
        result.auto = {key: choice.to_dict() for key, choice in self.auto.items()}
        resolved = resolve_recipe(
            self.loaded,
            self.method,
            data_format=data.format,
            train_rows=len(data.train),
            decided=plan.decided(),
            choices=self.auto,
        )
        result.resolved = resolved
        result.config_hash = config_hash(resolved)
        if self.record_facts is not None:
            self.record_facts(resolved=resolved, config_hash=result.config_hash)
        if isinstance(self.start, ResumeFrom):
            self.start.check(resolved)  # RecipeError before anything is trained
        device = self.device = plan.device
        model.to(device)
        if recipe.task == "preference":
            from ftkit.train.preference_run import train_preference

            train_preference(self, result, model, tokenizer, train_rows, eval_rows, plan, resolved)
            return
        extras = RunEvaluation(recipe, self.method, tokenizer, device)
        extras.base(model)
        result.prompts = extras.prompts.rows  # filled in as answers come (base, each evaluation, tuned)

        if recipe.evaluation.compare_base and eval_rows:
            self.event("phase", "evaluating the base model")
            scores, samples = self.evaluate(model, tokenizer, eval_rows, data, device)
            self.metrics.update({f"base.eval.{key}": value for key, value in scores.items()})
            result.samples = answers.add_side([], samples, "base")

        set_seed(recipe.training.seed)
        model, trainable, total = self.prepare_method(model, recipe.task)
        self.event(
            "phase",
            f"training {self.method.name}: {trainable:,} of {total:,} parameters "
            f"({100 * trainable / total:.2f}%) on {device}, {plan.precision}",
        )

        progress = trainer_callback(ProgressTracker, self.reporter)
        progress.on_row = self.progress_row
        stopper = trainer_callback(GracefulStop, self.reporter)
        evaluator = extras.periodic(progress, eval_rows, [example.data for example in data.eval])
        trainer = build_trainer(
            model,
            tokenizer,
            train_rows,
            resolved,
            plan,
            [progress, evaluator, stopper, *self.extra_callbacks],
            task=recipe.task,
            output_dir=self.output_dir,
        )
        if getattr(trainer, "loss_note", None):
            self.event("note", trainer.loss_note)
        with training_attention(model, plan.padding_free, device, plan.precision) as attention:
            if attention:
                self.event("note", attention_note(attention))
            stopped = self.train_with(trainer, progress, stopper, result, resolved, lambda: evaluator.seconds)
        self.metrics.update(evaluator.metrics())
        model = trainer.model
        self.metrics.update(extras.finish(model, trainer.state.global_step, self.event))
        if self.main_process:
            save_output(self.method, model, tokenizer, self.output_dir, resolved, labels)
        if stopped:
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
            result.samples = answers.add_side(result.samples, samples, "tuned")
        extras.prompts.answer(model, "tuned")
        result.status = "succeeded"
        self.write_metrics()

    def prepare_method(self, model: Any, task: str) -> tuple[Any, int, int]:
        """The method's trainable model (`Method.prepare`), with its trainable and total parameter counts recorded
        as train.* metrics; returns (model, trainable, total)."""
        model = self.method.prepare(model, self.loaded.method_options, task)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        self.metrics.update(
            {
                "train.trainable_params": trainable,
                "train.total_params": total,
                "train.trainable_fraction": trainable / total if total else 0.0,
            }
        )
        return model, trainable, total

    def train_with(
        self, trainer: Any, progress: Any, stopper: Any, result: RunResult, resolved: dict, excluded: Callable
    ) -> bool:
        """Open the output folder (live log, trackers), train with checkpoints and the graceful stop, and record
        the history and training metrics; `excluded()` is time inside training that was not training (evaluations).
        Returns whether the run was asked to stop."""
        from ftkit.train.trainer import training_metrics

        self.output_dir.mkdir(parents=True, exist_ok=True)
        if self.main_process:
            self.live.open(self.output_dir)
            self.tracking = start_run_tracking(self, resolved, result.config_hash)
            result.tracking = self.tracking.facts
            if self.tracking.facts and self.record_facts is not None:  # `ftkit show` links the tracker's run
                self.record_facts(tracking=self.tracking.facts)
        result.output_dir = str(self.output_dir)
        saver = prepare_checkpoints(
            trainer, self.start, self.recipe.training, self.output_dir, self.event, self.on_checkpoint
        )
        resume_path = str(self.start.checkpoint.path) if isinstance(self.start, ResumeFrom) else None
        earlier = self.start.history_before() if isinstance(self.start, ResumeFrom) else []
        stopper.install()
        train_started = time.perf_counter()
        try:
            output = trainer.train(resume_from_checkpoint=resume_path)
            # Every process of a multi-process run stopped at the step any of them was asked to (ProcessAgreement),
            # even one whose own Ctrl-C had not arrived yet: they save and end as interrupted together.
            stopped = agree(stopper.requested, device=trainer.args.device)
            if stopped and saver is not None:
                saver.save_now()  # so `ftkit resume` continues from the step the run stopped at
        finally:
            stopper.uninstall()
            result.history = [*earlier, *progress.history]
        train_seconds = time.perf_counter() - train_started - excluded()  # training alone
        self.metrics.update(training_metrics(output, trainer, progress, train_seconds, self.device))
        if isinstance(self.start, ResumeFrom):  # transformers averages over this session's steps only
            self.metrics.update(
                self.start.whole_run_metrics(output.training_loss, trainer, result.history, self.metrics)
            )
        return stopped

    def write_metrics(self) -> None:
        self.metrics["run.wall_time_s"] = round(time.perf_counter() - self.started, 2)
        output_files.write_text(
            self.output_dir / "metrics.json", json.dumps(self.metrics, indent=2, sort_keys=True)
        )


def execute_run(
    loaded: LoadedRecipe,
    run_id: str,
    run_name: str,
    reporter: Reporter,
    start: ResumeFrom | ForkFrom | None = None,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
    record_facts: Callable[..., None] | None = None,
) -> RunResult:
    """Run a validated recipe end to end. FtkitErrors (bad data, model) propagate; training failures are
    captured in the result with status `failed`, and Ctrl-C yields status `interrupted`. `start` continues a run
    from its checkpoint (`ftkit resume`) or starts from another run's checkpoint weights (a fork);
    `on_checkpoint` is called with each complete checkpoint (the caller records it in the registry);
    `record_facts(**facts)` with the resolved recipe and config hash once known (registry/lifecycle.py)."""
    return _Run(loaded, run_id, run_name, reporter, start, on_checkpoint, record_facts).execute()
