"""`ftkit registry verify` and `ftkit registry repair`: find damage in a registry, and restore what can be.

verify exits 0 with one line when everything checks out, and 1 listing each damage (run, file, what is wrong,
what to do). repair exits 0 after restoring (or finding nothing to restore) and 2 when nothing can be found.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ftkit.cli._options import json_option, registry_option
from ftkit.cli._output import Output
from ftkit.cli._runs_common import open_existing_unchecked
from ftkit.cli.formatting import fmt_size

# Hashing a store this large takes long enough to deserve progress lines on stderr.
PROGRESS_FROM = 1 << 30
_FSCK_SHOWN = 10


def _progress(out: Output):  # noqa: ANN202 - a verify.Progress
    shown = [-1]

    def report(done: int, total: int) -> None:
        if total < PROGRESS_FROM:
            return
        tenth = done * 10 // total
        if tenth > shown[0]:
            shown[0] = tenth
            out.stderr.print(f"verifying artifacts: {tenth * 10}% of {fmt_size(total)}", markup=False)

    return report


def verify_command(json_mode: bool = json_option(), registry: Path | None = registry_option()) -> None:
    """Check the whole registry: git history (fsck), every run's files, every artifact's sha256, every tag."""
    from ftkit.registry.verify import verify

    out = Output(json_mode)
    with open_existing_unchecked(registry) as reg:
        report = verify(reg, progress=_progress(out))
    out.emit(report)
    summary = f"{report['runs']} runs, {report['artifacts']} artifacts ({fmt_size(report['bytes'])}) verified"
    if report["ok"]:
        out.note(f"[green]registry OK[/green]: {summary}")
        return
    for item in report["damage"]:
        where = [f"{label} {item[label]}:" for label in ("run", "tag") if item[label]]
        where += [f"{item['file']}:"] if item["file"] and not item["tag"] else []
        out.print(f"[red]✗[/red] {escape(' '.join([*where, item['problem']]))}")
        if item["file"] == ".git":
            for line in report["fsck"][1:_FSCK_SHOWN]:
                out.print(f"    {escape(line)}")
            if len(report["fsck"]) > _FSCK_SHOWN:
                out.print(f"    … {len(report['fsck']) - _FSCK_SHOWN} more (`--json` lists them all)")
        out.print(f"    [cyan]fix:[/cyan] {escape(item['fix'])}")
    out.note(f"[red]registry damaged[/red]: {len(report['damage'])} problem(s); {summary}")
    raise typer.Exit(1)
