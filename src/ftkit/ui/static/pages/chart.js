// A small SVG line chart (no library): axes with ticks, one polyline per series, a legend. Built with
// createElementNS; series colours come from app.css classes (.series-0 ... .series-5), never inline styles.
import { el } from "/static/app.js";
import { fmt } from "/static/pages/util.js";

const NS = "http://www.w3.org/2000/svg";
const W = 640;
const H = 260;
const PAD = { left: 58, right: 14, top: 12, bottom: 34 };

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function ticks(min, max, count = 5) {
  if (min === max) return [min];
  const step = (max - min) / (count - 1);
  return Array.from({ length: count }, (_, i) => min + i * step);
}

/** The points of `rows` for key `y` (numbers only) as [step, value] pairs, in step order. */
export function seriesOf(rows, y, x = "step") {
  return (rows || [])
    .filter((row) => typeof row[y] === "number" && Number.isFinite(row[y]) && typeof row[x] === "number")
    .map((row) => [row[x], row[y]])
    .sort((p, q) => p[0] - q[0]);
}

/**
 * A chart element: `series` is [{label, points: [[x, y], ...]}]; empty series are left out.
 * The figure carries data-testid `testid`; each polyline has data-testid "curve" and data-series its label.
 */
export function lineChart(series, { testid, title, xLabel = "step", empty = "no points yet" } = {}) {
  const drawn = series.map((s, i) => ({ ...s, index: s.index ?? i })).filter((s) => s.points.length);
  const figure = el("figure", { class: "chart", "data-testid": testid });
  if (!drawn.length) {
    figure.append(el("p", { class: "muted" }, empty));
    return figure;
  }
  const xs = drawn.flatMap((s) => s.points.map((p) => p[0]));
  const ys = drawn.flatMap((s) => s.points.map((p) => p[1]));
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  if (y0 === y1) [y0, y1] = [y0 - Math.abs(y0 || 1) * 0.05, y1 + Math.abs(y1 || 1) * 0.05];
  const margin = (y1 - y0) * 0.05;
  [y0, y1] = [y0 - margin, y1 + margin];
  const px = (x) => PAD.left + ((x - x0) / (x1 - x0)) * (W - PAD.left - PAD.right);
  const py = (y) => H - PAD.bottom - ((y - y0) / (y1 - y0)) * (H - PAD.top - PAD.bottom);

  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-svg", role: "img" });
  root.append(svg("title", {}, title || "chart"));
  const axes = svg("g", { class: "axes" });
  for (const y of ticks(y0, y1)) {
    axes.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: py(y), y2: py(y), class: "grid" }));
    axes.append(svg("text", { x: PAD.left - 6, y: py(y) + 4, "text-anchor": "end" }, fmt(y)));
  }
  const integral = xs.every(Number.isInteger);
  const xTicks = ticks(x0, x1).map((x) => (integral || x1 - x0 >= 4 ? Math.round(x) : x));
  for (const x of [...new Set(xTicks)]) {
    axes.append(svg("line", { x1: px(x), x2: px(x), y1: H - PAD.bottom, y2: H - PAD.bottom + 4, class: "tick" }));
    axes.append(svg("text", { x: px(x), y: H - PAD.bottom + 16, "text-anchor": "middle" }, fmt(x)));
  }
  axes.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: H - PAD.bottom, y2: H - PAD.bottom, class: "axis" }));
  axes.append(svg("line", { x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: H - PAD.bottom, class: "axis" }));
  axes.append(svg("text", { x: (PAD.left + W - PAD.right) / 2, y: H - 4, "text-anchor": "middle", class: "label" }, xLabel));
  root.append(axes);

  for (const s of drawn) {
    const points = s.points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(" ");
    const cls = `curve series-${s.index % 6}${s.dashed ? " dashed" : ""}`;
    const line = svg("polyline", { points, class: cls, "data-testid": "curve", "data-series": s.label });
    line.append(svg("title", {}, s.label));
    root.append(line);
    if (s.points.length === 1) {
      const [x, y] = s.points[0];
      root.append(svg("circle", { cx: px(x), cy: py(y), r: 3, class: `dot series-${s.index % 6}` }));
    }
  }
  figure.append(root);
  figure.append(el("div", { class: "legend" }, drawn.map((s) =>
    el("span", { class: "legend-item" },
      el("span", { class: `swatch series-${s.index % 6}${s.dashed ? " dashed" : ""}` }),
      `${s.label} (${s.points.length} points, last ${fmt(s.points[s.points.length - 1][1])})`))));
  return figure;
}
