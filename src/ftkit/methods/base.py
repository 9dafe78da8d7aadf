"""The contract every fine-tuning method fulfils.

A method module must be cheap to import: torch, transformers and peft are imported inside the functions that use
them, so that `ftkit validate` and `ftkit methods` stay fast.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from ftkit.errors import MethodError, MissingDependencyError


class MethodOptions(BaseModel):
    """Base class of every method's options. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class TrainingAdjustments:
    """Changes a method makes to the training settings, each with the reason shown to the user."""

    overrides: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Method:
    """A fine-tuning method. Subclass it, set the class attributes and override what differs."""

    name: ClassVar[str]
    description: ClassVar[str]
    options_model: ClassVar[type[MethodOptions]] = MethodOptions
    mergeable: ClassVar[bool] = False
    is_adapter: ClassVar[bool] = True
    requires: ClassVar[tuple[str, ...]] = ()  # importable module names
    install_hint: ClassVar[str | None] = None
    typical_trainable: ClassVar[str] = ""
    default_learning_rate: ClassVar[float] = 2e-4
    # False where cached generation is wrong for this method (prefix/prompt tuning): decode without a KV cache.
    generation_use_cache: ClassVar[bool] = True
    # True where padding-free batches (one flattened row, position_ids restarting per sequence) give exactly the
    # padded batch's logits with this method: proven per method in tests/train/test_padding_free.py, so False until
    # proven. Where proven wrong, padding_free_inexact_reason says why (shown to the user).
    padding_free_exact: ClassVar[bool] = False
    padding_free_inexact_reason: ClassVar[str] = ""
    # The run's tokenizer, set by the runner (and `ftkit.inference`) before `prepare`/`load_trained`, for methods
    # that need it (prompt tuning's init text). None until then.
    tokenizer: Any = None

    def check_requirements(self) -> None:
        """Raise MissingDependencyError, with the install command, before any model is loaded."""
        missing = [module for module in self.requires if importlib.util.find_spec(module) is None]
        if missing:
            raise MissingDependencyError(
                f"method `{self.name}` needs {', '.join(missing)}, which is not installed",
                hint=self.install_hint or f"pip install {' '.join(missing)}",
            )

    def parse_options(self, raw: dict[str, Any]) -> MethodOptions:
        return self.options_model.model_validate(raw)

    def adjust_training(self, options: MethodOptions, training: dict[str, Any]) -> TrainingAdjustments:
        """Training-setting changes this method needs (e.g. prefix tuning turns gradient checkpointing off)."""
        return TrainingAdjustments()

    def model_load_kwargs(self, options: MethodOptions, device: str) -> dict[str, Any]:
        """Extra keyword arguments for `from_pretrained` (e.g. a quantization config)."""
        return {}

    def base_load_kwargs(
        self, options: MethodOptions, device: str, skeleton: Callable[[], Any]
    ) -> tuple[dict[str, Any], list[str]]:
        """`model_load_kwargs` fitted to the actual base model, with notes to announce before loading.

        `skeleton()` builds the base model on the meta device from its config (no weights, no memory), for methods
        whose load settings depend on the architecture (QLoRA keeps layers that the 4-bit kernels cannot handle in
        full precision). It may raise a MethodError to stop before the weights load.
        """
        return self.model_load_kwargs(options, device), []

    def merge_load_kwargs(self, options: MethodOptions, device: str) -> dict[str, Any]:
        """`from_pretrained` kwargs for the base a trained adapter is merged into (QLoRA: full precision)."""
        return self.model_load_kwargs(options, device)

    def prepare(self, model: Any, options: MethodOptions, task: str) -> Any:
        """Wrap or modify the loaded base model for training; return the model to train. Every method overrides it."""
        raise MethodError(
            f"method `{self.name}` does not say how to prepare a model (its class lacks prepare())",
            hint="fix or update the package that provides this method, or choose another method",
        )

    def save(self, model: Any, output_dir: Path) -> None:
        """Write the trained weights so that `load_trained` (and the usual transformers/peft calls) reload them."""
        model.save_pretrained(str(output_dir))

    def load_trained(self, base_model: Any, output_dir: Path, model_class: Any = None) -> Any:
        """Rebuild the trained model from a freshly loaded base model and `output_dir`.

        `model_class` is the transformers Auto class for the task, for methods that save whole models.
        """
        from peft import PeftModel

        return PeftModel.from_pretrained(base_model, str(output_dir))

    def merge(self, model: Any) -> Any:
        """Fold the adapter into the base weights (only for mergeable methods)."""
        raise MethodError(f"method `{self.name}` cannot be merged into the base model")
