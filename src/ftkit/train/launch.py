"""`ftkit run` with several processes: the `ftkit run` process stays the parent, starts the workers through
Accelerate's launcher, shows rank 0's progress, and turns what the ranks left behind into one RunResult.

The parent checks the output folder and reads the data first (bad input exits 2 before any process starts), writes
a spec for `python -m ftkit.train.worker` into a launch folder, and starts `accelerate launch` in its own session so
that a Ctrl-C reaches the parent alone: the first one is passed to every worker (they stop after the same step and
rank 0 saves; the run is recorded interrupted), the second kills them. Rank 0's `result.json` becomes the run's
result; a rank that failed (its exit code, its error, the last lines of its stderr) makes the run failed with the
rank named. On CPU the workers are gloo processes (`--multi_gpu`: Accelerate's `--cpu` alone runs one process).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftkit import errors
from ftkit.errors import FtkitError
from ftkit.recipe.distributed_checks import strategy_of
from ftkit.recipe.load import LoadedRecipe
from ftkit.recipe.schema import DistributedConfig
from ftkit.train import distributed
from ftkit.train.callbacks import Reporter
from ftkit.train.runner import RunResult, load_recipe_data, now_iso

if TYPE_CHECKING:
    from ftkit.train.checkpoints import Checkpoint
    from ftkit.train.resume import ResumeFrom

DEFAULT_MULTI_MACHINE_PORT = 29500


def launch_command(
    settings: DistributedConfig, *, spec: Path, port: int, base_dir: Path, executable: str = sys.executable
) -> list[str]:
    """The `accelerate launch` command that starts this machine's workers for `settings`."""
    command = [executable, "-m", "accelerate.commands.launch"]
    strategy = strategy_of(settings)
    if settings.config_file is not None:
        path = Path(settings.config_file).expanduser()
        command += ["--config_file", str(path if path.is_absolute() else base_dir / path)]
    if strategy == "ddp":
        command.append("--multi_gpu")  # gloo processes on a CPU, one process per GPU on CUDA
    elif strategy == "fsdp":
        command += [
            "--use_fsdp",
            "--fsdp_sharding_strategy",
            (settings.fsdp_sharding or "full_shard").upper(),
            "--fsdp_offload_params",
            "true" if settings.offload != "none" else "false",
            "--fsdp_auto_wrap_policy",
            "TRANSFORMER_BASED_WRAP",
            "--fsdp_use_orig_params",
            "true",  # adapters: frozen and trainable weights share the layers FSDP flattens
            "--fsdp_state_dict_type",
            "FULL_STATE_DICT",
        ]
    elif strategy == "deepspeed":
        command += [
            "--use_deepspeed",
            "--zero_stage",
            str(settings.zero_stage or 2),
            "--offload_optimizer_device",
            "cpu" if settings.offload != "none" else "none",
            "--offload_param_device",
            "cpu" if settings.offload == "optimizer_and_params" else "none",
        ]
    command += [
        "--num_processes",
        str(settings.num_processes),
        "--num_machines",
        str(settings.num_machines),
        "--machine_rank",
        str(settings.machine_rank),
        "--main_process_port",
        str(port),
    ]
    if settings.main_process_ip:
        command += ["--main_process_ip", settings.main_process_ip]
    return [*command, "-m", "ftkit.train.worker", "--spec", str(spec)]


def local_ranks(settings: DistributedConfig) -> list[int]:
    """The global ranks of the processes this machine starts."""
    per_machine = settings.num_processes // settings.num_machines
    first = settings.machine_rank * per_machine
    return list(range(first, first + per_machine))


def launch_run(
    loaded: LoadedRecipe,
    run_id: str,
    run_name: str,
    reporter: Reporter,
    start: ResumeFrom | None = None,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
    record_facts: Callable[..., None] | None = None,
) -> RunResult:
    """Train `loaded` in the processes its `distributed:` section asks for and return rank 0's RunResult (or a
    failed/interrupted one naming the ranks). FtkitErrors (bad input, found here or by a worker) propagate.
    The hooks are runner.execute_run's, called in this process as rank 0 reports: `start` continues a run from
    its checkpoint on every rank (`ftkit resume`; its `confirmed` is called here), `on_checkpoint` with each
    complete checkpoint, `record_facts` with the resolved recipe and config hash."""
    from ftkit.train.output_dir import check_output_writable

    settings = loaded.recipe.distributed
    assert settings is not None
    hooks = {"on_checkpoint": on_checkpoint, "record_facts": record_facts}
    if start is not None:
        hooks["confirmed"] = start.confirmed
    main_machine = settings.machine_rank == 0
    if main_machine:
        check_output_writable(loaded)
    load_recipe_data(loaded)  # bad data exits 2 here, before any process starts
    folder = Path(tempfile.mkdtemp(prefix=f"ftkit-launch-{run_id}-"))
    spec = folder / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "recipe": str(loaded.path),
                "recipe_text": loaded.text,
                "overrides": loaded.overrides,
                "run_id": run_id,
                "name": run_name,
                "num_processes": settings.num_processes,
                "folder": str(folder),
                "resume": _resume_spec(start),
            },
            default=str,
        ),
        encoding="utf-8",
    )
    port = settings.main_process_port or (
        DEFAULT_MULTI_MACHINE_PORT if settings.num_machines > 1 else _free_port()
    )
    command = launch_command(settings, spec=spec, port=port, base_dir=loaded.base_dir)
    ranks = local_ranks(settings)
    started_at = now_iso()
    reporter.event(
        "phase",
        f"starting {len(ranks)} process{'es' if len(ranks) > 1 else ''} through accelerate launch "
        f"({strategy_of(settings) or 'from ' + str(settings.config_file)}, machine {settings.machine_rank} of "
        f"{settings.num_machines}); batch_size is per process",
    )
    interrupts = _supervise(command, _worker_env(len(ranks)), folder, ranks, reporter, hooks)
    result = _collect(folder, ranks, interrupts, run_id, run_name, started_at, main_machine)
    output = loaded.resolve_path(loaded.recipe.output) / run_id
    if (
        result.output_dir is None
        and output.is_dir()
        and {p.name for p in output.iterdir()} <= {"events.jsonl"}
    ):
        shutil.rmtree(output)  # rank 0 made it, then the run failed before writing anything but its live log
    if result.status == "succeeded":
        shutil.rmtree(folder, ignore_errors=True)
    return result


def _resume_spec(start: ResumeFrom | None) -> dict[str, Any] | None:
    """What every worker needs to continue the run from its checkpoint (worker._resume_from)."""
    if start is None:
        return None
    return {
        "run_id": start.run_id,
        "step": start.checkpoint.step,
        "path": str(start.checkpoint.path),
        "output_dir": str(start.output_dir),
        "resolved": start.resolved,
        "config_hash": start.config_hash,
        "history": start.history,
        "registry_flag": start.registry_flag,
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _worker_env(processes: int) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # One process per core share: with the launcher's default of 1 thread, bigger machines would sit idle, and
    # more threads than cores makes OpenMP spin against the other processes.
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    return env


def _supervise(
    command: list[str],
    env: dict[str, str],
    folder: Path,
    ranks: list[int],
    reporter: Reporter,
    hooks: dict[str, Any] | None = None,
) -> int:
    """Run the launcher to its end, replaying rank 0's events and lifecycle hooks; returns how many Ctrl-C (or
    SIGTERM, taken alike) the user sent."""
    pressed = 0

    def on_interrupt(signum: int, frame: Any) -> None:
        nonlocal pressed
        pressed += 1
        if pressed == 1:
            what = "SIGTERM received" if signum == signal.SIGTERM else "Ctrl-C"
            reporter.event(
                "interrupt",
                f"{what}: stopping every process after this step and saving (Ctrl-C again to stop them now)",
            )
            _signal_workers(folder, ranks, signal.SIGINT)
        else:
            _signal_workers(folder, ranks, signal.SIGKILL)
            _kill_group(process)

    with (folder / "launcher.log").open("wb") as log:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    previous: dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread: signal handling stays the caller's
            previous[signum] = signal.signal(signum, on_interrupt)
    events = folder / distributed.EVENTS_FILE
    position = 0
    try:
        while process.poll() is None:
            position = _replay_new(events, position, reporter, hooks)
            time.sleep(0.2)
        _replay_new(events, position, reporter, hooks)
    except BaseException:
        _signal_workers(folder, ranks, signal.SIGKILL)
        _kill_group(process)
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return pressed


def _replay_new(path: Path, position: int, reporter: Reporter, hooks: dict[str, Any] | None = None) -> int:
    """Replay the whole lines added to `path` since `position`; returns the new position."""
    try:
        with path.open("rb") as handle:
            handle.seek(position)
            chunk = handle.read()
    except FileNotFoundError:
        return position
    complete = chunk[: chunk.rfind(b"\n") + 1]
    for line in complete.decode("utf-8", errors="replace").splitlines():
        distributed.replay(line, reporter, hooks)
    return position + len(complete)


def _signal_workers(folder: Path, ranks: list[int], signum: int) -> None:
    for rank in ranks:
        status = distributed.read_status(folder, rank)
        if status and status.get("state") == "started":
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(status["pid"]), signum)


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _collect(
    folder: Path,
    ranks: list[int],
    interrupts: int,
    run_id: str,
    run_name: str,
    started_at: str,
    main_machine: bool,
) -> RunResult:
    """One RunResult from the ranks' status files and rank 0's result file."""
    statuses = {rank: distributed.read_status(folder, rank) for rank in ranks}
    for (
        rank,
        status,
    ) in statuses.items():  # a worker found bad input: the same error as one process would give
        if status and "ftkit_error" in status:
            raise _ftkit_error(rank, status["ftkit_error"])
    result_file = folder / distributed.RESULT_FILE
    if main_machine and result_file.is_file():
        result = RunResult(**json.loads(result_file.read_text(encoding="utf-8")))
    else:
        result = RunResult(run_id, run_name, "succeeded", None, {}, {}, "", started_at, ended_at=now_iso())
        if main_machine:
            result.status = "failed"
            result.error = "rank 0 wrote no result"
    failures = _failures(folder, statuses, interrupts)
    if interrupts and result.status != "failed":
        result.status = "interrupted"
        result.error = result.error or "interrupted by the user"
        if interrupts > 1:
            result.error = "interrupted by the user (second Ctrl-C: the processes were killed, nothing saved)"
    elif failures:
        result.status = "failed"
        result.error = "; ".join(failures) + f" (each rank's stderr: {folder})"
    for line in failures:
        result.events.append({"time": now_iso(), "kind": "error", "message": line})
    return result


def _failures(folder: Path, statuses: dict[int, dict | None], interrupts: int) -> list[str]:
    """One line per rank that did not succeed: its exit code and error, or that it ended without a word, with
    the last line of its stderr. Ranks that report a failure come first: the others were usually stopped after."""
    reported, silent = [], []
    for rank, status in statuses.items():
        code = status.get("exit_code") if status else None
        if code in (0, 130) or (interrupts and code is None):
            continue
        tail = distributed.last_lines(distributed.log_path(folder, rank), 1)
        said = f" — last stderr line: {tail[-1].strip()}" if tail and not (status or {}).get("error") else ""
        if code is None:
            silent.append(
                f"rank {rank} ended without reporting (stopped by the launcher after another rank "
                f"failed, or killed){said}"
            )
        else:
            reported.append(
                f"rank {rank} failed (exit {code}): {status.get('error', 'see its stderr')}{said}"
            )
    return reported + silent


def _ftkit_error(rank: int, data: dict[str, Any]) -> FtkitError:
    kind = getattr(errors, str(data.get("class")), FtkitError)
    kind = kind if isinstance(kind, type) and issubclass(kind, FtkitError) else FtkitError
    return kind(f"rank {rank}: {data['message']}", hint=data.get("hint"), problems=data.get("problems"))
