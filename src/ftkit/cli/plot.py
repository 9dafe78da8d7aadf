"""`ftkit plot RUN [RUN ...] -o curves.html [--metric train.loss,eval.loss]`: the runs' curves overlaid in one
self-contained HTML file (inline SVG, no script, no CDN)."""

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
        Path("curves.html"), "-o", "--output", help="The HTML file to write (replaced)."
    ),
    metric: str = typer.Option(
        "train.loss,eval.loss", "--metric", help="Comma-separated train.NAME / eval.NAME."
    ),
    registry: Path | None = registry_option(),
) -> None:
    """Draw runs' curves (train and eval loss by default) into one self-contained HTML file with an SVG chart."""
    from ftkit.plot.svg import Series, render_html
    from ftkit.review.series import points

    out = Output()
    if output.suffix.lower() not in (".html", ".htm"):
        raise FtkitError(
            f"-o {output}: only an .html file is written (inline SVG)",
            hint="use -o curves.html; open it in any browser",
        )
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
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_html(series, f"ftkit: {', '.join(runs)}"), encoding="utf-8")
    out.note(f"{'replaced' if existed else 'wrote'} {output}: {len(series)} curve(s) from {len(runs)} run(s)")


def register(app: typer.Typer) -> None:
    """Add `ftkit plot`."""
    app.command("plot")(plot_command)
