"""`ftkit data check FILE`: find what is wrong with a data file, where, before any compute is spent.

Exit 0 when the file has no errors (warnings allowed), 1 with warnings under --strict, 2 with errors. With
--eval, the eval file is checked too and its rows that repeat train rows are a warning. No torch or transformers
import unless --model is given (the tokenizer is loaded only then).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ftkit.cli._options import json_option
from ftkit.cli._output import Output
from ftkit.cli.table_fit import Cell, Column
from ftkit.errors import UsageError

MAX_SHOWN = 20
PREVIEW_CHARS = 1500
BAR_WIDTH = 40

data_app = typer.Typer(
    help="Check data files before training.",
    no_args_is_help=True,
    rich_markup_mode=None,
    add_completion=False,
)


def _parse_columns(items: list[str]) -> dict[str, str]:
    columns: dict[str, str] = {}
    for item in items:
        for part in item.split(","):
            if not part.strip():
                continue
            name, sep, source = part.partition("=")
            if not sep or not name.strip() or not source.strip():
                raise UsageError(
                    f"--columns expects FIELD=COLUMN, got {part!r}",
                    hint="e.g. --columns text=SMS --columns label=Label (the format's field = your column)",
                )
            columns[name.strip()] = source.strip()
    return columns


def check_command(
    file: str = typer.Argument(
        ..., help="Data file (.jsonl .json .csv .tsv .parquet), datasets folder or Hub id."
    ),
    format_: str = typer.Option(
        "auto", "--format", help="text, completion, instruction, chat, classification, preference or auto."
    ),
    columns: list[str] = typer.Option(
        [], "--columns", help="Map a format field to your column, FIELD=COLUMN (repeatable), e.g. text=SMS."
    ),
    labels: str | None = typer.Option(
        None, "--labels", help="Declared classification labels, comma-separated; others are errors."
    ),
    model: str | None = typer.Option(
        None, "--model", help="Model (folder, hub id or .gguf) whose tokenizer counts tokens exactly."
    ),
    max_seq_len: int = typer.Option(512, "--max-seq-len", min=1, help="Rows longer than this are truncated."),
    train_on: str = typer.Option("completion", "--train-on", help="completion (default) or all."),
    eval_file: str | None = typer.Option(
        None, "--eval", help="Eval file: checked too, and its rows that repeat train rows are reported."
    ),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when there are warnings."),
    json_mode: bool = json_option(),
) -> None:
    """Check a data file: located errors, warnings, token statistics and what the model trains on."""
    from ftkit.data.check import check_file
    from ftkit.data.preview import preview

    output = Output(json_mode)
    if train_on not in ("completion", "all"):
        raise UsageError(f"--train-on must be completion or all, got {train_on!r}")
    mapping = _parse_columns(columns)
    declared = [label for label in (labels or "").split(",") if label.strip()] or None
    source: str | Path = file if not Path(file).exists() else Path(file)
    tokenizer = _tokenizer(model) if model else None
    report = check_file(
        source,
        format_,
        mapping,
        labels=declared,
        tokenizer=tokenizer,
        max_seq_len=max_seq_len,
        train_on=train_on,
    )
    if report.examples:
        try:
            report.preview = preview(report.examples[0], tokenizer, max_seq_len, train_on)
        except Exception as error:  # a preview is a courtesy; its failure is reported, never raised
            report.preview = {"error": f"{type(error).__name__}: {error}"}
    if model:
        report.stats["model"] = model
    reports = [report]
    overlap = None
    if eval_file is not None:
        from ftkit.data.overlap import find_overlap

        eval_source: str | Path = eval_file if not Path(eval_file).exists() else Path(eval_file)
        eval_fmt = report.format if report.format != "unknown" else format_
        reports.append(
            check_file(
                eval_source,
                eval_fmt,
                report.columns or mapping,
                labels=declared,
                tokenizer=tokenizer,
                max_seq_len=max_seq_len,
                train_on=train_on,
            )
        )
        if eval_fmt != format_:
            reports[1].format_reason = f"the train file's format: {report.format_reason}"
        overlap = find_overlap(report.examples, reports[1].examples)
    overlap_warning = bool(overlap and overlap.normalized_rows)
    code = max(max(r.exit_code(strict) for r in reports), 1 if strict and overlap_warning else 0)
    if json_mode:
        payload = {**report.to_dict(), "exit_code": code}
        if overlap is not None:
            payload["eval"] = reports[1].to_dict()
            payload["overlap"] = overlap.to_dict()
        output.emit(payload)
    else:
        for checked in reports:
            _show(output, checked)
        if overlap is not None:
            _show_overlap(output, overlap)
        _verdict(output, reports, overlap_warning, code, strict)
    if code:
        raise typer.Exit(code)


def _tokenizer(model: str) -> Any:
    from ftkit.train.model_loading import load_tokenizer

    return load_tokenizer(model, Path.cwd())


# -- human output ---------------------------------------------------------------------------------------------


def _show(output: Output, report: Any) -> None:
    from rich.markup import escape

    mapped = ", ".join(f"{field} ← {column}" for field, column in report.columns.items())
    output.note(
        f"[bold]{escape(report.path)}[/bold]: {report.format} format ({escape(report.format_reason)})"
        + (f"; columns {escape(mapped)}" if mapped else "")
    )
    problems = report.problems
    for problem in problems[:MAX_SHOWN]:
        colour = "red" if problem.severity == "error" else "yellow"
        output.note(f"  [{colour}]{problem.severity}[/{colour}] {escape(str(problem))}")
    if len(problems) > MAX_SHOWN:
        output.note(f"  … and {len(problems) - MAX_SHOWN} more (--json lists them all)")
    stats = report.stats
    if "tokens" in stats:
        _show_stats(output, stats)
        _show_histogram(output, stats)
    if "preference" in stats:
        _show_pair_lengths(output, stats)
    if "labels" in stats:
        output.table(
            "Labels (id: label, rows)",
            ["id", Column("label", min_width=16, cut="middle"), "rows"],
            [[stats["label_ids"][label], label, Cell(n, f"{n:,}")] for label, n in stats["labels"].items()],
        )
    if report.preview and "segments" in report.preview:
        _show_preview(output, report.preview)


def _show_overlap(output: Output, overlap: Any) -> None:
    from rich.markup import escape

    if not overlap.normalized_rows:
        output.note(f"[green]✓[/green] eval overlap: {escape(overlap.describe())}")
        return
    output.note(
        f"  [yellow]warning[/yellow] eval overlap: {overlap.normalized_rows:,} of {overlap.eval_rows:,} eval rows "
        f"repeat a train row ({overlap.exact_rows:,} exactly, {overlap.normalized_rows - overlap.exact_rows:,} "
        "after normalising whitespace and case); eval scores on them measure memory, not generalisation"
    )
    output.table(
        "Eval rows that repeat train rows"
        + (" (first ones)" if overlap.normalized_rows > len(overlap.matches) else ""),
        [Column("eval line", key=True), Column("train line", key=True), "match"],
        [[m.eval_line, m.train_line, "exact" if m.exact else "normalised"] for m in overlap.matches],
    )


def _verdict(output: Output, reports: list[Any], overlap_warning: bool, code: int, strict: bool) -> None:
    errors = sum(len(report.errors) for report in reports)
    warnings = sum(len(report.warnings) for report in reports) + overlap_warning
    if code == 2:
        output.note(
            f"[red]✗[/red] {errors:,} error{'s' if errors != 1 else ''}, {warnings:,} warning"
            f"{'s' if warnings != 1 else ''}: fix the errors before training (ftkit run refuses this file"
            ", unless the recipe sets data.skip_invalid_rows: true)"
        )
    elif warnings:
        verdict = "[yellow]✗[/yellow]" if strict else "[green]✓[/green]"
        output.note(f"{verdict} no errors, {warnings:,} warning{'s' if warnings != 1 else ''}")
    else:
        output.note("[green]✓[/green] no problems found")


def _show_stats(output: Output, stats: dict[str, Any]) -> None:
    est = " (est.)" if stats["tokens_estimated"] else ""
    length = stats["length"]
    minutes = stats["time_per_epoch_s"] / 60
    rows = [
        ["rows (valid / read)", f"{stats['valid_rows']:,} / {stats['rows']:,}"],
        [f"tokens{est}", f"{stats['tokens']:,}  ({stats['token_count']})"],
        [f"trained tokens{est}", f"{stats['trained_tokens']:,}  (train_on: {stats['train_on']})"],
        [
            f"tokens per row{est}",
            f"min {length['min']:,} · median {length['median']:,} · mean {length['mean']:,} · "
            f"p95 {length['p95']:,} · max {length['max']:,}",
        ],
        [
            f"over max_seq_len={stats['max_seq_len']}",
            f"{stats['truncated_rows']:,} rows truncated, {stats['truncated_tokens']:,} tokens lost"
            + (f", {stats['dropped_rows']:,} rows dropped" if stats["dropped_rows"] else ""),
        ],
        [f"tokens per epoch{est}", f"{stats['tokens_per_epoch']:,}"],
        ["time per epoch (rough)", f"~{minutes:,.1f} min; {stats['time_assumes']}"],
    ]
    if stats.get("chat_template"):
        rows.append(["chat template", stats["chat_template"]])
    output.table("Statistics", [Column(key=True), Column(min_width=16)], rows)


def _show_pair_lengths(output: Output, stats: dict[str, Any]) -> None:
    pair = stats["preference"]
    est = ", estimated" if stats["tokens_estimated"] else ""
    output.table(
        f"Preference pair tokens{est} (split as TRL's DPO trainer splits a pair; --json: stats.preference)",
        [Column("part", key=True), "tokens", "min", "median", "mean", "p95", "max"],
        [
            [
                name,
                *(
                    Cell(pair[name][k], f"{pair[name][k]:,}")
                    for k in ("tokens", "min", "median", "mean", "p95", "max")
                ),
            ]
            for name in ("prompt", "chosen", "rejected")
        ],
    )


def _show_histogram(output: Output, stats: dict[str, Any]) -> None:
    from rich.text import Text

    bins = stats["histogram"]
    peak = max((b["rows"] for b in bins), default=0) or 1
    limit = stats["max_seq_len"]
    spans = [f"{b['from']:,}–{b['to']:,}" for b in bins]
    counts = [f"{b['rows']:,}" for b in bins]
    # Bars are scaled to the room the terminal leaves, so none is cut (which would misstate its length).
    room = output.width - max(map(len, spans + ["tokens"])) - max(map(len, counts + ["rows"])) - 4
    width = max(min(BAR_WIDTH, room), 1) if output.is_terminal else BAR_WIDTH
    rows = []
    for b, span, count in zip(bins, spans, counts, strict=True):
        filled = round(width * b["rows"] / peak)
        bar = "█" * filled or ("▏" if b["rows"] else "")
        colour = "red" if b["from"] > limit else ("yellow" if b["to"] >= limit else "cyan")
        rows.append([span, Cell(b["rows"], count), Text(bar, style=colour)])
    est = ", estimated" if stats["tokens_estimated"] else ""
    output.table(
        f"Tokens per row{est} (red: beyond max_seq_len={limit})",
        [Column("tokens", key=True), Column("rows", key=True), Column("", key=True)],
        rows,
    )


def _show_preview(output: Output, preview: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.text import Text

    text = Text()
    used = 0
    for segment, trained in preview["segments"]:
        if used >= PREVIEW_CHARS:
            text.append(" …", style="dim")
            break
        piece = segment[: PREVIEW_CHARS - used]
        used += len(piece)
        text.append(piece, style="bold black on green" if trained else "dim")
    by = preview.get("by", "")
    output.note(
        f"\n[bold]Preview[/bold] (line {preview['line']}): [bold black on green]highlighted[/bold black on green]"
        f" text carries loss, [dim]dim[/dim] text does not"
        + (f" — masked by {by}" if by else "")
        + (
            f"; {preview['trained_tokens']} of {preview['tokens']} tokens trained"
            if "trained_tokens" in preview
            else ""
        )
    )
    output.print(text)
    if preview.get("note"):
        output.note(f"[dim]{escape(preview['note'])}[/dim]")


def register(app: typer.Typer) -> None:
    data_app.command("check")(check_command)
    app.add_typer(data_app, name="data")
