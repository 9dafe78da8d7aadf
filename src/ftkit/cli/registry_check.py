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
    """Check the whole registry: git history (fsck), every run's files and evaluation record, every artifact's
    sha256, every tag."""
    from ftkit.registry.verify import verify

    out = Output(json_mode)
    with open_existing_unchecked(registry) as reg:
        report = verify(reg, progress=_progress(out))
    out.emit(report)
    evals = f", {report['evals']} eval record(s)" if report.get("evals") else ""
    evals += f", {report['exports']} export record(s)" if report.get("exports") else ""
    summary = f"{report['runs']} runs, {report['artifacts']} artifacts ({fmt_size(report['bytes'])}){evals} verified"
    if report["ok"]:
        out.note(f"[green]registry OK[/green]: {summary}")
        return
    for item in report["damage"]:
        where = [f"{label} {item[label]}:" for label in ("run", "eval", "tag") if item.get(label)]
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


def repair_command(
    from_: str | None = typer.Option(
        None,
        "--from",
        metavar="REMOTE",
        help="First fetch every object again from REMOTE (a remote name, URL or path): for missing or damaged "
        "objects.",
    ),
    json_mode: bool = json_option(),
    registry: Path | None = registry_option(),
) -> None:
    """Restore a lost or broken `main` from the newest recorded tip (reflog, then remote refs); rebuild the cache;
    record running runs whose process is gone as lost."""
    from ftkit.registry import lifecycle, recover
    from ftkit.registry.store import RunRegistry

    out = Output(json_mode)
    fixed: list[str | None] = []
    with open_existing_unchecked(
        registry, before=lambda git_dir: fixed.append(recover.repair_head(git_dir))
    ) as reg:
        result = recover.repair(reg, from_)
        cache = Path(reg.repo.git_dir) / "ftkit-cache" / "summaries.json"
        cache.unlink(missing_ok=True)
        registry_root = reg.root
    with RunRegistry.open(registry_root, create=False) as fresh:  # a new git process: sees the repaired refs
        result["lost"] = lifecycle.notice_lost(fresh)  # running runs whose process is gone: recorded as lost
        summaries = fresh.summaries()
    result["head"] = fixed[0] if fixed else None
    result["runs"] = len(summaries)
    result["damaged_runs"] = [s["id"] for s in summaries if "damage" in s]
    out.emit(result)
    _report_repair(out, result, registry_root)


def _report_repair(out: Output, result: dict, root: Path) -> None:
    if result["head"]:
        out.note(f"fixed: {escape(result['head'])} (HEAD names refs/heads/main again)")
    fetched = result["fetched"]
    if fetched:
        out.note(
            f"fetched every object again from {escape(fetched['remote'])} ({fetched['runs']} run(s) there)"
        )
    restored = result["restored"]
    if restored:
        out.note(
            f"[green]restored[/green] main to commit {restored['sha'][:12]} from {escape(restored['source'])}: "
            f"{restored['runs']} run(s)"
        )
        out.note(f"it was: {escape(result['problem'])}")
    elif result["problem"]:
        out.note(f"[green]main can be read again[/green] (it was: {escape(result['problem'])})")
    elif not result["head"]:
        out.note("main is sound; nothing to restore")
    for path in result["moved_aside"]:
        out.note(f"moved a damaged file aside: {escape(path)}")
    for line in result.get("lost") or []:
        out.note(escape(line))
    out.note(f"summaries cache rebuilt: {result['runs']} run(s)")
    if result["damaged_runs"]:
        out.warn(
            f"{len(result['damaged_runs'])} run(s) still have damaged files; `ftkit registry verify --registry "
            f"{root}` lists them"
        )
