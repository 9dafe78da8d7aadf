"""`ftkit plot -o curves.png`: the PNG is read back with Pillow (an independent reader) and its pixels are checked
against the history values committed by hand through the registry API (no model)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from tests.cli.conftest import TRAIN
from tests.cli.test_plot import invoke
from tests.cli.test_startup import imported_modules

# The `plot_runs` fixture (tests/cli/conftest.py): TRAIN at steps 10..60; eval 2.2 at 30, 1.1 at 60; run 2 shifted up 1.0
# Documented in ftkit.plot.png: 1000x600 px, plot area from 8 % to 72 % of the width and 10 % to 92 % of the
# height (bottom-up), values padded by 5 % of their range; colours are the SVG chart's, in series order.
SIZE = (1000, 600)
X_PIX = (80, 720)
Y_PIX = (540, 48)  # image rows of the lower and upper y limits
STEPS = (10, 60)
VALUES = (0.5 - 0.175, 4.0 + 0.175)  # 0.5..4.0 padded by 0.05 * 3.5
COLOURS = {  # series order: run 1 train, run 1 eval, run 2 train, run 2 eval
    ("run1", "train"): (0x1F, 0x77, 0xB4),
    ("run1", "eval"): (0xD6, 0x27, 0x28),
    ("run2", "train"): (0x2C, 0xA0, 0x2C),
    ("run2", "eval"): (0xFF, 0x7F, 0x0E),
}


def read_png(path) -> np.ndarray:
    """The image as an (H, W, 3) uint8 array, checked to be a PNG."""
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size == SIZE
        return np.asarray(img.convert("RGB"))


def mask_of(pixels: np.ndarray, rgb: tuple[int, int, int], tol: int = 8) -> np.ndarray:
    """Pixels within `tol` of `rgb` on every channel."""
    return (np.abs(pixels.astype(int) - np.array(rgb)) <= tol).all(axis=2)


def column(step: float) -> int:
    return round(X_PIX[0] + (step - STEPS[0]) / (STEPS[1] - STEPS[0]) * (X_PIX[1] - X_PIX[0]))


def row(value: float) -> float:
    return Y_PIX[0] + (value - VALUES[0]) / (VALUES[1] - VALUES[0]) * (Y_PIX[1] - Y_PIX[0])


def curve_value(kind: str, step: float, shift: float) -> float:
    """The history, linearly interpolated between its points (as a line chart draws it)."""
    if kind == "train":
        return np.interp(step, [10, 20, 30, 40, 50, 60], TRAIN) + shift
    return np.interp(step, [30, 60], [2.2, 1.1]) + shift


def test_plot_png_curves_follow_the_history(plot_runs, tmp_path):
    _, ids = plot_runs
    folder = tmp_path / "out"
    target = folder / "curves.png"
    result = invoke("plot", *ids, "-o", str(target))
    assert result.exit_code == 0, result.output
    assert "4 curve(s) from 2 run(s)" in result.output
    assert [p.name for p in folder.iterdir()] == ["curves.png"]  # no temp file left beside it
    pixels = read_png(target)
    area = np.zeros(pixels.shape[:2], dtype=bool)
    area[Y_PIX[1] : Y_PIX[0], X_PIX[0] : X_PIX[1]] = True
    rows_at: dict[tuple[str, str], dict[int, float]] = {}
    for (run, kind), rgb in COLOURS.items():
        mask = mask_of(pixels, rgb)
        shift = 1.0 if run == "run2" else 0.0
        first = 10 if kind == "train" else 30
        # Drawn in quantity: nearly every column the curve spans holds pixels of its colour inside the plot area.
        cols = np.flatnonzero((mask & area).any(axis=0))
        span = column(60) - column(first)
        assert len(cols) >= 0.9 * span, (run, kind, len(cols), span)
        assert cols.min() <= column(first) + 3 and cols.max() >= column(60) - 3
        # The legend (right of the plot area) shows the colour too.
        assert mask[:, X_PIX[1] + 10 :].sum() > 20, (run, kind)
        # Where the pixels sit follows the data: at sampled steps the curve's rows match the linear value map.
        rows_at[run, kind] = {}
        for step in range(first + 3, 60, 6):
            c = column(step)
            hits = np.flatnonzero(mask[:, c] & area[:, c])
            assert hits.size, (run, kind, step)
            got = float(np.median(hits))
            assert got == pytest.approx(row(curve_value(kind, step, shift)), abs=3), (run, kind, step)
            rows_at[run, kind][step] = got
    # Falling loss: higher (smaller row) on the left than on the right; run 2 (shifted +1.0) sits above run 1.
    for key, by_step in rows_at.items():
        steps = sorted(by_step)
        assert by_step[steps[0]] < by_step[steps[-1]] - 50, key
    for kind in ("train", "eval"):
        for step, r in rows_at["run2", kind].items():
            assert r < rows_at["run1", kind][step] - 50, (kind, step)

    again = invoke("plot", ids[0], "-o", str(target), "--metric", "train.loss")
    assert again.exit_code == 0 and "replaced" in again.output
    pixels = read_png(target)
    assert mask_of(pixels, COLOURS["run1", "train"]).sum() > 500
    assert mask_of(pixels, COLOURS["run1", "eval"]).sum() == 0  # only one curve now


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["-o", "{dir}/curves.jpg"], ["curves.jpg", ".png", ".html"]),
        (["-o", "{dir}/curves"], [".png", ".html"]),
        (["-o", "{dir}/curves.png", "--metric", "eval.accuracy"], ["eval.accuracy"]),
        (["-o", "{dir}/curves.png", "--metric", "loss"], ["train.NAME or eval.NAME"]),
    ],
)
def test_plot_png_bad_input_exits_2_and_writes_nothing(plot_runs, tmp_path, args, needles):
    _, ids = plot_runs
    folder = tmp_path / "out"
    folder.mkdir()
    result = invoke("plot", ids[0], *(a.format(dir=folder) for a in args))
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.split())
    for needle in needles:
        assert needle in flat
    assert list(folder.iterdir()) == []


def test_plot_png_without_matplotlib_exits_2_with_the_extra(plot_runs, tmp_path, monkeypatch):
    _, ids = plot_runs
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    target = tmp_path / "curves.png"
    result = invoke("plot", ids[0], "-o", str(target))
    assert result.exit_code == 2, result.output
    assert "ftkit[plot]" in result.output and "matplotlib" in result.output
    assert not target.exists()


def test_plot_help_imports_no_matplotlib():
    modules = imported_modules(["plot", "--help"])
    assert "ftkit.cli.plot" in modules
    assert not [m for m in modules if m.split(".")[0] in ("matplotlib", "PIL", "torch")]
