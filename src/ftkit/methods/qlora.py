"""QLoRA: LoRA adapters on a 4-bit NF4-quantized, frozen base (Dettmers et al., 2023).

The base loads quantized through bitsandbytes (which also runs on CPU, with fp32 compute). Merging folds the adapter
into a full-precision copy of the base, reloaded for the purpose: a 4-bit base cannot hold the merged weights exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from ftkit.methods.lora import LoraMethod, LoraOptions, lora_config


class QloraOptions(LoraOptions):
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type of the frozen base.")
    double_quant: bool = Field(True, description="Also quantize the quantization constants (saves ~0.4 bit).")
    compute_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Dtype the 4-bit weights are de-quantized to for matmuls; auto: bf16 on GPU, fp32 on CPU.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_full_base_training(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("full", "train_base", "full_finetune"):
                if data.get(key):
                    raise ValueError(
                        f"`{key}` asks to fine-tune the whole base, but qlora keeps the base frozen in 4-bit "
                        "(4-bit weights cannot be trained); use method `full` (or `freeze`) on a full-precision "
                        "base, or drop the key to train LoRA adapters on the 4-bit base"
                    )
        return data


def compute_dtype(options: QloraOptions, device: str) -> Any:
    import torch

    if options.compute_dtype != "auto":
        return getattr(torch, options.compute_dtype)
    if device == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


class QloraMethod(LoraMethod):
    name = "qlora"
    description = "LoRA on a 4-bit NF4 base (bitsandbytes); the least memory for adapter training."
    options_model = QloraOptions
    mergeable = True
    requires = ("bitsandbytes",)
    install_hint = "pip install 'ftkit[qlora]'  (or: pip install bitsandbytes)"
    typical_trainable = "0.5-4%"
    default_learning_rate = 2e-4

    def quantization_config(self, options: QloraOptions, device: str) -> Any:
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=options.quant_type,
            bnb_4bit_compute_dtype=compute_dtype(options, device),
            bnb_4bit_use_double_quant=options.double_quant,
        )

    def model_load_kwargs(self, options: QloraOptions, device: str) -> dict[str, Any]:
        return {
            "quantization_config": self.quantization_config(options, device),
            "device_map": "cpu" if device in ("cpu", "auto", "mps") else {"": 0},
        }

    def merge_load_kwargs(self, options: QloraOptions, device: str) -> dict[str, Any]:
        return {}  # merge onto the full-precision base

    def prepare(self, model: Any, options: QloraOptions, task: str) -> Any:
        from peft import get_peft_model, prepare_model_for_kbit_training

        if not getattr(model, "is_loaded_in_4bit", False):
            from ftkit.errors import MethodError

            raise MethodError(
                "qlora needs the base model loaded in 4-bit, but it was loaded in full precision",
                hint="load it through ftkit (`ftkit run`), which passes the bitsandbytes quantization config",
            )
        # Gradient checkpointing is the trainer's business (training.gradient_checkpointing); inputs must still
        # require grad so that checkpointed blocks over frozen 4-bit weights get gradients.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        model.enable_input_require_grads()
        return get_peft_model(model, lora_config(options, task))

    def load_trained(self, base_model: Any, output_dir: Path, model_class: Any = None) -> Any:
        """The adapter on its base. On the 4-bit base, adapter weights keep the dtype they trained and were saved
        in (TRL trains QLoRA adapters in bf16, the paper's recipe), so outputs match the trained model exactly;
        on a full-precision base (for merging) they load in that base's precision."""
        model = super().load_trained(base_model, output_dir, model_class)
        if getattr(base_model, "is_loaded_in_4bit", False):
            saved = saved_adapter_dtype(output_dir)
            if saved is not None:
                for name, parameter in model.named_parameters():
                    if ("lora_A" in name or "lora_B" in name) and parameter.dtype != saved:
                        parameter.data = parameter.data.to(saved)
        return model


def saved_adapter_dtype(output_dir: Path) -> Any:
    """The dtype of the saved LoRA weights (None when there are none)."""
    from safetensors import safe_open

    path = Path(output_dir) / "adapter_model.safetensors"
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as handle:
        for key in handle.keys():  # noqa: SIM118 - safe_open is not a dict
            if "lora_A" in key or "lora_B" in key:
                return handle.get_tensor(key).dtype
    return None
