"""`ftkit diff A B`: what changed between two runs — config, metrics with direction-aware deltas, provenance.

`--md` renders Markdown for a pull-request comment; `--fail-on 'eval.loss>+0.02'` makes it a CI gate (exit 1 when
B regresses past the bound; a bad expression exits 2). Evaluation records (`ftkit eval`) of A and B on the same
data fingerprint line up as `evals.<data-stem>.<metric>` rows, which gates can name too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from ftkit.cli._answers import answers_markdown, show_answers
from ftkit.cli._options import json_option, registry_option
from ftkit.cli._output import Output
from ftkit.cli._runs_common import VERDICT_STYLE, open_existing
from ftkit.cli.formatting import fmt, fmt_delta
from ftkit.cli.table_fit import Cell, Column
from ftkit.errors import GateFailedError
from ftkit.registry import diff as diffing
from ftkit.registry import views

_HEADER_ROWS = (
    ("id", "id"),
    ("name", "name"),
    ("status", "status"),
    ("method", "method"),
    ("model", "model"),
)


def _commit(side: dict) -> str:
    commit = (side.get("code_commit") or "—")[:12]
    return commit + (" (dirty)" if side.get("code_dirty") else "")


def render_human(out: Output, payload: dict, include_all: bool) -> None:
    """Header, Config, Metrics and Provenance as tables (plain tab-separated ones when piped)."""
    from rich.text import Text

    a, b = payload["a"], payload["b"]
    sides = [
        Column(key=True),
        Column("A", min_width=16, cut="middle"),
        Column("B", min_width=16, cut="middle"),
    ]
    header = [[label, a.get(key), b.get(key)] for label, key in _HEADER_ROWS]
    header.append(
        ["code commit", Cell(a.get("code_commit"), _commit(a)), Cell(b.get("code_commit"), _commit(b))]
    )
    out.table("Runs", sides, header)
    config = payload["config"]
    if config:
        title = "Config (all keys)" if include_all else "Config (changed keys)"
        rows = [
            [
                r["key"],
                r["a"],
                Cell(r["b"], Text(fmt(r["b"]), style="bold" if r["changed"] and include_all else "")),
            ]
            for r in config
        ]
        columns = [
            Column("key", min_width=20, cut="middle"),
            Column("A", cut="middle"),
            Column("B", cut="middle"),
        ]
        out.table(title, columns, rows)
    else:
        out.hint("Config: no changes (output paths and names are ignored; --all shows every key)")
    _metric_table(out, "Metrics", payload["metrics"])
    lined = (payload.get("evals") or {}).get("records") or []
    title = "Evaluations on the same data (" + ", ".join(f"{p['key']} = {p['data']}" for p in lined) + ")"
    _metric_table(out, title, (payload.get("evals") or {}).get("metrics") or [])
    show_answers(out, payload.get("answers") or {}, include_all)
    for warning in payload["provenance"]:
        if out.is_terminal:
            out.print(f"[yellow]provenance:[/yellow] {escape(warning)}")
        else:
            out.line(f"provenance: {warning}")


def _metric_table(out: Output, title: str, metrics: list[dict]) -> None:
    """Metric rows A, B, Δ, Δ% coloured by whether the change is better or worse."""
    from rich.text import Text

    if metrics:
        rows = []
        for r in metrics:
            delta, pct = fmt_delta(r["delta"], r["delta_pct"])
            style = VERDICT_STYLE.get(r["verdict"] or "", "")
            rows.append(
                [
                    r["metric"],
                    r["a"],
                    r["b"],
                    Cell(r["delta"], Text(delta, style=style)),
                    Cell(r["delta_pct"], Text(pct, style=style)),
                ]
            )
        out.table(title, [Column("metric", key=True), "A", "B", "Δ", "Δ%"], rows)


def _md_cell(value: Any) -> str:
    return fmt(value).replace("|", "\\|").replace("\n", " ")


_MD_MARK = {"better": " 🟢", "worse": " 🔴"}


def render_markdown(payload: dict, include_all: bool, gates: list[dict]) -> str:
    """A Markdown report for a pull-request comment."""
    a, b = payload["a"], payload["b"]
    lines = [
        f"### ftkit diff: `{a['id']}` ({a.get('name')}) → `{b['id']}` ({b.get('name')})",
        "",
        "| | A | B |",
        "|---|---|---|",
    ]
    for label, key in _HEADER_ROWS[2:]:
        lines.append(f"| {label} | {_md_cell(a.get(key))} | {_md_cell(b.get(key))} |")
    lines.append(f"| code commit | {_md_cell(_commit(a))} | {_md_cell(_commit(b))} |")
    lines += ["", "#### Config" + (" (all keys)" if include_all else " (changed keys)"), ""]
    if payload["config"]:
        lines += ["| key | A | B |", "|---|---|---|"]
        for r in payload["config"]:
            b_cell = f"**{_md_cell(r['b'])}**" if r["changed"] and include_all else _md_cell(r["b"])
            lines.append(f"| `{r['key']}` | {_md_cell(r['a'])} | {b_cell} |")
    else:
        lines.append("No changes.")
    lines += ["", "#### Metrics", ""]
    if payload["metrics"]:
        lines += ["| metric | A | B | Δ | Δ% |", "|---|---:|---:|---:|---:|"]
        for r in payload["metrics"]:
            delta, pct = fmt_delta(r["delta"], r["delta_pct"])
            mark = _MD_MARK.get(r["verdict"] or "", "")
            lines.append(
                f"| `{r['metric']}` | {_md_cell(r['a'])} | {_md_cell(r['b'])} | {delta}{mark} | {pct} |"
            )
    else:
        lines.append("No metrics recorded.")
    evals = (payload.get("evals") or {}).get("metrics") or []
    if evals:
        lines += [
            "",
            "#### Evaluations on the same data",
            "",
            "| metric | A | B | Δ | Δ% |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in evals:
            delta, pct = fmt_delta(r["delta"], r["delta_pct"])
            mark = _MD_MARK.get(r["verdict"] or "", "")
            lines.append(
                f"| `{r['metric']}` | {_md_cell(r['a'])} | {_md_cell(r['b'])} | {delta}{mark} | {pct} |"
            )
    lines += answers_markdown(payload.get("answers") or {}, include_all)
    if payload["provenance"]:
        lines += ["", "#### Provenance", ""]
        lines += [f"- ⚠️ {w}" for w in payload["provenance"]]
    if gates:
        lines += ["", "#### Gates", ""]
        lines += [f"- {'❌' if g['failed'] else '✅'} `{g['expression']}`: {g['message']}" for g in gates]
    return "\n".join(lines) + "\n"


def diff_command(
    run_a: str = typer.Argument(
        ..., metavar="A", help="The baseline run (id, prefix, name, tag, @latest~1, ...)."
    ),
    run_b: str = typer.Argument(..., metavar="B", help="The run compared with it."),
    all_: bool = typer.Option(
        False, "--all", "-a", help="Show every config key and answer, not only the changed ones."
    ),
    markdown: bool = typer.Option(False, "--md", help="Print Markdown (for a pull-request comment)."),
    fail_on: list[str] = typer.Option(
        [],
        "--fail-on",
        help="CI gate, repeatable: exit 1 when B moves past the bound, e.g. 'eval.loss>+0.02', "
        "'eval.loss>+5%', 'eval.accuracy<-0.01', 'eval.accuracy<-2%', 'evals.test.exact_match<-0.05' (eval "
        "records on the same data).",
    ),
    json_mode: bool = json_option(),
    registry: Path | None = registry_option(),
    web: bool = typer.Option(
        False,
        "--web",
        help="Open the compare page in `ftkit ui` (starting a server in the background if needed).",
    ),
) -> None:
    """Compare two runs: changed config keys, metrics side by side with deltas, provenance differences."""
    gates = [
        diffing.parse_gate(expression) for expression in fail_on
    ]  # bad expressions exit 2 before any work
    out = Output(json_mode)
    reg = open_existing(registry)
    with reg:
        if web:
            from ftkit.cli._web import open_page

            open_page(out, reg.root, f"/compare?a={reg.resolve(run_a)}&b={reg.resolve(run_b)}")
            return
        a, b, lineup = views.load_pair(reg, run_a, run_b)
    payload = views.diff_payload(a, b, lineup, include_all=all_)
    gated_a, gated_b = {**a["metrics"], **lineup["a"]}, {**b["metrics"], **lineup["b"]}
    results = [gate.check(gated_a, gated_b) for gate in gates]
    payload["gates"] = results
    if markdown:
        payload["markdown"] = render_markdown(payload, all_, results)
    out.emit(payload)
    if markdown:
        out.print(payload["markdown"], markup=False, highlight=False)
    else:
        render_human(out, payload, all_)
        for result in results:
            mark = "[red]✗ gate[/red]" if result["failed"] else "[green]✓ gate[/green]"
            out.print(f"{mark} {escape(result['expression'])}: {escape(result['message'])}")
    failed = [r for r in results if r["failed"]]
    if failed:
        raise GateFailedError(
            f"{len(failed)} of {len(results)} gate(s) failed: B regressed beyond the bound",
            problems=[r["message"] for r in failed],
            hint="inspect the run with `ftkit show`, or loosen the bound if the change is intended",
        )


def register(app: typer.Typer) -> None:
    """Add `ftkit diff`."""
    app.command("diff")(diff_command)
