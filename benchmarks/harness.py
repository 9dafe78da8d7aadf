"""Benchmark plumbing: machine facts, git state, package versions, child processes, statistics, results files.

Nothing here imports torch or any other heavy library: each measured thing runs in its own child process, so the
harness never warms a cache, holds memory or competes for cores with what it measures.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
LATEST_MD = BENCH_DIR / "LATEST.md"

PACKAGES = ("ftkit", "torch", "transformers", "peft", "trl", "accelerate", "datasets", "bitsandbytes")
SHORT_NAMES = {"transformers": "tf", "accelerate": "acc", "datasets": "ds", "bitsandbytes": "bnb"}


# -- statistics -------------------------------------------------------------------------------------------


@dataclass
class Stat:
    """Median of N repetitions with their min and max."""

    median: float | None
    min: float | None
    max: float | None
    n: int
    values: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, values: list[float | None]) -> Stat:
        kept = [float(value) for value in values if value is not None]
        if not kept:
            return cls(None, None, None, 0, [])
        return cls(statistics.median(kept), min(kept), max(kept), len(kept), kept)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ratio_stat(numerators: list[float | None], denominators: list[float | None]) -> Stat:
    """Ratios of paired repetitions (A_i / B_i): pairing cancels drift in machine load between pairs."""
    pairs = [
        numerator / denominator
        for numerator, denominator in zip(numerators, denominators, strict=False)
        if numerator is not None and denominator
    ]
    return Stat.of(pairs)


# -- results ----------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One measured quantity: what, median/min/max over N, and the command that reproduces it."""

    benchmark: str
    name: str
    unit: str
    stat: Stat
    command: str
    target: str = ""
    status: str = ""  # "met" | "missed" | "" (no target) | "n/a"
    note: str = ""
    key: str = ""  # a stable id for the rows the README summary quotes (benchmarks/report.py)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stat"] = self.stat.to_dict()
        return data


@dataclass
class BenchResult:
    """What one benchmark returns: its rows, free-form details (per-repetition data), notes and errors."""

    name: str
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rows": [row.to_dict() for row in self.rows],
            "details": self.details,
            "notes": self.notes,
            "error": self.error,
            "seconds": round(self.seconds, 1),
        }


def check_target(value: float | None, minimum: float | None = None, maximum: float | None = None) -> str:
    if value is None:
        return "n/a"
    if minimum is not None and value < minimum:
        return "missed"
    if maximum is not None and value > maximum:
        return "missed"
    return "met"


# -- machine and environment ------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_info() -> list[dict[str, str]]:
    """GPUs as nvidia-smi reports them (no torch import); empty when there is none."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.stdout.strip().splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "memory": parts[1], "driver": parts[2]})
    return gpus


def memory_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


FLAGS_OF_INTEREST = (
    "avx2",
    "avx512f",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "bf16",
)


def cpu_flags_summary(flags: set[str] | None = None) -> dict[str, Any]:
    """The CPU features that decide matmul speed and bf16 support, and which of them compute bf16 natively."""
    from ftkit.train.precision import cpu_flags, native_bf16  # reads /proc/cpuinfo; no torch import

    flags = cpu_flags() if flags is None else flags
    return {
        "present": [flag for flag in FLAGS_OF_INTEREST if flag in flags],
        "native_bf16": native_bf16(flags),
    }


def machine_info() -> dict[str, Any]:
    """CPU (model, feature summary, cores), memory, GPUs, OS and Python of this machine."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    return {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags_summary(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": memory_total_gib(),
        "gpus": gpu_info(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def machine_short(machine: dict[str, Any]) -> str:
    gpus = machine.get("gpus") or []
    cpu = f"{machine['cpu']} ×{machine['usable_cores']}"
    return f"{gpus[0]['name']} + {cpu}" if gpus else f"{cpu} (no GPU)"


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def versions_short(versions: dict[str, str | None]) -> str:
    keep = ("ftkit", "torch", "transformers", "trl", "peft")
    return " ".join(f"{SHORT_NAMES.get(name, name)} {versions[name]}" for name in keep if versions.get(name))


# Files the harness itself writes during a run: changes there do not change what is measured.
HARNESS_OUTPUTS = ("benchmarks/results", "benchmarks/LATEST.md", "README.md")


def git_state(repo: Path = REPO_ROOT, exclude: tuple[str, ...] = HARNESS_OUTPUTS) -> dict[str, Any]:
    """The commit checked out in `repo` and whether the tree matches it: `changed` lists modified, staged and
    untracked (not ignored) paths outside `exclude`; `clean` is true when there are none."""

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "HEAD")
        status = git(
            "status", "--porcelain", "--untracked-files=all", "--", ".", *(f":(exclude){p}" for p in exclude)
        )
    except (OSError, subprocess.SubprocessError) as error:
        return {"commit": None, "clean": False, "changed": [], "error": str(error)}
    if head.returncode or status.returncode:
        return {
            "commit": None,
            "clean": False,
            "changed": [],
            "error": (head.stderr or status.stderr).strip(),
        }
    changed = [line[3:] for line in status.stdout.splitlines() if line.strip()]
    return {"commit": head.stdout.strip(), "clean": not changed, "changed": changed}


# -- child processes --------------------------------------------------------------------------------------


@dataclass
class Child:
    """A finished child process: exit code, output, wall time and its own peak resident set size."""

    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    max_rss_mb: float | None

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def json(self) -> dict[str, Any] | None:
        return last_json_object(self.stdout)

    def tail(self, lines: int = 12) -> str:
        return "\n".join((self.stderr or self.stdout).strip().splitlines()[-lines:])


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("HF_DATASETS_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("PYTHONWARNINGS", "ignore")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    env.update(extra or {})
    return env


def run_child(
    command: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> Child:
    """Run a command to completion; peak RSS comes from wait4 on this very child (not all children)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=str(cwd) if cwd else None,
        env=env or child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = _communicate(process, timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        return Child(command, 124, stdout, stderr + "\n[timed out]", time.perf_counter() - started, None)
    wall = time.perf_counter() - started
    return Child(command, process.returncode, stdout, stderr, wall, _maxrss_mb(process))


def _communicate(process: subprocess.Popen, timeout: float | None) -> tuple[str, str]:
    # Read the pipes to EOF (so the child never blocks on a full pipe), then reap it with wait4 ourselves.
    import threading

    chunks: dict[str, str] = {}

    def read(name: str, stream: Any) -> None:
        chunks[name] = stream.read()

    readers = [
        threading.Thread(target=read, args=("out", process.stdout), daemon=True),
        threading.Thread(target=read, args=("err", process.stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            process._ftkit_rusage = usage  # type: ignore[attr-defined]
            break
        if deadline is not None and time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(process.args, timeout or 0)
        time.sleep(0.02)
    for reader in readers:
        reader.join()
    return chunks.get("out", ""), chunks.get("err", "")


def _maxrss_mb(process: subprocess.Popen) -> float | None:
    usage = getattr(process, "_ftkit_rusage", None)
    if usage is None:
        return None
    return round(usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10), 1)


def last_json_object(text: str) -> dict[str, Any] | None:
    """The last top-level JSON object printed on stdout (tools may print other lines before it).

    Tries each line that opens with `{`, from the last one up, and keeps the first that parses as one object
    running to the end of the text (so an indented, multi-line object is found whole).
    """
    decoder = json.JSONDecoder()
    lines = text.rstrip().splitlines(keepends=True)
    offsets, position = [], 0
    for line in lines:
        offsets.append(position)
        position += len(line)
    joined = "".join(lines)
    for index in range(len(lines) - 1, -1, -1):
        if not lines[index].lstrip().startswith("{"):
            continue
        try:
            value, end = decoder.raw_decode(
                joined, offsets[index] + len(lines[index]) - len(lines[index].lstrip())
            )
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and not joined[end:].strip():
            return value
    return None


def shell_join(command: list[str]) -> str:
    return " ".join(shlex.quote(part) for part in command)
