"""The "Answers" part of `ftkit diff`: how each fixed prompt's (and each shared eval sample's) tuned answer changed
from run A to run B, as a table, and as Markdown (ftkit.registry.answers pairs them)."""

from __future__ import annotations

from typing import Any

from ftkit.cli._output import Output
from ftkit.cli.table_fit import Column


def one_line(text: Any) -> str:
    """A cell's text on one line (line breaks shown as ↵); `—` for a missing answer, `''` for an empty one."""
    if text is None:
        return "—"
    return " ↵ ".join(str(text).splitlines()) or "''"


def _title(include_all: bool) -> str:
    return "Answers (all)" if include_all else "Answers (changed)"


def show_answers(out: Output, answers: dict, include_all: bool) -> None:
    """The answers table, then how many unchanged pairs it hides; nothing when neither run stored answers."""
    if not answers.get("paired"):
        return
    rows = answers["rows"]
    with_reference = any(row.get("reference") is not None for row in rows)
    if rows:
        columns = [Column("prompt", min_width=12)]
        columns += [Column("reference", drop=1)] if with_reference else []
        columns += [Column("A", min_width=12), Column("B", min_width=12)]
        table = [
            [
                one_line(row["label"]),
                *([one_line(row.get("reference") or "")] if with_reference else []),
                one_line(row["a"]),
                one_line(row["b"]),
            ]
            for row in rows
        ]
        out.table(_title(include_all), columns, table)
    if not include_all:
        count = answers["unchanged"]
        if count or not rows:
            out.hint(
                f"Answers: {count} of {answers['paired']} unchanged"
                + (" (--all shows them)" if count else "")
            )


def _md(text: Any) -> str:
    return one_line(text).replace("|", "\\|")


def answers_markdown(answers: dict, include_all: bool) -> list[str]:
    """Markdown lines for the answers section (empty when neither run stored answers)."""
    if not answers.get("paired"):
        return []
    lines = ["", f"#### {_title(include_all)}", ""]
    if answers["rows"]:
        lines += ["| prompt | reference | A | B |", "|---|---|---|---|"]
        for row in answers["rows"]:
            reference = _md(row["reference"]) if row.get("reference") is not None else ""
            lines.append(f"| {_md(row['label'])} | {reference} | {_md(row['a'])} | {_md(row['b'])} |")
    if not include_all:
        lines += ["", f"{answers['unchanged']} of {answers['paired']} answers unchanged."]
    return lines
