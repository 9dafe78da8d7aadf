"""Checks on the `distributed:` section that its schema cannot make alone, each located at its key.

Static checks (always): machine numbering, the address machine 0 needs, options that belong to another strategy,
what ZeRO stages can offload, the GPU-only strategies on `training.device: cpu`, and method/strategy pairs known to
fail (QLoRA's 4-bit base under ZeRO-3 or FSDP, prefix/prompt tuning under FSDP). Machine checks (only when the
recipe's paths are checked, i.e. for `ftkit validate` and `ftkit run`): the accelerate config file exists, the
GPU-only strategies have a CUDA GPU here, and DeepSpeed is installed. torch is imported only for fsdp/deepspeed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ftkit.recipe.schema import DistributedConfig, Recipe

Problem = tuple[tuple[str, ...], str]
GPU_ONLY = ("fsdp", "deepspeed")


def strategy_of(settings: DistributedConfig) -> str | None:
    """The strategy a `distributed:` section asks for: its `strategy`, else ddp, else (a config file) None."""
    if settings.strategy is not None:
        return settings.strategy
    return None if settings.config_file else "ddp"


def needs_launch(recipe: Recipe) -> bool:
    """Whether the recipe trains through Accelerate's launcher (several processes or machines, a sharded
    strategy, or an accelerate config file) rather than in the `ftkit run` process itself."""
    settings = recipe.distributed
    if settings is None:
        return False
    return (
        settings.num_processes > 1
        or settings.num_machines > 1
        or settings.config_file is not None
        or strategy_of(settings) in GPU_ONLY
    )


def distributed_problems(recipe: Recipe, base_dir: Path, *, check_machine: bool) -> list[Problem]:
    """(key path, message) for each problem of `recipe.distributed`; `check_machine` adds this machine's checks."""
    settings = recipe.distributed
    if settings is None:
        return []
    problems = _static_problems(recipe, settings)
    if check_machine:
        problems += _machine_problems(settings, base_dir)
    return problems


def _key(name: str) -> tuple[str, ...]:
    return ("distributed", name)


def _static_problems(recipe: Recipe, settings: DistributedConfig) -> list[Problem]:
    problems: list[Problem] = []
    machines = settings.num_machines
    if settings.machine_rank >= machines:
        problems.append(
            (
                _key("machine_rank"),
                f"must be below num_machines ({machines}): machines are numbered 0 to {machines - 1}, "
                "and machine 0 records the run",
            )
        )
    if machines > 1 and not settings.main_process_ip:
        problems.append(
            (
                _key("main_process_ip"),
                f"required with num_machines: {machines}: every machine connects to machine 0 at this address "
                "(give the same value on every machine)",
            )
        )
    if settings.num_processes % machines:
        problems.append(
            (
                _key("num_processes"),
                f"{settings.num_processes} processes cannot be split evenly over {machines} machines: "
                "num_processes counts the processes of all machines together (e.g. 2 machines x 4 GPUs: 8)",
            )
        )
    strategy = strategy_of(settings)
    problems += _strategy_options(settings, strategy)
    if strategy in GPU_ONLY and recipe.training.device in ("cpu", "mps"):
        problems.append(
            (
                _key("strategy"),
                f"{strategy} is GPU-only (it shards the model over CUDA GPUs), but training.device is "
                f"{recipe.training.device}: use strategy ddp, or device auto/cuda on a GPU machine",
            )
        )
    method = recipe.method.name
    sharded = strategy == "fsdp" or (strategy == "deepspeed" and settings.zero_stage == 3)
    if method == "qlora" and sharded:
        what = "FSDP" if strategy == "fsdp" else "DeepSpeed ZeRO-3"
        problems.append(
            (
                _key("zero_stage" if strategy == "deepspeed" else "strategy"),
                f"QLoRA under {what} needs its 4-bit base stored in the compute dtype (bitsandbytes' "
                "bnb_4bit_quant_storage=bfloat16 with compute_dtype bfloat16) so the sharding can split it; ftkit's "
                "qlora stores it as uint8, which cannot be sharded: use deepspeed zero_stage 2 (shards optimizer "
                "state and gradients) or ddp, or method lora",
            )
        )
    if method in ("prefix", "prompt") and strategy == "fsdp":
        problems.append(
            (
                _key("strategy"),
                f"{method} tuning keeps its virtual-token table outside the model's layers, which FSDP's "
                "wrapping neither shards nor wraps, so its gradients are not synchronised: use ddp or deepspeed",
            )
        )
    return problems


def _strategy_options(settings: DistributedConfig, strategy: str | None) -> list[Problem]:
    """Options given for a strategy the section does not use, and offloads the strategy cannot do."""
    problems: list[Problem] = []
    owners = {"fsdp_sharding": "fsdp", "zero_stage": "deepspeed"}
    for name, owner in owners.items():
        if getattr(settings, name) is not None and strategy != owner:
            why = (
                "the config file chooses the strategy: set these in the file, or set strategy"
                if strategy is None
                else f"strategy is {strategy}"
            )
            problems.append((_key(name), f"applies to strategy {owner} only ({why})"))
    if settings.offload != "none":
        if strategy not in GPU_ONLY:
            problems.append(
                (
                    _key("offload"),
                    f"needs strategy fsdp or deepspeed (strategy is {strategy or 'set by the config file'}): "
                    "ddp keeps a whole copy of the model and optimizer in every process",
                )
            )
        elif (
            strategy == "deepspeed"
            and settings.offload == "optimizer_and_params"
            and settings.zero_stage != 3
        ):
            problems.append(
                (
                    _key("offload"),
                    f"ZeRO stage {settings.zero_stage or 2} does not shard parameters, so only the optimizer can be "
                    "offloaded: use offload: optimizer, or zero_stage: 3",
                )
            )
    return problems


def _machine_problems(settings: DistributedConfig, base_dir: Path) -> list[Problem]:
    problems: list[Problem] = []
    if settings.config_file is not None:
        path = Path(settings.config_file).expanduser()
        path = path if path.is_absolute() else base_dir / path
        if not path.is_file():
            problems.append(
                (_key("config_file"), f"file not found: {path} (write one with `accelerate config`)")
            )
    strategy = strategy_of(settings)
    if strategy == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        problems.append(
            (
                _key("strategy"),
                "deepspeed needs the deepspeed package: `pip install deepspeed` (GPU machines)",
            )
        )
    if strategy in GPU_ONLY and not _cuda_available():
        problems.append(
            (
                _key("strategy"),
                f"{strategy} is GPU-only and this machine has no CUDA GPU: run it on the GPU machine, or use "
                "strategy ddp (CPU processes with gloo)",
            )
        )
    return problems


def _cuda_available() -> bool:
    import torch  # only for fsdp/deepspeed recipes: other recipes validate without importing torch

    return bool(torch.cuda.is_available())
