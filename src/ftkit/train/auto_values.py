"""Measuring what the `auto` rules need, and choosing every `auto` value of a run (rules: recipe/auto_rules.py).

Two moments in a run: `choose_max_seq_len` before the rows are encoded (it needs the rows' token lengths and the
model's context), `choose_training` once the model is loaded (its parameter count; a memory probe decides the
micro-batch and a throughput probe caps the steps under `training.time_budget`). Probes are PLAN's
`ftkit.plan.probe.probe_training_step`: real optimizer steps of the run's method on a second copy of the model.
Each choice becomes an `auto` event ("epochs 3 (auto: ...)") and the run record's `auto` entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ftkit.data.render import char_limit, render_example
from ftkit.recipe import auto_rules
from ftkit.recipe.auto_rules import Choice
from ftkit.recipe.load import LoadedRecipe
from ftkit.recipe.resolve import batch_choices

MEMORY_HEADROOM = 0.9  # use at most this share of the free memory: allocator slack, fragmentation


def model_context(model: str, base_dir: Any, tokenizer: Any) -> int | None:
    """The longest sequence the model takes: its config's position limit, or the tokenizer's when smaller."""
    from transformers import AutoConfig

    from ftkit.train.model_loading import model_source

    source, extra = model_source(model, base_dir)
    try:
        config = AutoConfig.from_pretrained(source, **extra)
    except (OSError, ValueError):  # loading the model itself reports this, located, a moment later
        config = None
    limits = [
        value
        for value in (
            getattr(config, "max_position_embeddings", None),
            getattr(config, "n_positions", None),
            getattr(tokenizer, "model_max_length", None),
        )
        if isinstance(value, int) and 0 < value < 10**7  # tokenizers without a limit say 1e30
    ]
    return min(limits) if limits else None


def token_lengths(examples: list[Any], tokenizer: Any, task: str, train_on: str, limit: int) -> list[int]:
    """Each training row's full token length (as training renders it), counted up to `limit` tokens of text; for
    a preference pair, the prompt and its longer answer (the longer of the two sequences TRL trains on)."""
    from ftkit.data.token_stats import pair_lengths

    lengths = []
    for example in examples:
        data = example.data
        if task == "preference":
            prompt, chosen, rejected = pair_lengths(data, tokenizer, limit)
            lengths.append(prompt + max(chosen, rejected))
        elif task == "classification":
            ids = tokenizer(data["text"][: char_limit(limit)], add_special_tokens=True)["input_ids"]
            lengths.append(len(ids))
        else:
            rendered = render_example(data, tokenizer, limit, train_on)
            lengths.append(len(rendered.input_ids) + rendered.truncated_tokens)
    return lengths


def choose_max_seq_len(loaded: LoadedRecipe, examples: list[Any], tokenizer: Any) -> Choice | None:
    """The max_seq_len choice when the recipe says `auto` (None otherwise)."""
    recipe = loaded.recipe
    if recipe.training.max_seq_len != "auto":
        return None
    context = model_context(recipe.model, loaded.base_dir, tokenizer)
    lengths = token_lengths(examples, tokenizer, recipe.task, recipe.data.train_on, context or 1_048_576)
    return auto_rules.max_seq_len(lengths, context)


def cheaper_alternative(method: str, max_seq_len: int) -> str:
    """What to try when not even one example per step fits."""
    lighter = {
        "full": "method.name: lora (trains ~1% of the weights, no optimizer states for the rest)",
        "freeze": "method.name: lora",
        "lora": "method.name: qlora (a 4-bit base)",
        "dora": "method.name: qlora (a 4-bit base)",
    }.get(method)
    shorter = f"a shorter training.max_seq_len (now {max_seq_len})"
    return (
        f"try {lighter}, or {shorter}"
        if lighter
        else f"try {shorter} or training.gradient_checkpointing: true"
    )


def free_memory_bytes(device: str) -> int:
    """Memory a run may still use (train/hardware.py's free_memory: free GPU memory on CUDA, MemAvailable on a
    CPU); the seam tests replace to simulate a machine with no memory left."""
    from ftkit.train.hardware import free_memory

    return free_memory(device)[0]


def micro_batch_cap(device: str, max_seq_len: int) -> Choice | None:
    """The device's cap on the micro-batch (auto_rules.cpu_micro_batch_cap on a CPU; none on a GPU)."""
    return auto_rules.cpu_micro_batch_cap(max_seq_len) if device == "cpu" else None


class MemoryFit:
    """`fits(batch)` from measured peaks: a probe at micro-batch 1 (and 2 when needed), extrapolated linearly, so
    that no probe is ever run at a batch that could exhaust memory. Peak(1) includes the weights, gradients and
    optimizer states, so batch × peak(1) is an upper bound; past it, peak(1) + (batch - 1) × (peak(2) - peak(1))."""

    def __init__(self, probe: Callable[[int], Any], free_bytes: int, effective: int):
        self.probe = probe
        self.free = int(free_bytes * MEMORY_HEADROOM)
        self.effective = effective
        self.peaks: dict[int, int] = {}
        self.probes: dict[int, Any] = {}

    def _peak(self, batch: int) -> int | None:
        if batch not in self.peaks:
            try:
                measured = self.probe(batch)
            except Exception as error:  # CUDA out of memory: this batch does not fit
                if "out of memory" not in str(error).lower():
                    raise
                self.peaks[batch] = -1
            else:
                self.probes[batch] = measured
                self.peaks[batch] = int(measured.peak_memory_bytes)
        return None if self.peaks[batch] < 0 else self.peaks[batch]

    def __call__(self, batch: int) -> bool:
        one = self._peak(1)
        if one is None or one > self.free:
            return False
        if batch * one <= self.free:
            return True
        two = self._peak(2)
        if two is None:
            return False
        return one + (batch - 1) * max(0, two - one) <= self.free

    def describe(self) -> str:
        measured = ", ".join(f"batch {b}: {peak / 2**20:,.0f} MiB" for b, peak in sorted(self.peaks.items()))
        return f"probed peak {measured}; free {self.free / 2**20:,.0f} MiB (×{MEMORY_HEADROOM} headroom)"


def choose_training(
    loaded: LoadedRecipe,
    method: Any,
    *,
    train_rows: int,
    encoded_rows: list[dict[str, Any]],
    model_params: int,
    max_seq_len: int,
    num_labels: int | None,
    device: str,
    probe: Callable[..., Any] | None = None,
    lengths: Callable[[], list[int]] | None = None,
) -> dict[str, Choice]:
    """Every `auto` training value and the LoRA rank, chosen from the data, the loaded model and probes.
    `probe` is probe_training_step, or for a preference run probe_preference_step (injectable for tests); it runs
    only for batch_size auto or a time budget, on the longest rows by `lengths()` (default: their input_ids). A
    preference run's `encoded_rows` are its (prompt, chosen, rejected) pairs, each two sequences per step."""
    recipe, training = loaded.recipe, loaded.recipe.training
    task = recipe.task
    found: dict[str, Choice] = {}
    if training.epochs == "auto":
        found["training.epochs"] = auto_rules.epochs(train_rows, task)
    if training.learning_rate == "auto":
        found["training.learning_rate"] = auto_rules.learning_rate(
            method.name, model_params, task, method.default_learning_rate
        )
    options = loaded.method_options.model_dump(mode="json")
    if options.get("r") == "auto":
        found["method.r"] = auto_rules.lora_rank(train_rows)
        options["r"] = found["method.r"].value
    preference = task == "preference"
    if probe is None and preference:
        from ftkit.plan.preference import probe_preference_step as probe
    elif probe is None:
        from ftkit.plan.probe import probe_training_step as probe

    rate = found.get("training.learning_rate", Choice(training.learning_rate, "", "")).value

    def run_probe(batch: int, rows: list[dict[str, Any]], steps: int = 1) -> Any:
        task_arguments = (
            {"preference": recipe.preference.model_dump(mode="json")}
            if preference
            else {"task": task, "num_labels": num_labels or 2}
        )
        return probe(
            recipe.model,
            method=method.name,
            method_options=options,
            batch_size=batch,
            max_seq_len=max_seq_len,
            steps=steps,
            warmup=1,
            rows=rows,
            training={
                **{k: v for k, v in training.model_dump().items() if v != "auto"},
                "grad_accum": 1,
                "learning_rate": rate,
                "time_budget": None,
            },
            base_dir=loaded.base_dir,
            **task_arguments,
        )

    def longest_rows() -> list[dict[str, Any]]:
        sizes = lengths() if lengths is not None else [len(row["input_ids"]) for row in encoded_rows]
        order = sorted(range(len(encoded_rows)), key=lambda index: sizes[index], reverse=True)
        return [encoded_rows[index] for index in order]

    fit = None
    if training.batch_size == "auto":
        target = auto_rules.effective_batch(train_rows, task).value
        longest = longest_rows()
        fit = MemoryFit(
            lambda b: run_probe(b, longest[: b * 2] or encoded_rows), free_memory_bytes(device), target
        )
        found.update(
            batch_choices(
                "auto",
                training.grad_accum,
                train_rows,
                task,
                fit,
                cheaper=cheaper_alternative(method.name, max_seq_len),
                max_micro=micro_batch_cap(device, max_seq_len * (2 if preference else 1)),
            )
        )
        split = found["training.batch_size"]
        found["training.batch_size"] = Choice(split.value, split.rule, f"{split.evidence}; {fit.describe()}")
    else:
        found.update(
            batch_choices(training.batch_size, training.grad_accum, train_rows, task, lambda _b: True)
        )
    if training.time_budget is not None:
        found["training.max_steps"] = _budget_steps(loaded, found, encoded_rows, run_probe)
    return found


def _budget_steps(
    loaded: LoadedRecipe, found: dict[str, Choice], rows: list[dict[str, Any]], run_probe: Callable[..., Any]
) -> Choice:
    """Steps within training.time_budget: seconds per optimizer step = a probe's seconds per micro-batch step
    (2 steps after a warm-up, on the run's own rows) × grad_accum."""
    training = loaded.recipe.training
    value = lambda key: found[key].value if key in found else getattr(training, key.split(".")[1])  # noqa: E731
    micro, accum, epochs = (
        value("training.batch_size"),
        value("training.grad_accum"),
        value("training.epochs"),
    )
    per_epoch = math.ceil(math.ceil(len(rows) / micro) / accum)
    planned = math.ceil(float(epochs) * per_epoch)
    if training.max_steps:
        planned = min(planned, training.max_steps)
    measured = run_probe(micro, rows[: micro * 3] or rows, steps=2)
    per_step = float(measured.seconds_per_step) * accum
    budget = auto_rules.parse_duration(training.time_budget)
    choice = auto_rules.steps_for_budget(budget, per_step, planned)
    probed = f"probe: {measured.steps_probed} steps at micro-batch {micro}, {measured.seconds_per_step:.3g} s × {accum}"
    return Choice(choice.value, choice.rule, f"{choice.evidence} ({probed})")


def describe(key: str, choice: Choice) -> str:
    """ "epochs 3 (auto: 2,026 rows × 3 = 6,078 examples seen ...)" for the run's start."""
    name = key.split(".", 1)[1]
    return f"{name} {choice.value} (auto: {choice.evidence})"
