"""`ftkit plot RUN [RUN ...] -o curves.html|curves.png [--metric train.loss,eval.loss]`: the runs' curves overlaid
in one chart, a self-contained HTML file (inline SVG, no script, no CDN) or a PNG (matplotlib, the `ftkit[plot]`
extra)."""

from __future__ import annotations

from pathlib import Path

import typer

from ftkit.cli._options import registry_option
from ftkit.cli._output import Output
from ftkit.cli._runs_common import open_existing
from ftkit.errors import FtkitError


def history_key(metric: str) -> str:
    """`train.loss` -> `loss`, `eval.loss` -> `eval_loss`, `eval.accuracy` -> `eval_accuracy` (history.jsonl keys)."""
    section, _, name = metric.partition(".")
    if section not in ("train", "eval") or not name:
        raise FtkitError(
            f"--metric {metric!r}: expected train.NAME or eval.NAME",
            hint="for example --metric train.loss,eval.loss",
        )
    return name if section == "train" else f"eval_{name}"


def plot_command(
    runs: list[str] = typer.Argument(
        ..., help="Run ids, prefixes, names, tags or @latest; overlaid in one chart."
    ),
    output: Path = typer.Option(
        Path("curves.html"),
        "-o",
        "--output",
        help="The chart to write (replaced): .html/.htm (inline SVG) or .png (1000x600, needs ftkit[plot]).",
    ),
    metric: str = typer.Option(
        "train.loss,eval.loss", "--metric", help="Comma-separated train.NAME / eval.NAME."
    ),
    registry: Path | None = registry_option(),
) -> None:
    """Draw runs' curves (train and eval loss by default) into one chart: a self-contained HTML file with an SVG
    chart, or a 1000x600 PNG drawn by matplotlib."""
    from ftkit.plot.svg import Series, render_html
    from ftkit.review.series import points

    out = Output()
    suffix = output.suffix.lower()
    if suffix not in (".html", ".htm", ".png"):
        raise FtkitError(
            f"-o {output}: unknown chart format {suffix or '(no suffix)'!r}; accepted: .png, .html, .htm",
            hint="use -o curves.png (matplotlib) or -o curves.html (inline SVG, opens in any browser)",
        )
    if suffix == ".png":
        from ftkit.plot.png import require_matplotlib

        require_matplotlib()
    metrics = [m.strip() for m in metric.split(",") if m.strip()]
    keys = [(m, history_key(m)) for m in metrics]
    reg = open_existing(registry)
    series = []
    with reg:
        for run in runs:
            run_id = reg.resolve(run)
            loaded = reg.load_run(run_id)
            name = loaded["run"].get("name") or run_id
            for label, key in keys:
                curve = [
                    (s, v)
                    for s, v in points(loaded.get("history") or [], key)
                    if v == v and abs(v) != float("inf")
                ]
                if curve:
                    series.append(Series(f"{name} {label}", curve))
    missing = [m for m, _ in keys if not any(s.label.endswith(" " + m) for s in series)]
    if missing:
        raise FtkitError(
            f"--metric {','.join(missing)}: no such curve in the history of run(s) {', '.join(runs)}",
            hint="`ftkit show RUN --json` lists the history keys (loss -> train.loss, eval_X -> eval.X)",
        )
    existed = output.exists()
    title = f"ftkit: {', '.join(runs)}"
    if suffix == ".png":
        from ftkit.plot.png import render_png

        render_png(series, title, output)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(render_html(series, title), encoding="utf-8")
    out.note(f"{'replaced' if existed else 'wrote'} {output}: {len(series)} curve(s) from {len(runs)} run(s)")


def register(app: typer.Typer) -> None:
    """Add `ftkit plot`."""
    app.command("plot")(plot_command)
