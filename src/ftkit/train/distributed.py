"""What the processes of a multi-process run share with each other and with the `ftkit run` that launched them.

Each worker (train/worker.py) writes a status file `rank<R>.json` in the run's launch folder (its pid, then how it
ended) and sends its stderr to `rank<R>.log`, so the parent can name the rank that failed and show its last lines.
Process 0 also writes its events and progress as JSON lines (`events.jsonl`, replayed on the parent's terminal) and
the RunResult (`result.json`, committed by the parent). `ProcessAgreement` makes the processes fail loudly when the
launcher started another number of them, or when they resolved different training settings, and stop together on
Ctrl-C (a process that left the loop alone would leave the others waiting in their next all-reduce).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ftkit.train.output_files import write_text

EVENTS_FILE = "events.jsonl"
RESULT_FILE = "result.json"


def rank_env() -> tuple[int, int]:
    """(global rank, world size) as the launcher set them; (0, 1) when it started one plain process."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def status_path(folder: Path, rank: int) -> Path:
    return folder / f"rank{rank}.json"


def log_path(folder: Path, rank: int) -> Path:
    return folder / f"rank{rank}.log"


def write_status(folder: Path, rank: int, **data: Any) -> None:
    """Record this rank's state for the parent (written whole: the parent never reads half a file)."""
    write_text(status_path(folder, rank), json.dumps({"rank": rank, **data}))


def read_status(folder: Path, rank: int) -> dict[str, Any] | None:
    try:
        return json.loads(status_path(folder, rank).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def last_lines(path: Path, count: int = 8) -> list[str]:
    """The last `count` non-empty lines of a rank's stderr log (what it said before it ended)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-count:]


class WorldSizeError(RuntimeError):
    """The launcher started another number of processes than the recipe asks for."""


def check_world_size(requested: int, rank: int, world: int, where: str) -> None:
    """WorldSizeError naming the rank when `world` processes run but `requested` were asked for."""
    if world != requested:
        raise WorldSizeError(
            f"rank {rank}: {where} reports {world} process{'es' if world != 1 else ''} but "
            f"distributed.num_processes is {requested}: the launcher did not start what was asked (an accelerate "
            "config file with distributed_type NO, or `--cpu` alone, runs a single process)"
        )


class FileReporter:
    """A Reporter (train/callbacks.py) that appends each call as a JSON line for the parent to replay."""

    def __init__(self, path: Path):
        self._file = path.open("a", encoding="utf-8")

    def _write(self, **record: Any) -> None:
        self._file.write(json.dumps(record, default=str) + "\n")
        self._file.flush()

    def event(self, kind: str, message: str, **data: Any) -> None:
        self._write(call="event", kind=kind, message=message, data=data)

    def progress_start(self, total_steps: int) -> None:
        self._write(call="progress_start", total_steps=total_steps)

    def progress_update(self, step: int, total_steps: int, values: dict[str, float]) -> None:
        self._write(call="progress_update", step=step, total_steps=total_steps, values=values)

    def progress_end(self) -> None:
        self._write(call="progress_end")

    # The run's lifecycle hooks (cli/_run_life.py), for the parent to call: only it touches the registry.

    def record_facts(self, **facts: Any) -> None:
        """The runner's `record_facts` (resolved recipe, config hash), passed on to the parent."""
        self._write(call="facts", facts=facts)

    def on_checkpoint(self, checkpoint: Any) -> None:
        """The runner's `on_checkpoint` (a complete train/checkpoints.Checkpoint), passed on to the parent."""
        self._write(call="checkpoint", step=checkpoint.step, path=str(checkpoint.path))

    def confirmed(self) -> None:
        """A resumed run's settings matched its checkpoint's (train/resume.ResumeFrom.confirmed)."""
        self._write(call="confirmed")


def replay(line: str, reporter: Any, hooks: dict[str, Any] | None = None) -> None:
    """Call `reporter` as the FileReporter that wrote `line` was called, and the lifecycle `hooks`
    (record_facts, on_checkpoint, confirmed) it passed on; a torn or foreign line is skipped."""
    try:
        record = json.loads(line)
    except ValueError:
        return
    call = record.get("call")
    hook = (hooks or {}).get({"facts": "record_facts", "checkpoint": "on_checkpoint"}.get(call, call))
    if call == "facts" and hook is not None:
        hook(**record["facts"])
    elif call == "checkpoint" and hook is not None:
        from ftkit.train.checkpoints import Checkpoint

        hook(Checkpoint(int(record["step"]), Path(record["path"])))
    elif call == "confirmed" and hook is not None:
        hook()
    if call == "event":
        reporter.event(record["kind"], record["message"], **record.get("data", {}))
    elif call == "progress_start":
        reporter.progress_start(record["total_steps"])
    elif call == "progress_update":
        reporter.progress_update(record["step"], record["total_steps"], record["values"])
    elif call == "progress_end":
        reporter.progress_end()


class ProcessAgreement:
    """Trainer callback for every rank: at the start, checks the world size and that every rank resolved the same
    training settings (an `auto` value measured differently would silently train something else), and says the
    global batch; at each step end, stops every rank when any of them was asked to stop."""

    def __init__(self, requested: int, event: Any, main_process: bool):
        self.requested = requested
        self.event = event
        self.main_process = main_process
        self.facts: dict[str, Any] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        import torch.distributed as dist

        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        rank = dist.get_rank() if world > 1 else 0
        check_world_size(self.requested, rank, world, "the trainer's process group")
        settings = {
            "batch_size": args.per_device_train_batch_size,
            "grad_accum": args.gradient_accumulation_steps,
            "max_steps": state.max_steps,
            "learning_rate": args.learning_rate,
            "bf16": args.bf16,
            "fp16": args.fp16,
            "seed": args.seed,
        }
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, settings)
        differing = sorted({key for other in gathered for key in settings if other[key] != settings[key]})
        if differing:
            table = "; ".join(
                f"rank {r}: {', '.join(f'{k}={s[k]}' for k in differing)}" for r, s in enumerate(gathered)
            )
            raise RuntimeError(
                f"rank {rank}: the processes resolved different training settings ({table}); give these keys "
                "explicitly in the recipe instead of auto"
            )
        global_batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * world
        self.facts = {"train.num_processes": world, "train.global_batch": global_batch}
        if self.main_process:
            backend = dist.get_backend()
            self.event(
                "note",
                f"{world} processes ({backend}): global batch {global_batch} = "
                f"{args.per_device_train_batch_size} per process x {world} processes x "
                f"{args.gradient_accumulation_steps} accumulation steps",
                **self.facts,
            )

    def on_step_end(self, args, state, control, **kwargs):
        import torch
        import torch.distributed as dist

        # Stop when any rank stops; save only when every rank saves: a checkpoint waits for every rank, so a rank
        # that saves alone (its stop came a step later than another's) would wait for ever.
        flags = torch.tensor(
            [float(control.should_training_stop), float(not control.should_save)], device=args.device
        )
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        stop, save = bool(flags[0].item()), not bool(flags[1].item())
        if stop and not control.should_training_stop:  # another rank stops here: so does this one
            control.should_training_stop = True
            save = False
        control.should_save = save
        return control


def agree(value: bool, every: bool = False, device: Any = "cpu") -> bool:
    """Whether `value` holds on any rank (on every rank with `every`), the same answer on every rank; `value`
    itself when the run has one process. A collective: every rank must call it at the same point."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    import torch

    flag = torch.tensor([float(value != every)], device=device)  # every: is it false anywhere?
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item()) != every
