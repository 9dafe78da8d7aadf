"""A measured probe: a few real optimizer steps of a method on the real model, timed, with their peak memory.

`probe_training_step` loads the model, prepares it with the method, builds the very trainer `ftkit run` builds
(train/trainer.py: same collator, precision, padding-free and checkpointing choices) and runs `warmup + steps`
optimizer steps. Only the steps after the warm-up are timed (the first step allocates optimizer states and warms
kernels). It is the measurement behind `ftkit plan`'s time estimates and the `auto` batch-size and time-budget
rules.

Peak memory is measured, not estimated:
- CUDA: `torch.cuda.max_memory_allocated()` minus what was allocated before the model loaded (the peak counter
  is reset first). Memory the CUDA context and the caching allocator hold on top is not counted.
- CPU (Linux): the kernel's own resident high-water mark (VmHWM in /proc/self/status), reset to the current size
  by writing "5" to /proc/self/clear_refs just before the model loads, minus the resident size at that moment.
  Freed heap memory is first handed back (glibc `malloc_trim`) so that an earlier probe's leftovers do not hide
  in the baseline. The kernel tracks the mark on every page fault, so no short peak is missed, which sampling
  RSS from a thread can do; and it stays in this process (no second interpreter and library import per probe).
  Where clear_refs cannot be written, a thread samples /proc/self/statm every 2 ms instead (`memory_measure`
  says which). Elsewhere (macOS) the process's lifetime `ru_maxrss` is all there is, an upper bound.
Heavy libraries are imported inside the function; importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import resource
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_STEPS = 3
DEFAULT_WARMUP = 1
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass
class Probe:
    """What a probe measured. `peak_memory_bytes` is the memory the probe added at its peak (model, method,
    gradients, optimizer states, activations) over `baseline_bytes`, the process's resident size (CPU) or
    allocated GPU memory (CUDA) before the model loaded."""

    seconds_per_step: float
    peak_memory_bytes: int
    steps_probed: int
    device: str
    batch_size: int = 0
    max_seq_len: int = 0
    tokens_per_step: int = 0
    method: str = ""
    precision: str = ""
    baseline_bytes: int = 0
    memory_measure: str = ""
    trainable_params: int = 0
    total_params: int = 0
    step_seconds: list[float] = field(default_factory=list)

    def describe(self) -> str:
        """One line for people, e.g. "3 steps probed at batch 8 × 512 tokens: 1.20 s/step"."""
        return (
            f"{self.steps_probed} step{'s' if self.steps_probed != 1 else ''} probed at batch {self.batch_size} × "
            f"{self.max_seq_len} tokens: {self.seconds_per_step:.3g} s/step, peak +{self.peak_memory_bytes / 2**20:,.0f}"
            f" MiB on {self.device} ({self.precision})"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe_training_step(
    model: str,
    *,
    method: str = "lora",
    method_options: dict[str, Any] | None = None,
    task: str = "causal-lm",
    batch_size: int = 8,
    max_seq_len: int = 512,
    steps: int = DEFAULT_STEPS,
    warmup: int = DEFAULT_WARMUP,
    rows: list[dict[str, Any]] | None = None,
    num_labels: int = 2,
    training: dict[str, Any] | None = None,
    base_dir: Path | None = None,
) -> Probe:
    """Run `warmup` then `steps` real optimizer steps of `method` on `model` at micro-batch `batch_size` and
    `max_seq_len` tokens; return their mean time per step and the peak memory they added (see the module doc).

    `rows` are encoded training rows (`input_ids`, `labels`: token labels, or a class index) as the runner
    feeds the trainer; the first `batch_size * (warmup + steps)` are used, cycled when fewer. Without rows every
    row is `max_seq_len` random tokens: the worst case for memory. `training` overrides recipe training keys
    (precision, gradient_checkpointing, padding_free, grad_accum, learning_rate...); `auto` values are decided for
    this machine as `ftkit run` decides them. `model` is a hub id, folder or .gguf, relative to `base_dir`
    (default: the working folder). Raises FtkitError for a model or method that cannot load.
    """
    if steps < 1 or warmup < 0 or batch_size < 1:
        raise ValueError("probe_training_step needs steps >= 1, warmup >= 0 and batch_size >= 1")
    try:
        return _probe(
            model,
            method,
            method_options,
            task,
            batch_size,
            max_seq_len,
            steps,
            warmup,
            rows,
            num_labels,
            training,
            base_dir,
        )
    finally:  # the model, gradients and optimizer states are garbage now: hand their memory back
        gc.collect()
        _trim()


def _probe(
    model: str,
    method: str,
    method_options: dict[str, Any] | None,
    task: str,
    batch_size: int,
    max_seq_len: int,
    steps: int,
    warmup: int,
    rows: list[dict[str, Any]] | None,
    num_labels: int,
    training: dict[str, Any] | None,
    base_dir: Path | None,
) -> Probe:
    import tempfile

    from ftkit.methods.catalog import get_method
    from ftkit.recipe.schema import TrainingConfig
    from ftkit.train.quiet import quiet_libraries

    quiet_libraries()
    from transformers import TrainerCallback, set_seed

    from ftkit.train.hardware import detect_hardware, plan_training
    from ftkit.train.model_loading import load_dtype, load_model, load_tokenizer, model_skeleton
    from ftkit.train.packed_attention import training_attention
    from ftkit.train.precision import frozen_base_to_bf16
    from ftkit.train.trainer import build_trainer

    base = base_dir or Path.cwd()
    chosen = get_method(method)
    chosen.check_requirements()
    options = chosen.parse_options(method_options or {})
    settings = TrainingConfig().model_dump()
    settings.update(training or {})
    settings.update(batch_size=batch_size, max_seq_len=max_seq_len, max_steps=warmup + steps, logging_steps=1)
    settings.update(warmup_steps=0, epochs=1.0)
    if settings["grad_accum"] == "auto":
        settings["grad_accum"] = 1
    if settings["learning_rate"] == "auto":
        settings["learning_rate"] = chosen.default_learning_rate
    if (
        settings["grad_accum"] == "auto"
    ):  # one micro-batch per optimizer step: the probe times micro-batch steps
        settings["grad_accum"] = 1
    hardware = detect_hardware()
    tokenizer = load_tokenizer(model, base)
    chosen.tokenizer = tokenizer
    labels = num_labels if task == "classification" else None

    meter = _Meter(hardware.device if settings["device"] == "auto" else settings["device"])
    meter.start()
    try:
        set_seed(settings["seed"])
        load_kwargs, _notes = chosen.base_load_kwargs(
            options, hardware.device, lambda: model_skeleton(model, base, task, labels)
        )
        loaded = load_model(
            model,
            base,
            task,
            load_dtype(settings["precision"], chosen.is_adapter),
            load_kwargs,
            [str(i) for i in range(num_labels)] if labels else None,
            pad_token_id=tokenizer.pad_token_id,
        )
        total = sum(p.numel() for p in loaded.parameters())
        adjusted = {**settings, **chosen.adjust_training(options, settings).overrides}
        plan = plan_training(hardware, adjusted, total, task, chosen, loaded.config)
        loaded.to(plan.device)
        prepared = chosen.prepare(loaded, options, task)
        if settings["precision"] == "auto" and plan.precision == "bf16" and chosen.is_adapter:
            frozen_base_to_bf16(prepared)  # as the run stores it once its bf16 check passes
        trainable = sum(p.numel() for p in prepared.parameters() if p.requires_grad)
        needed = batch_size * (warmup + steps)
        source = rows or _synthetic_rows(len(tokenizer), max_seq_len, task, num_labels, needed)
        batch_rows = [source[i % len(source)] for i in range(needed)]
        timer = _StepTimer()
        callback = type("ProbeTimer", (TrainerCallback,), {})()  # a TrainerCallback that forwards to timer
        callback.on_step_begin = timer.begin
        callback.on_step_end = timer.end
        resolved = {"training": {**adjusted, "precision": plan.precision}}
        with tempfile.TemporaryDirectory(prefix="ftkit-probe-") as scratch:
            trainer = build_trainer(
                prepared,
                tokenizer,
                batch_rows,
                resolved,
                plan,
                [callback],
                task=task,
                output_dir=Path(scratch),
            )
            # The trainer's sampler shuffles; the probe's rows are its whole data set, so every row is used once.
            with training_attention(prepared, plan.padding_free, plan.device, plan.precision):
                trainer.train()
        measured = timer.seconds[warmup:]
        peak, baseline, how = meter.stop()
        tokens = sum(min(len(row["input_ids"]), max_seq_len) for row in batch_rows[batch_size * warmup :])
        return Probe(
            seconds_per_step=round(sum(measured) / len(measured), 4),
            peak_memory_bytes=peak,
            steps_probed=len(measured),
            device=plan.device,
            batch_size=batch_size,
            max_seq_len=max_seq_len,
            tokens_per_step=round(tokens / max(1, len(measured))),
            method=chosen.name,
            precision=plan.precision,
            baseline_bytes=baseline,
            memory_measure=how,
            trainable_params=trainable,
            total_params=sum(p.numel() for p in prepared.parameters()),
            step_seconds=[round(s, 4) for s in measured],
        )
    finally:
        meter.stop()


def _synthetic_rows(vocab: int, length: int, task: str, num_labels: int, count: int) -> list[dict[str, Any]]:
    import random

    rng = random.Random(0)
    rows = []
    for i in range(count):
        ids = [rng.randrange(4, max(5, vocab)) for _ in range(length)]
        rows.append({"input_ids": ids, "labels": i % num_labels if task == "classification" else list(ids)})
    return rows


class _StepTimer:
    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._began = 0.0

    def begin(self, *args: Any, **kwargs: Any) -> None:
        self._began = time.perf_counter()

    def end(self, *args: Any, **kwargs: Any) -> None:
        self.seconds.append(time.perf_counter() - self._began)


def rss_bytes() -> int:
    """This process's resident set size now (Linux /proc; elsewhere its lifetime peak, an upper bound)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def _hwm_bytes() -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def _trim() -> None:
    """Hand freed heap memory back to the system (glibc), so the next baseline is the memory really in use."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class _Meter:
    """Peak memory over a stretch of code: CUDA's allocator counter, the kernel's RSS high-water mark, or a
    sampling thread (see the module doc for why in that order)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.baseline = 0
        self.how = ""
        self._sampled = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._result: tuple[int, int, str] | None = None

    def start(self) -> None:
        gc.collect()
        _trim()
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.baseline = torch.cuda.memory_allocated()
            self.how = "torch.cuda.max_memory_allocated over the allocation before the model loaded"
            return
        self.baseline = rss_bytes()
        if _reset_hwm() and _hwm_bytes() is not None:
            self.how = (
                "kernel RSS high-water mark (VmHWM, reset via /proc/self/clear_refs) over the RSS before"
            )
            return
        if os.path.exists("/proc/self/statm"):
            self.how = "RSS sampled every 2 ms (/proc/self/statm) over the RSS before"
            self._sampled = self.baseline
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
            return
        self.how = "process lifetime peak RSS (ru_maxrss; an upper bound) over the RSS before"

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self._sampled = max(self._sampled, rss_bytes())

    def stop(self) -> tuple[int, int, str]:
        """(peak bytes over the baseline, baseline bytes, how it was measured); the first call's result stays."""
        if self._result is not None:
            return self._result
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        elif self._thread is not None:
            self._stop.set()
            self._thread.join()
            peak = max(self._sampled, rss_bytes())
        elif self.how.startswith("kernel"):
            peak = _hwm_bytes() or rss_bytes()
        else:
            peak = rss_bytes()
        self._result = (max(0, peak - self.baseline), self.baseline, self.how)
        return self._result
