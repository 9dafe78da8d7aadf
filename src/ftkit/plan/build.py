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
    from ftkit.train.hardware import detect_hardware, free_memory
    from ftkit.train.model_loading import load_tokenizer
    from ftkit.train.quiet import quiet_libraries
    from ftkit.train.runner import load_recipe_data

    recipe, base = loaded.recipe, loaded.base_dir
    if recipe.task == "preference":  # two sequences per pair and a reference model: plan/preference.py
        from ftkit.plan.preference import build_preference_plan

        plan = build_preference_plan(
            loaded,
            candidates=candidates,
            memory_limit=memory_limit,
            probe_steps=probe_steps,
            progress=progress,
        )
        if refuse:
            refuse_unfit(plan)
        return plan
    quiet_libraries()
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
    auto_batch = recipe.training.batch_size == "auto"
    auto_grad_accum = recipe.training.grad_accum == "auto"
    value = lambda key: auto[key].value if key in auto else getattr(recipe.training, key.split(".")[1])  # noqa: E731
    batch, accum = int(value("training.batch_size")), int(value("training.grad_accum"))
    max_len = int(value("training.max_seq_len"))
    epochs = float(value("training.epochs"))
    encoded = encode_rows(data, tokenizer, max_seq_len=max_len, train_on=recipe.data.train_on, labels=labels)
    stats, _problems = token_stats("train", data.train, tokenizer, max_len, recipe.data.train_on)
    steps_per_epoch = math.ceil(math.ceil(len(encoded.train) / batch) / accum)
    planned = planned_steps(len(encoded.train), batch, accum, epochs, recipe.training.max_steps)

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
            method, options, settings, decided, trainable = setup_candidate(
                loaded, candidate, reference, auto, tokenizer, training, hardware, facts, config, num_labels
            )
        except FtkitError as error:
            candidate.error = method_error(error)
            continue
        if name == (reference.name if asked == "auto" else asked) or not plan.precision:
            plan.precision = decided.precision
        estimate = lambda micro, method=method, trainable=trainable, decided=decided: estimate_memory(  # noqa: E731
            facts,
            method=method,
            trainable=trainable,
            batch_size=micro,
            max_seq_len=max_len,
            precision=decided.precision,
            gradient_checkpointing=decided.gradient_checkpointing,
            runtime=runtime or (DEFAULT_RUNTIME_BYTES if hardware.device == "cpu" else 0),
            chunked_loss=recipe.task == "causal-lm",
        )

        def run_probe(
            micro: int, steps: int = max(1, probe_steps), name=name, options=options, settings=settings
        ) -> Any:
            progress(f"probing {name}: {steps} steps at batch {micro} × {max_len} tokens")
            return probe_training_step(
                recipe.model,
                method=name,
                method_options=options.model_dump(mode="json"),
                task=recipe.task,
                batch_size=micro,
                max_seq_len=max_len,
                steps=steps,
                rows=longest[: micro * (steps + 1)],
                num_labels=num_labels or 2,
                training={**{k: v for k, v in settings.items() if v != "auto"}, "grad_accum": 1},
                base_dir=base,
            )

        micro, micro_accum, probe, unfit = batch, accum, None, False
        if auto_batch:
            micro, micro_accum, probe, unfit = _auto_micro_batch(
                candidate, plan, estimate, run_probe, probe_steps, hardware.device, auto_grad_accum
            )
        candidate.batch_size, candidate.grad_accum = micro, micro_accum
        candidate.memory = estimate(micro)
        candidate.predicted_bytes = candidate.memory.total
        candidate.fits = candidate.predicted_bytes <= free
        if unfit:  # not even one row per step fits (by the estimate, or by the probe at batch 1)
            candidate.fits = False
            if probe is not None:
                candidate.probe = probe.to_dict()
                candidate.predicted_bytes = probe.peak_memory_bytes + (
                    probe.baseline_bytes if hardware.device == "cpu" else 0
                )
            continue
        if not candidate.fits or probe_steps < 1:
            continue
        probe = probe or run_probe(micro)
        adopt_probe(
            candidate,
            probe,
            free=free,
            device=hardware.device,
            tokens=batch_tokens(lengths, micro, decided.padding_free, recipe.training.seed),
            steps=planned_steps(len(encoded.train), micro, micro_accum, epochs, recipe.training.max_steps),
            what=f"{probe.steps_probed} steps probed at batch {micro} × {max_len} tokens (the longest rows)",
        )
    choose(plan)
    if auto_batch:
        _adopt_batch(plan, auto, epochs, recipe.training.max_steps)
    if refuse:
        refuse_unfit(plan)
    return plan


def setup_candidate(
    loaded: Any,
    candidate: Candidate,
    reference: Any,
    auto: dict[str, Any],
    tokenizer: Any,
    training: dict[str, Any],
    hardware: Any,
    facts: Any,
    config: Any,
    num_labels: int | None,
) -> tuple[Any, Any, dict[str, Any], Any, int]:
    """The candidate's method (requirements checked), options (the recipe's for its own method, else defaults;
    an auto rank applied), training settings after the method's adjustments, the device's decisions and the
    trainable parameter count; fills `candidate.notes`. Raises FtkitError when the method cannot run here."""
    from ftkit.methods.catalog import get_method
    from ftkit.train.hardware import plan_training

    recipe = loaded.recipe
    model_task = "causal-lm" if recipe.task == "preference" else recipe.task
    method = get_method(candidate.method)
    method.check_requirements()
    options = loaded.method_options if candidate.method == reference.name else method.parse_options({})
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
    trainable = trainable_params(recipe.model, loaded.base_dir, method, options, model_task, num_labels)
    return method, options, settings, decided, trainable


def planned_steps(rows: int, micro: int, accum: int, epochs: float, max_steps: int | None) -> int:
    """Optimizer steps of a run over `rows` at micro-batch × grad_accum for `epochs`, capped by max_steps."""
    steps = math.ceil(epochs * math.ceil(math.ceil(rows / micro) / accum))
    return min(steps, max_steps) if max_steps else steps


def adopt_probe(
    candidate: Candidate, probe: Any, *, free: int, device: str, tokens: float, steps: int, what: str
) -> None:
    """Replace the candidate's estimate with what its probe measured: the peak (plus the baseline on a CPU, where
    the probe counts what it added), and the run's time from the probe's seconds per step scaled to a run's average
    `tokens` per micro-batch, × grad_accum × `steps`."""
    candidate.probe = probe.to_dict()
    candidate.memory.basis = f"measured by the probe ({probe.memory_measure})"
    candidate.predicted_bytes = probe.peak_memory_bytes + (probe.baseline_bytes if device == "cpu" else 0)
    candidate.fits = candidate.predicted_bytes <= free
    scale = tokens / probe.tokens_per_step if probe.tokens_per_step else 1.0
    candidate.seconds_per_step = round(probe.seconds_per_step * candidate.grad_accum * scale, 3)
    candidate.run_seconds = round(candidate.seconds_per_step * steps, 1)
    candidate.notes.append(
        f"{what}: {probe.seconds_per_step:.3g} s/step; a run's average step holds {tokens:,.0f} tokens "
        f"({probe.tokens_per_step:,} in a probe step)"
    )


def _auto_micro_batch(
    candidate: Candidate,
    plan: Plan,
    estimate: Callable[[int], Any],
    run_probe: Callable[..., Any],
    probe_steps: int,
    device: str,
    auto_grad_accum: bool,
    sequences_per_row: int = 1,
) -> tuple[int, int, Any, bool]:
    """The micro-batch and grad_accum the run's auto rule will choose for this candidate, the probe taken at
    that micro-batch if any, and whether not even batch 1 fits: the run's own MemoryFit (probes at 1, and 2 only when needed, extrapolated against
    90 % of free memory) behind the analytic estimate, so no batch the estimate rules out is ever probed, and the
    device's micro-batch cap (auto_rules.cpu_micro_batch_cap on a CPU, over `sequences_per_row` sequences a row:
    2 for a preference pair)."""
    from ftkit.recipe.resolve import batch_choices
    from ftkit.train.auto_values import MemoryFit, cheaper_alternative, micro_batch_cap

    target = plan.batch_size * plan.grad_accum
    measured = MemoryFit(lambda micro: run_probe(micro), plan.free_bytes, target)

    def fits(micro: int) -> bool:
        if estimate(micro).total > plan.free_bytes:
            return False
        return measured(micro) if probe_steps >= 1 else True

    try:
        found = batch_choices(
            "auto",
            "auto" if auto_grad_accum else plan.grad_accum,
            plan.train_rows,
            plan.task,
            fits,
            cheaper=cheaper_alternative(candidate.method, plan.max_seq_len),
            max_micro=micro_batch_cap(device, plan.max_seq_len * sequences_per_row),
        )
    except FtkitError as error:  # not even one row per step fits
        candidate.notes.append(error.message)
        return 1, target, measured.probes.get(1), True
    micro = int(found["training.batch_size"].value)
    accum = int(found["training.grad_accum"].value) if "training.grad_accum" in found else plan.grad_accum
    evidence = found["training.batch_size"].evidence
    if measured.peaks:
        evidence += f"; {measured.describe()}"
    candidate.notes.append(f"batch {micro} × grad_accum {accum} (auto: {evidence})")
    return micro, accum, measured.probes.get(micro), False


def _adopt_batch(plan: Plan, auto: dict[str, Any], epochs: float, max_steps: int | None) -> None:
    """The plan's batch and steps: the recommended (else the first fitting, else the first) candidate's micro-batch
    × grad_accum, as the run's auto rule will choose them."""
    pick = plan.candidate(plan.recommended or "") or next(
        (c for c in plan.candidates if c.fits and not c.error), None
    )
    pick = pick or next((c for c in plan.candidates if c.batch_size), None)
    if pick is None or not pick.batch_size:
        return
    plan.batch_size, plan.grad_accum = pick.batch_size, pick.grad_accum
    plan.steps_per_epoch = math.ceil(math.ceil(plan.train_rows / plan.batch_size) / plan.grad_accum)
    plan.planned_steps = math.ceil(epochs * plan.steps_per_epoch)
    if max_steps:
        plan.planned_steps = min(plan.planned_steps, max_steps)
    note = next((n for n in pick.notes if n.startswith(f"batch {pick.batch_size} × grad_accum")), "")
    plan.auto["training.batch_size"] = f"{pick.batch_size} ({pick.method}: {note})"
    plan.auto.pop("training.grad_accum", None)


def refuse_unfit(plan: Plan) -> None:
    """Raise UsageError (exit 2) when the chosen method cannot fit, naming the methods and the batch that do."""
    refuse_if_unfit(plan, _smaller_batch(plan))


def _skeleton(loaded: Any, num_labels: int | None) -> Any:
    from ftkit.train.model_loading import model_skeleton

    task = "causal-lm" if loaded.recipe.task == "preference" else loaded.recipe.task
    return model_skeleton(loaded.recipe.model, loaded.base_dir, task, num_labels)


def _smaller_batch(plan: Plan) -> int | None:
    """The largest micro-batch below the plan's at which the chosen method fits, activations scaled linearly."""
    asked = plan.candidate(plan.method)
    if asked is None or asked.memory is None or asked.fits:
        return None
    micro = asked.batch_size or plan.batch_size
    per_row = asked.memory.activations / micro
    fixed = asked.predicted_bytes - asked.memory.activations
    for batch in range(micro - 1, 0, -1):
        if fixed + per_row * batch <= plan.free_bytes:
            return batch
    return None


__all__ = ["build_plan", "human_bytes"]
