"""Analytic training memory per method: weights, gradients, optimizer states and activations, in bytes.

The model is read from its config and built on the meta device (no weights, no memory); the method prepares that
skeleton, so trainable parameters are counted by the method's own code (peft's adapters, freeze's layer choice),
never re-derived here. A run's resident memory peaks in one of two phases:

- loading: the safetensors file is memory-mapped (its pages count as resident while read) and the weights are
  materialised in the load dtype, plus an fp32 copy first when the file is fp32 and the load dtype is not;
- training: weights, the bf16 copies autocast caches of trainable fp32 weights, fp32 gradients and AdamW's two
  fp32 states per trainable parameter, and the activations kept for the backward pass.

Activations per token are `layers × (ACT_HIDDEN × hidden + ACT_INTERMEDIATE × intermediate) × element bytes`, plus
the loss. A causal-LM SFT run computes its loss in chunks over the trained positions (ftkit.evaluation.chunked_loss):
at most `LOSS_CHUNKS` chunks of `CHUNK_BYTES` fp32 logits at a time, whatever the batch, plus an fp32 gradient
buffer of the LM head when it trains. Trainers that still build the full logits (classification heads, ORPO and
SimPO) hold `LOGIT_BYTES × vocab` per token for the logits, their fp32 upcast, log-softmax and gradients. The
constants were fitted to probes of SmolLM2-135M and a 1.4M-parameter Llama on CPU (see
benchmarks/plan_accuracy.py for how far off the result is); `ftkit plan` replaces the estimate with a measured probe
wherever it can run one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ACT_HIDDEN = 16  # saved tensors per token of hidden width: norms, q/k/v/o, rope, residuals, attention output
ACT_INTERMEDIATE = 5  # saved tensors per token of MLP width: gate, up, activation, product, down input
LOGIT_BYTES = (
    16  # bytes per token and vocabulary entry at the peak of a full-logits loss (see the module doc)
)
# The chunked loss's peak: ~3 fp32 chunks (measured +192 MB fp32, +218 MB bf16 on SmolLM2's vocabulary)
LOSS_CHUNKS = 3.5
ADAM_STATES = 2
DEFAULT_RUNTIME_BYTES = 600 * 2**20  # python, torch, transformers, peft, trl resident before a model loads
# The trainer's libraries (trl, datasets) and the kernels and caches the first training step sets up, resident on
# top of the runtime on CPU: 121 MB measured with a 1.4M-parameter Llama, where the model itself weighs ~20 MB.
TRAINER_BYTES = 120 * 2**20
QUANT_4BIT_BYTES = 0.5 + 4 / 64  # nf4 values plus one fp32 absmax per 64-value block


@dataclass
class ModelFacts:
    """What the estimate needs to know about a base model, from its config and its meta-device skeleton."""

    total_params: int
    layers: int
    hidden: int
    intermediate: int
    vocab: int
    file_bytes: int  # size of its weight files (0 when unknown, e.g. a hub id not yet downloaded)
    file_dtype_bytes: int
    linear_params: int  # weights of the Linear layers inside the blocks (what 4-bit quantizes)


@dataclass
class MemoryEstimate:
    """Bytes at the peak of a run for one method, batch and length, with how they were arrived at."""

    method: str
    weights: int
    gradients: int
    optimizer: int
    activations: int
    runtime: int
    loading_peak: int
    trainable_params: int
    total_params: int
    basis: str = "analytic"
    reference: int = 0  # a preference run's frozen reference copy (full/freeze DPO with `reference: auto`)

    @property
    def training(self) -> int:
        """Memory the training phase adds over the runtime."""
        return self.weights + self.gradients + self.optimizer + self.activations + self.reference

    @property
    def total(self) -> int:
        """The whole process at its peak: runtime plus the larger of the loading and training phases."""
        return self.runtime + max(self.training, self.loading_peak)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "training": self.training, "total": self.total}


def model_facts(
    model: str, base_dir: Path, task: str = "causal-lm", num_labels: int | None = None
) -> ModelFacts:
    """Facts about `model` (hub id, folder or .gguf) from its config and a meta-device skeleton; no weights load."""
    import torch

    from ftkit.train.model_loading import model_skeleton, model_source

    skeleton = model_skeleton(model, base_dir, task, num_labels)
    config = skeleton.config
    text = getattr(config, "text_config", None) or config
    linear = (
        sum(  # Linear layers inside the blocks (`model.layers.N.` in decoders, `encoder.layer.N.` in BERT)
            module.weight.numel()
            for name, module in skeleton.named_modules()
            if isinstance(module, torch.nn.Linear) and (".layers." in f".{name}" or ".layer." in f".{name}")
        )
    )
    source, extra = model_source(model, base_dir)
    folder = Path(source)
    files = list(folder.glob("*.safetensors")) + list(folder.glob("*.bin")) if folder.is_dir() else []
    if "gguf_file" in extra:
        files = []  # a GGUF is de-quantized through an fp32 model: count that instead of the file
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    dtype_bytes = 2 if str(dtype).endswith(("bfloat16", "float16")) else 4
    total = sum(p.numel() for p in skeleton.parameters())
    return ModelFacts(
        total_params=total,
        layers=int(getattr(text, "num_hidden_layers", 0) or 0),
        hidden=int(getattr(text, "hidden_size", 0) or 0),
        intermediate=int(getattr(text, "intermediate_size", 0) or 4 * getattr(text, "hidden_size", 0)),
        vocab=int(getattr(text, "vocab_size", 0) or 0) if task == "causal-lm" else int(num_labels or 2),
        file_bytes=sum(f.stat().st_size for f in files) or total * 4,
        file_dtype_bytes=dtype_bytes,
        linear_params=linear,
    )


def trainable_params(
    model: str, base_dir: Path, method: Any, options: Any, task: str, num_labels: int | None = None
) -> int:
    """Parameters `method` trains on `model`, counted by preparing a meta-device skeleton with the method."""
    from ftkit.train.model_loading import model_skeleton

    if method.name == "qlora":  # same adapters as LoRA; its prepare() insists on a 4-bit base
        from ftkit.methods.catalog import get_method

        lora = get_method("lora")
        return trainable_params(
            model, base_dir, lora, lora.parse_options(_lora_fields(options)), task, num_labels
        )
    skeleton = model_skeleton(model, base_dir, task, num_labels)
    if getattr(
        options, "text_init", False
    ):  # text init runs the model on words; the count does not depend on it
        options = options.model_copy(update={"text_init": False})
    prepared = method.prepare(skeleton, options, task)
    return sum(p.numel() for p in prepared.parameters() if p.requires_grad)


def _lora_fields(options: Any) -> dict[str, Any]:
    from ftkit.methods.lora import LoraOptions

    return {key: value for key, value in options.model_dump().items() if key in LoraOptions.model_fields}


def estimate_memory(
    facts: ModelFacts,
    *,
    method: Any,
    trainable: int,
    batch_size: int,
    max_seq_len: int,
    precision: str,
    gradient_checkpointing: bool = False,
    runtime: int = DEFAULT_RUNTIME_BYTES,
    chunked_loss: bool = False,
) -> MemoryEstimate:
    """The analytic peak of training `trainable` parameters with `method` at `batch_size` × `max_seq_len`
    tokens in `precision` (fp32 | bf16 | fp16); see the module doc for the model behind each term. `runtime` is
    the process's resident memory before the model loads (0 on a GPU, whose free memory it does not use); on a
    CPU the trainer's libraries and first-step caches (TRAINER_BYTES) are added to it. `chunked_loss`: the loss
    is ftkit's chunked causal-LM loss (SFT), not full logits."""
    is_adapter = bool(getattr(method, "is_adapter", True))
    half = precision in ("bf16", "fp16")
    load_bytes = 2 if half and is_adapter else 4
    if method.name == "qlora":
        rest = facts.total_params - facts.linear_params
        weights = math.ceil(facts.linear_params * QUANT_4BIT_BYTES + rest * load_bytes)
    else:
        weights = facts.total_params * load_bytes
    weights += trainable * 4 if is_adapter else 0  # adapters are kept in fp32 (peft's autocast_adapter_dtype)
    if half and not is_adapter:
        weights += (
            trainable * 2
        )  # autocast keeps a bf16 copy of each fp32 weight it casts, until backward ends
    gradients = trainable * 4
    optimizer = trainable * 4 * ADAM_STATES
    tokens = batch_size * max_seq_len
    element = 2 if half else 4
    per_token_layer = (ACT_HIDDEN * facts.hidden + ACT_INTERMEDIATE * facts.intermediate) * element
    layers_kept = math.ceil(math.sqrt(facts.layers)) if gradient_checkpointing else facts.layers
    activations = tokens * layers_kept * per_token_layer + loss_bytes(
        facts, tokens, chunked_loss, head_trains=not is_adapter
    )
    conversion = facts.total_params * 4 if load_bytes != facts.file_dtype_bytes else 0
    loading = facts.file_bytes + conversion + facts.total_params * load_bytes
    return MemoryEstimate(
        method=method.name,
        weights=int(weights),
        gradients=int(gradients),
        optimizer=int(optimizer),
        activations=int(activations),
        runtime=int(runtime + (TRAINER_BYTES if runtime else 0)),
        loading_peak=int(loading),
        trainable_params=int(trainable),
        total_params=int(facts.total_params),
    )


def loss_bytes(facts: ModelFacts, tokens: int, chunked: bool, head_trains: bool) -> int:
    """Memory of the loss at its peak for `tokens` tokens: full logits, or the chunked loss's few chunks (and its
    fp32 LM-head gradient buffer when the head trains)."""
    full = tokens * LOGIT_BYTES * facts.vocab
    if not chunked:
        return full
    from ftkit.evaluation.chunked_loss import CHUNK_BYTES

    head = facts.vocab * facts.hidden * 4 if head_trains else 0
    return int(min(full, LOSS_CHUNKS * CHUNK_BYTES) + head)


def parse_size(text: str) -> int:
    """Bytes from a size such as `10MB`, `6.5GB`, `512MiB` or a plain byte count; ValueError otherwise."""
    units = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
    units.update({"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "k": 10**3, "m": 10**6, "g": 10**9})
    cleaned = text.strip().lower().replace(" ", "")
    number = cleaned.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = cleaned[len(number) :]
    if not number or unit not in units:
        raise ValueError(f"not a size: {text!r} (e.g. 10MB, 6.5GB, 512MiB)")
    return int(float(number) * units[unit])


def human_bytes(value: int) -> str:
    """`2.3 GB`, `812 MB`: decimal units, as the exit-2 message and the plan table print them."""
    if value >= 10**9:
        return f"{value / 10**9:.1f} GB"
    if value >= 10**6:
        return f"{value / 10**6:.0f} MB"
    return f"{value / 10**3:.0f} kB"
