"""Numbers a review reads from a run: train and eval loss curves from history.jsonl, values from metrics.json
and the resolved recipe. Values may be floats or the registry's strings for non-finite floats ("NaN")."""

from __future__ import annotations

import math
from typing import Any

NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def number(value: Any) -> float | None:
    """`value` as a float (non-finite included), or None when it is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value in NON_FINITE:
        return NON_FINITE[value]
    return None


def finite(value: Any) -> float | None:
    """`value` as a finite float, or None."""
    result = number(value)
    return result if result is not None and math.isfinite(result) else None


def points(history: list[dict], key: str) -> list[tuple[int, float]]:
    """(step, value) for every history row that holds `key`, in step order (non-finite values kept)."""
    found = []
    for row in history or []:
        value = number(row.get(key)) if isinstance(row, dict) else None
        step = row.get("step") if isinstance(row, dict) else None
        if value is not None and isinstance(step, int):
            found.append((step, value))
    return sorted(found, key=lambda item: item[0])


def mean(values: list[float]) -> float:
    """The arithmetic mean of a non-empty list."""
    return sum(values) / len(values)


def mean_between(curve: list[tuple[int, float]], after: int, upto: int) -> float | None:
    """Mean of the curve's finite values at steps in (after, upto], or None when there are none."""
    values = [value for step, value in curve if after < step <= upto and math.isfinite(value)]
    return mean(values) if values else None


def setting(resolved: dict, section: str, key: str) -> Any:
    """`resolved[section][key]`, or None."""
    holder = (resolved or {}).get(section)
    return holder.get(key) if isinstance(holder, dict) else None


def fmt(value: float) -> str:
    """A loss or rate as people read it: 3 significant digits."""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return f"{value:.3g}"


def pct(fraction: float) -> str:
    """A fraction as a percentage: 0.184 -> "18%" (one decimal under 10 %)."""
    value = 100 * fraction
    return f"{value:.1f}%" if abs(value) < 10 else f"{value:.0f}%"
