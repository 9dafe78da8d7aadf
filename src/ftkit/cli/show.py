"""`ftkit show RUN`: everything about one run, with its lineage (parent and children) and its evaluation records
(`ftkit eval`: data, rows, fingerprint, metrics of the tuned model beside the base model's) and its exports
(`ftkit export`: mode, dtype, folder, files)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ftkit.cli._options import json_option, registry_option
from ftkit.cli._output import Output
from ftkit.cli._runs_common import VERDICT_STYLE, open_existing, status_text
from ftkit.cli.formatting import fmt, fmt_delta, fmt_size
from ftkit.cli.table_fit import Cell, Column
from ftkit.registry import views

# Key-value tables: the key column stays whole, values are cut in the middle (paths keep both ends).
_FACTS = [Column(key=True), Column(min_width=16, cut="middle")]


def _hash(value: str | None) -> Cell:
    return Cell(value, (value or "—")[:12])


def _state(state: str) -> Cell:
    from rich.text import Text

    return Cell(state, Text(state, style="" if state == "ok" else "bold red"))


def _checkpoint(checkpoint: dict | None) -> str | None:
    """`step N: PATH` of a run's last complete checkpoint."""
    return f"step {checkpoint.get('step')}: {checkpoint.get('path')}" if checkpoint else None


def _tracked(name: str, facts: dict) -> str:
    """Where a tracker holds the run, in one line (`ftkit run`'s `tracking:`)."""
    if name == "mlflow":
        where = facts.get("url") or facts.get("tracking_uri")
        return f"run {facts.get('run_id')} in experiment {facts.get('experiment')!r} at {where}"
    if name == "tensorboard":
        return f"tensorboard --logdir {facts.get('log_dir')}"
    if name == "wandb":
        where = facts.get("url") or f"{facts.get('mode')} files in {facts.get('dir')}"
        return f"run {facts.get('run_id')} in project {facts.get('project')!r}: {where}"
    return ", ".join(f"{key} {value}" for key, value in facts.items())


def show_command(
    run: str = typer.Argument(..., help="Run id, unique id prefix, name, tag, @latest or @latest~N."),
    json_mode: bool = json_option(),
    registry: Path | None = registry_option(),
    web: bool = typer.Option(
        False,
        "--web",
        help="Open the run's page in `ftkit ui` (starting a server in the background if needed).",
    ),
) -> None:
    """Show one run: status, recipe facts, metrics, data, environment, artifacts and lineage."""
    out = Output(json_mode)
    reg = open_existing(registry)
    with reg:
        run_id = reg.resolve(run)
        if web:
            from ftkit.cli._web import open_page

            open_page(out, reg.root, f"/runs/{run_id}")
            return
        payload = views.run_view(reg, run_id)
    loaded, info, lineage = payload, payload["run"], payload["lineage"]
    stored = [a["stored"] for a in payload["artifacts"]]
    evals, exported, overrides = payload["evals"], payload["exports"], payload["overrides"]
    out.emit(payload)

    env = loaded["env"] or {}
    code = env.get("code") or {}
    parent = lineage["parent"]
    commit = code.get("commit")
    facts = [
        ["status", status_text(info.get("status"))],
        ["method", info.get("method")],
        ["model", info.get("model")],
        ["task", info.get("task")],
        ["started", info.get("started_at")],
        ["duration", Cell(info.get("duration_s"), f"{fmt(info.get('duration_s'))} s")],
        ["config hash", Cell(info.get("config_hash"), (info.get("config_hash") or "—")[:16])],
        ["overrides", " ".join(f"--set {item}" for item in overrides) or None],
        ["tags", ", ".join(loaded["tags"]) or None],
        ["parent", f"{parent['id']} ({parent['name'] or 'not in this registry'})" if parent else None],
        ["children", ", ".join(f"{c['id']} ({c['name']})" for c in lineage["children"]) or None],
        ["output", info.get("output_dir")],
        ["code", Cell(commit, f"{(commit or '—')[:12]}{' (dirty)' if code.get('dirty') else ''}")],
        ["seed", env.get("seed")],
    ]
    if info.get("status") == "lost":
        facts.append(["lost", (info.get("lost") or {}).get("reason")])
    if info.get("last_checkpoint"):
        facts.append(["last checkpoint", _checkpoint(info["last_checkpoint"])])
    if info.get("start_checkpoint"):  # a fork (`ftkit rerun --from-checkpoint`): the weights it started from
        start = info["start_checkpoint"]
        facts.append(["started from", f"run {start.get('run')} {_checkpoint(start)}"])
    if info.get("model_run"):  # `model: run:<ref>`: trained from that run's weights (ftkit.model_from_run)
        start = info["model_run"]
        merged = f"its {start.get('method')} adapter merged into {start.get('base_model')}"
        how = merged if start.get("merged") else f"its saved {start.get('method')} model"
        facts.append(["model from", f"run {start.get('run')}: {how}"])
    for name, tracked in (info.get("tracking") or {}).items():
        facts.append([name, _tracked(name, tracked if isinstance(tracked, dict) else {})])
    if info.get("error") and not out.is_terminal:
        facts.append(["error", info["error"]])
    out.table(f"Run {run_id} ({info.get('name') or ''})", _FACTS, facts)
    if info.get("error") and out.is_terminal:  # whole, wrapped: the one fact a failed run is opened for
        out.print(f"[red]error:[/red] {escape(str(info['error']))}")

    metrics = loaded["metrics"] or {}
    if metrics:
        out.table("Metrics", [Column("metric", key=True), "value"], sorted(metrics.items()))
    _curves_section(out, loaded.get("history") or [])
    data = loaded["data"] or {}
    data_rows = [
        [role, item.get("path"), item.get("rows"), _hash(item.get("sha256"))]
        for role, item in data.items()
        if isinstance(item, dict)
    ]
    if data_rows:
        out.table(
            "Data",
            [Column("role", key=True), Column("path", min_width=16, cut="middle"), "rows", "sha256"],
            data_rows,
        )
    packages = env.get("packages") or {}
    if packages or env.get("python"):
        env_rows = [["python", env.get("python")], ["platform", env.get("platform")]]
        env_rows += [[name, version or "absent"] for name, version in packages.items()]
        hardware = env.get("hardware") or {}
        if hardware:
            env_rows.append(["hardware", Cell(hardware, fmt(hardware))])
        out.table("Environment", _FACTS, env_rows)
    artifacts = loaded["artifacts"] or []
    if artifacts:
        shown = artifacts if not out.is_terminal else artifacts[:20]
        rows = [
            [a["name"], Cell(a.get("size"), fmt_size(a.get("size"))), _hash(a["sha256"]), _state(state)]
            for a, state in zip(shown, stored, strict=False)
        ]
        if len(artifacts) > len(shown):
            rows.append([f"… {len(artifacts) - len(shown)} more (--json lists them all)", None, None, None])
        total = sum(a.get("size") or 0 for a in artifacts)
        out.table(
            f"Artifacts ({fmt_size(total)} in {reg.root / 'objects'})",
            [Column("name", min_width=16, cut="start"), "size", "sha256", Column("stored", key=True)],
            rows,
        )
        bad = sum(state != "ok" for state in stored)
        if bad:
            out.warn(
                f"{bad} of {len(artifacts)} artifact(s) of run {run_id} are missing or changed in the weights "
                f"store; `ftkit registry verify --registry {reg.root}` checks every file's sha256"
            )
    _evals_section(out, evals, run_id)
    _exports_section(out, exported, run_id)
    _answers_section(out, loaded.get("samples") or [], run_id)
    _review_section(out, loaded, run_id, registry)


def _curves_section(out: Output, history: list) -> None:
    """One sparkline per loss curve in the history: `train loss ▇▆▅▃▂▁ 2.31 → 0.84` (ASCII levels where the
    output cannot encode block characters)."""
    from ftkit.plot.sparkline import can_encode, sparkline
    from ftkit.review.series import fmt as fmt3
    from ftkit.review.series import points

    ascii_only = not can_encode(getattr(out.console.file, "encoding", None))
    lines = []
    for label, key in (("train loss", "loss"), ("eval loss", "eval_loss")):
        values = [value for _, value in points(history, key)]
        if values:
            arrow = "->" if ascii_only else "→"
            line = f"{label:<10} {sparkline(values, ascii_only=ascii_only)} {fmt3(values[0])} {arrow} {fmt3(values[-1])}"
            lines.append(line)
    if lines and out.is_terminal:
        out.print("")
    for line in lines:
        out.line(line)


_EVALS_SHOWN = 5  # newest records in a terminal; piped and --json list them all


def _evals_section(out: Output, records: list[dict], run_id: str) -> None:
    """One table per evaluation record, newest first: tuned vs base metrics with Δ; damaged records as warnings."""
    from rich.text import Text

    from ftkit.registry import diff as diffing
    from ftkit.registry.evals import when

    readable = [r for r in records if "damage" not in r]
    shown = readable[:_EVALS_SHOWN] if out.is_terminal else readable
    for record in shown:
        data = record.get("data") or {}
        title = (
            f"Evaluation {record['id']} on {data.get('name') or data.get('path')} ({fmt(data.get('rows'))} rows, "
            f"sha256 {str(data.get('sha256') or '—')[:12]}, {when(record) or '?'})"
            + (f", base {record['base']}" if record.get("base") else "")
        )
        rows = []
        for r in diffing.metric_rows(record.get("base_metrics") or {}, record.get("metrics") or {}):
            delta, _ = fmt_delta(r["delta"], r["delta_pct"])
            rows.append([r["metric"], r["b"], r["a"], Cell(r["delta"], Text(delta, style=VERDICT_STYLE.get(
                r["verdict"] or "", "")))])  # fmt: skip
        out.table(title, [Column("metric", key=True), "tuned", "base", "Δ"], rows)
    if len(readable) > len(shown):
        out.hint(
            f"… {len(readable) - len(shown)} older evaluation(s) of run {run_id} (--json lists them all)"
        )
    for record in records:
        if "damage" in record:
            files = ", ".join(d["file"] for d in record["damage"])
            out.warn(
                f"evaluation {record.get('id') or '?'} of run {run_id} is damaged: {files} cannot be read; "
                "`ftkit registry verify` lists the damage"
            )


def _exports_section(out: Output, records: list[dict], run_id: str) -> None:
    """One row per `ftkit export` of the run, newest first: mode, dtype, folder, files, when."""
    readable = [r for r in records if "damage" not in r]
    if readable:
        rows = [
            [
                r["id"],
                r.get("mode"),
                r.get("dtype"),
                r.get("path"),
                len(r.get("files") or []),
                fmt_size(sum(f.get("size") or 0 for f in r.get("files") or [] if isinstance(f, dict))),
                str(r.get("created_at") or "?")[:16].replace("T", " "),
            ]  # fmt: skip
            for r in readable
        ]
        out.table("Exports", [Column("id", key=True), "mode", "dtype", Column("path", cut="start"), "files",
                              "size", "when"], rows)  # fmt: skip
    for record in records:
        if "damage" in record:
            files = ", ".join(d["file"] for d in record["damage"])
            out.warn(
                f"export record {record.get('id') or '?'} of run {run_id} is damaged: {files} cannot be read"
            )


def _answers_section(out: Output, samples: list[dict], run_id: str) -> None:
    """The fixed prompts' answers (base and tuned) and how many eval samples the run stored (samples.jsonl)."""
    from ftkit.cli._answers import one_line
    from ftkit.registry.answers import prompt_label

    prompts = [row for row in samples if isinstance(row, dict) and row.get("kind") == "prompt"]
    if prompts:
        rows = [
            [one_line(prompt_label(row.get("prompt"))), one_line(row.get("base")), one_line(row.get("tuned"))]
            for row in prompts
        ]
        columns = [
            Column("prompt", min_width=12),
            Column("base", min_width=12),
            Column("tuned", min_width=12),
        ]
        out.table("Answers to the fixed prompts", columns, rows)
    generated = sum(isinstance(row, dict) and row.get("kind") == "eval" for row in samples)
    if generated:
        out.hint(
            f"{generated} generated eval sample(s) stored: `ftkit show {run_id} --json` lists them, "
            "`ftkit diff A B` compares them"
        )


def _review_section(out: Output, loaded: dict, run_id: str, registry: Path | None) -> None:
    """The run's stored review in short (findings and their commands, or its healthy line)."""
    from ftkit.cli.review import registry_flag
    from ftkit.review import Review, render_summary

    if out.is_terminal:
        out.print("")  # its own block after the tables, not a line of the last one
    if isinstance(loaded.get("review"), dict):
        render_summary(Review.from_dict(loaded["review"]), out, registry_flag(registry))
    else:
        out.hint(f"no stored review (recorded before reviews existed): `ftkit review {run_id}` computes one")


def register(app: typer.Typer) -> None:
    """Add `ftkit show`."""
    app.command("show")(show_command)
