"""Every fine-tuning method side by side on SmolLM2-135M-Instruct: same data, same number of steps.

    python -m benchmarks --only methods        # writes benchmarks/results/<preset>/methods.json

Each method runs `recipes/<method>.yaml` (its own learning rate and options, precision `auto`) in its own child
process, so peak RSS is per method, with the model, data, step count, batch size and sequence length overridden to
be identical for all. Reports trainable parameters, peak RSS, training tokens/s, held-out loss before and after
training, the precision used and the size of what the method saves (adapter, or whole model for full/freeze).
The README's methods table is generated from the results file (benchmarks/report.py).

Data: distinct chatterbot-chat conversations (case and whitespace ignored), shuffled with a seed, split into
disjoint train and eval files (benchmarks/assets.py). Model: the fp32 SmolLM2 folder of benchmarks/assets.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # the child process is started as a script
    sys.path[:0] = [str(REPO), str(REPO / "src")]

from benchmarks.assets import data_split  # noqa: E402
from benchmarks.context import Context  # noqa: E402
from benchmarks.harness import BenchResult, Row, Stat, child_env  # noqa: E402

NAME = "methods"
METHODS = ("lora", "dora", "qlora", "prefix", "prompt", "ia3", "full", "freeze")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")
# torch's default threads (all cores), as in every other benchmark: the harness wants an idle machine. (On a
# busy 2-core machine OpenMP contention made a SmolLM2 step ~3x slower with 2 threads than with 1.)
THREADS = 0


def saved_size(output_dir: Path) -> int:
    """Bytes of trained weights saved (adapter files, or the whole model), tokenizer and metadata excluded."""
    return sum(p.stat().st_size for p in output_dir.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


def child(args: argparse.Namespace) -> int:
    """Run one method from its recipe with the shared overrides; print one JSON line with the results."""
    import torch

    from ftkit.recipe.load import load_recipe
    from ftkit.train.callbacks import SilentReporter
    from ftkit.train.runner import execute_run

    if args.threads:
        torch.set_num_threads(args.threads)
    workdir = Path(args.workdir)
    overrides = [
        f"model={args.model}",
        f"data.train={workdir / 'train.jsonl'}",
        f"data.eval={workdir / 'eval.jsonl'}",
        "data.format=chat",
        f"training.max_steps={args.steps}",
        f"training.batch_size={args.batch_size}",
        f"training.max_seq_len={args.max_seq_len}",
        "training.warmup_steps=2",
        "evaluation.generate=0",
        f"evaluation.max_rows={args.eval_rows}",
        f"output={workdir / 'outputs'}",
    ]
    loaded = load_recipe(REPO / "recipes" / f"{args.child}.yaml", overrides)
    reporter = SilentReporter()
    started = time.perf_counter()
    result = execute_run(loaded, f"bench-{args.child}", f"bench-{args.child}", reporter)
    metrics = result.metrics
    print(
        "RESULT="
        + json.dumps(
            {
                "method": args.child,
                "threads": torch.get_num_threads(),
                "status": result.status,
                "error": result.error,
                "learning_rate": result.resolved.get("training", {}).get("learning_rate"),
                "precision": result.resolved.get("training", {}).get("precision"),
                "padding_free": result.resolved.get("training", {}).get("padding_free"),
                "trainable_params": metrics.get("train.trainable_params"),
                "trainable_fraction": metrics.get("train.trainable_fraction"),
                "steps": metrics.get("train.steps"),
                "train_tokens": metrics.get("train.tokens"),
                "tokens_per_sec": metrics.get("train.tokens_per_sec"),
                "train_runtime_s": metrics.get("train.runtime_s"),
                "eval_loss_before": metrics.get("base.eval.loss"),
                "eval_loss_after": metrics.get("eval.loss"),
                "saved_bytes": saved_size(Path(result.output_dir)) if result.output_dir else None,
                "wall_s": round(time.perf_counter() - started, 1),
                "notes": [e["message"] for e in reporter.events if e["kind"] in ("note", "warning")],
            }
        ),
        flush=True,
    )
    return 0 if result.status == "succeeded" else 1


def run_method(method: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """One method in a fresh child process; peak RSS from os.wait4 on that child (Linux/macOS)."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        method,
        "--workdir",
        str(workdir),
        "--steps",
        str(args.steps),
        "--batch-size",
        str(args.batch_size),
        "--max-seq-len",
        str(args.max_seq_len),
        "--eval-rows",
        str(args.eval_rows),
        "--threads",
        str(args.threads),
        "--model",
        str(args.model),
    ]
    env = child_env()
    out_path = workdir / f"{method}.out"
    with open(workdir / f"{method}.log", "w") as log, open(out_path, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=log, env=env, cwd=REPO)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    scale = 2**20 if sys.platform == "darwin" else 2**10  # ru_maxrss: bytes on macOS, KiB on Linux
    line = next((x for x in out_path.read_text().splitlines() if x.startswith("RESULT=")), None)
    if line is None:
        return {"method": method, "status": "crashed", "error": f"see {workdir / (method + '.log')}"}
    result = json.loads(line.removeprefix("RESULT="))
    result["peak_rss_mb"] = round(usage.ru_maxrss / scale, 1)
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-seq-len", type=int, default=256)
    parser.add_argument("--eval-rows", type=int, default=32)
    parser.add_argument(
        "--threads", type=int, default=THREADS, help="torch threads per run (0: torch's default)"
    )
    parser.add_argument("--model", required=True, help="model folder")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run(ctx: Context) -> BenchResult:
    """Every method once, one child process each; rows per method and the per-method records in details."""
    preset, size = ctx.preset, ctx.preset.methods
    result = BenchResult(NAME)
    command = ctx.command(NAME)
    workdir = ctx.workdir / "methods"
    workdir.mkdir(parents=True, exist_ok=True)
    split = data_split("chat", preset.methods_train_rows, preset.methods_eval_rows, workdir, seed=0)
    shutil.copy(split.train, workdir / "train.jsonl")
    shutil.copy(split.eval, workdir / "eval.jsonl")
    args = parse_args(
        [
            "--steps",
            str(size.steps),
            "--batch-size",
            str(size.batch_size),
            "--max-seq-len",
            str(size.max_seq_len),
            "--eval-rows",
            str(preset.methods_eval_rows),
            "--threads",
            str(THREADS),
            "--model",
            str(ctx.model_dir),
        ]
    )
    records = []
    for method in METHODS:
        ctx.log(f"{NAME}: {method}")
        record = run_method(method, args, workdir)
        ctx.log(f"{NAME}: {method} {record.get('status')} in {record.get('wall_s')} s")
        records.append(record)
        shutil.rmtree(workdir / "outputs", ignore_errors=True)  # weights are measured, not kept
        if record.get("status") != "succeeded":
            result.notes.append(f"{method}: {record.get('status')}: {record.get('error')}")
            continue
        result.rows += [
            Row(
                NAME,
                f"{method}: held-out loss before training",
                "nats",
                Stat.of([record["eval_loss_before"]]),
                command,
                key=f"{method}_before",
            ),
            Row(
                NAME,
                f"{method}: held-out loss after {size.steps} steps ({record.get('precision')})",
                "nats",
                Stat.of([record["eval_loss_after"]]),
                command,
                key=f"{method}_after",
            ),
            Row(
                NAME,
                f"{method}: training tokens/s ({record.get('threads')} torch threads)",
                "tok/s",
                Stat.of([record["tokens_per_sec"]]),
                command,
                key=f"{method}_tok",
            ),
            Row(
                NAME,
                f"{method}: peak RSS",
                "MB",
                Stat.of([record.get("peak_rss_mb")]),
                command,
                key=f"{method}_rss",
            ),
        ]
        before, after = record["eval_loss_before"], record["eval_loss_after"]
        if before is not None and after is not None and after >= before:
            result.notes.append(f"{method}: held-out loss did not improve over the base model")
    result.details = {
        "settings": {
            "steps": size.steps,
            "batch_size": size.batch_size,
            "max_seq_len": size.max_seq_len,
            "train_rows": preset.methods_train_rows,
            "eval_rows": preset.methods_eval_rows,
            "threads": next((r["threads"] for r in records if r.get("threads")), THREADS),
        },
        "methods": records,
    }
    failed = [r["method"] for r in records if r.get("status") != "succeeded"]
    if failed:
        result.error = f"methods that did not succeed: {', '.join(failed)}"
    result.notes.append(
        "qlora's 'before' is the 4-bit base, and its % counts 4-bit weights packed two per byte; full and freeze "
        "save the whole model. tokens/s moves with the machine's load; losses are deterministic."
    )
    return result


def main(argv: list[str] | None = None) -> int:
    """The child side only: the harness starts `compare_methods.py --child METHOD ...` once per method."""
    args = parse_args(argv)
    if not args.child:
        print("run the methods comparison with `python -m benchmarks --only methods`", file=sys.stderr)
        return 2
    return child(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or None))
