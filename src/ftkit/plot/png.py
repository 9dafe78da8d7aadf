"""The same chart as plot/svg.py as a PNG, drawn by matplotlib's Agg backend (the `ftkit[plot]` extra).

The image is always WIDTH x HEIGHT pixels; the plot area is the fixed fraction PLOT_BOX of the figure (the legend
sits to its right), and the axes span the data's steps exactly and its values with PAD_FRACTION of the value range
above and below, so a reader can map pixels back to data.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ftkit.errors import FtkitError
from ftkit.plot.svg import COLOURS, Series

WIDTH, HEIGHT, DPI = 1000, 600, 100
# (left, bottom, right, top) of the plot area as fractions of the figure, bottom-up as matplotlib measures them.
PLOT_BOX = (0.08, 0.10, 0.72, 0.92)
PAD_FRACTION = 0.05


def require_matplotlib() -> None:
    """Raise a located FtkitError (exit 2) when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise FtkitError(
            "-o *.png: PNG output needs matplotlib, which is not installed",
            hint="pip install 'ftkit[plot]', or write -o curves.html (no extra needed)",
        ) from exc


def value_limits(series: list[Series]) -> tuple[float, float]:
    """The y-axis range: all values, padded by PAD_FRACTION of their span (or of 1.0 for a flat chart)."""
    ys = [p[1] for s in series for p in s.points]
    low, high = min(ys), max(ys)
    pad = (high - low) * PAD_FRACTION or max(abs(low), 1.0) * PAD_FRACTION
    return low - pad, high + pad


def render_png(series: list[Series], title: str, path: Path) -> None:
    """Draw `series` (at least one point in all) and write the PNG to `path` atomically (temp file, then replace)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)  # binds the Agg canvas: no GUI backend is ever selected
    left, bottom, right, top = PLOT_BOX
    fig.subplots_adjust(left=left, bottom=bottom, right=right, top=top)
    ax = fig.add_subplot()
    for i, s in enumerate(series):
        xs, ys = zip(*s.points, strict=True)
        ax.plot(
            xs,
            ys,
            color=COLOURS[i % len(COLOURS)],
            linewidth=2,
            marker="o" if len(xs) == 1 else None,  # a single point draws no line
            label=s.label,
        )
    steps = [p[0] for s in series for p in s.points]
    x0, x1 = min(steps), max(steps)
    if x0 == x1:
        x0, x1 = x0 - 0.5, x1 + 0.5
    ax.set_xlim(x0, x1)
    ax.set_ylim(*value_limits(series))
    ax.set_xlabel("step")
    ax.set_ylabel("value")
    ax.set_title(title)
    ax.grid(True, color="#e0e0e0", linewidth=0.8)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False, fontsize=9)

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format="png", dpi=DPI)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
