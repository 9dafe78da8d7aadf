"""QLoRA: LoRA adapters on a 4-bit NF4-quantized, frozen base (Dettmers et al., 2023).

The base loads quantized through bitsandbytes (which also runs on CPU, with fp32 compute). Merging folds the adapter
into a full-precision copy of the base, reloaded for the purpose: a 4-bit base cannot hold the merged weights exactly.

Layers the 4-bit kernels cannot hold stay in full precision, announced before loading. bitsandbytes stores a
Linear layer's weights in blocks of 64 values (its 4-bit block size, read from bitsandbytes) along the input, and
its CPU inference layout (used in eval mode on CPUs with AVX512-BF16) groups output rows by 32; a layer whose
in_features is not a multiple of the block size, or whose out_features is not a multiple of the row group, fails
there with a reshape error in the middle of a run. Real models' layers are multiples of both; tiny test models
(hidden size 32) are not. ftkit checks every Linear layer of the model (built from its config on the meta device)
before loading and keeps those layers in full precision (`llm_int8_skip_modules`) on every machine, so that a
recipe loads the same model on every CPU and GPU; the note names the layers and the share of linear weights they
hold. If no layer is left to quantize, the run stops before loading (use `lora` for such a model). Skipping beats
refusing: the run trains what a user asked for, and the memory saving applies to every other layer.

ftkit also keeps bitsandbytes from repacking 4-bit layers into that inference layout at all
(`train.model_loading.keep_4bit_training_layout`): a repacked layer has no backward, so training after the base
evaluation would cut gradients silently, and its bf16 scales would make losses depend on the CPU.
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


def four_bit_layout() -> tuple[int, int]:
    """(block size, row group) of bitsandbytes' 4-bit Linear weights: in_features must be a multiple of the
    first (the quantization block) and out_features of the second (the CPU inference layout)."""
    import inspect

    import bitsandbytes as bnb
    import torch
    from bitsandbytes import functional

    blocksize = int(bnb.nn.Params4bit(torch.empty(0), requires_grad=False).blocksize)
    try:  # a private function's default; 32 is its value in bitsandbytes 0.48-0.50
        rows = int(inspect.signature(functional._convert_weight_packed_for_cpu).parameters["block_n"].default)
    except (AttributeError, KeyError, TypeError, ValueError):
        rows = 32
    return blocksize, rows


def default_skips(skeleton: Any) -> set[str]:
    """The modules transformers keeps out of quantization by default (the output embeddings, the last layer)."""
    try:
        from transformers.quantizers.base import get_keys_to_not_convert

        return set(get_keys_to_not_convert(skeleton))
    except (ImportError, AttributeError):  # transformers moved it: the output embeddings are the usual skip
        output = skeleton.get_output_embeddings()
        return {name for name, module in skeleton.named_modules() if module is output}


def unquantizable_layers(
    skeleton: Any, blocksize: int, rows: int
) -> tuple[dict[str, tuple[int, int]], int, int]:
    """({name: (in, out)} of the layers bitsandbytes would quantize but cannot hold in 4-bit, their parameter
    count, the parameter count of all layers it would quantize)."""
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    skipped = default_skips(skeleton)
    narrow: dict[str, tuple[int, int]] = {}
    narrow_params = total_params = 0
    for name, module in skeleton.named_modules():
        if name in skipped or not (type(module) is nn.Linear or isinstance(module, Conv1D)):
            continue
        in_features, out_features = (
            module.weight.shape if isinstance(module, Conv1D) else (module.in_features, module.out_features)
        )
        total_params += in_features * out_features
        if in_features % blocksize or out_features % rows:
            narrow[name] = (in_features, out_features)
            narrow_params += in_features * out_features
    return narrow, narrow_params, total_params


def _grouped(layers: dict[str, tuple[int, int]]) -> str:
    """`model.layers.*.mlp.up_proj` ×2 (in 32, out 64), ... - one entry per layer kind, in model order."""
    import re

    groups: dict[tuple[str, tuple[int, int]], int] = {}
    for name, shape in layers.items():
        key = (re.sub(r"\.\d+\.", ".*.", name), shape)
        groups[key] = groups.get(key, 0) + 1
    return ", ".join(
        f"{pattern}{f' ×{count}' if count > 1 else ''} (in {shape[0]}, out {shape[1]})"
        for (pattern, shape), count in groups.items()
    )


class QloraMethod(LoraMethod):
    """LoRA on a 4-bit base. Layers bitsandbytes' 4-bit layout cannot hold (in_features not a multiple of its
    block size, out_features not a multiple of its CPU row group) stay in full precision with a note, on every
    machine; a model with no layer left to quantize stops before loading. See the module docstring for why."""

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

    def base_load_kwargs(
        self, options: QloraOptions, device: str, skeleton: Any
    ) -> tuple[dict[str, Any], list[str]]:
        """The 4-bit load settings, keeping the layers bitsandbytes cannot hold in 4-bit in full precision (see the
        module docstring); a note names them. No layer left to quantize is a MethodError, before loading."""
        from ftkit.errors import MethodError

        kwargs = self.model_load_kwargs(options, device)
        base = skeleton()
        blocksize, rows = four_bit_layout()
        narrow, narrow_params, total_params = unquantizable_layers(base, blocksize, rows)
        if not narrow:
            return kwargs, []
        why = (
            f"bitsandbytes' 4-bit weights need in_features a multiple of {blocksize} (its quantization block) and "
            f"out_features a multiple of {rows} (its CPU layout)"
        )
        if narrow_params == total_params:
            raise MethodError(
                f"method.name: qlora: no linear layer of this model can be stored in 4-bit ({why}); "
                f"layers: {_grouped(narrow)}",
                hint="train full-precision adapters with `method.name: lora` (a model this small gains nothing "
                "from 4-bit), or choose a model whose layer widths are multiples of the block size",
            )
        config = kwargs["quantization_config"]
        # An explicit skip list replaces transformers' default one (the output embeddings), so it carries both.
        config.llm_int8_skip_modules = sorted({*default_skips(base), *narrow})
        note = (
            f"qlora: {len(narrow)} linear layer{'s' if len(narrow) > 1 else ''} stay in full precision "
            f"({100 * narrow_params / total_params:.0f}% of the linear weights), because {why}: {_grouped(narrow)}"
        )
        return kwargs, [note]

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
