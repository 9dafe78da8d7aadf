"""Loading base models and tokenizers from a hub id, a local folder or a .gguf file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftkit.errors import ModelError


def model_source(model: str, base_dir: Path) -> tuple[str, dict[str, Any]]:
    """(pretrained_name_or_path, extra kwargs) for from_pretrained; GGUF files load from their folder."""
    candidate = Path(model).expanduser()
    if not candidate.is_absolute() and (base_dir / candidate).exists():
        candidate = (base_dir / candidate).resolve()
    if model.endswith(".gguf"):
        return str(candidate.parent), {"gguf_file": candidate.name}
    if candidate.exists():
        return str(candidate), {}
    return model, {}


def load_tokenizer(model: str, base_dir: Path) -> Any:
    from transformers import AutoTokenizer

    source, extra = model_source(model, base_dir)
    tokenizer = _loaded(f"the tokenizer for `{model}`", AutoTokenizer.from_pretrained, source, **extra)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def model_class(task: str) -> Any:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    return AutoModelForSequenceClassification if task == "classification" else AutoModelForCausalLM


def load_dtype(precision: str | None, is_adapter: bool) -> Any:
    """The dtype the base model loads in: bf16 only when the recipe asks for it and the method trains an adapter
    on top (full and freeze keep fp32 master weights; bf16 autocast, if chosen, happens in the trainer)."""
    import torch

    return torch.bfloat16 if precision == "bf16" and is_adapter else torch.float32


def load_model(
    model: str,
    base_dir: Path,
    task: str,
    dtype: Any,
    extra_kwargs: dict[str, Any] | None = None,
    classification_labels: list[str] | None = None,
    pad_token_id: int | None = None,
) -> Any:
    """Load the base model for a task. A GGUF model is rebuilt as a plain model so it can train and save.

    `pad_token_id` is the id the tokenizer pads batches with. Decoder classifiers pool the last token that is
    not `config.pad_token_id`, so for classification the config must name the tokenizer's pad.
    """
    source, extra = model_source(model, base_dir)
    kwargs: dict[str, Any] = {"dtype": dtype, **extra, **(extra_kwargs or {})}
    if classification_labels is not None:
        kwargs["num_labels"] = len(classification_labels)
        kwargs["id2label"] = dict(enumerate(classification_labels))
        kwargs["label2id"] = {label: index for index, label in enumerate(classification_labels)}
    auto = model_class(task)
    # transformers refuses a quantization config with a GGUF file: de-quantize first, then quantize (QLoRA).
    requantize = kwargs.pop("quantization_config", None) if "gguf_file" in extra else None
    loaded = _loaded(f"model `{model}`", auto.from_pretrained, source, **kwargs)
    if "gguf_file" in extra:
        loaded = _plain_model_from_gguf(loaded, auto, dtype)
        if requantize is not None:
            loaded = _quantized_copy(loaded, auto, requantize, kwargs.get("device_map"))
    if getattr(loaded, "is_loaded_in_4bit", False):
        keep_4bit_training_layout(loaded)
    if task == "classification":
        if pad_token_id is not None:
            loaded.config.pad_token_id = pad_token_id
        elif loaded.config.pad_token_id is None:
            loaded.config.pad_token_id = loaded.config.eos_token_id
    return loaded


def keep_4bit_training_layout(model: Any) -> None:
    """Turn off bitsandbytes' CPU inference repack on every 4-bit layer.

    On CPUs with AVX512-BF16, a 4-bit layer that runs in eval mode without gradients repacks its weights once into
    an inference layout with bf16 scales, for good: afterwards its output has no backward (gradients stop there,
    silently, with only a warning) and it computes with rounded scales. ftkit evaluates the base before training,
    so without this QLoRA would train on those CPUs with gradients cut at every 4-bit layer, and its losses would
    differ from other CPUs'. Kept off, every CPU computes the same, trains correctly and evaluates the same way.
    """
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


def model_skeleton(model: str, base_dir: Path, task: str, num_labels: int | None = None) -> Any:
    """The base model built from its config on the meta device: every module with its shapes, no weights and
    no memory. Methods inspect it before loading (see `Method.base_load_kwargs`)."""
    import torch
    from transformers import AutoConfig

    source, extra = model_source(model, base_dir)
    config = _loaded(f"the config of model `{model}`", AutoConfig.from_pretrained, source, **extra)
    if num_labels is not None:
        config.num_labels = num_labels
    with torch.device("meta"):
        return model_class(task).from_config(config)


def _plain_model_from_gguf(model: Any, auto: Any, dtype: Any) -> Any:
    """transformers marks GGUF-loaded models quantized and refuses to train or save them; rebuild a plain one."""
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = auto.from_config(config, dtype=dtype)
    plain.load_state_dict(model.state_dict())
    plain.generation_config = model.generation_config
    return plain


def _quantized_copy(model: Any, auto: Any, quantization_config: Any, device_map: Any) -> Any:
    """Quantize a plain model (e.g. from GGUF) by saving it to a temporary folder and loading it quantized."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ftkit-quantize-") as folder:
        model.save_pretrained(folder)
        return auto.from_pretrained(
            folder, quantization_config=quantization_config, device_map=device_map or "cpu", dtype=model.dtype
        )


def _loaded(what: str, load: Any, source: str, **kwargs: Any) -> Any:
    """`load(source, **kwargs)`, with transformers' missing-file and bad-config errors, and damaged safetensors
    files, turned into a ModelError."""
    try:
        return load(source, **kwargs)
    except (OSError, ValueError) as error:
        raise ModelError(
            f"cannot load {what}: {_first_line(error)}",
            hint="check the model id or path; hub models need network access or a local cache (HF_HOME)",
        ) from None
    except Exception as error:
        damaged = damaged_weights_error(
            error,
            _local_folder(source, kwargs.get("subfolder")),
            what,
            hint="the file is truncated or is not a safetensors file: copy or download it again (a Hub model: "
            "delete its folder from the Hugging Face cache, HF_HOME, and it downloads again)",
        )
        if damaged is None:
            raise
        raise damaged from None


def damaged_weights_error(error: Exception, folder: Path | None, what: str, hint: str) -> ModelError | None:
    """A ModelError naming the damaged file when `error` is safetensors refusing a file (a truncated file, a
    garbled header); None for any other error. The files of `folder` are opened to find the damaged one."""
    from safetensors import SafetensorError

    if not isinstance(error, SafetensorError):
        return None
    damaged = damaged_safetensors(folder) if folder is not None else []
    if not damaged:
        return ModelError(
            f"cannot load {what}: a safetensors file is damaged: {_first_line(error)}", hint=hint
        )
    (path, reason), *others = damaged
    return ModelError(
        f"cannot load {what}: {path} is damaged: {reason}",
        hint=hint,
        problems=[f"{other}: damaged too: {why}" for other, why in others],
    )


def damaged_safetensors(folder: Path) -> list[tuple[Path, str]]:
    """The .safetensors files in `folder` whose header safetensors refuses, with its reason. Opening a file
    reads its header and checks it against the file's size; tensor data is not read."""
    from safetensors import safe_open

    damaged = []
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except Exception as error:  # SafetensorError, or an OSError for an unreadable file
            damaged.append((path, _first_line(error)))
    return damaged


def _local_folder(source: str, subfolder: str | None = None) -> Path | None:
    """The folder holding a model's files: a local folder, or a Hub model's snapshot in the local cache."""
    folder = Path(source)
    if not folder.is_dir():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(source, "config.json")
        except Exception:  # not a valid repo id, no cache: nothing to look at
            return None
        if not isinstance(cached, str):
            return None
        folder = Path(cached).parent
    return folder / subfolder if subfolder else folder


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
