"""The plan of a run before any training: per candidate method a memory estimate against free memory and a time
estimate from a measured probe, tokens and steps per epoch, the recommended method with its reason, warnings.

Memory: the analytic estimate (estimate.py) decides which candidates may be probed, so a probe never starts where
it would exhaust memory; a candidate that was probed is then judged by its measured peak (the probe runs the run's
own trainer on the data's longest rows, the worst batch a run meets). Time: the probe's seconds per micro-batch
step × grad_accum × (tokens an average step of the run holds / tokens a probe step held) × planned steps.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from ftkit.errors import FtkitError, UsageError
from ftkit.plan.estimate import MemoryEstimate, human_bytes

DEFAULT_CANDIDATES = ("lora", "qlora", "full")
FULL_ROWS = 50_000  # from this many rows on, full fine-tuning is recommended where it fits


@dataclass
class Candidate:
    """One method's plan: memory (estimated, then measured where probed), time, and what the method's own code
    says about the combination (notes, or the error that rules it out)."""

    method: str
    memory: MemoryEstimate | None = None
    predicted_bytes: int = 0
    fits: bool = False
    probe: dict[str, Any] | None = None
    seconds_per_step: float | None = None
    run_seconds: float | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    batch_size: int = 0  # the micro-batch estimated and probed (the auto rule's, when batch_size is auto)
    grad_accum: int = 1
    reference: str = ""  # a preference plan's reference model, in words (its bytes are memory.reference)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "batch_size": self.batch_size,
            "grad_accum": self.grad_accum,
            "memory": self.memory.to_dict() if self.memory else None,
            "predicted_bytes": self.predicted_bytes,
            "fits": self.fits,
            "probe": self.probe,
            "seconds_per_step": self.seconds_per_step,
            "run_seconds": self.run_seconds,
            "notes": self.notes,
            "error": self.error,
            **({"reference": self.reference} if self.reference else {}),
        }


@dataclass
class Plan:
    """Everything `ftkit plan` shows; `to_dict` is its --json document."""

    model: str
    task: str
    method: str  # the recipe's (or --method's) method; "auto" lets the plan choose
    device: str
    precision: str
    batch_size: int
    grad_accum: int
    max_seq_len: int
    train_rows: int
    tokens_per_epoch: int
    steps_per_epoch: int
    planned_steps: int
    free_bytes: int
    free_source: str
    candidates: list[Candidate]
    recommended: str | None = None
    reason: str = ""
    warnings: list[str] = field(default_factory=list)
    auto: dict[str, str] = field(default_factory=dict)
    preference: dict[str, Any] | None = (
        None  # a preference plan's objective, reference and sequences per pair
    )

    def candidate(self, method: str) -> Candidate | None:
        return next((c for c in self.candidates if c.method == method), None)

    def to_dict(self) -> dict[str, Any]:
        plain = {key: value for key, value in self.__dict__.items() if key != "candidates"}
        if self.preference is None:
            plain.pop("preference")
        plain["effective_batch"] = self.batch_size * self.grad_accum
        return {**plain, "candidates": [candidate.to_dict() for candidate in self.candidates]}


def batch_tokens(lengths: list[int], batch: int, padding_free: bool, seed: int = 0) -> float:
    """Mean tokens a micro-batch step processes: the rows' own tokens without padding, else batch × the longest
    row of each batch, over one shuffled epoch (the trainer shuffles too)."""
    if not lengths:
        return 0.0
    order = list(lengths)
    random.Random(seed).shuffle(order)
    batches = [order[i : i + batch] for i in range(0, len(order), batch)]
    per = [sum(b) if padding_free else len(b) * max(b) for b in batches]
    return sum(per) / len(per)


def choose(plan: Plan) -> None:
    """Set the recommended method and its reason (the rule is stated in the reason)."""
    fitting = [c for c in plan.candidates if c.fits and not c.error]
    asked = plan.candidate(plan.method)
    if asked is not None and asked.fits and not asked.error:
        plan.recommended = asked.method
        plan.reason = (
            f"the chosen method `{asked.method}` fits: {human_bytes(asked.predicted_bytes)} of "
            f"{human_bytes(plan.free_bytes)} free"
        )
        return
    if not fitting:
        plan.recommended = None
        plan.reason = "no candidate fits in memory at this batch and length"
        return
    by_name = {c.method: c for c in fitting}
    if "full" in by_name and plan.train_rows >= FULL_ROWS:
        pick = by_name["full"]
        why = f"{plan.train_rows:,} rows (≥ {FULL_ROWS:,}) are enough data to move every weight, and it fits"
    elif "lora" in by_name:
        pick = by_name["lora"]
        why = "LoRA fits: a small adapter, mergeable, close to full fine-tuning on data of this size"
    else:
        pick = min(fitting, key=lambda c: c.predicted_bytes)
        why = "the candidate that needs the least memory"
    plan.recommended = pick.method
    plan.reason = f"{why} ({human_bytes(pick.predicted_bytes)} of {human_bytes(plan.free_bytes)} free)"


def refuse_if_unfit(plan: Plan, smaller_batch: int | None) -> None:
    """Raise UsageError (exit 2) naming the cheaper alternatives when the chosen method cannot fit."""
    asked = plan.candidate(plan.method)
    if asked is None or asked.fits or asked.error:
        return
    others = [c for c in plan.candidates if c.fits and not c.error and c.method != asked.method]
    options = [f"use {c.method} ({human_bytes(c.predicted_bytes)})" for c in others]
    if smaller_batch:
        accum = math.ceil(plan.batch_size * plan.grad_accum / smaller_batch)
        options.append(f"batch {smaller_batch} (training.batch_size={smaller_batch}, grad_accum={accum})")
    instead = " or ".join(options) if options else "nothing planned fits: shorten training.max_seq_len"
    raise UsageError(
        f"{asked.method} needs {human_bytes(asked.predicted_bytes)}, {human_bytes(plan.free_bytes)} free "
        f"({plan.free_source}): {instead}",
        hint="change method.name or training.batch_size (with --set), then run `ftkit plan` again",
        problems=[
            f"{c.method}: {human_bytes(c.predicted_bytes)}" + (" fits" if c.fits else " does not fit")
            for c in plan.candidates
            if not c.error
        ],
    )


def method_error(error: Exception) -> str:
    """A candidate's refusal as one line (FtkitError's message and hint, or the exception)."""
    if isinstance(error, FtkitError):
        return error.message + (f" ({error.hint})" if error.hint else "")
    return f"{type(error).__name__}: {error}"
