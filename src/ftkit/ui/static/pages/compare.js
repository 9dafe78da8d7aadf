// /compare?a=&b=: what `ftkit diff A B` shows — changed recipe keys, metrics with deltas, overlaid curves and
// the two runs' answers side by side.
import { api, el, errorBox } from "/static/app.js";
import { lineChart, seriesOf } from "/static/pages/chart.js";
import { fmt, fmtDelta, runLabel, section, statusBadge } from "/static/pages/util.js";

function picker(testid, runs, chosen) {
  const select = el("select", { "data-testid": testid, "aria-label": testid },
    el("option", { value: "" }, "choose a run"),
    runs.map((r) => el("option", { value: r.id }, `${runLabel(r)} · ${r.status}`)));
  if (chosen && !runs.some((r) => r.id === chosen)) select.append(el("option", { value: chosen }, chosen));
  select.value = chosen || "";
  return select;
}

function evalKey(rows) {
  const keys = new Set((rows || []).flatMap((r) => Object.keys(r)));
  return ["eval_loss", "eval/loss", "eval.loss"].find((k) => keys.has(k));
}

function changedKeys(config, showAll) {
  const rows = (config || []).filter((r) => showAll || r.changed);
  if (!rows.length) return el("p", { class: "muted" }, "No recipe key differs.");
  return el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "key"), el("th", {}, "A"), el("th", {}, "B"))),
    el("tbody", {}, rows.map((r) => el("tr", { "data-testid": "changed-key", "data-key": r.key, class: r.changed ? "changed" : "" },
      el("td", {}, el("code", {}, r.key)), el("td", {}, fmt(r.a)), el("td", {}, fmt(r.b))))));
}

function metricDeltas(metrics) {
  const all = metrics || [];
  if (!all.length) return el("p", { class: "muted" }, "No metrics to compare.");
  const moved = all.filter((r) => r.delta !== 0 || r.verdict !== "same");
  const same = all.filter((r) => !moved.includes(r));
  return el("div", {}, moved.length ? metricTable(moved) : el("p", { class: "muted" }, "No metric moved."),
    same.length ? el("details", {}, el("summary", {}, `${same.length} unchanged metrics`), metricTable(same)) : null);
}

function metricTable(rows) {
  return el("table", { class: "metrics" },
    el("thead", {}, el("tr", {}, ["metric", "A", "B", "delta", ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.map((r) => el("tr", { "data-metric": r.metric },
      el("td", {}, r.metric), el("td", { class: "num" }, fmt(r.a)), el("td", { class: "num" }, fmt(r.b)),
      el("td", { class: `num ${r.verdict || ""}` }, fmtDelta(r.delta), r.delta_pct !== null && r.delta_pct !== undefined ? ` (${fmtDelta(r.delta_pct, true)})` : ""),
      el("td", { class: r.verdict || "" }, r.verdict && r.verdict !== "same" ? r.verdict : "")))));
}

function samplesSide(payload) {
  const rows = payload.samples || ((payload.answers && payload.answers.rows) || []);
  if (!rows.length) return el("p", { class: "muted" }, "Neither run stored generated samples.");
  return el("table", { class: "samples" },
    el("thead", {}, el("tr", {}, ["prompt", "reference", "A", "B"].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.map((s) => el("tr", { "data-testid": "sample", class: s.changed === false ? "" : "changed" },
      el("td", {}, el("pre", { class: "text", title: s.prompt ?? "" }, s.label ?? s.prompt ?? "")),
      ["reference", "a", "b"].map((k) => el("td", {}, el("pre", { class: "text" }, s[k] ?? "—")))))));
}

export async function render(main, params) {
  let runs = [];
  try {
    runs = (await api("/api/runs?limit=1000")).runs || [];
  } catch (error) {
    main.append(errorBox(error));
    return;
  }
  let a = params.a || "";
  let b = params.b || "";
  const pickA = picker("compare-a", runs, a);
  const pickB = picker("compare-b", runs, b);
  const body = el("div");
  let showAll = false;
  main.append(el("div", { class: "page-head" }, el("h1", {}, "Compare runs")),
    el("div", { class: "toolbar" }, el("label", {}, "A (baseline) ", pickA), el("label", {}, "B ", pickB)), body);

  const draw = async () => {
    history.replaceState(null, "", a || b ? `/compare?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}` : "/compare");
    if (!a || !b) {
      body.replaceChildren(el("p", { class: "muted" }, "Pick two runs (or tick two rows on the runs page)."));
      return;
    }
    body.replaceChildren(el("p", { class: "muted" }, "loading…"));
    let payload;
    try {
      payload = await api(`/api/compare?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}&all=1`);
    } catch (error) {
      body.replaceChildren(errorBox(error));
      return;
    }
    const curves = payload.curves || {};
    const evalA = evalKey(curves.a);
    const evalB = evalKey(curves.b);
    const chart = lineChart([
      { label: "A train loss", points: seriesOf(curves.a, "loss"), index: 0 },
      { label: "B train loss", points: seriesOf(curves.b, "loss"), index: 1 },
      { label: "A eval loss", points: evalA ? seriesOf(curves.a, evalA) : [], index: 0, dashed: true },
      { label: "B eval loss", points: evalB ? seriesOf(curves.b, evalB) : [], index: 1, dashed: true },
    ], { testid: "chart-compare", title: "Loss, A and B overlaid", empty: "neither run logged a curve" });
    const keysHolder = el("div", {}, changedKeys(payload.config, showAll));
    const toggle = el("label", { class: "small" }, el("input", { type: "checkbox", checked: showAll, onchange: (e) => {
      showAll = e.target.checked;
      keysHolder.replaceChildren(changedKeys(payload.config, showAll));
    } }), " show every key");
    const side = (run, label) => el("div", {}, el("strong", {}, `${label}: `),
      el("a", { href: `/runs/${encodeURIComponent(run.id)}` }, runLabel(run)), " ", statusBadge(run.status),
      el("div", { class: "muted small" }, `${run.method || ""} on ${run.model || ""}`));
    body.replaceChildren(...[
      el("div", { class: "two card" }, side(payload.a || { id: a }, "A"), side(payload.b || { id: b }, "B")),
      section("Changed recipe keys", "changed-keys", toggle, keysHolder),
      section("Metrics (B − A)", "metric-deltas", metricDeltas(payload.metrics)),
      section("Curves", "curves-card", chart),
      section("Answers side by side", "samples", samplesSide(payload)),
      (payload.provenance || []).length
        ? section("Provenance differences", "provenance", el("ul", {}, payload.provenance.map((p) =>
          el("li", {}, typeof p === "object" ? `${p.key ?? ""}: ${fmt(p.a)} → ${fmt(p.b)}` : String(p)))))
        : null].filter(Boolean));
  };
  pickA.addEventListener("change", () => { a = pickA.value; draw(); });
  pickB.addEventListener("change", () => { b = pickB.value; draw(); });
  await draw();
}
