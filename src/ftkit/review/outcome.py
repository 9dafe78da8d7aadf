"""Findings about what the run produced and what it trained on: no gain over the base model, a tuned model
worse than the base model, heavy truncation, eval rows that repeat training rows, too few rows for the method.

Each threshold is stated beside its constant with why; README "Review" lists them.
"""

from __future__ import annotations

import math

from ftkit.review.curves import lower_rate_changes
from ftkit.review.facts import FULL_WEIGHT_METHODS, LORA_FAMILY, Facts
from ftkit.review.model import Finding
from ftkit.review.series import fmt, pct

# Base vs tuned eval loss (causal-lm). Under NO_GAIN_LOSS (1 %) lower, training changed nothing the eval set can
# see; more than WORSE_LOSS (2 %) higher, the tuned model is worse. Both are measured by the same loop on the same
# rows (evaluation/evaluate.py), so there is no sampling noise between them.
NO_GAIN_LOSS = 0.01
WORSE_LOSS = 0.02
# Base vs tuned accuracy (classification): no gain when not even one more eval row (and under 1 point) is right;
# worse when at least two rows (and 2 points) fewer are, so one flipped row on a small eval set is not a verdict.
NO_GAIN_ACCURACY = 0.01
WORSE_ACCURACY = 0.02
# Truncation. At least TRUNCATION_SHARE (5 %) of the training rows cut at max_seq_len (or dropped for having no
# trainable token left): auto's max_seq_len keeps 99 % of rows whole, so 5 % is five times what it accepts, and for
# chat data what is cut is the end of the answer, the part that trains.
TRUNCATION_SHARE = 0.05
# Too few rows. Full and freeze tuning change whole weight matrices: under FULL_MIN_ROWS (LIMA's 1,000 curated
# examples, the smallest full fine-tune widely reported to generalise) they mostly memorise. Adapters need fewer:
# under ADAPTER_MIN_ROWS (OpenAI's guidance: clear gains start at 50-100 examples) they learn little but format.
FULL_MIN_ROWS = 1000
ADAPTER_MIN_ROWS = 50


def base_comparison(facts: Facts) -> tuple[str, float, float] | None:
    """(metric, base, tuned) the run's headline comparison: accuracy for classification, else eval loss."""
    for name in ("accuracy", "loss") if facts.task == "classification" else ("loss",):
        base, tuned = facts.metric(f"base.eval.{name}"), facts.metric(f"eval.{name}")
        if base is not None and tuned is not None:
            return name, base, tuned
    return None


def _row_share(facts: Facts, rows: int) -> float:
    eval_rows = facts.rows("eval") or 0
    return rows / eval_rows if eval_rows else 0.0


def worse_than_base(facts: Facts, diverged: bool) -> Finding | None:
    """The tuned model scores worse than the base model on the same eval rows."""
    compared = base_comparison(facts)
    if compared is None:
        return None
    name, base, tuned = compared
    if name == "accuracy":
        worse = base - tuned >= max(WORSE_ACCURACY, _row_share(facts, 2))
        change = f"{pct(base)} → {pct(tuned)} ({100 * (tuned - base):+.1f} points)"
    else:
        worse = tuned > base * (1 + WORSE_LOSS)
        change = f"{fmt(base)} → {fmt(tuned)} (+{pct(tuned / base - 1)})" if base else ""
    if not worse:
        return None
    changes = lower_rate_changes(facts)
    return Finding(
        id="worse_than_base",
        severity="high",
        title="the tuned model is worse than the base model",
        evidence=f"eval {name} base → tuned: {change}",
        action="see the divergence finding: lower the learning rate"
        if diverged
        else "lower the learning rate ten-fold (the tuned model forgot more than it learned); "
        "check that the eval data is the same task as the training data",
        command=facts.rerun(*changes) if changes else None,
    )


def no_gain(facts: Facts) -> Finding | None:
    """The tuned model scores about the same as the base model."""
    compared = base_comparison(facts)
    if compared is None:
        return None
    name, base, tuned = compared
    if name == "accuracy":
        if tuned - base >= max(NO_GAIN_ACCURACY, _row_share(facts, 1)) or base - tuned >= max(
            WORSE_ACCURACY, _row_share(facts, 2)
        ):
            return None
        change = f"{pct(base)} → {pct(tuned)}"
    else:
        if not base or tuned < base * (1 - NO_GAIN_LOSS) or tuned > base * (1 + WORSE_LOSS):
            return None
        change = f"{fmt(base)} → {fmt(tuned)} ({pct(tuned / base - 1)})"
    rate = facts.learning_rate
    train_on = (facts.resolved.get("data") or {}).get("train_on")
    if facts.chose_auto("training.learning_rate") or rate is None:
        higher = float(f"{min(rate * 10, 0.5):.3g}") if rate else None
        raise_it = f"raise the learning rate ten-fold ({fmt(rate)} → {fmt(higher)})" if higher else ""
    else:  # a hand-set rate: auto's stated rule (by method, model size and task) is the first thing to try
        higher = "auto"
        raise_it = (
            f"let auto choose the learning rate by method, model size and task (it was set to {fmt(rate)})"
        )
    return Finding(
        id="no_gain",
        severity="medium",
        title="no gain over the base model",
        evidence=f"eval {name} base → tuned: {change}" + (f" at learning rate {fmt(rate)}" if rate else ""),
        action="check the data format and what trains (`ftkit data check TRAIN`"
        + (f"; data.train_on is {train_on}" if train_on else "")
        + ")"
        + (f", then {raise_it}" if raise_it else ""),
        command=facts.rerun(("training.learning_rate", higher)) if higher else None,
    )


def truncation(facts: Facts) -> Finding | None:
    """Many training rows were cut at max_seq_len."""
    cut = int(facts.metric("data.truncated_rows") or 0)
    dropped = int(facts.metric("data.dropped_rows") or 0)
    kept = int(facts.metric("data.train_rows") or 0)
    total = kept + dropped
    length = facts.training("max_seq_len")
    if not total or not isinstance(length, int) or (cut + dropped) / total < TRUNCATION_SHARE:
        return None
    lost = int(facts.metric("data.truncated_tokens") or 0)
    per_row = lost / cut if cut else float(length)
    evidence = f"{cut + dropped} of {total} train rows ({pct((cut + dropped) / total)}) were cut at max_seq_len={length}"
    if cut:
        evidence += f": {cut} kept with {lost:,} tokens lost ({lost / cut:.0f} per row on average)"
    if dropped:
        evidence += f"{',' if cut else ':'} {dropped} dropped (no trained token left)"
    if facts.chose_auto(
        "training.max_seq_len"
    ):  # auto was capped (model context): a number is all that is left
        per_row = lost / cut if cut else float(length)
        new_length: int | str = 64 * math.ceil(
            (length + 2 * per_row) / 64
        )  # 2× the mean cut covers most rows
        raise_it = f"raise max_seq_len to {new_length}"
    else:
        new_length = "auto"
        raise_it = (
            "let auto pick max_seq_len (the 99th percentile of the data's token lengths, capped by the model)"
        )
    return Finding(
        id="truncation",
        severity="medium" if (cut + dropped) / total >= 2 * TRUNCATION_SHARE else "low",
        title="heavy truncation",
        evidence=evidence,
        action=f"{raise_it}; cost: {_truncation_cost(facts, lost, dropped)}",
        command=facts.rerun(("training.max_seq_len", new_length)),
    )


def _truncation_cost(facts: Facts, lost: int, dropped: int) -> str:
    """The extra tokens (and time, at the run's measured throughput) per epoch of training the cut tokens."""
    tokens = facts.metric("train.tokens")
    speed = facts.metric("train.tokens_per_sec")
    epochs = max((value for _, value in facts.epochs), default=None)
    cost = f"{lost:,} more tokens per epoch for the cut rows" + (
        f" plus the {dropped} dropped rows" if dropped else ""
    )
    if tokens and epochs:
        per_epoch = tokens / epochs
        cost += f" (+{pct(lost / per_epoch)} of the {per_epoch:,.0f} trained per epoch now)"
    if speed:
        seconds = lost / speed
        cost += f", about +{seconds:.1f} s" if seconds < 10 else f", about +{seconds:,.0f} s"
        cost += f" per epoch at this run's {speed:,.0f} tokens/s"
    return cost + ", and more memory for the longest rows"


def eval_overlap(facts: Facts) -> Finding | None:
    """Eval rows that repeat training rows (exactly, or after normalising whitespace and case)."""
    repeated = int(
        facts.metric("data.eval_overlap_rows_normalized") or facts.metric("data.eval_overlap_rows") or 0
    )
    if not repeated:
        return None
    eval_rows = facts.rows("eval") or 0
    data = facts.resolved.get("data") or {}
    share = f" ({pct(repeated / eval_rows)})" if eval_rows else ""
    listing = (
        f"`ftkit data check {data['train']} --eval {data['eval']}` lists them"
        if data.get("train") and data.get("eval")
        else "`ftkit data check TRAIN --eval EVAL` lists them"
    )
    return Finding(
        id="eval_overlap",
        severity="medium" if eval_rows and repeated / eval_rows >= 0.1 else "low",
        title="eval rows repeat training rows",
        evidence=f"{repeated} of {eval_rows} eval rows{share} repeat a training row; eval scores on them measure "
        "memory, not generalisation",
        action=f"remove them from the eval file ({listing}); or hold out a deduplicated split of the training "
        "file instead of the eval file",
        command=facts.rerun(("data.eval", None), ("data.eval_split", 0.1)) if data.get("eval") else None,
    )


def too_few_rows(facts: Facts) -> Finding | None:
    """Fewer training rows than the method needs to generalise."""
    rows = facts.rows("train")
    if rows is None:
        return None
    full = facts.method in FULL_WEIGHT_METHODS
    needed = FULL_MIN_ROWS if full else ADAPTER_MIN_ROWS
    if rows >= needed:
        return None
    method = facts.resolved.get("method") if isinstance(facts.resolved.get("method"), dict) else {}
    rank = method.get("r")
    if full:
        action, command = "train an adapter instead (lora), or add rows", facts.rerun(("method.name", "lora"))
    elif facts.method in LORA_FAMILY and isinstance(rank, int) and rank > 4:
        action, command = (
            f"add rows; meanwhile a smaller rank (method.r=4, from {rank}) memorises less",
            facts.rerun(("method.r", 4)),
        )
    else:
        action, command = "add rows (no setting replaces data)", None
    return Finding(
        id="too_few_rows",
        severity="low",
        title=f"too few training rows for {facts.method}",
        evidence=f"{rows} training rows; {facts.method} needs about {needed:,} or more to generalise",
        action=action,
        command=command,
    )


def margin_not_growing(facts: Facts) -> Finding | None:
    """A preference run whose tuned model does not prefer the chosen answers more than the base model did: the
    log-probability margin did not grow (and so the implicit reward margin is not positive)."""
    if facts.task != "preference":
        return None
    base, tuned = facts.metric("base.eval.logp_margin"), facts.metric("eval.logp_margin")
    if base is None or tuned is None or tuned > base:
        return None
    accuracy = facts.metric("base.eval.preference_accuracy"), facts.metric("eval.preference_accuracy")
    shown = f"; preference accuracy {pct(accuracy[0])} → {pct(accuracy[1])}" if None not in accuracy else ""
    beta = (facts.resolved.get("preference") or {}).get("beta")
    rate = facts.learning_rate
    higher = float(f"{min(rate * 10, 0.5):.3g}") if rate else None
    return Finding(
        id="margin_not_growing",
        severity="medium",
        title="the preference margin did not grow",
        evidence=f"eval log p(chosen) − log p(rejected), base → tuned: {fmt(base)} → {fmt(tuned)}{shown}",
        action="check that `chosen` is the better answer in the data (`ftkit data check TRAIN` shows pairs), then "
        + (f"raise the learning rate ten-fold ({fmt(rate)} → {fmt(higher)})" if higher else "train longer")
        + (
            f"; a smaller preference.beta (now {fmt(beta)}) lets the policy move further from the reference"
            if beta
            else ""
        ),  # fmt: skip
        command=facts.rerun(("training.learning_rate", higher)) if higher else None,
    )
