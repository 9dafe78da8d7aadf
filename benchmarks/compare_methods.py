"""Every fine-tuning method side by side on SmolLM2-135M-Instruct: same data, same number of steps.

    python benchmarks/compare_methods.py                      # all eight methods, 20 steps each
    python benchmarks/compare_methods.py --steps 10 --methods lora,prefix

Each method runs `recipes/<method>.yaml` (its own learning rate and options) in its own child process, so peak RSS
is per method, with the data, step count, batch size and sequence length overridden to be identical for all.
Reports trainable parameters, peak RSS, training tokens/s, eval loss before and after, and the size of what the
method saves (adapter, or whole model for full/freeze). Writes Markdown and JSON under benchmarks/results/
(git-ignored) and prints the Markdown table.

Data: distinct chat conversations of ../shared/data/chatterbot-chat/messages.jsonl after a seeded shuffle.
Model: examples/quickstart/model/SmolLM2-135M-Instruct.Q4_1.gguf (fetched by examples/quickstart/fetch_model.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
MODEL = REPO / "examples" / "quickstart" / "model" / "SmolLM2-135M-Instruct.Q4_1.gguf"
DATA = REPO.parent / "shared" / "data" / "chatterbot-chat" / "messages.jsonl"
METHODS = ("lora", "dora", "qlora", "prefix", "prompt", "ia3", "full", "freeze")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def prepare_data(workdir: Path, train_rows: int, eval_rows: int, seed: int) -> tuple[Path, Path]:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    unique: dict[str, dict] = {}  # the corpus repeats conversations: drop repeats so eval rows are unseen
    for row in rows:
        if row.get("messages"):
            unique.setdefault(json.dumps(row["messages"], sort_keys=True), {"messages": row["messages"]})
    rows = list(unique.values())
    random.Random(seed).shuffle(rows)
    train, evaluation = rows[:train_rows], rows[train_rows : train_rows + eval_rows]
    paths = workdir / "train.jsonl", workdir / "eval.jsonl"
    for path, part in zip(paths, (train, evaluation), strict=True):
        path.write_text("".join(json.dumps(row) + "\n" for row in part), encoding="utf-8")
    return paths


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
        f"model={MODEL}",
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
                "status": result.status,
                "error": result.error,
                "learning_rate": result.resolved.get("training", {}).get("learning_rate"),
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
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}
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


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "—"
    return format(value, spec) if spec else str(value)


def _size(num_bytes: int | None) -> str:
    if num_bytes is None:
        return "—"
    return f"{num_bytes / 2**20:.1f} MB" if num_bytes >= 2**20 else f"{num_bytes / 2**10:.0f} KB"


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"Methods on SmolLM2-135M-Instruct: {meta['steps']} steps, batch {meta['batch_size']}, max_seq_len "
        f"{meta['max_seq_len']}, {meta['train_rows']} train / {meta['eval_rows']} eval chat rows "
        f"(distinct chatterbot-chat conversations), each method's recipe learning rate; {meta['machine']}, {meta['threads']} torch "
        f"thread(s) per run.",
        "",
        "| method | lr | trainable params | % | peak RSS | train tokens/s | eval loss before → after | saved |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.get("status") != "succeeded":
            lines.append(f"| {r['method']} | failed: {r.get('error')} | | | | | | |")
            continue
        lines.append(
            f"| {r['method']} | {_fmt(r['learning_rate'], 'g')} | {_fmt(r['trainable_params'], ',')} | "
            f"{100 * (r['trainable_fraction'] or 0):.3g}% | {_fmt(r.get('peak_rss_mb'), ',.0f')} MB | "
            f"{_fmt(r['tokens_per_sec'], ',.0f')} | {_fmt(r['eval_loss_before'], '.3f')} → "
            f"{_fmt(r['eval_loss_after'], '.3f')} | {_size(r['saved_bytes'])} |"
        )
    lines += [
        "",
        f"Command: `{meta['command']}` ({meta['wall_min']:.1f} min in all). Versions: {meta['versions']}.",
        "qlora's 'before' is the 4-bit base, and its % is of the parameter count with 4-bit weights packed two per "
        "byte; its adapter is saved in bf16 (TRL's QLoRA recipe). full and freeze save the whole model (fp32). "
        "tokens/s moves with the machine's load; losses are deterministic.",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=",".join(METHODS), help="Comma-separated methods to compare.")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-seq-len", type=int, default=256)
    parser.add_argument("--train-rows", type=int, default=200)
    parser.add_argument("--eval-rows", type=int, default=32)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per run (0: torch's default). 1 by default: on a shared 2-core machine, OpenMP "
        "contention made a SmolLM2 step ~3x slower with 2 threads than with 1.",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args)
    if not MODEL.is_file():
        subprocess.run([sys.executable, str(REPO / "examples" / "quickstart" / "fetch_model.py")], check=True)
    if not DATA.is_file():
        print(f"data not found: {DATA}", file=sys.stderr)
        return 2
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    workdir = RESULTS / f"compare_methods-{stamp}"
    workdir.mkdir(parents=True, exist_ok=True)
    prepare_data(workdir, args.train_rows, args.eval_rows, args.seed)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    started = time.perf_counter()
    results = []
    for method in methods:
        print(f"[compare_methods] {method} ...", file=sys.stderr, flush=True)
        result = run_method(method, args, workdir)
        print(
            f"[compare_methods] {method}: {result.get('status')} in {result.get('wall_s')} s", file=sys.stderr
        )
        results.append(result)
    meta = {
        "command": "python benchmarks/compare_methods.py" + (" " + shlex.join(argv) if argv else ""),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "max_seq_len": args.max_seq_len,
        "train_rows": args.train_rows,
        "threads": args.threads or "default",
        "eval_rows": args.eval_rows,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
        + ("CUDA" if shutil.which("nvidia-smi") else "no GPU"),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": ", ".join(
            f"{p} {_version(p)}"
            for p in ("torch", "transformers", "peft", "trl", "bitsandbytes")
            if _version(p)
        ),
        "wall_min": (time.perf_counter() - started) / 60,
        "date": stamp,
    }
    report = markdown(results, meta)
    (workdir / "report.md").write_text(report, encoding="utf-8")
    (workdir / "report.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=2), encoding="utf-8"
    )
    (RESULTS / "compare_methods-latest.md").write_text(report, encoding="utf-8")
    (RESULTS / "compare_methods-latest.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=2), encoding="utf-8"
    )
    for output in workdir.glob("outputs"):
        shutil.rmtree(output, ignore_errors=True)  # weights are measured, not kept
    print(report)
    return 0 if all(r.get("status") == "succeeded" for r in results) else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    sys.exit(main(sys.argv[1:] or None))
