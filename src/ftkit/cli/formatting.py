"""The one set of value formatters for human output: numbers and values, deltas, sizes, ages, short run ids.

Standard library only, so any command module may import it without cost. Machine output (`--json`, the plain
tab-separated form printed when stdout is not a terminal) carries full values and never goes through these.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

MIN_ID_PREFIX = 7  # as git's default abbreviation


def fmt(value: Any) -> str:
    """A compact human form of a metric or config value: `2`, `0.1235`, `1,234.5`, `3e-05`, `true`, `—`."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        size = abs(value)
        if size == 0:
            return "0"
        if size < 1e-3:
            return f"{value:.3g}"
        if size < 100:
            return f"{value:.4f}".rstrip("0").rstrip(".")
        if size < 1e12:
            return f"{value:,.1f}".removesuffix(".0")
        return f"{value:.3e}"
    if isinstance(value, int):
        # Below 10,000 without separators: config values (2048, seeds) stay copyable into YAML.
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, default=str)
        return text if len(text) <= 60 else text[:59] + "…"
    return str(value)


def fmt_delta(delta: float | None, pct: float | None) -> tuple[str, str]:
    """(Δ, Δ%) strings: `+0.5`, `+25.0%`; `new` when the baseline was zero."""
    if delta is None:
        return "", ""
    d = f"{delta:+.4g}"
    if pct is None:
        return d, ""
    if pct in (float("inf"), float("-inf")):
        return d, "new"
    return d, f"{pct:+.1f}%"


def fmt_size(n: int | None) -> str:
    """Bytes in binary units: `512 B`, `1.5 KiB`, `2.0 GiB`."""
    if n is None:
        return "—"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover - unreachable, GiB is the last unit above


def ago(iso: str | None, now: datetime | None = None) -> str:
    """'3m ago' style age of an ISO time; a date for times in the future."""
    if not iso:
        return "—"
    try:
        when = datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        return str(iso)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    seconds = ((now or datetime.now(timezone.utc)) - when).total_seconds()
    if seconds < 0:
        return when.strftime("%Y-%m-%d %H:%M")
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def unique_prefixes(
    ids: Iterable[str], names: Iterable[str] = (), minimum: int = MIN_ID_PREFIX
) -> dict[str, str]:
    """The shortest prefix of each id (at least `minimum` characters) that names it alone, as git abbreviates.

    A prefix must match no other id and no run name (references resolve id and name prefixes alike), so it stays a
    valid reference for `ftkit show` and friends.
    """
    ordered = sorted(set(ids))
    others = [
        name for name in set(names) if name[:1].isdigit()
    ]  # ids start with a digit; other names cannot clash
    result = {}
    for index, run_id in enumerate(ordered):
        length = minimum
        for neighbour in ordered[max(index - 1, 0) : index + 2]:
            if neighbour != run_id:
                common = next(
                    (i for i, (x, y) in enumerate(zip(run_id, neighbour, strict=False)) if x != y),
                    min(len(run_id), len(neighbour)),
                )
                length = max(length, common + 1)
        while length < len(run_id) and any(name.startswith(run_id[:length]) for name in others):
            length += 1
        result[run_id] = run_id[:length]
    return result
