"""A one-line loss curve for the terminal: block characters scaled between the curve's finite min and max."""

from __future__ import annotations

import math

BLOCKS = "▁▂▃▄▅▆▇█"
ASCII = "_.-~=+*#"  # the same eight levels where the output cannot encode block characters
NON_FINITE = "!"


def buckets(values: list[float], width: int) -> list[float]:
    """`values` cut into at most `width` consecutive buckets, each its mean (NaN when any value in it is
    non-finite: a divergence must stay visible after down-sampling)."""
    if len(values) <= width:
        return list(values)
    out = []
    for i in range(width):
        part = values[i * len(values) // width : (i + 1) * len(values) // width]
        out.append(sum(part) / len(part) if all(math.isfinite(v) for v in part) else math.nan)
    return out


def sparkline(values: list[float], width: int = 24, ascii_only: bool = False) -> str:
    """The curve as at most `width` characters, lowest level at the finite minimum, highest at the maximum
    (a flat curve sits on the middle level); non-finite points are `!`."""
    levels = ASCII if ascii_only else BLOCKS
    points = buckets(values, width)
    finite = [v for v in points if math.isfinite(v)]
    if not finite:
        return NON_FINITE * len(points)
    low, high = min(finite), max(finite)
    chars = []
    for v in points:
        if not math.isfinite(v):
            chars.append(NON_FINITE)
        elif high == low:
            chars.append(levels[len(levels) // 2])
        else:
            chars.append(levels[round((v - low) / (high - low) * (len(levels) - 1))])
    return "".join(chars)


def can_encode(encoding: str | None) -> bool:
    """Whether an output with this encoding can print the block characters."""
    try:
        BLOCKS.encode(encoding or "ascii")
    except (LookupError, UnicodeEncodeError):
        return False
    return True
