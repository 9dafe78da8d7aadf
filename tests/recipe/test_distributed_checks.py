"""`distributed:` recipes: the combinations `ftkit validate` refuses (located, with the reason, exit 2), and the
`accelerate launch` command each accepted one becomes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.recipe.load import load_recipe
from ftkit.train.launch import launch_command, local_ranks
from tests.conftest import write_recipe

runner = CliRunner()


def recipe_with(
    tmp_path: Path, tiny_model_dir: Path, chat_data: dict, section: str, method: str = "lora"
) -> Path:
    recipe = write_recipe(
        tmp_path / "recipe.yaml", tiny_model_dir, chat_data["train"], chat_data["eval"], method
    )
    recipe.write_text(recipe.read_text() + section)
    return recipe


def line_of(recipe: Path, text: str) -> int:
    return next(number for number, line in enumerate(recipe.read_text().splitlines(), 1) if text in line)


@pytest.mark.parametrize(
    ("section", "method", "key", "reason"),
    [
        (
            "distributed:\n  strategy: fsdp\n",
            "qlora",
            "strategy",
            "QLoRA under FSDP needs its 4-bit base stored",
        ),
        (
            "distributed:\n  strategy: deepspeed\n  zero_stage: 3\n",
            "qlora",
            "zero_stage",
            "QLoRA under DeepSpeed ZeRO-3 needs its 4-bit base stored in the compute dtype",
        ),
        (
            "distributed:\n  strategy: fsdp\n",
            "prefix",
            "strategy",
            "prefix tuning keeps its virtual-token table",
        ),
        ("distributed:\n  num_processes: 2\n  zero_stage: 2\n", "lora", "zero_stage", "strategy is ddp"),
        (
            "distributed:\n  num_processes: 2\n  offload: optimizer\n",
            "lora",
            "offload",
            "needs strategy fsdp",
        ),
        (
            "distributed:\n  strategy: deepspeed\n  offload: optimizer_and_params\n",
            "lora",
            "offload",
            "ZeRO stage 2 does not shard parameters",
        ),
        ("distributed:\n  num_machines: 2\n  num_processes: 4\n", "lora", "main_process_ip", "required with"),
        ("distributed:\n  config_file: nowhere.yaml\n", "lora", "config_file", "file not found"),
    ],
)
def test_known_bad_combinations_are_exit_2_at_their_key(
    tmp_path, tiny_model_dir, chat_data, section, method, key, reason
):
    recipe = recipe_with(tmp_path, tiny_model_dir, chat_data, section, method)
    result = runner.invoke(app, ["validate", str(recipe)])
    assert result.exit_code == 2, result.output
    where = line_of(recipe, key + ":") if f"  {key}:" in section else line_of(recipe, "distributed:")
    assert f"{recipe}:{where}: distributed.{key}: " in result.output
    assert reason in " ".join(result.output.split())


def test_gpu_only_strategies_say_so_on_a_cpu_recipe(tmp_path, tiny_model_dir, chat_data):
    section = "distributed:\n  strategy: fsdp\n"
    recipe = recipe_with(tmp_path, tiny_model_dir, chat_data, section)
    result = runner.invoke(app, ["validate", str(recipe), "--set", "training.device=cpu"])
    assert result.exit_code == 2
    assert "fsdp is GPU-only" in " ".join(result.output.split())


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch decides whether a GPU is here")
def test_fsdp_on_this_machine_is_refused_only_without_a_gpu(tmp_path, tiny_model_dir, chat_data):
    import torch

    recipe = recipe_with(
        tmp_path, tiny_model_dir, chat_data, "distributed:\n  strategy: fsdp\n  num_processes: 1\n"
    )
    result = runner.invoke(app, ["validate", str(recipe)])
    if torch.cuda.is_available():
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 2
        assert "this machine has no CUDA GPU" in " ".join(result.output.split())


def test_num_processes_option_and_unknown_keys(tmp_path, tiny_model_dir, chat_data):
    recipe = recipe_with(tmp_path, tiny_model_dir, chat_data, "distributed:\n  num_proceses: 2\n")
    result = runner.invoke(app, ["validate", str(recipe)])
    assert result.exit_code == 2
    assert "did you mean `num_processes`" in result.output
    loaded = load_recipe(
        recipe_with(tmp_path, tiny_model_dir, chat_data, ""), ["distributed.num_processes=2"]
    )
    assert loaded.recipe.distributed.num_processes == 2


def settings(tmp_path, tiny_model_dir, chat_data, section):
    return load_recipe(
        recipe_with(tmp_path, tiny_model_dir, chat_data, section), check_paths=False
    ).recipe.distributed


def test_launch_commands(tmp_path, tiny_model_dir, chat_data):
    spec = tmp_path / "spec.json"
    tail = ["-m", "ftkit.train.worker", "--spec", str(spec)]
    ddp = settings(tmp_path, tiny_model_dir, chat_data, "distributed:\n  num_processes: 2\n")
    assert launch_command(ddp, spec=spec, port=1234, base_dir=tmp_path) == [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--machine_rank", "0", "--main_process_port", "1234", *tail,
    ]  # fmt: skip
    zero3 = settings(
        tmp_path, tiny_model_dir, chat_data,
        "distributed:\n  strategy: deepspeed\n  zero_stage: 3\n  offload: optimizer_and_params\n  num_processes: 8\n"
        "  num_machines: 2\n  machine_rank: 1\n  main_process_ip: 10.0.0.1\n",
    )  # fmt: skip
    command = launch_command(zero3, spec=spec, port=29500, base_dir=tmp_path)
    assert command[3:10] == ["--use_deepspeed", "--zero_stage", "3", "--offload_optimizer_device", "cpu",
                             "--offload_param_device", "cpu"]  # fmt: skip
    assert command[-10:-4] == [
        "--machine_rank",
        "1",
        "--main_process_port",
        "29500",
        "--main_process_ip",
        "10.0.0.1",
    ]
    assert local_ranks(zero3) == [4, 5, 6, 7]
    fsdp = settings(
        tmp_path,
        tiny_model_dir,
        chat_data,
        "distributed:\n  strategy: fsdp\n  fsdp_sharding: shard_grad_op\n",
    )
    command = launch_command(fsdp, spec=spec, port=1, base_dir=tmp_path)
    assert command[3:8] == [
        "--use_fsdp",
        "--fsdp_sharding_strategy",
        "SHARD_GRAD_OP",
        "--fsdp_offload_params",
        "false",
    ]
    (tmp_path / "acc.yaml").write_text("distributed_type: MULTI_GPU\n")
    from_file = settings(
        tmp_path, tiny_model_dir, chat_data, "distributed:\n  config_file: acc.yaml\n  num_processes: 4\n"
    )
    command = launch_command(from_file, spec=spec, port=1, base_dir=tmp_path)
    assert command[3:6] == ["--config_file", str(tmp_path / "acc.yaml"), "--num_processes"]
