"""Results files and the reports made from them: benchmarks/LATEST.md and the README's benchmark tables.

Each benchmark writes benchmarks/results/<preset>/<benchmark>.json (the commit it measured, whether the tree was
clean, the machine and its load at start and end, every row). LATEST.md and the README sections between
`<!-- bench:NAME -->` and `<!-- /bench:NAME -->` are regenerated from those files only, never edited by hand:

    python -m benchmarks --report        # rewrite LATEST.md and the README tables from the committed files
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.harness import REPO_ROOT, BenchResult

RESULTS_FORMAT = 1
ORDER = (
    "cli_latency",
    "registry",
    "overhead",
    "defaults",
    "precision",
    "memory",
    "memory_scale",
    "efficiency",
    "methods",
    "tune_real",
    "tune_quickstart",
    "plan_accuracy",
    "generation_speed",
    "eval_speed",
    "multiprocess_speed",
    "checkpoint_speed",
    "tracking_overhead",
    "preference_speed",
    "ui_runs_page",
)

# README performance table: (benchmark, row keys, label). Several keys are shown side by side.
SUMMARY = (
    ("overhead", ("ratio",), "LoRA tokens/s, ftkit / plain TRL, identical settings (padded, same loss)"),
    (
        "defaults",
        ("ratio_chat",),
        "defaults vs plain TRL defaults, chatterbot-chat (same precision and loss)",
    ),
    ("defaults", ("ratio_gsm8k",), "defaults vs plain TRL defaults, GSM8K (same precision and loss)"),
    (
        "defaults",
        ("eval_base_chat", "eval_ftkit_chat", "eval_plain_chat"),
        "held-out loss, chatterbot-chat: base · ftkit · plain TRL",
    ),  # fmt: skip
    (
        "defaults",
        ("eval_base_gsm8k", "eval_ftkit_gsm8k", "eval_plain_gsm8k"),
        "held-out loss, GSM8K: base · ftkit · plain TRL",
    ),  # fmt: skip
    (
        "defaults",
        ("ratio_true", "ratio_true_gsm8k"),
        "ftkit defaults / TRL's true defaults (bf16 autocast, gradient checkpointing): chat · GSM8K",
    ),
    (
        "defaults",
        ("ratio_precision",),
        "ftkit bf16 / ftkit fp32 tokens/s (precision: auto's choice on this CPU)",
    ),
    ("memory", ("ratio_lora", "ratio_full"), "peak RSS ftkit / plain TRL: lora · full"),
    (
        "memory_scale",
        ("ratio", "ratio_checkpointing"),
        "peak RSS / TRL's true defaults, GSM8K chat 8 × 384: ftkit defaults · with checkpointing (target ≤ 0.5)",
    ),
    (
        "plan_accuracy",
        ("memory_lora", "memory_full"),
        "`ftkit plan` predicted / measured peak memory: lora · full (target 0.75–1.25)",
    ),
    (
        "plan_accuracy",
        ("time_lora", "time_full"),
        "`ftkit plan` predicted / measured training time: lora · full (target 0.70–1.30)",
    ),
    (
        "generation_speed",
        ("ratio_loop", "ratio_plain"),
        "batched generation rows/s, ftkit / one row at a time · ftkit / plain `model.generate`",
    ),
    (
        "eval_speed",
        ("loss_ratio_loop", "loss_ratio_plain"),
        "eval loss rows/s, ftkit `evaluate` (token batches, chunked loss) / one row at a time · ftkit / plain transformers (8-row batches, full logits)",
    ),
    (
        "eval_speed",
        ("generation_ratio_loop", "generation_ratio_plain"),
        "generation metrics rows/s (generate + score), ftkit / one row at a time · ftkit / plain transformers",
    ),
    (
        "multiprocess_speed",
        ("ratio",),
        "training tokens/s, 2 CPU processes / 1 process at the same global batch (cores split, not added)",
    ),
    (
        "checkpoint_speed",
        ("time_lora", "time_ia3", "time_prefix", "time_full"),
        "checkpoint write time (s, fsynced): lora · ia3 · prefix · full",
    ),
    (
        "checkpoint_speed",
        ("size_lora", "size_ia3", "size_prefix", "size_full"),
        "checkpoint size (MiB, weights + optimizer + state): lora · ia3 · prefix · full",
    ),
    (
        "tracking_overhead",
        ("ratio_mlflow", "ratio_tensorboard", "ratio_wandb"),
        "step time with / without tracking: mlflow (server) · tensorboard · wandb offline (target <= 1.02)",
    ),
    (
        "preference_speed",
        ("ratio",),
        "DPO (LoRA) tokens/s, ftkit / plain TRL `DPOTrainer`, identical settings (target >= 1.00)",
    ),
    (
        "preference_speed",
        ("loss_diff",),
        "DPO loss difference ftkit vs plain TRL, largest of the first 3 steps (target <= 1e-4)",
    ),
    (
        "preference_speed",
        ("rss_ratio",),
        "peak RSS ftkit DPO / ftkit SFT, LoRA, same settings (target <= 1.15)",
    ),
    (
        "preference_speed",
        ("rss_ratio_same_sequences",),
        "peak RSS ftkit DPO / ftkit SFT on the same sequences per step (chosen and rejected, twice the batch), LoRA "
        "(target <= 1.15)",
    ),
    (
        "cli_latency",
        ("help", "cmd_help"),
        "start-up / `trl --help`: `ftkit --help` · slowest `ftkit CMD --help`",
    ),
    ("registry", ("runs", "diff"), "`ftkit runs` · `ftkit diff` on a registry of 1,000 runs"),
    (
        "ui_runs_page",
        ("page",),
        "`ftkit ui` runs page (shell + `/api/runs`) on 1,000 runs, server time (target <= 1 s)",
    ),
)


# -- results files ----------------------------------------------------------------------------------------


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def results_record(
    result: BenchResult,
    *,
    preset: str,
    command: str,
    started_at: str,
    git_start: dict[str, Any],
    git_end: dict[str, Any],
    machine: dict[str, Any],
    packages: dict[str, str | None],
    load_start: list[float] | None,
    load_end: list[float] | None,
) -> dict[str, Any]:
    """One benchmark's results file: its rows plus what a reader needs to trust them — the commit measured and
    whether the tree was clean at start and end, the machine (CPU model and features) and its load."""
    same_commit = git_start.get("commit") == git_end.get("commit")
    changed = sorted(set(git_start.get("changed", [])) | set(git_end.get("changed", [])))
    return {
        "format": RESULTS_FORMAT,
        "benchmark": result.name,
        "preset": preset,
        "command": command,
        "git": {
            "commit": git_start.get("commit"),
            "clean": bool(git_start.get("clean") and git_end.get("clean") and same_commit),
            "changed": changed,
            "commit_at_end": None if same_commit else git_end.get("commit"),
        },
        "started_at": started_at,
        "seconds": round(result.seconds, 1),
        "machine": machine,
        "load_average": {"start": load_start, "end": load_end},
        "packages": packages,
        **result.to_dict(),
    }


def write_results_file(record: dict[str, Any], results_dir: Path) -> Path:
    """results_dir/<benchmark>.json, replacing the previous run of that benchmark (git keeps the history)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{record['benchmark']}.json"
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return path


def load_results(results_dir: Path) -> dict[str, dict[str, Any]]:
    """Every results file in results_dir, by benchmark name."""
    records = {}
    for path in sorted(results_dir.glob("*.json")):
        record = json.loads(path.read_text())
        if record.get("format") == RESULTS_FORMAT and record.get("benchmark"):
            records[record["benchmark"]] = record
    return records


# -- formatting -------------------------------------------------------------------------------------------


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if unit in ("x", "fraction", "nats"):
        return f"{value:.3f}"
    magnitude = abs(value)
    if magnitude >= 1e9:
        return f"{value / 1e9:.2f} G"
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def provenance(record: dict[str, Any]) -> str:
    """`commit abc1234 (clean tree)`, or a warning that the figures belong to no commit."""
    git = record["git"]
    commit = (git.get("commit") or "unknown")[:7]
    if git.get("clean"):
        return f"commit {commit} (clean tree)"
    moved = f", HEAD moved to {git['commit_at_end'][:7]} during the run" if git.get("commit_at_end") else ""
    changed = git.get("changed") or []
    listed = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    return f"commit {commit} **with uncommitted changes** ({listed or 'none listed'}{moved})"


def _load(values: list[float] | None) -> str:
    return ", ".join(f"{value:.2f}" for value in values) if values else "unknown"


def machine_line(machine: dict[str, Any]) -> str:
    flags = machine.get("cpu_flags") or {}
    gpus = ", ".join(f"{gpu['name']} ({gpu['memory']})" for gpu in machine.get("gpus") or []) or "none"
    return (
        f"{machine['cpu']}, {machine['usable_cores']} usable cores of {machine['cores']}, "
        f"{machine.get('memory_gib')} GiB RAM, GPU {gpus}; CPU features: "
        f"{' '.join(flags.get('present') or []) or 'none listed'} (native bf16: "
        f"{' '.join(flags.get('native_bf16') or []) or 'no'})"
    )


def _rows_by_key(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["key"]: row for row in record.get("rows", []) if row.get("key")}


# -- LATEST.md --------------------------------------------------------------------------------------------


def render_latest(records: dict[str, dict[str, Any]], preset: str, results_rel: str) -> str:
    """Every row of every results file, one section per benchmark with its provenance."""
    lines = [
        f"# ftkit benchmarks — preset `{preset}`",
        "",
        f"Generated by `python -m benchmarks --report` from the results files in `{results_rel}/`; do not edit.",
        "Every value is the median of N repetitions with min and max; a ratio pairs the two sides of one",
        "repetition, and the sides run alternately (A B, then B A).",
    ]
    if not records:
        lines += ["", f"No results yet: run `python -m benchmarks --preset {preset}`."]
    for name in sorted(records, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n)):
        record = records[name]
        load = record.get("load_average") or {}
        packages = record.get("packages") or {}
        lines += [
            "",
            f"## {name}",
            "",
            f"- command: `{record['command']}` ({record['seconds']:.0f} s)",
            f"- measured: {provenance(record)}, started {record['started_at']}",
            f"- machine: {machine_line(record['machine'])}",
            f"- load average (1, 5, 15 min): at start {_load(load.get('start'))}; at end {_load(load.get('end'))}",
            "- packages: " + ", ".join(f"{key} {value}" for key, value in packages.items() if value),
        ]
        if record.get("rows"):
            lines += [
                "",
                "| measurement | median | min | max | N | unit | target |",
                "|---|---:|---:|---:|---:|---|---|",
            ]
        for row in record.get("rows", []):
            stat = row["stat"]
            target = row["target"] + (f" ({row['status']})" if row["status"] else "")
            label = row["name"] + (f" — {row['note']}" if row["note"] else "")
            values = [fmt(stat[key], row["unit"]) for key in ("median", "min", "max")]
            lines.append(
                f"| {cell(label)} | {' | '.join(values)} | {stat['n']} | {row['unit']} | {cell(target)} |"
            )
        if record.get("error"):
            lines += ["", f"**Error**: {cell(record['error'])}"]
        if record.get("notes"):
            lines += [""] + [f"- {note}" for note in record["notes"]]
    return "\n".join(lines) + "\n"


# -- README tables ----------------------------------------------------------------------------------------


def summary_value(rows: list[dict[str, Any]]) -> str:
    """`0.990× (0.970–1.010, N=5)` for one row; medians joined by ` · ` for several."""
    if len(rows) == 1:
        row, stat = rows[0], rows[0]["stat"]
        suffix = "×" if row["unit"] == "x" else f" {row['unit']}"
        if stat["median"] is None:
            return "not measured"
        spread = f"{fmt(stat['min'], row['unit'])}–{fmt(stat['max'], row['unit'])}, " if stat["n"] > 1 else ""
        return f"{fmt(stat['median'], row['unit'])}{suffix} ({spread}N={stat['n']})"
    medians = " · ".join(fmt(row["stat"]["median"], row["unit"]) for row in rows)
    counts = sorted({row["stat"]["n"] for row in rows})
    unit = "×" if rows[0]["unit"] == "x" else f" {rows[0]['unit']}"
    return f"{medians}{unit} (medians, N={'/'.join(str(n) for n in counts)})"


def performance_table(records: dict[str, dict[str, Any]], results_rel: str) -> str:
    lines = ["| measurement | median (min–max, N) | results file |", "|---|---|---|"]
    for benchmark, keys, label in SUMMARY:
        record = records.get(benchmark)
        rows = [_rows_by_key(record).get(key) for key in keys] if record else []
        if not record or any(row is None for row in rows):
            lines.append(f"| {label} | not measured: `python -m benchmarks --only {benchmark}` | — |")
            continue
        source = f"[{benchmark}.json]({results_rel}/{benchmark}.json), {provenance(record)}"
        lines.append(f"| {label} | {summary_value(rows)} | {source} |")
    machines = sorted({machine_line(record["machine"]) for record in records.values()})
    lines += ["", "Measured on " + "; and on ".join(machines) + "." if machines else "No results yet."]
    return "\n".join(lines)


def _size(num_bytes: int | None) -> str:
    if num_bytes is None:
        return "—"
    return f"{num_bytes / 2**20:.1f} MB" if num_bytes >= 2**20 else f"{num_bytes / 2**10:.0f} KB"


def methods_table(records: dict[str, dict[str, Any]], results_rel: str) -> str:
    record = records.get("methods")
    if not record or not record.get("details", {}).get("methods"):
        return "No results file yet: run `python -m benchmarks --preset small --only methods`."
    meta = record["details"]["settings"]
    lines = [
        f"Each method's `recipes/<method>.yaml` on SmolLM2-135M-Instruct: {meta['steps']} steps, batch "
        f"{meta['batch_size']}, max_seq_len {meta['max_seq_len']}, {meta['train_rows']} train / "
        f"{meta['eval_rows']} held-out distinct chatterbot-chat conversations, {meta['threads']} torch thread(s) "
        f"per run. From [methods.json]({results_rel}/methods.json), {provenance(record)}, "
        f"`{record['command']}`.",
        "",
        "| method | lr | precision | trainable params | % | peak RSS | train tok/s | eval loss before → after | saved |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in record["details"]["methods"]:
        if r.get("status") != "succeeded":
            lines.append(f"| {r['method']} | {r.get('status')}: {cell(r.get('error'))} | | | | | | | |")
            continue
        before, after = r.get("eval_loss_before"), r.get("eval_loss_after")
        lines.append(
            f"| {r['method']} | {r['learning_rate']:g} | {r.get('precision') or '—'} | "
            f"{r['trainable_params']:,} | {100 * (r['trainable_fraction'] or 0):.3g}% | "
            f"{fmt(r.get('peak_rss_mb'))} MB | {fmt(r.get('tokens_per_sec'))} | "
            f"{fmt(before, 'nats')} → {fmt(after, 'nats')} | {_size(r.get('saved_bytes'))} |"
        )
    return "\n".join(lines)


def replace_section(text: str, name: str, body: str) -> str:
    """Replace what lies between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` (markers kept)."""
    pattern = re.compile(rf"(<!-- bench:{name} -->\n)(?:.*?\n)?(<!-- /bench:{name} -->)", re.DOTALL)
    if not pattern.search(text):
        raise ValueError(
            f"no `<!-- bench:{name} -->` ... `<!-- /bench:{name} -->` markers (each on its own line)"
        )
    return pattern.sub(
        lambda match: match.group(1) + body.rstrip("\n") + "\n" + match.group(2), text, count=1
    )


def regenerate(
    results_dir: Path, preset: str, latest_md: Path, readme: Path | None, root: Path = REPO_ROOT
) -> list[Path]:
    """Rewrite LATEST.md (and, when given, the README's bench:performance and bench:methods sections). Links to
    results files are relative to `root` (the README's folder)."""
    root = readme.parent if readme else root
    try:
        results_rel = results_dir.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        results_rel = results_dir.as_posix()
    records = load_results(results_dir)
    latest_md.write_text(render_latest(records, preset, results_rel))
    written = [latest_md]
    if readme is not None:
        text = readme.read_text()
        try:
            text = replace_section(text, "performance", performance_table(records, results_rel))
            text = replace_section(text, "methods", methods_table(records, results_rel))
        except ValueError as error:
            raise ValueError(f"{readme}: {error}") from None
        readme.write_text(text)
        written.append(readme)
    return written
