"""Curves as pictures: the loss sparkline `ftkit show` prints, and `ftkit plot`'s self-contained SVG chart,
checked against the history values committed by hand through the registry API (no model)."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from ftkit.plot.sparkline import ASCII, BLOCKS, sparkline
from ftkit.registry.store import RunRegistry


def invoke(*args: str):
    """Run the real CLI app in-process."""
    from ftkit.cli.app import app

    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_sparkline_levels_follow_values():
    # Independent reference: a strictly falling curve spanning 8 points uses every level, high to low.
    assert sparkline([8, 7, 6, 5, 4, 3, 2, 1]) == BLOCKS[::-1]
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8], ascii_only=True) == ASCII
    assert sparkline([2.0, 2.0]) == BLOCKS[4] * 2
    assert sparkline([1.0, math.nan, 0.0]) == BLOCKS[-1] + "!" + BLOCKS[0]


def test_sparkline_downsamples_to_width():
    line = sparkline([float(v) for v in range(100, 0, -1)], width=10)
    assert len(line) == 10
    assert line[0] == BLOCKS[-1] and line[-1] == BLOCKS[0]
    # a NaN inside a bucket stays visible after down-sampling
    assert "!" in sparkline([1.0] * 50 + [math.nan] + [0.5] * 49, width=10)


def test_show_prints_loss_sparklines(plot_runs):
    _, ids = plot_runs
    result = invoke("show", ids[0])
    assert result.exit_code == 0, result.output
    lines = {
        " ".join(line.split()[:2]): line.split()[2:] for line in result.output.splitlines() if "loss " in line
    }
    # Independent reference: 3.0..0.5 in steps of 0.5 over 7 levels -> levels 7, 5.6, 4.2, 2.8, 1.4, 0 rounded.
    levels = [7, 6, 4, 3, 1, 0]
    assert lines["train loss"] == ["".join(BLOCKS[i] for i in levels), "3", "→", "0.5"]
    assert lines["eval loss"] == [BLOCKS[-1] + BLOCKS[0], "2.2", "→", "1.1"]


def _scale(values, low, high, pix_low, pix_high):
    """Independent linear map of the chart's plot area (see ftkit.plot.svg margins)."""
    return [pix_low + (v - low) / (high - low) * (pix_high - pix_low) for v in values]


def test_plot_html_polylines_map_history(plot_runs, tmp_path):
    import xml.etree.ElementTree as ET

    from ftkit.plot import svg

    root, ids = plot_runs
    target = tmp_path / "out" / "curves.html"
    result = invoke("plot", *ids, "-o", str(target))
    assert result.exit_code == 0, result.output
    html = target.read_text(encoding="utf-8")
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    svg_text = html[html.index("<svg") : html.index("</svg>") + 6]
    ns = {"s": "http://www.w3.org/2000/svg"}
    tree = ET.fromstring(svg_text)
    lines = tree.findall("s:polyline", ns)
    assert len(lines) == 4  # 2 runs x (train.loss, eval.loss)
    # Data range over all curves: steps 10..60, values 0.5..4.0 (train of run 2 starts at 3.0 + 1.0).
    xs = _scale([10, 60], 10, 60, svg.LEFT, svg.WIDTH - svg.RIGHT)
    expected = {
        "train.loss": [(10, 3.0), (60, 0.5)],
        "eval.loss": [(30, 2.2), (60, 1.1)],
    }
    labels = [line.get("data-label") for line in lines]
    legend = [t.text for t in tree.findall("s:text[@class='legend']", ns)]
    assert legend == labels
    for i, run_id in enumerate(ids):
        with RunRegistry.open(root) as reg:
            name = reg.load_run(run_id)["run"]["name"]
        for metric, ends in expected.items():
            line = lines[labels.index(f"{name} {metric}")]
            pts = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
            for (step, value), (px, py) in zip(ends, (pts[0], pts[-1]), strict=True):
                want_x = _scale([step], 10, 60, xs[0], xs[1])[0]
                want_y = _scale([value + i], 0.5, 4.0, svg.HEIGHT - svg.BOTTOM, svg.TOP)[0]
                assert px == pytest.approx(want_x, abs=0.01) and py == pytest.approx(want_y, abs=0.01)
    again = invoke("plot", ids[0], "-o", str(target), "--metric", "train.loss")
    assert again.exit_code == 0 and "replaced" in again.output
    assert target.read_text(encoding="utf-8").count("<polyline") == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--metric", "eval.accuracy"], "eval.accuracy"),
        (["--metric", "loss"], "train.NAME or eval.NAME"),
        (["-o", "x.jpg"], ".html"),
    ],
)
def test_plot_bad_input_exits_2(plot_runs, tmp_path, args, needle):
    _, ids = plot_runs
    result = invoke("plot", ids[0], *(args if "-o" in args else [*args, "-o", str(tmp_path / "c.html")]))
    assert result.exit_code == 2
    assert needle in result.output
    assert not (tmp_path / "c.html").exists()


def test_plot_unknown_run_exits_2(plot_runs, tmp_path):
    result = invoke("plot", "no-such-run", "-o", str(tmp_path / "c.html"))
    assert result.exit_code == 2 and "no-such-run" in result.output
    assert not (tmp_path / "c.html").exists()
