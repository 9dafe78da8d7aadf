"""`ftkit tune` end to end with no recipe on the real data sets in ../shared/data (GSM8K, SMS spam, chatterbot),
each time-budgeted to a few minutes on a CPU (the quickstart comparison is benchmarks/tune_quickstart.py).

Every run is a child `python -m ftkit tune DATA --model SmolLM2-135M-Instruct --json`; its JSON document (the run's
metrics, the review, and tune's task, format, columns and plan) is kept in the results file's details.
Chatterbot holds one broken row: tune refuses the file (exit 2, located), which is recorded, and the benchmark
then tunes a copy without the rows the refusal named.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from benchmarks.context import Context
from benchmarks.harness import REPO_ROOT, BenchResult, Child, Row, Stat, child_env, run_child

NAME = "tune_real"
SHARED = (REPO_ROOT / ".." / "shared" / "data").resolve()
QUICKSTART = REPO_ROOT / "examples" / "quickstart"
# Per preset: the quickstart tune's budget, the real sets' budget, and eval caps that keep each set to minutes.
BUDGETS = {
    "small": {"quickstart": "4m", "real": "90s", "eval_rows": 50},
    "gpu": {"quickstart": "6m", "real": "5m", "eval_rows": 200},
    "smoke": {"quickstart": "20s", "real": "15s", "eval_rows": 8},
}
MIN_TIMEOUT_S = 2400  # a child's limit: plan probes, training and evaluation on a busy 2-core machine
REAL_SETS = (
    # name, file, extra --set overrides (why)
    ("gsm8k", "gsm8k/train.jsonl", ["evaluation.generate=0"]),  # 135M solves ~no GSM8K: loss is the measure
    ("sms_spam", "sms-spam/SMSSpamCollection.tsv", []),
    ("chatterbot", "chatterbot-chat/messages.jsonl", []),
)
_LOCATED = re.compile(r":(\d+):")


def ftkit_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "ftkit", *args]


def tune_child(
    ctx: Context, data: Path, name: str, budget: str, extra: list[str], eval_file: Path | None = None
) -> Child:
    argv = ["tune", str(data), "--model", str(ctx.model_dir), "--time-budget", budget, "--name", name]
    argv += ["--eval", str(eval_file)] if eval_file else []
    for item in extra:
        argv += ["--set", item]
    argv += ["--registry", str(ctx.workdir / "registry"), "--json"]
    ctx.log(f"   ftkit {' '.join(argv[:8])} ...")
    return run_child(
        ftkit_argv(*argv),
        cwd=ctx.workdir,
        env=child_env(),
        timeout=max(ctx.preset.child_timeout_s, MIN_TIMEOUT_S),
    )


def summarize(child: Child) -> dict[str, Any]:
    """What the results file keeps of one tune: the run, the metrics, the review and tune's own object."""
    doc = child.json() or {}
    tune = doc.get("tune") or {}
    plan = tune.get("plan") or {}
    recommended = next(
        (c for c in plan.get("candidates", []) if c["method"] == plan.get("recommended")), None
    )
    return {
        "exit_code": child.returncode,
        "wall_s": round(child.wall_s, 1),
        "max_rss_mb": child.max_rss_mb,
        "run_id": doc.get("run_id"),
        "status": doc.get("status"),
        "metrics": doc.get("metrics"),
        "review": doc.get("review"),
        "task": tune.get("task"),
        "format": tune.get("format"),
        "columns": tune.get("columns"),
        "reason": tune.get("reason"),
        "unused_columns": tune.get("unused_columns"),
        "recipe": tune.get("recipe"),
        "plan": {
            "recommended": plan.get("recommended"),
            "reason": plan.get("reason"),
            "planned_steps": plan.get("planned_steps"),
            "seconds_per_step": recommended and recommended.get("seconds_per_step"),
            "predicted_bytes": recommended and recommended.get("predicted_bytes"),
            "auto": plan.get("auto"),
            "warnings": plan.get("warnings"),
        },
        "error": (doc.get("error") if isinstance(doc.get("error"), dict) else None) or doc.get("error"),
        "stderr_tail": None if child.ok else child.tail(20),
    }


def row(
    name: str, unit: str, value: float | None, command: str, key: str, benchmark: str = NAME, **kw: Any
) -> Row:
    """One measured value as a results row (one repetition: a tune is one run, not a timing)."""
    return Row(benchmark, name, unit, Stat.of([value]), command, key=key, **kw)


def _real(ctx: Context, name: str, relative: str, extra: list[str], budget: str, eval_rows: int) -> dict:
    path = SHARED / relative
    if not path.exists():
        return {"skipped": f"{path} not found"}
    overrides = [*extra, f"evaluation.max_rows={eval_rows}"]
    first = tune_child(ctx, path, f"tune-{name}", budget, overrides)
    record: dict[str, Any] = {"file": str(path), "overrides": overrides, "tune": summarize(first)}
    if first.returncode == 2:  # refused before training: record it, then tune a copy without the named rows
        error = (first.json() or {}).get("error") or {}
        lines = {int(m.group(1)) for problem in error.get("problems", []) if (m := _LOCATED.search(problem))}
        record["refused"] = {
            "message": error.get("message"),
            "problems": error.get("problems"),
            "lines": sorted(lines),
        }
        kept = [
            row
            for number, row in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if number not in lines
        ]
        fixed = ctx.workdir / f"{name}-without-bad-rows{path.suffix}"
        fixed.write_text("\n".join(kept) + "\n", encoding="utf-8")
        record["file_used"] = str(fixed)
        record["tune"] = summarize(tune_child(ctx, fixed, f"tune-{name}", budget, overrides))
    return record


def run(ctx: Context) -> BenchResult:
    """Tune the quickstart data and each shared data set; rows for scores, steps, time and the review."""
    result = BenchResult(NAME)
    command = ctx.command(NAME)
    budgets = BUDGETS.get(ctx.preset.name, BUDGETS["small"])
    for name, relative, extra in REAL_SETS:
        ctx.log(f"   {name}")
        record = _real(ctx, name, relative, extra, budgets["real"], budgets["eval_rows"])
        result.details[name] = record
        tune = record.get("tune") or {}
        metrics = tune.get("metrics") or {}
        metric = "eval.accuracy" if tune.get("task") == "classification" else "eval.loss"
        unit = "fraction" if metric == "eval.accuracy" else "nats"
        ok = tune.get("exit_code") == 0 and tune.get("status") == "succeeded"
        result.rows += [
            row(
                f"{name}: tune ran end to end (exit 0, succeeded)",
                "bool",
                float(ok),
                command,
                f"{name}_ok",
                target="1",
                status="met" if ok else "missed",
            ),  # fmt: skip
            row(f"{name}: base {metric}", unit, metrics.get(f"base.{metric}"), command, f"{name}_base"),
            row(f"{name}: tuned {metric}", unit, metrics.get(metric), command, f"{name}_tuned"),
            row(
                f"{name}: optimizer steps (budget {budgets['real']})",
                "steps",
                metrics.get("train.steps"),
                command,
                f"{name}_steps",
            ),  # fmt: skip
            row(
                f"{name}: tune wall time (plan, train, eval)",
                "s",
                tune.get("wall_s"),
                command,
                f"{name}_wall",
            ),
            row(
                f"{name}: review findings",
                "count",
                float(len((tune.get("review") or {}).get("findings", []))) if tune.get("review") else None,
                command,
                f"{name}_findings",
            ),  # fmt: skip
        ]
        if record.get("refused"):
            result.notes.append(
                f"{name}: tune refused the file as it is (exit 2): {record['refused']['message']}; "
                f"lines {record['refused']['lines']} removed and the copy tuned"
            )
    return result
