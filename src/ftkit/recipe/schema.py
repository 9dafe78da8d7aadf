"""The recipe schema. Every block forbids unknown keys so that a typo is an error, never a silent default.

Method options are not part of this schema: `method:` holds a `name` plus free keys, which the chosen method's own
options model validates (see `ftkit.recipe.load`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ftkit.recipe.preference_config import PreferenceConfig
from ftkit.recipe.tracking_config import TrackingConfig

Auto = Literal["auto"]
PositiveInt = Annotated[int, Field(ge=1)]
PositiveFloat = Annotated[float, Field(gt=0)]
Rate = Annotated[float, Field(gt=0, lt=1)]
DATA_FORMATS = ("auto", "text", "completion", "instruction", "chat", "classification", "preference")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    train: str = Field(
        description="Training data: a .jsonl/.json/.csv/.tsv/.parquet file or a datasets folder."
    )
    eval: str | None = Field(
        None, description="Evaluation data file. Omit to split from train (see eval_split)."
    )
    eval_split: float | None = Field(
        None, gt=0, lt=1, description="Fraction of train held out for evaluation when `eval` is not given."
    )
    format: Literal[DATA_FORMATS] = Field(
        "auto", description="Data format; auto detects it from the columns."
    )
    columns: dict[str, str] = Field(
        default_factory=dict, description="Rename columns to the format's names, e.g. {prompt: question}."
    )
    train_on: Literal["completion", "all"] = Field(
        "completion", description="Train on completion/assistant tokens only, or on every token."
    )
    skip_invalid_rows: bool = Field(
        False,
        description="Drop rows the data check finds errors in (each reported, counted in data.skipped_rows) "
        "instead of refusing the file.",
    )

    @model_validator(mode="after")
    def _eval_xor_split(self) -> DataConfig:
        if self.eval is not None and self.eval_split is not None:
            raise ValueError("give either `eval` or `eval_split`, not both")
        return self


class MethodConfig(BaseModel):
    """`name` plus the method's own options (validated by the method's schema, not here)."""

    model_config = ConfigDict(extra="allow")
    name: str = Field("lora", description="Fine-tuning method; `ftkit methods` lists them.")


class TrainingConfig(_Strict):
    epochs: PositiveFloat | Auto = Field(
        "auto",
        description="Passes over the training data; auto: 3, kept within 100-25,000 examples seen (OpenAI's rule; "
        "classification up to 100,000).",
    )
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (a cap).")
    learning_rate: Rate | Auto = Field(
        "auto", description="Peak learning rate; auto: by method family, model size and task."
    )
    batch_size: PositiveInt | Auto = Field(
        "auto",
        description="Examples per device per step; auto: the largest power of two up to the effective batch "
        "(16 causal-lm, 32 classification) that fits in memory.",
    )
    grad_accum: PositiveInt | Auto = Field(
        "auto",
        description="Gradient accumulation steps; auto: effective batch / batch_size when batch_size is auto, "
        "else 1.",
    )
    max_seq_len: Annotated[int, Field(ge=8, le=1_048_576)] | Auto = Field(
        "auto",
        description="Longer examples are truncated (and counted); auto: the data's 99th-percentile length, "
        "rounded up to 64, capped by the model's context.",
    )
    time_budget: str | PositiveFloat | None = Field(
        None,
        description="Cap training steps to fit this duration (20m, 90s, 1h30m or seconds), from a measured "
        "probe of the step time.",
    )
    seed: int = Field(42, ge=0, description="Seed for data order, initialisation and splits.")
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps.")
    weight_decay: float = Field(0.0, ge=0)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    max_grad_norm: float = Field(1.0, gt=0)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description="auto: bf16 on GPUs that support it (else fp16) and on CPUs with native bf16 (AMX, AVX-512 "
        "BF16, Arm BF16; models of 1M+ parameters), once the first batches' loss agrees with fp32 within 1e-2; "
        "fp32 otherwise.",
    )
    gradient_checkpointing: bool | Auto = Field(
        "auto", description="auto: on for GPUs and models over 1B parameters, off otherwise."
    )
    packing: bool = Field(False, description="Pack several examples into one sequence (causal-lm only).")
    padding_free: bool | Auto = Field(
        "auto",
        description="Concatenate each batch without pad tokens (causal-lm); auto: on where proven exact for the "
        "method, architecture and attention implementation (not prefix or prompt tuning).",
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    logging_steps: int = Field(1, ge=1)
    save_every: PositiveInt | None = Field(
        None,
        description="Write a resumable checkpoint (weights, optimizer, scheduler, RNG and data-order state) every N "
        "optimizer steps under OUTPUT/<run-id>/checkpoints/, atomically; `ftkit resume RUN` continues from the last "
        "complete one. null: no checkpoints.",
    )
    keep_checkpoints: PositiveInt = Field(
        2,
        description="Keep this many complete checkpoints (the newest); an older one is deleted only after a newer one "
        "is complete.",
    )

    @field_validator("time_budget")
    @classmethod
    def _duration(cls, value: str | float | None) -> str | float | None:
        if value is not None:
            from ftkit.recipe.auto_rules import parse_duration

            parse_duration(value)  # ValueError (located by the loader) when it is not a duration
        return value


class ChatMessage(_Strict):
    """One message of a fixed prompt given as a conversation."""

    role: Literal["system", "user", "assistant"]
    content: str


class EvaluationConfig(_Strict):
    compare_base: bool = Field(True, description="Also evaluate the untuned base model, side by side.")
    max_rows: int | None = Field(None, ge=1, description="Evaluate on at most this many eval rows.")
    batch_size: int = Field(8, ge=1)
    generate: int = Field(
        0,
        ge=0,
        description="Greedy-generate answers for this many eval rows and score exact match (base vs tuned).",
    )
    max_new_tokens: int = Field(64, ge=1, description="Token budget for each generated answer.")
    metrics: list[str] | Auto = Field(
        "auto",
        description="Metrics to report besides the always-measured loss (and perplexity / accuracy); auto: "
        "exact_match when `generate` > 0 (causal-lm), macro_f1 and per-class precision and recall "
        "(classification). Generation metrics need `generate` > 0. README's Metrics section lists them all.",
    )
    answer_regex: str | None = Field(
        None,
        description="Python regex for answer_match: the last match's group 1 (or whole match) in the answer and "
        "in the reference are compared, e.g. '#### (.+)' for GSM8K.",
    )
    numeric_tolerance: float = Field(
        1e-6, ge=0, description="numeric_match: the largest absolute difference counted as equal."
    )
    during_training: int = Field(
        4,
        ge=0,
        le=20,
        description="Measure eval loss this many times during training (evenly spaced steps, the last included; "
        "on at most 200 eval rows), so `ftkit review` can see overfitting; 0: only before and after training.",
    )
    every_steps: PositiveInt | Literal["epoch"] | None = Field(
        None,
        description="Evaluate the recipe's metrics (loss, and the generation metrics when `generate` > 0) every N "
        "optimizer steps and at the last step, or at the end of each epoch (`epoch`), on the rows the final "
        "evaluation uses; replaces `during_training` (giving both is an error).",
    )
    select_best: str | None = Field(
        None,
        description="Keep the weights of the evaluation during training that scored best on this metric (e.g. "
        "`eval.loss`, `eval.exact_match`; direction from the metric) and save them as the run's output.",
    )
    prompts: list[str | list[ChatMessage]] = Field(
        default_factory=list,
        description="Fixed prompts (a string is one user message; or a list of {role, content} messages) answered "
        "greedily by the base and the tuned model (and at each `every_steps` evaluation), shown side by side and "
        "stored with the run.",
    )

    @field_validator("metrics", mode="before")
    @classmethod
    def _one_metric(cls, value: object) -> object:
        return [value] if isinstance(value, str) and value != "auto" else value


class DistributedConfig(_Strict):
    """Several processes (and machines) through Accelerate's launcher; `ftkit run --num-processes N` sets
    `num_processes`. `batch_size` stays per process: the global batch is batch_size x grad_accum x num_processes."""

    strategy: Literal["ddp", "fsdp", "deepspeed"] | None = Field(
        None,
        description="ddp (every process holds the whole model; CPU or GPU), fsdp or deepspeed (sharded, GPU-only); "
        "default ddp, or what `config_file` says.",
    )
    num_processes: PositiveInt = Field(1, description="Processes in all, over every machine (one per GPU).")
    num_machines: PositiveInt = Field(1, description="Machines taking part; each runs `ftkit run` itself.")
    machine_rank: int = Field(
        0, ge=0, description="This machine's rank, 0 to num_machines-1; 0 records the run."
    )
    main_process_ip: str | None = Field(
        None, description="Address of machine 0 (needed with num_machines > 1)."
    )
    main_process_port: int | None = Field(
        None, ge=1, le=65535, description="Port on machine 0; default: a free port (one machine) or 29500."
    )
    config_file: str | None = Field(
        None, description="An `accelerate config` file; it chooses the strategy (the keys above still apply)."
    )
    fsdp_sharding: Literal["full_shard", "shard_grad_op", "hybrid_shard", "no_shard"] | None = Field(
        None, description="fsdp only: what is sharded (default full_shard)."
    )
    zero_stage: Literal[1, 2, 3] | None = Field(None, description="deepspeed only: ZeRO stage (default 2).")
    offload: Literal["none", "optimizer", "optimizer_and_params"] = Field(
        "none",
        description="fsdp/deepspeed: move optimizer state (and, with ZeRO-3 or fsdp, parameters) to CPU memory.",
    )


class Recipe(_Strict):
    name: str | None = Field(None, description="Human name for the run.")
    model: str = Field(description="Hub id, local folder, or a .gguf file.")
    task: Literal["causal-lm", "classification", "preference"] = Field(
        "causal-lm",
        description="causal-lm (SFT), classification, or preference (DPO and friends on chosen/rejected pairs).",
    )
    data: DataConfig
    method: MethodConfig = Field(default_factory=MethodConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    output: str = Field("outputs/", description="Each run writes its weights to OUTPUT/<run-id>/.")
    distributed: DistributedConfig | None = Field(
        None, description="Train in several processes or on several machines (README: Scaling out)."
    )
    preference: PreferenceConfig = Field(
        default_factory=PreferenceConfig,
        description="task: preference: the objective and its settings (README: Preference tuning).",
    )
    tracking: TrackingConfig = Field(
        default_factory=TrackingConfig,
        description="Experiment trackers to report to: mlflow, tensorboard, wandb (README: Tracking).",
    )


def known_keys(path: tuple[str, ...]) -> list[str]:
    """The valid keys at a dotted location of the recipe, for "did you mean" suggestions."""
    model: type[BaseModel] | None = Recipe
    for part in path:
        field = model.model_fields.get(part) if model else None
        annotation = getattr(field, "annotation", None)
        if not isinstance(annotation, type):  # `Section | None` (distributed): the section inside
            inner = [arg for arg in getattr(annotation, "__args__", ()) if isinstance(arg, type)]
            annotation = next((arg for arg in inner if issubclass(arg, BaseModel)), None)
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    if model is None:
        return []
    return list(model.model_fields)
