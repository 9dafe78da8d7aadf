"""`ftkit run` pieces for recipes with a `distributed:` section: the plan's processes and global batch, and the
run on a machine other than machine 0 (it starts its own processes; machine 0's `ftkit run` records the run)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ftkit.errors import ExitCode

if TYPE_CHECKING:
    from ftkit.cli._output import Output
    from ftkit.recipe.load import LoadedRecipe
    from ftkit.recipe.schema import Recipe


def distributed_plan(recipe: Recipe) -> dict[str, Any]:
    """The plan's rows for the processes: how many, and the global batch (batch_size is per process)."""
    settings = recipe.distributed
    processes = settings.num_processes if settings is not None else 1
    training = recipe.training
    if isinstance(training.batch_size, int) and isinstance(training.grad_accum, int):
        batch = training.batch_size * training.grad_accum * processes
        global_batch: Any = (
            f"{batch} ({training.batch_size} per process x {processes} x {training.grad_accum} accum)"
        )
    else:
        global_batch = f"batch_size x grad_accum (auto) x {processes} processes"
    rows: dict[str, Any] = {"processes": processes, "global_batch": global_batch}
    if settings is not None and settings.num_machines > 1:
        rows["machines"] = f"{settings.num_machines} (this is machine {settings.machine_rank})"
    return rows


def run_other_machine(loaded: LoadedRecipe, output: Output) -> int:
    """Start this machine's processes of a multi-machine run and wait for them; nothing is recorded here."""
    from ftkit.cli._progress import TerminalReporter
    from ftkit.train.launch import launch_run

    settings = loaded.recipe.distributed
    assert settings is not None
    rank = settings.machine_rank
    output.note(
        f"[bold]machine {rank}[/bold] of {settings.num_machines}: starting its processes; machine 0's "
        "`ftkit run` shows the progress and records the run"
    )
    result = launch_run(
        loaded, f"machine{rank}", loaded.recipe.name or f"machine{rank}", TerminalReporter(output)
    )
    if result.status == "failed":
        output.error(
            f"machine {rank}: {result.error}", hint="machine 0's `ftkit run` records the run as failed"
        )
    else:
        output.note(f"machine {rank}: its processes ended ({result.status})")
    output.emit({"machine_rank": rank, "status": result.status, "error": result.error})
    codes = {"succeeded": ExitCode.OK, "failed": ExitCode.RUN_FAILED, "interrupted": ExitCode.INTERRUPTED}
    return int(codes[result.status])
