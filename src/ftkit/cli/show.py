"""`ftkit show RUN`: everything about one run, with its lineage (parent and children)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ftkit.cli._output import Output
from ftkit.cli._runs_common import (
    fmt,
    json_option,
    open_existing,
    registry_option,
    status_markup,
)


def _size(n: int | None) -> str:
    if n is None:
        return "—"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def show_command(
    run: str = typer.Argument(..., help="Run id, unique id prefix, name, tag, @latest or @latest~N."),
    json_mode: bool = json_option(),
    registry: Path | None = registry_option(),
) -> None:
    """Show one run: status, recipe facts, metrics, data, environment, artifacts and lineage."""
    out = Output(json_mode)
    reg = open_existing(registry)
    with reg:
        run_id = reg.resolve(run)
        loaded = reg.load_run(run_id)
        summaries = {s["id"]: s for s in reg.summaries()}

    def brief(rid: str | None) -> dict | None:
        if rid is None:
            return None
        s = summaries.get(rid, {})
        return {"id": rid, "name": s.get("name"), "status": s.get("status"), "in_registry": rid in summaries}

    info = loaded["run"]
    lineage = {"parent": brief(info.get("parent")), "children": [brief(c) for c in loaded["children"]]}
    payload = dict(loaded)
    payload["lineage"] = lineage
    overrides = list(info.get("overrides") or [])
    payload["overrides"] = overrides
    payload["registry"] = str(reg.root)
    out.emit(payload)

    env = loaded["env"] or {}
    code = env.get("code") or {}
    parent = lineage["parent"]
    facts = [
        ["status", status_markup(info.get("status"))],
        ["method", escape(str(info.get("method")))],
        ["model", escape(str(info.get("model")))],
        ["task", escape(str(info.get("task")))],
        ["started", escape(str(info.get("started_at")))],
        ["duration", f"{fmt(info.get('duration_s'))} s" if info.get("duration_s") is not None else "—"],
        ["config hash", escape((info.get("config_hash") or "—")[:16])],
        ["overrides", escape(" ".join(f"--set {item}" for item in overrides) or "—")],
        ["tags", escape(", ".join(loaded["tags"]) or "—")],
        [
            "parent",
            escape(f"{parent['id']} ({parent['name'] or 'not in this registry'})") if parent else "—",
        ],
        ["children", escape(", ".join(f"{c['id']} ({c['name']})" for c in lineage["children"]) or "—")],
        ["output", escape(str(info.get("output_dir") or "—"))],
        [
            "code",
            escape(f"{(code.get('commit') or '—')[:12]}{' (dirty)' if code.get('dirty') else ''}"),
        ],
        ["seed", escape(str(env.get("seed", "—")))],
    ]
    if info.get("error"):
        facts.append(["error", f"[red]{escape(str(info['error']))}[/red]"])
    out.table(f"Run {escape(run_id)} ({escape(info.get('name') or '')})", ["", ""], facts)

    metrics = loaded["metrics"] or {}
    if metrics:
        out.table("Metrics", ["metric", "value"], [[escape(k), fmt(v)] for k, v in sorted(metrics.items())])
    data = loaded["data"] or {}
    data_rows = [
        [
            escape(role),
            escape(str(item.get("path", "—"))),
            fmt(item.get("rows")),
            escape(str(item.get("sha256", ""))[:12]),
        ]
        for role, item in data.items()
        if isinstance(item, dict)
    ]
    if data_rows:
        out.table("Data", ["role", "path", "rows", "sha256"], data_rows)
    packages = env.get("packages") or {}
    if packages or env.get("python"):
        env_rows = [
            ["python", escape(str(env.get("python")))],
            ["platform", escape(str(env.get("platform")))],
        ]
        env_rows += [[escape(k), escape(str(v or "absent"))] for k, v in packages.items()]
        hardware = env.get("hardware") or {}
        if hardware:
            env_rows.append(["hardware", escape(fmt(hardware))])
        out.table("Environment", ["", ""], env_rows)
    artifacts = loaded["artifacts"] or []
    if artifacts:
        rows = [[escape(a["name"]), _size(a.get("size")), escape(a["sha256"][:12])] for a in artifacts[:20]]
        if len(artifacts) > 20:
            rows.append([f"… {len(artifacts) - 20} more", "", ""])
        total = sum(a.get("size") or 0 for a in artifacts)
        out.table(
            f"Artifacts ({_size(total)} in {escape(str(reg.root / 'objects'))})",
            ["name", "size", "sha256"],
            rows,
        )


def register(app: typer.Typer) -> None:
    """Add `ftkit show`."""
    app.command("show")(show_command)
