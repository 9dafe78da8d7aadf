// The sections of a run page (/runs/<id>), each built from the run's JSON (`GET /api/runs/<id>`).
import { el } from "/static/app.js";
import { lineChart, seriesOf } from "/static/pages/chart.js";
import { fmt, fmtDelta, fmtTime, kvTable, section, setsOf } from "/static/pages/util.js";

const EVAL_LOSS_KEYS = ["eval_loss", "eval/loss", "eval.loss"];

/** The training chart: train loss per step (and the learning rate's shape is in the events). */
export function trainChart(history) {
  return lineChart([{ label: "train loss", points: seriesOf(history, "loss") }],
    { testid: "chart-train", title: "Training loss", empty: "no training steps logged yet" });
}

/** The eval chart: eval loss per step, or every eval_* series when no loss is logged. */
export function evalChart(history) {
  const rows = history || [];
  const found = new Set(rows.flatMap((row) => Object.keys(row)).filter((k) => /^eval[_/.]/.test(k)));
  let keys = EVAL_LOSS_KEYS.filter((k) => found.has(k));
  if (!keys.length) keys = [...found].filter((k) => !/runtime|per_second|samples|steps/.test(k));
  return lineChart(keys.map((key, i) => ({ label: key.replace(/^eval[_/.]/, "eval "), points: seriesOf(rows, key), index: i + 1 })),
    { testid: "chart-eval", title: "Eval loss", empty: "no evaluation during training yet" });
}

/** Base vs tuned: each metric measured on the base model too, with the delta and its verdict. `rows` are the
 * server's `base_vs_tuned` rows (the verdicts `ftkit diff` gives); without them they are derived from `metrics`. */
export function metricsSection(metrics, rows) {
  const m = metrics || {};
  const lowerBetter = (key) => /loss|perplexity|error|wer|cer/.test(key);
  const compared = rows || Object.keys(m).filter((k) => k.startsWith("base.") && (k.slice(5) in m)).map((k) => {
    const [key, base, tuned] = [k.slice(5), m[k], m[k.slice(5)]];
    const delta = typeof base === "number" && typeof tuned === "number" ? tuned - base : null;
    const verdict = !delta ? "same" : (delta < 0) === lowerBetter(key) ? "better" : "worse";
    return { metric: key, base, tuned, delta, delta_pct: delta !== null && base ? (delta / Math.abs(base)) * 100 : null, verdict };
  });
  const rest = Object.keys(m).filter((k) => !k.startsWith("base.")).sort();
  const table = compared.length
    ? el("table", { class: "metrics", "data-testid": "metrics-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "metric"), el("th", {}, "base model"), el("th", {}, "tuned"), el("th", {}, "delta"), el("th", {}, ""))),
      el("tbody", {}, compared.map((r) => {
        const cls = r.verdict === "better" || r.verdict === "worse" ? r.verdict : "";
        const pct = r.delta_pct !== null && r.delta_pct !== undefined ? ` (${fmtDelta(r.delta_pct, true)})` : "";
        return el("tr", { "data-metric": r.metric }, el("td", {}, r.metric), el("td", { class: "num" }, fmt(r.base)),
          el("td", { class: "num" }, fmt(r.tuned)), el("td", { class: `num ${cls}` }, fmtDelta(r.delta) + pct), el("td", { class: cls }, cls));
      })))
    : el("p", { class: "muted" }, "No base-model metrics for this run (evaluation.compare_base was off or it has no eval data).");
  return section("Metrics: base vs tuned", "metrics", table,
    rest.length ? el("details", {}, el("summary", {}, `All metrics (${rest.length})`), kvTable(rest.map((k) => [k, m[k]]))) : null);
}

/** Generated samples: prompt, reference, base and tuned answers. */
export function samplesSection(samples) {
  const rows = samples || [];
  return section(`Generated samples (${rows.length})`, "samples", rows.length
    ? el("table", { class: "samples" },
      el("thead", {}, el("tr", {}, ["prompt", "reference", "base model", "tuned"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((s) => el("tr", { "data-testid": "sample" },
        el("td", {}, el("pre", { class: "text", title: s.prompt ?? "" }, s.label ?? s.prompt ?? "")),
        el("td", {}, el("pre", { class: "text" }, s.reference ?? "")),
        el("td", {}, el("pre", { class: "text" }, s.base ?? "—")),
        el("td", {}, el("pre", { class: "text" }, s.tuned ?? "—"))))))
    : el("p", { class: "muted" }, "No generated samples (evaluation.generate was 0 or the run did not finish)."));
}

/** The review: summary, findings with evidence, and each suggested next run as a button. */
export function findingsSection(review, onSuggest) {
  if (!review) return section("Review", "findings", el("p", { class: "muted" }, "Not reviewed yet (the review runs when the run ends)."));
  const findings = review.findings || [];
  return section("Review", "findings",
    el("p", { class: review.healthy ? "better" : "" }, review.summary || (findings.length ? "" : "Nothing found.")),
    findings.map((f) => {
      const sets = (f.next && f.next.overrides) || setsOf((f.next && f.next.command) || f.command);
      return el("div", { class: `finding severity-${f.severity}`, "data-testid": "finding" },
        el("div", {}, el("span", { class: "badge" }, f.severity || ""), " ", el("strong", {}, f.title || f.code || f.id || "")),
        f.evidence ? el("p", { class: "muted" }, f.evidence) : null,
        f.action ? el("p", {}, f.action) : null,
        sets.length
          ? el("button", { class: "primary", "data-testid": "suggestion", "data-set": sets.join(" "), onclick: (e) => onSuggest(sets, e.currentTarget) },
            `Start this run: ${sets.join(", ")}`)
          : null);
    }));
}

/** Events of the run's log, newest last. */
export function eventsList(events) {
  return el("ol", { class: "events" }, (events || []).map((e) =>
    el("li", { class: `event kind-${e.kind}` }, el("span", { class: "muted small" }, fmtTime(e.time).slice(11) || ""), " ",
      el("span", { class: "badge" }, e.kind || ""), " ", e.message || "")));
}

/** The recipe as written, the resolved recipe and the rules that chose each auto value. */
export function recipeSection(payload) {
  const auto = (payload.run && payload.run.auto) || {};
  const resolved = payload.resolved_text || (payload.resolved ? JSON.stringify(payload.resolved, null, 2) : "");
  const overrides = (payload.run && payload.run.overrides) || payload.overrides || [];
  return section("Recipe", "recipe",
    overrides.length ? el("p", {}, "Overrides: ", overrides.map((o) => el("code", { class: "chip" }, o))) : null,
    Object.keys(auto).length
      ? el("table", { class: "auto", "data-testid": "auto-values" },
        el("thead", {}, el("tr", {}, el("th", {}, "auto key"), el("th", {}, "value"), el("th", {}, "why"))),
        el("tbody", {}, Object.entries(auto).map(([key, a]) => el("tr", {}, el("td", {}, el("code", {}, key)),
          el("td", { class: "num" }, fmt(a.value)), el("td", {}, a.evidence || "", a.rule ? el("div", { class: "muted small" }, a.rule) : null)))))
      : null,
    el("div", { class: "two" },
      el("div", {}, el("h3", {}, "recipe.yaml"), el("pre", { "data-testid": "recipe-text" }, payload.recipe || "—")),
      el("div", {}, el("h3", {}, "resolved"), el("pre", { "data-testid": "resolved-text" }, resolved || "—"))));
}

/** Data fingerprints: each role's path, rows and sha256. */
export function dataSection(data) {
  const entries = Object.entries(data || {}).filter(([, v]) => v && typeof v === "object");
  return section("Data", "data", entries.length
    ? el("table", {}, el("thead", {}, el("tr", {}, ["role", "path", "rows", "sha256"].map((h) => el("th", {}, h)))),
      el("tbody", {}, entries.map(([role, d]) => el("tr", {}, el("td", {}, role), el("td", {}, el("code", {}, d.path || "")),
        el("td", { class: "num" }, fmt(d.rows)), el("td", {}, el("code", { class: "hash", title: d.sha256 || "" }, (d.sha256 || "").slice(0, 16)))))))
    : el("p", { class: "muted" }, "No data fingerprints recorded."));
}

function runLink(ref) {
  if (!ref) return null;
  const id = typeof ref === "object" ? ref.id : ref;
  const name = typeof ref === "object" && ref.name ? `${ref.name} (${id})` : id;
  return el("a", { href: `/runs/${encodeURIComponent(id)}` }, name);
}

/** Lineage: parent → this run → children, as a small tree. */
export function lineageSection(payload) {
  const lineage = payload.lineage || {};
  const parent = lineage.parent ?? (payload.run && payload.run.parent);
  const children = lineage.children || payload.children || [];
  const me = el("li", { class: "me" }, el("strong", {}, (payload.run && payload.run.name) || payload.id), " (this run)",
    children.length ? el("ul", {}, children.map((c) => el("li", { "data-testid": "lineage-child" }, runLink(c)))) : null);
  return section("Lineage", "lineage", el("ul", { class: "tree" },
    parent ? el("li", { "data-testid": "lineage-parent" }, runLink(parent), el("ul", {}, me)) : me),
    !parent && !children.length ? el("p", { class: "muted small" }, "No parent and no reruns yet.") : null);
}

/** Exports made from the run (`ftkit export`). */
export function exportsSection(exports) {
  const rows = exports || [];
  return section("Exports", "exports", rows.length
    ? el("table", {}, el("thead", {}, el("tr", {}, ["export", "dtype", "folder", "files", "when"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((x) => el("tr", { "data-testid": "export" },
        el("td", {}, x.mode === "merge" ? "merged model" : x.mode === "adapter" ? "adapter" : x.mode || x.format || "export"),
        el("td", {}, x.dtype || "—"), el("td", {}, el("code", {}, x.path || "")),
        el("td", { class: "num" }, Array.isArray(x.files) ? fmt(x.files.length) : "—"),
        el("td", {}, x.damage ? el("span", { class: "worse" }, String(x.damage)) : fmtTime(x.created_at))))))
    : el("p", { class: "muted" }, "Not exported yet: ftkit export RUN -o DIR [--merge|--adapter]"));
}
