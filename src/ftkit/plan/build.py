"""Building a Plan from a validated recipe: the data as the run reads it, the model's facts, an analytic estimate
per candidate method, and a measured probe for each candidate that can fit."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ftkit.errors import FtkitError
from ftkit.plan.estimate import (
    DEFAULT_RUNTIME_BYTES,
    estimate_memory,
    human_bytes,
    model_facts,
    trainable_params,
)
from ftkit.plan.probe import DEFAULT_STEPS, probe_training_step, rss_bytes
from ftkit.plan.report import (
    DEFAULT_CANDIDATES,
    Candidate,
    Plan,
    batch_tokens,
    choose,
    method_error,
    refuse_if_unfit,
)


def build_plan(
    loaded: Any,
    *,
    candidates: list[str] | None = None,
    memory_limit: int | None = None,
    probe_steps: int = DEFAULT_STEPS,
    progress: Callable[[str], None] = lambda _line: None,
    refuse: bool = True,
) -> Plan:
    """The plan for `loaded` (a LoadedRecipe; its method.name may be `auto`). `memory_limit` replaces the
    machine's free memory (for planning another machine, and for tests); `probe_steps` 0 skips the probes.
    With `refuse`, raises UsageError (exit 2) naming cheaper alternatives when the recipe's method cannot fit
    (else call `refuse_unfit(plan)` once the plan is shown)."""
    from ftkit.data.encode import check_task_format, class_labels, encode_rows
    from ftkit.data.render import ensure_chat_template
    from ftkit.data.token_stats import token_stats
    from ftkit.methods.catalog import get_method
    from ftkit.recipe.resolve import data_only_choices
    from ftkit.train.auto_values import choose_max_seq_len
    from ftkit.train.hardware import detect_hardware, free_memory, plan_training
    from ftkit.train.model_loading import load_tokenizer
    from ftkit.train.quiet import quiet_libraries
    from ftkit.train.runner import load_recipe_data

    quiet_libraries()
    recipe, base = loaded.recipe, loaded.base_dir
    asked = recipe.method.name
    progress("reading the data")
    data = load_recipe_data(loaded)
    check_task_format(recipe.task, data)
    tokenizer = load_tokenizer(recipe.model, base)
    if recipe.task == "causal-lm":
        ensure_chat_template(tokenizer)
    labels = class_labels(data) if recipe.task == "classification" else None
    num_labels = len(labels) if labels else None

    reference = get_method("lora" if asked == "auto" else asked)
    auto = data_only_choices(
        recipe, loaded.method_options.model_dump(mode="json"), reference, len(data.train)
    )
    seq_choice = choose_max_seq_len(loaded, data.train, tokenizer)
    if seq_choice is not None:
        auto["training.max_seq_len"] = seq_choice
    value = lambda key: auto[key].value if key in auto else getattr(recipe.training, key.split(".")[1])  # noqa: E731
    batch, accum = int(value("training.batch_size")), int(value("training.grad_accum"))
    max_len = int(value("training.max_seq_len"))
    epochs = float(value("training.epochs"))
    encoded = encode_rows(data, tokenizer, max_seq_len=max_len, train_on=recipe.data.train_on, labels=labels)
    stats, _problems = token_stats("train", data.train, tokenizer, max_len, recipe.data.train_on)
    steps_per_epoch = math.ceil(math.ceil(len(encoded.train) / batch) / accum)
    planned = math.ceil(epochs * steps_per_epoch)
    if recipe.training.max_steps:
        planned = min(planned, recipe.training.max_steps)

    progress(f"reading {recipe.model}")
    facts = model_facts(recipe.model, base, recipe.task, num_labels)
    hardware = detect_hardware()
    training = {
        **recipe.training.model_dump(),
        "batch_size": batch,
        "grad_accum": accum,
        "max_seq_len": max_len,
    }
    free, source = free_memory(hardware.device)
    if memory_limit is not None:
        free, source = memory_limit, "--memory-limit"
    warnings = [f"{problem}" for problem in encoded.warnings]
    names = list(dict.fromkeys([*([asked] if asked != "auto" else []), *(candidates or DEFAULT_CANDIDATES)]))
    lengths = [len(row["input_ids"]) for row in encoded.train]
    longest = sorted(encoded.train, key=lambda row: len(row["input_ids"]), reverse=True)
    plan = Plan(
        model=recipe.model,
        task=recipe.task,
        method=asked,
        device=hardware.device,
        precision="",
        batch_size=batch,
        grad_accum=accum,
        max_seq_len=max_len,
        train_rows=len(encoded.train),
        tokens_per_epoch=int(stats.get("tokens_per_epoch", sum(lengths))),
        steps_per_epoch=steps_per_epoch,
        planned_steps=planned,
        free_bytes=free,
        free_source=source,
        candidates=[],
        warnings=warnings,
        auto={key: f"{choice.value} ({choice.evidence})" for key, choice in auto.items()},
    )
    config = _skeleton(loaded, num_labels).config  # with the attention implementation padding-free depends on
    runtime = rss_bytes() if hardware.device == "cpu" else 0
    for name in names:
        candidate = Candidate(name)
        plan.candidates.append(candidate)
        try:
            method = get_method(name)
            method.check_requirements()
            options = loaded.method_options if name == reference.name else method.parse_options({})
            if "method.r" in auto and hasattr(options, "r"):
                options = options.model_copy(update={"r": auto["method.r"].value})
            method.tokenizer = tokenizer
            adjustments = method.adjust_training(options, training)
            settings = {**training, **adjustments.overrides}
            decided = plan_training(hardware, settings, facts.total_params, recipe.task, method, config)
            _load, load_notes = method.base_load_kwargs(
                options, hardware.device, lambda: _skeleton(loaded, num_labels)
            )
            candidate.notes = [*decided.notes, *adjustments.notes, *load_notes]
            trainable = trainable_params(recipe.model, base, method, options, recipe.task, num_labels)
        except FtkitError as error:
            candidate.error = method_error(error)
            continue
        if name == (reference.name if asked == "auto" else asked) or not plan.precision:
            plan.precision = decided.precision
        candidate.memory = estimate_memory(
            facts,
            method=method,
            trainable=trainable,
            batch_size=batch,
            max_seq_len=max_len,
            precision=decided.precision,
            gradient_checkpointing=decided.gradient_checkpointing,
            runtime=runtime or (DEFAULT_RUNTIME_BYTES if hardware.device == "cpu" else 0),
        )
        candidate.predicted_bytes = candidate.memory.total
        candidate.fits = candidate.predicted_bytes <= free
        if not candidate.fits or probe_steps < 1:
            continue
        progress(f"probing {name}: {probe_steps} steps at batch {batch} × {max_len} tokens")
        probe = probe_training_step(
            recipe.model,
            method=name,
            method_options=options.model_dump(mode="json"),
            task=recipe.task,
            batch_size=batch,
            max_seq_len=max_len,
            steps=probe_steps,
            rows=longest[: batch * (probe_steps + 1)],
            num_labels=num_labels or 2,
            training={**{k: v for k, v in settings.items() if v != "auto"}, "grad_accum": 1},
            base_dir=base,
        )
        candidate.probe = probe.to_dict()
        measured = probe.peak_memory_bytes + (probe.baseline_bytes if hardware.device == "cpu" else 0)
        candidate.memory.basis = f"measured by the probe ({probe.memory_measure})"
        candidate.predicted_bytes = measured
        candidate.fits = measured <= free
        tokens = batch_tokens(lengths, batch, decided.padding_free, recipe.training.seed)
        scale = tokens / probe.tokens_per_step if probe.tokens_per_step else 1.0
        candidate.seconds_per_step = round(probe.seconds_per_step * accum * scale, 3)
        candidate.run_seconds = round(candidate.seconds_per_step * planned, 1)
        candidate.notes.append(
            f"{probe.steps_probed} steps probed at batch {batch} × {max_len} tokens (the longest rows): "
            f"{probe.seconds_per_step:.3g} s/step; a run's average step holds {tokens:,.0f} tokens "
            f"({probe.tokens_per_step:,} in a probe step)"
        )
    choose(plan)
    if refuse:
        refuse_unfit(plan)
    return plan


def refuse_unfit(plan: Plan) -> None:
    """Raise UsageError (exit 2) when the chosen method cannot fit, naming the methods and the batch that do."""
    refuse_if_unfit(plan, _smaller_batch(plan))


def _skeleton(loaded: Any, num_labels: int | None) -> Any:
    from ftkit.train.model_loading import model_skeleton

    return model_skeleton(loaded.recipe.model, loaded.base_dir, loaded.recipe.task, num_labels)


def _smaller_batch(plan: Plan) -> int | None:
    """The largest micro-batch below the plan's at which the chosen method fits, activations scaled linearly."""
    asked = plan.candidate(plan.method)
    if asked is None or asked.memory is None or asked.fits:
        return None
    per_row = asked.memory.activations / plan.batch_size
    fixed = asked.predicted_bytes - asked.memory.activations
    for batch in range(plan.batch_size - 1, 0, -1):
        if fixed + per_row * batch <= plan.free_bytes:
            return batch
    return None


__all__ = ["build_plan", "human_bytes"]
