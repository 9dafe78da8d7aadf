"""Runs left pending by a commit that failed after training (registry/pending.py), recorded by the next command.

Every command that opens a registry for its runs — reading ones too — records them first, because the failed run
told its user "the next ftkit command against this registry records it", and `ftkit runs` or `ftkit show` must
then show the run rather than miss it. A command that still cannot write (a read-only registry) warns that the
run stays pending and goes on. With nothing pending this costs a few directory look-ups.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape


def record_pending(registry: Any) -> None:
    """Commit the registry's pending runs, one line each on stderr (never on stdout: `--json` stays one document)."""
    from ftkit.cli._output import Output
    from ftkit.registry import lifecycle, pending

    outcome = pending.commit_pending(registry)
    lost = lifecycle.notice_lost(registry)  # after the pending records: they finish runs that look lost
    if not (outcome.recorded or outcome.problems or lost):
        return
    output = Output()
    for line in [*outcome.recorded, *lost]:
        output.stderr.print(escape(line))
    for line in outcome.problems:
        output.warn(line)
