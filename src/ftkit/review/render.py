"""A review for people: the short form `ftkit run`, `ftkit tune` and `ftkit show` print, and the full form of
`ftkit review`. `out` is the CLI's Output (note/print); user text is escaped, commands are printed whole."""

from __future__ import annotations

from typing import Any

from ftkit.review.model import Review

_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan"}


def with_flag(command: str | None, flag: str) -> str | None:
    """`command` with a trailing flag (e.g. ` --registry PATH`) for `ftkit` commands."""
    if command is None or not flag or not command.startswith("ftkit "):
        return command
    return command + flag


def render_summary(review: Review, out: Any, flag: str = "") -> None:
    """One line per finding (severity, title, the ready command), or the healthy line. `flag` is appended to
    each command (` --registry PATH` when the run's registry is not the default)."""
    from rich.markup import escape

    if not review.findings:
        out.note(f"[bold]Review[/bold] [green]{escape(review.summary)}[/green]")
        return
    out.note(
        f"[bold]Review[/bold] {escape(review.summary)} (`ftkit review {review.run_id}` for the evidence)"
    )
    for finding in review.findings:
        style = _STYLE.get(finding.severity, "")
        out.note(f"  [{style}]{finding.severity}[/{style}] {escape(finding.title)}")
        command = with_flag(finding.command, flag)
        if command:
            out.note(f"      {escape(command)}")


def render_review(review: Review, out: Any, flag: str = "", computed_now: str | None = None) -> None:
    """The full review: each finding with its evidence, action and command; the checks that could not run
    and why. `computed_now` says why the review was computed here rather than read from the registry."""
    from rich.markup import escape

    out.note(f"[bold]Review of run {escape(review.run_id)}[/bold] ({escape(review.status)})")
    if computed_now:
        out.note(f"[dim]{escape(computed_now)}[/dim]")
    out.note(escape(review.summary))
    for number, finding in enumerate(review.findings, 1):
        style = _STYLE.get(finding.severity, "")
        out.note(f"\n{number}. [{style}]{finding.severity}[/{style}] [bold]{escape(finding.title)}[/bold]")
        out.note(f"   evidence: {escape(finding.evidence)}")
        out.note(f"   action:   {escape(finding.action)}")
        command = with_flag(finding.command, flag)
        out.note(f"   command:  {escape(command)}" if command else "   command:  none (see the action)")
    if review.skipped:
        out.note("\n[dim]not checked:[/dim]")
        for check, why in sorted(review.skipped.items()):
            out.note(f"[dim]  {escape(check)}: {escape(why)}[/dim]")
