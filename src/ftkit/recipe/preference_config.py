"""The recipe's `preference:` section (`task: preference`): which objective trains on the (prompt, chosen,
rejected) pairs and its settings, checked against what the installed TRL offers.

    task: preference
    preference:
      objective: dpo          # dpo (a reference model) | orpo | simpo (reference-free; TRL's experimental trainers)
      beta: 0.1
      loss_type: sigmoid      # dpo only: any loss TRL's DPOConfig lists (sigmoid, ipo, hinge, ...)
      reference: auto         # dpo only: auto (adapters: the base with the adapter off; full/freeze: a frozen copy)
                              #   | precompute (reference log-probs computed once before training; no model kept)
      max_prompt_len: null    # keep at most the last N prompt tokens (counted when cut)
"""

from __future__ import annotations

import functools
import os
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

OBJECTIVES = ("dpo", "orpo", "simpo")
REFERENCE_FREE = ("orpo", "simpo")
# Methods whose trainable part TRL's preference trainers take: prompt and prefix tuning are refused by PEFT's
# disable_adapter reference and their virtual tokens break the chosen/rejected concatenation TRL builds.
PREFERENCE_METHODS = ("lora", "dora", "qlora", "ia3", "full", "freeze")


class PreferenceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    objective: Literal["dpo", "orpo", "simpo"] = Field(
        "dpo", description="dpo (against a reference model), or reference-free orpo / simpo."
    )
    beta: float = Field(
        0.1, gt=0, description="Strength of the preference term (DPO's β; ORPO's λ; SimPO's β)."
    )
    loss_type: str = Field(
        "sigmoid", description="dpo: a loss TRL's DPOConfig offers (sigmoid, ipo, hinge, ...)."
    )
    reference: Literal["auto", "precompute"] = Field(
        "auto",
        description="dpo: auto (adapter off, or a frozen copy) or precompute (log-probs once, no model).",
    )
    max_prompt_len: int | None = Field(
        None, ge=1, description="Keep at most the last N prompt tokens (cut prompts are counted)."
    )
    simpo_gamma: float = Field(0.5, ge=0, description="simpo: the target reward margin γ.")


@functools.cache
def dpo_loss_types() -> tuple[str, ...]:
    """The loss types the installed TRL's DPOConfig documents (read from its field help, so a newer TRL's losses
    are accepted as they come)."""
    import dataclasses

    from trl import DPOConfig

    help_text = next(f for f in dataclasses.fields(DPOConfig) if f.name == "loss_type").metadata.get(
        "help", ""
    )
    return tuple(dict.fromkeys(re.findall(r"`'(\w+)'`", help_text))) or ("sigmoid",)


def objective_available(objective: str) -> str | None:
    """None when the installed TRL trains `objective`, else why not."""
    # README names these as TRL's experimental trainers: no warning at each import
    if objective in REFERENCE_FREE:
        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    try:
        if objective == "orpo":
            from trl.experimental.orpo import ORPOTrainer  # noqa: F401
        elif objective == "simpo":
            from trl.experimental.cpo import CPOTrainer  # noqa: F401
    except ImportError as error:
        return f"the installed TRL has no {objective} trainer ({error})"
    return None


def preference_problems(recipe: Any) -> list[tuple[tuple[str, ...], str]]:
    """(key path, message) for each problem of a preference recipe, located by the caller (recipe/load.py)."""
    problems: list[tuple[tuple[str, ...], str]] = []
    if recipe.task != "preference":
        return problems
    settings: PreferenceConfig = recipe.preference
    if recipe.method.name not in PREFERENCE_METHODS:
        problems.append(
            (
                ("method", "name"),
                f"`{recipe.method.name}` does not train on preference pairs; methods that do: "
                + ", ".join(PREFERENCE_METHODS),
            )
        )
    reason = objective_available(settings.objective)
    if reason:
        problems.append((("preference", "objective"), reason))
    if settings.objective == "dpo":
        known = dpo_loss_types()
        if settings.loss_type not in known:
            problems.append(
                (
                    ("preference", "loss_type"),
                    f"`{settings.loss_type}` is not a DPO loss of the installed TRL; choose from {', '.join(known)}",
                )
            )
    elif settings.loss_type != "sigmoid":
        problems.append(
            (("preference", "loss_type"), f"loss_type applies to objective dpo, not {settings.objective}")
        )
    if settings.objective in REFERENCE_FREE and settings.reference != "auto":
        problems.append(
            (
                ("preference", "reference"),
                f"{settings.objective} uses no reference model; leave reference: auto",
            )
        )
    evaluation = recipe.evaluation
    for key in ("every_steps", "select_best", "generate"):
        if getattr(evaluation, key) not in (None, 0):
            problems.append(
                (
                    ("evaluation", key),
                    "a preference run is evaluated on its eval pairs (preference accuracy, "
                    "margins, the objective's loss) before and after training; remove this key",
                )  # fmt: skip
            )
    return problems
