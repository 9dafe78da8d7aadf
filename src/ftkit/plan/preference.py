"""The plan of a `task: preference` run: the pairs as the run reads them, the analytic estimate with two sequences
per pair, the reference model's memory, and a measured probe of real preference steps.

What differs from a causal-lm plan, and why:
- TRL concatenates chosen and rejected into one forward pass of 2 × batch sequences, so the activations are those
  of twice the micro-batch, each sequence prompt + answer, cut at training.max_seq_len.
- DPO computes its log-probabilities through TRL's fused LM head, in tiles, without the full-vocabulary logits:
  the estimate has no logits term for it (ORPO and SimPO's trainers still build the logits).
- The reference of DPO with `reference: auto` on full or freeze is a frozen copy of the loaded model
  (train/preference_run.py), a separate line of the estimate: the model's parameters again, in its load dtype.
  An adapter method's reference is the base with the adapter off, `reference: precompute` computes the reference
  log-probs once before training, and orpo/simpo have none: no copy.
- The auto values are the run's: data-size rules, and for `batch_size: auto` the micro-batch the run's probes
  choose (on a CPU capped by 2 × max_seq_len tokens per pair); the probe runs the trainer the run builds
  (train/preference_trainer.py) on the longest pairs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftkit.errors import FtkitError
from ftkit.plan.estimate import DEFAULT_RUNTIME_BYTES, estimate_memory, human_bytes, model_facts
from ftkit.plan.probe import DEFAULT_STEPS, DEFAULT_WARMUP, Probe, _Meter, _StepTimer, _trim, rss_bytes
from ftkit.plan.report import DEFAULT_CANDIDATES, Candidate, Plan, batch_tokens, choose, method_error


def build_preference_plan(
    loaded: Any,
    *,
    candidates: list[str] | None,
    memory_limit: int | None,
    probe_steps: int,
    progress: Callable[[str], None],
) -> Plan:
    """The plan of a preference recipe (build.build_plan's counterpart; it applies the refusal)."""
    from ftkit.data.encode import check_task_format
    from ftkit.data.render import ensure_chat_template
    from ftkit.data.token_stats import pair_lengths
    from ftkit.methods.catalog import get_method
    from ftkit.plan.build import (
        _adopt_batch,
        _auto_micro_batch,
        _skeleton,
        adopt_probe,
        planned_steps,
        setup_candidate,
    )
    from ftkit.recipe.preference_config import PREFERENCE_METHODS
    from ftkit.recipe.resolve import data_only_choices
    from ftkit.train.auto_values import choose_max_seq_len
    from ftkit.train.hardware import detect_hardware, free_memory
    from ftkit.train.model_loading import load_tokenizer
    from ftkit.train.precision import confirm_auto_bf16
    from ftkit.train.quiet import quiet_libraries
    from ftkit.train.run_io import load_recipe_data

    recipe, base, preference = loaded.recipe, loaded.base_dir, loaded.recipe.preference
    quiet_libraries()
    asked = recipe.method.name
    progress("reading the preference pairs")
    data = load_recipe_data(loaded)
    check_task_format("preference", data)
    tokenizer = load_tokenizer(recipe.model, base)
    ensure_chat_template(tokenizer)
    reference = get_method("lora" if asked == "auto" else asked)
    options_json = loaded.method_options.model_dump(mode="json")
    auto = data_only_choices(recipe, options_json, reference, len(data.train))
    auto.pop("training.max_seq_len", None)
    seq_choice = choose_max_seq_len(loaded, data.train, tokenizer)
    if seq_choice is not None:
        auto["training.max_seq_len"] = seq_choice
    value = lambda key: auto[key].value if key in auto else getattr(recipe.training, key.split(".")[1])  # noqa: E731
    batch, accum = int(value("training.batch_size")), int(value("training.grad_accum"))
    max_len, epochs = int(value("training.max_seq_len")), float(value("training.epochs"))
    pairs = [example.data for example in data.train]
    sequences = [
        _sequences(pair_lengths(row, tokenizer, max_len), max_len, preference.max_prompt_len) for row in pairs
    ]
    padded = [max(chosen, rejected) for chosen, rejected in sequences]  # both sequences pad to the longer
    steps_per_epoch = math.ceil(math.ceil(len(pairs) / batch) / accum)
    planned = planned_steps(len(pairs), batch, accum, epochs, recipe.training.max_steps)

    progress(f"reading {recipe.model}")
    facts = model_facts(recipe.model, base, "causal-lm")
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
    cut = sum(1 for pair in sequences if max(pair) >= max_len)
    warnings = (
        [f"{cut} of {len(pairs)} pairs reach max_seq_len={max_len}: their answers are cut"] if cut else []
    )
    plan = Plan(
        model=recipe.model,
        task=recipe.task,
        method=asked,
        device=hardware.device,
        precision="",
        batch_size=batch,
        grad_accum=accum,
        max_seq_len=max_len,
        train_rows=len(pairs),
        tokens_per_epoch=sum(chosen + rejected for chosen, rejected in sequences),
        steps_per_epoch=steps_per_epoch,
        planned_steps=planned,
        free_bytes=free,
        free_source=source,
        candidates=[],
        warnings=warnings,
        auto={key: f"{choice.value} ({choice.evidence})" for key, choice in auto.items()},
        preference={**preference.model_dump(), "sequences_per_pair": 2},
    )
    config = _skeleton(loaded, None).config
    runtime = rss_bytes() if hardware.device == "cpu" else 0
    longest = [pairs[i] for i in sorted(range(len(pairs)), key=lambda i: padded[i], reverse=True)]
    longest_padded = sorted(padded, reverse=True)
    auto_batch = recipe.training.batch_size == "auto"
    names = list(dict.fromkeys([*([asked] if asked != "auto" else []), *(candidates or DEFAULT_CANDIDATES)]))
    for name in names:
        candidate = Candidate(name, batch_size=batch, grad_accum=accum)
        plan.candidates.append(candidate)
        if name not in PREFERENCE_METHODS:
            candidate.error = f"`{name}` does not train on preference pairs; methods that do: {', '.join(PREFERENCE_METHODS)}"
            continue
        try:
            method, options, settings, decided, trainable = setup_candidate(
                loaded, candidate, reference, auto, tokenizer, training, hardware, facts, config, None
            )
        except FtkitError as error:
            candidate.error = method_error(error)
            continue
        # the run keeps fp32 where auto would pick bf16 on a CPU: there are no SFT batches to confirm it on
        confirm_auto_bf16(decided, training["precision"], None, [], None, batch, method.is_adapter)
        candidate.notes += [note for note in decided.notes if note not in candidate.notes]
        if name == (reference.name if asked == "auto" else asked) or not plan.precision:
            plan.precision = decided.precision
        copy_bytes, candidate.reference = reference_cost(
            preference, method, facts.total_params, decided.precision
        )

        def estimate(
            micro: int, method=method, trainable=trainable, decided=decided, copy_bytes=copy_bytes
        ) -> Any:
            memory = estimate_memory(
                # DPO's fused LM head scores tokens in tiles: no full-vocabulary logits (the module doc)
                dataclasses.replace(facts, vocab=0) if preference.objective == "dpo" else facts,
                method=method,
                trainable=trainable,
                batch_size=2 * micro,  # chosen and rejected in one forward
                max_seq_len=max_len,
                precision=decided.precision,
                gradient_checkpointing=decided.gradient_checkpointing,
                runtime=runtime or (DEFAULT_RUNTIME_BYTES if hardware.device == "cpu" else 0),
            )
            memory.reference = copy_bytes
            return memory

        def run_probe(
            micro: int, steps: int = max(1, probe_steps), name=name, options=options, settings=settings
        ) -> Any:
            rows = longest[: micro * (steps + DEFAULT_WARMUP)]
            progress(f"probing {name}: {steps} preference steps at {micro} pairs × {max_len} tokens")
            return probe_preference_step(
                recipe.model,
                method=name,
                method_options=options.model_dump(mode="json"),
                preference=preference.model_dump(),
                batch_size=micro,
                max_seq_len=max_len,
                steps=steps,
                rows=rows,
                training={**{k: v for k, v in settings.items() if v != "auto"}, "grad_accum": 1},
                base_dir=base,
                tokens_per_step=round(
                    2 * batch_tokens(longest_padded[: len(rows)], micro, False, recipe.training.seed)
                ),
            )

        micro, micro_accum, probe, unfit = batch, accum, None, False
        if (
            auto_batch
        ):  # as the run's rule sizes it: probes of preference steps, 2 sequences per pair on the cap
            micro, micro_accum, probe, unfit = _auto_micro_batch(
                candidate, plan, estimate, run_probe, probe_steps, hardware.device,
                recipe.training.grad_accum == "auto", sequences_per_row=2,
            )  # fmt: skip
        candidate.batch_size, candidate.grad_accum = micro, micro_accum
        candidate.memory = estimate(micro)
        candidate.predicted_bytes = candidate.memory.total
        candidate.fits = candidate.predicted_bytes <= free and not unfit
        if not candidate.fits or probe_steps < 1:
            continue
        probe = probe or run_probe(micro)
        adopt_probe(
            candidate,
            probe,
            free=free,
            device=hardware.device,
            tokens=2 * batch_tokens(padded, micro, False, recipe.training.seed),
            steps=planned_steps(len(pairs), micro, micro_accum, epochs, recipe.training.max_steps),
            what=f"{probe.steps_probed} preference steps probed at {micro} pairs (2 × {micro} sequences) × "
            f"{max_len} tokens (the longest pairs)",
        )
    choose(plan)
    if auto_batch:
        _adopt_batch(plan, auto, epochs, recipe.training.max_steps)
    return plan


def _sequences(lengths: tuple[int, int, int], max_len: int, max_prompt_len: int | None) -> tuple[int, int]:
    """Tokens of the two sequences TRL trains on for a pair: prompt (cut to max_prompt_len) + each answer, cut at
    max_len."""
    prompt, chosen, rejected = lengths
    if max_prompt_len:
        prompt = min(prompt, max_prompt_len)
    return min(prompt + chosen, max_len), min(prompt + rejected, max_len)


def reference_cost(preference: Any, method: Any, total_params: int, precision: str) -> tuple[int, str]:
    """(bytes, words) of the reference model a preference run holds with `method`: a frozen copy of the loaded
    model for full/freeze DPO with `reference: auto` (its parameters in the load dtype), else nothing."""
    import torch

    from ftkit.train.model_loading import load_dtype

    objective = preference.objective
    if objective != "dpo":
        return 0, f"reference: none ({objective} is reference-free)"
    if preference.reference == "precompute":
        return 0, "reference: log-probs computed once before training (reference: precompute), no copy kept"
    if method.is_adapter:
        return 0, "reference: the base with the adapter off, no copy"
    element = torch.empty((), dtype=load_dtype(precision, method.is_adapter)).element_size()
    size = total_params * element
    return size, (
        f"reference copy ({method.name} DPO): {human_bytes(size)} (a frozen copy of the loaded model, "
        "held through training; reference: precompute keeps none)"
    )


def probe_preference_step(
    model: str,
    *,
    method: str,
    method_options: dict[str, Any],
    preference: dict[str, Any],
    batch_size: int,
    max_seq_len: int,
    rows: list[dict[str, Any]],
    steps: int = DEFAULT_STEPS,
    warmup: int = DEFAULT_WARMUP,
    training: dict[str, Any] | None = None,
    base_dir: Path | None = None,
    tokens_per_step: int = 0,
) -> Probe:
    """`warmup` then `steps` real preference optimizer steps of `method` on `model` with the trainer a preference
    run builds (its reference copy included), on `rows` (prompt/chosen/rejected pairs, cycled); their mean time
    per step and the peak memory they added, measured as probe.probe_training_step measures it."""
    import gc

    try:
        return _probe(
            model, method, method_options, preference, batch_size, max_seq_len, rows, steps, warmup, training,
            base_dir or Path.cwd(), tokens_per_step,
        )  # fmt: skip
    finally:
        gc.collect()
        _trim()


def _probe(
    model: str,
    method: str,
    method_options: dict[str, Any],
    preference: dict[str, Any],
    batch_size: int,
    max_seq_len: int,
    rows: list[dict[str, Any]],
    steps: int,
    warmup: int,
    training: dict[str, Any] | None,
    base: Path,
    tokens_per_step: int,
) -> Probe:
    import copy
    import tempfile

    from ftkit.methods.catalog import get_method
    from ftkit.recipe.schema import TrainingConfig
    from ftkit.train.quiet import quiet_libraries

    quiet_libraries()
    from transformers import TrainerCallback, set_seed

    from ftkit.train.hardware import detect_hardware, plan_training
    from ftkit.train.model_loading import load_dtype, load_model, load_tokenizer, model_skeleton
    from ftkit.train.precision import confirm_auto_bf16
    from ftkit.train.preference_trainer import build_preference_trainer

    chosen = get_method(method)
    chosen.check_requirements()
    options = chosen.parse_options(method_options)
    settings = {**TrainingConfig().model_dump(), **(training or {})}
    settings.update(batch_size=batch_size, max_seq_len=max_seq_len, max_steps=warmup + steps, logging_steps=1)
    settings.update(warmup_steps=0, epochs=1.0, grad_accum=1, save_every=None)
    if settings["learning_rate"] == "auto":
        settings["learning_rate"] = chosen.default_learning_rate
    hardware = detect_hardware()
    tokenizer = load_tokenizer(model, base)
    chosen.tokenizer = tokenizer
    meter = _Meter(hardware.device if settings["device"] == "auto" else settings["device"])
    meter.start()
    try:
        set_seed(settings["seed"])
        load_kwargs, _notes = chosen.base_load_kwargs(
            options, hardware.device, lambda: model_skeleton(model, base, "causal-lm", None)
        )
        loaded = load_model(
            model, base, "causal-lm", load_dtype(settings["precision"], chosen.is_adapter), load_kwargs, None,
            pad_token_id=tokenizer.pad_token_id,
        )  # fmt: skip
        total = sum(p.numel() for p in loaded.parameters())
        adjusted = {**settings, **chosen.adjust_training(options, settings).overrides}
        plan = plan_training(hardware, adjusted, total, "preference", chosen, loaded.config)
        confirm_auto_bf16(plan, adjusted["precision"], loaded, [], None, batch_size, chosen.is_adapter)
        loaded.to(plan.device)
        reference = None
        if preference["objective"] == "dpo" and preference["reference"] == "auto" and not chosen.is_adapter:
            reference = copy.deepcopy(loaded).eval().requires_grad_(False)  # as train/preference_run.py does
        prepared = chosen.prepare(loaded, options, "causal-lm")
        trainable = sum(p.numel() for p in prepared.parameters() if p.requires_grad)
        needed = batch_size * (warmup + steps)
        batch_rows = [rows[i % len(rows)] for i in range(needed)]
        timer = _StepTimer()
        callback = type("ProbeTimer", (TrainerCallback,), {})()
        callback.on_step_begin = timer.begin
        callback.on_step_end = timer.end
        resolved = {
            "training": {**adjusted, "precision": plan.precision},
            "preference": preference,
            "evaluation": {"batch_size": batch_size},
        }
        with tempfile.TemporaryDirectory(prefix="ftkit-probe-") as scratch:
            trainer, _cut = build_preference_trainer(
                prepared, reference, tokenizer, batch_rows, [], resolved, plan, [callback], Path(scratch)
            )
            trainer.train()
        measured = timer.seconds[warmup:]
        peak, baseline, how = meter.stop()
        return Probe(
            seconds_per_step=round(sum(measured) / len(measured), 4),
            peak_memory_bytes=peak,
            steps_probed=len(measured),
            device=plan.device,
            batch_size=batch_size,
            max_seq_len=max_seq_len,
            tokens_per_step=tokens_per_step,
            method=chosen.name,
            precision=plan.precision,
            baseline_bytes=baseline,
            memory_measure=how,
            trainable_params=trainable,
            total_params=sum(p.numel() for p in prepared.parameters()),
            step_seconds=[round(s, 4) for s in measured],
        )
    finally:
        meter.stop()
