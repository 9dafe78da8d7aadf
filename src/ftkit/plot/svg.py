"""A self-contained SVG line chart (no script, no CDN): one polyline per (run, metric), axes with ticks, legend."""

from __future__ import annotations

import math
from html import escape
from typing import NamedTuple

WIDTH, HEIGHT = 800, 480
LEFT, RIGHT, TOP, BOTTOM = 70, 220, 20, 50  # margins: the legend sits in the right one
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


class Series(NamedTuple):
    """One curve: its legend label and (step, value) points (finite values only)."""

    label: str
    points: list[tuple[float, float]]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round tick values covering [low, high]."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if step * m >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


class Scale(NamedTuple):
    """Maps data (step, value) to SVG pixel coordinates."""

    x0: float
    x1: float
    y0: float
    y1: float

    def x(self, step: float) -> float:
        """Pixel x of a step."""
        span = self.x1 - self.x0 or 1.0
        return LEFT + (step - self.x0) / span * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        """Pixel y of a value (larger values higher up)."""
        span = self.y1 - self.y0 or 1.0
        return HEIGHT - BOTTOM - (value - self.y0) / span * (HEIGHT - TOP - BOTTOM)


def scale_of(series: list[Series]) -> Scale:
    """The data range of all series."""
    xs = [p[0] for s in series for p in s.points]
    ys = [p[1] for s in series for p in s.points]
    return Scale(min(xs), max(xs), min(ys), max(ys))


def _num(value: float) -> str:
    return f"{value:.6g}"


def render_svg(series: list[Series], title: str = "") -> str:
    """The chart as an SVG document string; `series` must hold at least one point in all."""
    sc = scale_of(series)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f"<title>{escape(title)}</title>",
    ]
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="black"/>')
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="black"/>')
    for t in nice_ticks(sc.x0, sc.x1):
        x = sc.x(t)
        parts.append(f'<line x1="{x:.2f}" y1="{bottom}" x2="{x:.2f}" y2="{bottom + 5}" stroke="black"/>')
        parts.append(
            f'<text class="xtick" x="{x:.2f}" y="{bottom + 18}" text-anchor="middle">{_num(t)}</text>'
        )
    for t in nice_ticks(sc.y0, sc.y1):
        y = sc.y(t)
        parts.append(f'<line x1="{LEFT - 5}" y1="{y:.2f}" x2="{LEFT}" y2="{y:.2f}" stroke="black"/>')
        parts.append(f'<text class="ytick" x="{LEFT - 8}" y="{y + 4:.2f}" text-anchor="end">{_num(t)}</text>')
    parts.append(f'<text x="{(LEFT + right) / 2}" y="{HEIGHT - 10}" text-anchor="middle">step</text>')
    for i, s in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        coords = " ".join(f"{sc.x(x):.2f},{sc.y(y):.2f}" for x, y in s.points)
        parts.append(
            f'<polyline class="curve" data-label="{escape(s.label)}" points="{coords}" fill="none" '
            f'stroke="{colour}" stroke-width="2"/>'
        )
        ly = TOP + 10 + 18 * i
        parts.append(
            f'<line x1="{right + 10}" y1="{ly}" x2="{right + 30}" y2="{ly}" stroke="{colour}" stroke-width="2"/>'
        )
        parts.append(f'<text class="legend" x="{right + 35}" y="{ly + 4}">{escape(s.label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def render_html(series: list[Series], title: str) -> str:
    """A self-contained HTML page holding the SVG chart inline."""
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{escape(title)}</title></head>\n'
        f"<body>\n<h3>{escape(title)}</h3>\n{render_svg(series, title)}\n</body></html>\n"
    )
