"""The rules behind `auto` hyperparameters: pure functions of the data, the model and the method, no torch.

Each rule returns a `Choice`: the value, the rule in one line (shown by `ftkit methods show` and the README) and
the evidence, the inputs it used ("2,026 rows × 3 epochs = 6,078 examples seen"). The runner measures what the
rules need (token lengths, parameter count, whether a micro-batch fits, seconds per step) and records every
Choice beside the concrete value it chose (`ftkit.train.auto_values`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ftkit.errors import UsageError


@dataclass(frozen=True)
class Choice:
    """A value chosen by an `auto` rule, with the rule stated and the evidence it used."""

    value: Any
    rule: str
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        """{value, rule, evidence}, as recorded in the registry."""
        return asdict(self)


# -- epochs ------------------------------------------------------------------------------------------------------

# OpenAI's default n_epochs for fine-tuning (openai-cookbook, examples/Chat_finetuning_data_prep.ipynb, "Pricing and
# default n_epochs estimate"): 3 epochs, unless that shows fewer than 100 or more than 25,000 examples in total; then
# floor(100 / rows) capped at 25 epochs, or floor(25,000 / rows) and at least 1 epoch. Reproduced exactly (floor,
# as OpenAI's code does, so 30 rows train 3 epochs = 90 examples).
TARGET_EPOCHS = 3
MIN_EXAMPLES_SEEN = 100
MAX_EXAMPLES_SEEN = {"causal-lm": 25_000, "classification": 100_000}
MAX_EPOCHS = 25

EPOCHS_RULE = {
    "causal-lm": "3 epochs, changed so that rows × epochs stays within 100–25,000 examples seen "
    "(OpenAI's fine-tuning default; at most 25 epochs, at least 1)",
    "classification": "3 epochs, changed so that rows × epochs stays within 100–100,000 examples seen (a new "
    "classification head starts from random weights: BERT's 3 epochs are kept up to 33,333 rows; "
    "at most 25 epochs, at least 1)",
}


def epochs(train_rows: int, task: str) -> Choice:
    """Passes over the training data: OpenAI's rule for causal-lm; for classification, more examples seen."""
    rows = max(1, int(train_rows))
    ceiling = MAX_EXAMPLES_SEEN.get(task, MAX_EXAMPLES_SEEN["causal-lm"])
    chosen = TARGET_EPOCHS
    if rows * TARGET_EPOCHS < MIN_EXAMPLES_SEEN:
        chosen = min(MAX_EPOCHS, MIN_EXAMPLES_SEEN // rows)
        why = f"3 epochs would show only {rows * TARGET_EPOCHS:,}, fewer than {MIN_EXAMPLES_SEEN:,}"
    elif rows * TARGET_EPOCHS > ceiling:
        chosen = max(1, ceiling // rows)
        why = f"3 epochs would show {rows * TARGET_EPOCHS:,}, more than {ceiling:,}"
    else:
        why = f"within {MIN_EXAMPLES_SEEN:,}–{ceiling:,}"
    evidence = f"{rows:,} rows × {chosen} = {rows * chosen:,} examples seen ({why})"
    return Choice(chosen, EPOCHS_RULE.get(task, EPOCHS_RULE["causal-lm"]), evidence)


# -- learning rate -----------------------------------------------------------------------------------------------

LORA_FAMILY = ("lora", "dora", "qlora")
FULL_FAMILY = ("full", "freeze")
BILLION = 1_000_000_000

# (largest parameter count, rate), first match wins. Sources:
# - LoRA family, causal-lm: QLoRA (Dettmers et al., 2023, appendix) used 2e-4 up to 13B and 1e-4 for 33B/65B.
# - LoRA family, classification (a new head trained with the adapter): LoRA (Hu et al., 2021, GLUE tables) used
#   4e-4–5e-4 on RoBERTa-base/large and 6e-5–2e-4 on DeBERTa-XXL (1.5B); on a ~22M MiniLM encoder the issue measured
#   2e-3 (3 epochs, batch 32: 89 % on a 77-class set) where 2e-4 reached 33 %.
# - full/freeze: transformers' TrainingArguments default 5e-5 (BERT's range 2e-5–5e-5) below 1B, TRL's SFTConfig
#   default 2e-5 (Stanford Alpaca's 7B) up to 10B, 1e-5 (Alpaca's 13B) above.
LR_TABLE: dict[tuple[str, str], list[tuple[float, float]]] = {
    ("lora", "causal-lm"): [(BILLION, 1e-3), (13 * BILLION, 2e-4), (math.inf, 1e-4)],
    ("lora", "classification"): [(100_000_000, 2e-3), (BILLION, 4e-4), (math.inf, 1e-4)],
    ("full", "causal-lm"): [(BILLION, 5e-5), (10 * BILLION, 2e-5), (math.inf, 1e-5)],
    ("full", "classification"): [(BILLION, 5e-5), (10 * BILLION, 2e-5), (math.inf, 1e-5)],
}
LR_RULE = {
    ("lora", "causal-lm"): "LoRA family, causal-lm: 1e-3 under 1B parameters (measured: SmolLM2-135M on the "
    "quickstart data: 1e-3 reached eval loss 0.006 in 20 steps where 2e-4 reached 0.045 in 36), 2e-4 up to 13B, 1e-4 above "
    "(QLoRA paper)",
    ("lora", "classification"): "LoRA family with a new classification head: 2e-3 under 100M parameters, "
    "4e-4 under 1B, 1e-4 above (LoRA paper's GLUE rates; 2e-3 measured on MiniLM)",
    ("full", "causal-lm"): "full/freeze: 5e-5 under 1B parameters, 2e-5 under 10B, 1e-5 above "
    "(transformers, TRL and Alpaca defaults)",
    (
        "full",
        "classification",
    ): "full/freeze with a classification head: 5e-5 under 1B parameters, 2e-5 under "
    "10B, 1e-5 above (BERT's 2e-5–5e-5 range)",
}
# Methods whose published rate does not depend on model size (PEFT's examples and the methods' papers).
FIXED_RATE_RULE = {
    "ia3": "IA3: 3e-3 at every size (the IA3/T-Few paper's rate)",
    "prefix": "prefix tuning: 1e-2 at every size (PEFT's prefix-tuning example)",
    "prompt": "prompt tuning: 3e-2 at every size (PEFT's prompt-tuning example)",
}


# Preference tuning moves a model that already answers well, so it trains at a far lower rate than SFT: the
# alignment handbook's Zephyr recipes use 40× less for DPO than for the SFT before it (QLoRA 2e-4 → 5e-6; full
# 2e-5 → 5e-7). The same divisor applies to the SFT rate ftkit's rule gives for the method and model size.
PREFERENCE_LR_DIVISOR = 40
PREFERENCE_LR_RULE = (
    f"preference: the method's causal-lm rate / {PREFERENCE_LR_DIVISOR} (the alignment handbook's Zephyr DPO "
    "recipes train at 1/40 of their SFT rate: QLoRA 2e-4 → 5e-6, full 2e-5 → 5e-7)"
)


def _family(method: str) -> str | None:
    if method in LORA_FAMILY:
        return "lora"
    if method in FULL_FAMILY:
        return "full"
    return None


def learning_rate(method: str, model_params: int | None, task: str, method_default: float = 2e-4) -> Choice:
    """Peak learning rate by method family, model size and task; other methods keep their own published rate
    (`method_default`, the method's `default_learning_rate`). A preference run takes the causal-lm rate divided
    by PREFERENCE_LR_DIVISOR."""
    if task == "preference":
        sft = learning_rate(method, model_params, "causal-lm", method_default)
        rate = float(f"{sft.value / PREFERENCE_LR_DIVISOR:.3g}")
        return Choice(
            rate,
            PREFERENCE_LR_RULE,
            f"{sft.evidence}: causal-lm rate {sft.value:g} / {PREFERENCE_LR_DIVISOR}",
        )
    family = _family(method)
    key = (family, task if task == "classification" else "causal-lm")
    if family is None or key not in LR_TABLE:
        rule = FIXED_RATE_RULE.get(method, f"{method}: the method's own default rate at every size")
        return Choice(method_default, rule, f"method {method}")
    if model_params is None:  # unknown size (a dry run): the smallest model's row
        rate = LR_TABLE[key][0][1]
        return Choice(rate, LR_RULE[key], f"method {method}, {key[1]}, model size not measured")
    rate = next(rate for limit, rate in LR_TABLE[key] if model_params < limit)
    return Choice(rate, LR_RULE[key], f"method {method}, {key[1]}, {_params(model_params)} parameters")


def _params(count: int) -> str:
    if count >= BILLION:
        return f"{count / BILLION:.1f}B"
    if count >= 1_000_000:
        return f"{count / 1_000_000:.1f}M"
    return f"{count:,}"


# -- LoRA rank ---------------------------------------------------------------------------------------------------

RANK_RULE = "LoRA-family rank by training rows: 8 under 1,000, 16 under 10,000, 32 from 10,000 (alpha 2 × r when not given)"


def lora_rank(train_rows: int) -> Choice:
    """Adapter rank: more rows carry more to learn, so a larger adapter (LoRA's r=8 suffices on small sets)."""
    rank = 8 if train_rows < 1_000 else 16 if train_rows < 10_000 else 32
    return Choice(rank, RANK_RULE, f"{train_rows:,} training rows")


# -- max_seq_len -------------------------------------------------------------------------------------------------

SEQ_MULTIPLE = 64
UNMEASURED_MAX_SEQ_LEN = (
    512  # where no tokenizer measured the rows (a dry run): what `ftkit data check` assumes
)
SEQ_RULE = "the training rows' 99th-percentile token length, rounded up to a multiple of 64, capped by the model's context"


def percentile(values: Sequence[int], fraction: float) -> int:
    """Nearest-rank percentile: the smallest value with at least `fraction` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def max_seq_len(token_lengths: Sequence[int], model_context: int | None) -> Choice:
    """Sequence length from the data's own lengths; the evidence says how many rows it truncates."""
    if not token_lengths:
        raise UsageError(
            "training.max_seq_len: auto needs at least one training row to measure",
            hint="give training rows, or set training.max_seq_len to a number",
        )
    p99 = percentile(token_lengths, 0.99)
    rounded = max(SEQ_MULTIPLE, math.ceil(p99 / SEQ_MULTIPLE) * SEQ_MULTIPLE)
    chosen = rounded if model_context is None else min(rounded, int(model_context))
    cut = sum(1 for length in token_lengths if length > chosen)
    context = "unknown" if model_context is None else f"{int(model_context):,}"
    capped = " (capped by the context)" if chosen < rounded else ""
    evidence = (
        f"p99 of {len(token_lengths):,} rows = {p99:,} tokens → {rounded:,}; model context {context}{capped}; "
        f"{cut:,} row{'s' if cut != 1 else ''} truncated"
    )
    return Choice(chosen, SEQ_RULE, evidence)


# -- batch size and gradient accumulation ------------------------------------------------------------------------

EFFECTIVE_BATCH = {"causal-lm": 16, "classification": 32}
MIN_STEPS_PER_EPOCH = 8
BATCH_RULE = (
    "effective batch 16 for causal-lm (QLoRA's batch up to 13B), 32 for classification (BERT's), lowered to the "
    "power of two ≤ rows/8 so an epoch has at least 8 steps; micro-batch the largest power of two ≤ it that fits "
    "in memory, grad_accum = effective / micro-batch; on a CPU a micro-batch holds at most ~2,048 tokens "
    "(micro-batch × max_seq_len: more adds memory and padding, not throughput)"
)


def power_of_two_at_most(value: float) -> int:
    """The largest power of two ≤ value (1 for anything below 2)."""
    return 1 << max(0, int(math.floor(math.log2(value)))) if value >= 1 else 1


def effective_batch(train_rows: int, task: str) -> Choice:
    """Examples per optimizer step (micro-batch × grad_accum) for this task and data size."""
    target = EFFECTIVE_BATCH.get(task, EFFECTIVE_BATCH["causal-lm"])
    limit = power_of_two_at_most(max(1, train_rows) / MIN_STEPS_PER_EPOCH)
    chosen = min(target, limit)
    why = f"{task} target {target}" + (
        f", lowered: {train_rows:,} rows / {MIN_STEPS_PER_EPOCH} steps" if chosen < target else ""
    )
    return Choice(chosen, BATCH_RULE, why)


def batch_and_accum(
    effective: int,
    fits: Callable[[int], bool],
    *,
    cheaper: str | None = None,
    fixed_accum: int | None = None,
    max_micro: Choice | None = None,
) -> Choice:
    """(micro-batch, grad_accum): the largest power-of-two micro-batch ≤ effective / fixed_accum (and ≤
    `max_micro`, a device's cap, see cpu_micro_batch_cap) that `fits`, and grad_accum = effective / micro-batch
    (or `fixed_accum` when the recipe gives it), so the effective batch stays constant. Nothing fits at 1 →
    UsageError (exit 2) with `cheaper`, the alternative to try."""
    ceiling = power_of_two_at_most(max(1, effective // (fixed_accum or 1)))
    capped = ""
    if max_micro is not None and max_micro.value < ceiling:
        ceiling = power_of_two_at_most(max_micro.value)
        capped = f"; micro-batch capped at {ceiling} ({max_micro.evidence})"
    tried: list[int] = []
    micro = ceiling
    while micro >= 1:
        if fits(micro):
            break
        tried.append(micro)
        micro //= 2
    if micro < 1:
        raise UsageError(
            f"training.batch_size: auto: not even one example per step fits in memory "
            f"(tried micro-batches {', '.join(map(str, tried))})",
            hint=cheaper
            or "lower training.max_seq_len, turn on training.gradient_checkpointing, or use a "
            "cheaper method (lora, qlora)",
        )
    accum = fixed_accum or max(1, effective // micro)
    smaller = f"; {', '.join(map(str, tried))} did not fit" if tried else ""
    evidence = f"effective batch {effective}: micro-batch {micro} × grad_accum {accum} = {micro * accum}{smaller}{capped}"
    return Choice((micro, accum), BATCH_RULE, evidence)


CPU_MICRO_TOKENS = 2048
CPU_MICRO_RULE = (
    f"on a CPU a micro-batch holds at most ~{CPU_MICRO_TOKENS:,} tokens (micro-batch × max_seq_len, a power of "
    "two, at least 1): past that the matrix products already fill the cores, so a bigger micro-batch adds memory "
    "and padding, not throughput; grad_accum keeps the effective batch"
)


def cpu_micro_batch_cap(max_seq_len: int) -> Choice:
    """The largest micro-batch worth running on a CPU at `max_seq_len` tokens (CPU_MICRO_RULE)."""
    cap = power_of_two_at_most(CPU_MICRO_TOKENS / max(1, max_seq_len))
    return Choice(cap, CPU_MICRO_RULE, f"CPU: {CPU_MICRO_TOKENS:,} tokens / max_seq_len {max_seq_len}")


# -- time budget -------------------------------------------------------------------------------------------------

BUDGET_RULE = (
    "training steps = the budget / the measured seconds per optimizer step (a probe of real steps), never more "
    "than the planned steps; loading and evaluation are not counted"
)
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")


def parse_duration(value: Any) -> float:
    """Seconds in a duration: a number of seconds (90, "90") or "90s", "20m", "1h30m", "1h 5m 10s".
    ValueError naming the accepted forms otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"must be a duration like 20m, 90s or 1h30m, or seconds (got {value!r})")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        match = _DURATION.fullmatch(text)
        if text.replace(".", "", 1).isdigit():
            seconds = float(text)
        elif text and match and any(match.groups()):
            hours, minutes, secs = (float(part) if part else 0.0 for part in match.groups())
            seconds = hours * 3600 + minutes * 60 + secs
        else:
            raise ValueError(f"must be a duration like 20m, 90s or 1h30m, or seconds (got {value!r})")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"must be a positive duration (got {value!r})")
    return seconds


def format_duration(seconds: float) -> str:
    """90 → "1m30s", 7.2 → "7.2s": the form parse_duration reads."""
    if seconds < 60:
        return f"{seconds:.3g}s"
    whole = math.ceil(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)


def steps_for_budget(budget_s: float, seconds_per_step: float, planned_steps: int) -> Choice:
    """Optimizer steps that fit in `budget_s` at the measured `seconds_per_step`, at most `planned_steps`.
    A budget shorter than one step is a UsageError (exit 2) stating the minimum."""
    if budget_s < seconds_per_step:
        raise UsageError(
            f"training.time_budget: {format_duration(budget_s)} is too short for one training step "
            f"(measured {seconds_per_step:.2f} s per step)",
            hint=f"give at least {format_duration(math.ceil(seconds_per_step))}, or lower training.batch_size / "
            "training.max_seq_len",
        )
    fit = int(budget_s // seconds_per_step)
    steps = min(fit, planned_steps)
    capped = "capped by the budget" if fit < planned_steps else "the planned steps fit"
    evidence = (
        f"{format_duration(budget_s)} / {seconds_per_step:.2f} s per step = {fit:,} steps; planned "
        f"{planned_steps:,}: {steps:,} ({capped})"
    )
    return Choice(steps, BUDGET_RULE, evidence)


# The rules as `ftkit methods show` and the README list them: recipe key -> one line.
def stated_rules(method: str) -> dict[str, str]:
    """Every `auto` rule that applies to `method`, keyed by recipe key (for `ftkit methods show`)."""
    family = _family(method)
    if family is not None:
        rates = f"{LR_RULE[(family, 'causal-lm')]}; {LR_RULE[(family, 'classification')]}"
    else:
        rates = FIXED_RATE_RULE.get(method, f"{method}: the method's own default rate at every size")
    rules = {
        "training.epochs": f"causal-lm: {EPOCHS_RULE['causal-lm']}; classification: {EPOCHS_RULE['classification']}",
        "training.learning_rate": f"{rates}; {PREFERENCE_LR_RULE}",
        "training.batch_size / grad_accum": BATCH_RULE,
        "training.max_seq_len": SEQ_RULE,
        "training.time_budget": BUDGET_RULE,
    }
    if method in LORA_FAMILY:
        rules["method.r"] = RANK_RULE
    return rules
