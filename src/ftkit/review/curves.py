"""Findings read from the loss curves: divergence, overfitting, underfitting.

Each threshold is stated beside its constant with why; docs/review.md (README "Review") lists them.
"""

from __future__ import annotations

import math

from ftkit.review.facts import LORA_FAMILY, Facts
from ftkit.review.model import Finding
from ftkit.review.series import finite, fmt, mean, mean_between, pct

# Divergence. A logged train loss at least SPIKE_FACTOR times the lowest before it and SPIKE_MIN_RISE nats above
# it is a spike: per-step losses of small batches wobble by tens of percent, they do not double by a whole nat.
SPIKE_FACTOR = 2.0
SPIKE_MIN_RISE = 1.0
# A run whose last quarter of logged train losses averages END_RISE times its first quarter ended worse than it
# began: it unlearned. Averaging a quarter smooths batch noise.
END_RISE = 1.10
# Overfitting. Eval loss OVERFIT_RISE times its lowest (and OVERFIT_MIN_RISE nats above it) at the last
# evaluation: eval runs on the same rows in eval mode every time, so the rise is the model, not noise.
OVERFIT_RISE = 1.02
OVERFIT_MIN_RISE = 0.01
MIN_EVALS_FOR_OVERFIT = 3  # a lowest point with at least one evaluation after it needs three
# Underfitting. Logged train losses in thirds (means): the last third still improves on the middle third by at
# least UNDERFIT_SHARE of the whole run's improvement (first third to last third) and UNDERFIT_MIN_DROP nats. A
# run that has converged did most of its descent early (an exponential approach to its floor leaves the last
# third well under 10 % of it); a straight-line descent gives 50 %, 33 % under a linearly decaying learning rate.
# When eval loss was measured it must still be falling too (EVAL_STILL_FALLING: 0.2 % between the last two
# evaluations; eval is deterministic, so any real fall counts), or the falling train loss is memorisation.
UNDERFIT_SHARE = 0.2
UNDERFIT_MIN_DROP = 0.02
EVAL_STILL_FALLING = 0.998
MIN_LOSSES_FOR_TREND = 9  # thirds (and quarters) of at least 3 (2) logged losses


def lower_rate_changes(facts: Facts, factor: float = 10.0) -> list[tuple[str, object]]:
    """`--set` changes for a lower learning rate (÷factor) with gradient clipping at 1.0 at most."""
    changes: list[tuple[str, object]] = []
    rate = facts.learning_rate
    if rate is not None:
        changes.append(("training.learning_rate", float(f"{rate / factor:.3g}")))
    clip = finite(facts.training("max_grad_norm"))
    if clip is not None and clip > 1.0:
        changes.append(("training.max_grad_norm", 1.0))
    return changes


def divergence(facts: Facts) -> Finding | None:
    """NaN or inf in the train loss, gradient norm or final losses; a loss spike; or a run that ended with a
    higher train loss than it started with."""
    evidence = _non_finite(facts) or _spike(facts) or _ended_higher(facts)
    if evidence is None:
        return None
    rate = facts.learning_rate
    changes = lower_rate_changes(facts)
    return Finding(
        id="divergence",
        severity="high",
        title="training diverged",
        evidence=evidence,
        action=(
            f"lower the learning rate ten-fold ({fmt(rate)} → {fmt(rate / 10)})"
            if rate
            else "lower the learning rate"
        )
        + " and keep gradient clipping on (training.max_grad_norm ≤ 1.0)",
        command=facts.rerun(*changes) if changes else None,
    )


def _non_finite(facts: Facts) -> str | None:
    for name, curve in (("train loss", facts.train), ("gradient norm", facts.grad_norm)):
        bad = next(((step, value) for step, value in curve if not math.isfinite(value)), None)
        if bad:
            before = [(step, value) for step, value in curve if step < bad[0] and math.isfinite(value)]
            last = f" (last finite value {fmt(before[-1][1])} at step {before[-1][0]})" if before else ""
            return f"{name} became {fmt(bad[1])} at step {bad[0]} of {facts.steps}{last}"
    for key in ("train.loss", "eval.loss"):
        value = facts.raw_metric(key)
        if value is not None and not math.isfinite(value):
            return f"{key} is {fmt(value)}"
    return None


def _spike(facts: Facts) -> str | None:
    lowest: float | None = None
    for step, value in facts.train:
        if lowest is not None and value >= SPIKE_FACTOR * lowest and value - lowest >= SPIKE_MIN_RISE:
            return (
                f"train loss jumped to {fmt(value)} at step {step} from a lowest {fmt(lowest)} before it "
                f"({value / lowest:.1f}×)"
            )
        lowest = value if lowest is None else min(lowest, value)
    return None


def _ended_higher(facts: Facts) -> str | None:
    values = [value for _, value in facts.train]
    if len(values) < MIN_LOSSES_FOR_TREND:
        return None
    quarter = len(values) // 4
    first, last = mean(values[:quarter]), mean(values[-quarter:])
    if last > END_RISE * first:
        return (
            f"train loss rose over the run: {fmt(first)} (mean of the first {quarter} logged steps) → "
            f"{fmt(last)} (mean of the last {quarter}), +{pct(last / first - 1)}"
        )
    return None


def overfitting(facts: Facts) -> Finding | None:
    """Eval loss rose from its lowest point to the last evaluation while train loss kept falling."""
    evals = facts.evals
    best = min(range(len(evals)), key=lambda index: evals[index][1])
    (best_step, best_loss), (last_step, last_loss) = evals[best], evals[-1]
    if best == len(evals) - 1 or not (
        last_loss >= OVERFIT_RISE * best_loss and last_loss - best_loss >= OVERFIT_MIN_RISE
    ):
        return None
    train_at_best = mean_between(facts.train, evals[best - 1][0] if best else 0, best_step)
    train_at_end = mean_between(facts.train, evals[-2][0], last_step)
    if train_at_best is None or train_at_end is None or train_at_end >= train_at_best:
        return None
    key, value = facts.longer_run(best_step / max(facts.steps, last_step))
    regularise = "method.dropout (0.1)" if facts.method in LORA_FAMILY else "training.weight_decay (0.01)"
    evidence = (
        f"eval loss {fmt(best_loss)} → {fmt(last_loss)} over the last {len(evals) - best} evaluations "
        f"(steps {best_step} → {last_step}) while train loss {fmt(train_at_best)} → {fmt(train_at_end)}"
    )
    kept = facts.metric("train.best_step")
    if (
        kept is not None
    ):  # evaluation.select_best already saved the best step: only the time after it was wasted
        return Finding(
            id="overfitting",
            severity="low",
            title="overfitting after the kept step: the saved output is step "
            f"{int(kept)}'s (evaluation.select_best)",
            evidence=evidence,
            action=(
                f"nothing is lost in the output; to spend less time, stop near step {best_step} "
                f"({key.split('.')[1]} {value}), or regularise more to train longer: {regularise}"
            ),
            command=facts.rerun((key, value)),
        )
    return Finding(
        id="overfitting",
        severity="medium",
        title="overfitting: eval loss rose while train loss fell",
        evidence=evidence,
        action=(
            f"stop where eval loss was lowest (step {best_step}: {key.split('.')[1]} {value}); "
            f"or keep the length and regularise more: {regularise}"
        ),
        command=facts.rerun((key, value)),
    )


def underfitting(facts: Facts) -> Finding | None:
    """Train loss still falling in the last third of the run (and eval loss still falling, when measured)."""
    values = [value for _, value in facts.train]
    third = len(values) // 3
    first, middle, last = mean(values[:third]), mean(values[third:-third]), mean(values[-third:])
    total, late = first - last, middle - last
    if not (total > 0 and late >= UNDERFIT_SHARE * total and late >= UNDERFIT_MIN_DROP):
        return None
    evidence = (
        f"train loss still falling at the end: {fmt(first)} → {fmt(middle)} → {fmt(last)} (means of the three "
        f"thirds of {len(values)} logged steps; the last third brought {pct(late / total)} of the fall)"
    )
    if len(facts.evals) >= 2:
        previous, final = facts.evals[-2][1], facts.evals[-1][1]
        if not final < EVAL_STILL_FALLING * previous:
            return None
        evidence += (
            f"; eval loss still falling too: {fmt(previous)} → {fmt(final)} at the last two evaluations"
        )
    key, value = facts.longer_run(2.0)
    more = []
    rate = facts.learning_rate
    if rate:
        more.append(f"a higher learning rate (training.learning_rate={fmt(min(rate * 3, 0.5))})")
    rank = (
        facts.resolved.get("method", {}).get("r") if isinstance(facts.resolved.get("method"), dict) else None
    )
    if facts.method in LORA_FAMILY and isinstance(rank, int):
        more.append(f"a higher rank (method.r={rank * 2})")
    return Finding(
        id="underfitting",
        severity="medium",
        title="underfitting: loss still falling when training stopped",
        evidence=evidence,
        action=f"train longer ({key.split('.')[1]} {value})" + (f"; or {' or '.join(more)}" if more else ""),
        command=facts.rerun((key, value)),
    )
