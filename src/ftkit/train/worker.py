"""One process of a multi-process run: `python -m ftkit.train.worker --spec FILE`, started by Accelerate's launcher
from `ftkit run` (train/launch.py), never by hand.

Every rank runs the same runner on the same resolved recipe and trains; only rank 0 evaluates (base, during
training, tuned), answers the fixed prompts, writes the output folder and the RunResult (`result.json`) that the
parent commits. The workers never touch the registry. The spec (JSON) holds the recipe path, its text (checked: a
recipe edited after `ftkit run` started is refused), the overrides, the run id and name, the number of processes
asked for and the launch folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from ftkit.errors import ExitCode, FtkitError, RecipeError
from ftkit.train import distributed
from ftkit.train.callbacks import SilentReporter, trainer_callback
from ftkit.train.output_files import write_text
from ftkit.train.runner import _Run

_EXIT = {"succeeded": ExitCode.OK, "failed": ExitCode.RUN_FAILED, "interrupted": ExitCode.INTERRUPTED}


def main(argv: list[str] | None = None) -> int:
    """Run this rank's part of the run described by `--spec`; the exit code says how it ended."""
    parser = argparse.ArgumentParser(prog="python -m ftkit.train.worker")
    parser.add_argument("--spec", required=True, type=Path)
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text(encoding="utf-8"))
    folder = Path(spec["folder"])
    rank, world = distributed.rank_env()
    log = distributed.log_path(folder, rank).open("ab")
    os.dup2(log.fileno(), 2)  # this rank's stderr (tracebacks, library warnings) for the parent to quote
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    distributed.write_status(folder, rank, state="started", pid=os.getpid())
    try:
        code, message = _work(spec, folder, rank, world)
        error = {"error": message} if message else None
    except FtkitError as failure:  # bad input found by the worker (the data changed, a model that won't load)
        code, error = (
            int(failure.exit_code),
            {"ftkit_error": {"class": type(failure).__name__, **failure.to_dict()}},
        )
    except BaseException as failure:  # noqa: BLE001 - every failure must reach the parent with the rank named
        traceback.print_exc()
        code = int(ExitCode.INTERRUPTED if isinstance(failure, KeyboardInterrupt) else ExitCode.RUN_FAILED)
        error = {"error": f"{type(failure).__name__}: {failure}"}
    distributed.write_status(folder, rank, state="ended", pid=os.getpid(), exit_code=code, **(error or {}))
    _leave_process_group()
    return code


def _work(spec: dict[str, Any], folder: Path, rank: int, world: int) -> tuple[int, str | None]:
    """This rank's run: (exit code, the run's error when it failed)."""
    from ftkit.recipe.load import load_recipe

    requested = int(spec["num_processes"])
    distributed.check_world_size(requested, rank, world, "the launcher's environment (WORLD_SIZE)")
    loaded = load_recipe(spec["recipe"], spec["overrides"])
    if loaded.text != spec["recipe_text"]:
        raise RecipeError(
            f"{spec['recipe']} changed after `ftkit run` started",
            hint="run `ftkit run` again (every process must train the same recipe)",
        )
    main_process = rank == 0
    if not main_process:  # only rank 0 evaluates: the others would repeat its work and wait for nothing
        evaluation = loaded.recipe.evaluation.model_copy(
            update={"compare_base": False, "during_training": 0, "every_steps": None, "select_best": None}
            | {"prompts": [], "generate": 0}
        )
        loaded.recipe = loaded.recipe.model_copy(update={"evaluation": evaluation})
    reporter = (
        distributed.FileReporter(folder / distributed.EVENTS_FILE) if main_process else SilentReporter()
    )
    hooks: dict[str, Any] = {}
    if main_process:  # the parent records them in the registry (cli/_run_life.py), as one process would
        hooks = {"on_checkpoint": reporter.on_checkpoint, "record_facts": reporter.record_facts}
    start = _resume_from(spec.get("resume"), main_process, reporter.confirmed if main_process else None)
    run = _RankRun(loaded, spec["run_id"], spec["name"], reporter, start, **hooks)
    run.main_process = main_process
    run.agreement = trainer_callback(distributed.ProcessAgreement, requested, run.event, main_process)
    run.extra_callbacks = [run.agreement]
    result = run.execute()
    if main_process:
        write_text(folder / distributed.RESULT_FILE, json.dumps(dataclasses.asdict(result), default=str))
    return int(_EXIT[result.status]), result.error if result.status == "failed" else None


def _resume_from(data: dict[str, Any] | None, main_process: bool, confirmed: Any) -> Any:
    """The spec's `resume` (train/launch.py) as a ResumeFrom: every rank continues from the same checkpoint.
    Rank 0 alone checks the settings against the checkpoint's: the others resolve a recipe without evaluation
    (see `_work`), which hashes differently by design."""
    if not data:
        return None
    from ftkit.train.checkpoints import Checkpoint
    from ftkit.train.resume import ResumeFrom

    class FollowerResume(ResumeFrom):
        def check(self, resolved: dict[str, Any]) -> None:
            """Nothing to check here: rank 0 refuses for every rank (the launcher then stops this one)."""

    checkpoint = Checkpoint(int(data["step"]), Path(data["path"]))
    return (ResumeFrom if main_process else FollowerResume)(
        data["run_id"],
        checkpoint,
        Path(data["output_dir"]),
        data["resolved"],
        data["config_hash"],
        data["history"],
        registry_flag=data["registry_flag"],
        confirmed=confirmed,
    )


class _RankRun(_Run):
    """The runner on one rank: evaluation and written files on rank 0 only, plus the processes' facts."""

    agreement: Any = None

    def evaluate(self, model, tokenizer, eval_rows, data, device):  # noqa: ANN001 - the runner's signature
        if not self.main_process:
            return {}, []
        return super().evaluate(model, tokenizer, eval_rows, data, device)

    def write_metrics(self) -> None:
        if not self.main_process:
            return
        if self.agreement is not None:
            self.metrics.update(self.agreement.facts)
        super().write_metrics()


def _leave_process_group() -> None:
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    except Exception:  # noqa: BLE001 - leaving is best effort; the exit code already says how the rank ended
        pass


if __name__ == "__main__":
    sys.exit(main())
