// The views of the /new page: a data check report (`ftkit data check --json` plus the detected task) and a plan
// (`ftkit tune --dry-run --json`).
import { el } from "/static/app.js";
import { fmt, fmtBytes, fmtSeconds, kvTable } from "/static/pages/util.js";

const SHOWN_PROBLEMS = 50;

function problemsTable(problems, testid) {
  return el("table", { class: "problems", "data-testid": testid },
    el("thead", {}, el("tr", {}, ["row", "code", "key", "message"].map((h) => el("th", {}, h)))),
    el("tbody", {}, problems.slice(0, SHOWN_PROBLEMS).map((p) => el("tr", { "data-testid": "problem", "data-line": p.line ?? "" },
      el("td", { class: "num" }, p.line ? `line ${p.line}` : "file"), el("td", {}, el("code", {}, p.code || "")),
      el("td", {}, p.key ? el("code", {}, p.key) : ""), el("td", {}, p.message || "")))),
    problems.length > SHOWN_PROBLEMS ? el("caption", { class: "muted small" }, `first ${SHOWN_PROBLEMS} of ${problems.length}`) : null);
}

function detectedTask(report) {
  const task = report.task;
  if (!task) return null;
  if (typeof task !== "object") return String(task);
  return `${task.task}${task.format ? ` (${task.format} format` : ""}${task.reason ? `: ${task.reason}` : ""}${task.format ? ")" : ""}`;
}

/** The data check's result: summary, located errors, warnings (grouped), token statistics and a preview. */
export function checkView(report) {
  const problems = report.problems || [];
  const errors = problems.filter((p) => p.severity === "error");
  const warnings = problems.filter((p) => p.severity !== "error");
  const stats = report.stats || {};
  const length = stats.length || {};
  const task = detectedTask(report);
  const byCode = {};
  for (const w of warnings) byCode[w.code] = (byCode[w.code] || 0) + 1;
  const ok = report.ok ?? !report.errors;
  const taskError = report.task_error;
  const preview = report.preview && report.preview.segments;
  return el("div", { class: ok ? "check ok" : "check bad", "data-errors": report.errors ?? errors.length, "data-warnings": report.warnings ?? warnings.length },
    el("p", { class: "summary", "data-testid": "check-summary" },
      el("strong", { class: ok ? "better" : "worse" }, ok ? "Ready to train. " : report.errors ? `${fmt(report.errors)} error${report.errors === 1 ? "" : "s"}: fix them before training. ` : "Not trainable as it is. "),
      `${fmt(report.rows)} rows (${fmt(report.valid_rows)} valid), ${report.format || "?"} format (${report.format_reason || ""})`,
      task ? el("span", { "data-testid": "detected-task" }, `; task ${task}`) : null,
      taskError && !report.errors ? el("span", { class: "worse", "data-testid": "task-error" }, `; no task detected: ${taskError.message || taskError.error || ""} ${taskError.hint || ""}`) : null,
      `; ${fmt(report.warnings ?? warnings.length)} warning${warnings.length === 1 ? "" : "s"}.`),
    errors.length ? el("div", {}, el("h3", {}, "Errors"), problemsTable(errors, "data-errors")) : null,
    warnings.length ? el("details", { "data-testid": "data-warnings" },
      el("summary", {}, `Warnings: ${Object.entries(byCode).map(([code, n]) => `${n} ${code}`).join(", ")}`),
      problemsTable(warnings, "warning-table")) : null,
    stats.tokens !== undefined ? el("div", { "data-testid": "token-stats" }, el("h3", {}, "Tokens"), kvTable([
      ["tokens", `${fmt(stats.tokens)}${stats.tokens_estimated ? " (estimated)" : ""}`],
      ["trained tokens", stats.trained_tokens],
      ["length per row (min / mean / median / p95 / max)", [length.min, length.mean, length.median, length.p95, length.max].map(fmt).join(" / ")],
      ["truncated rows", `${fmt(stats.truncated_rows)} at max_seq_len ${fmt(stats.max_seq_len)}`],
      ["counted", stats.token_count || "with the model's tokenizer"],
    ])) : null,
    preview ? el("div", {}, el("h3", {}, `What the model trains on (line ${report.preview.line}, highlighted)`),
      el("pre", { class: "preview" }, preview.map(([text, trained]) => el("span", { class: trained ? "trained" : "" }, text)))) : null);
}

/** The plan: method and why, memory and time estimate, auto settings with their rules, the candidates. */
export function planView(payload, method) {
  const tune = payload.tune || {};
  const plan = tune.plan || payload.plan || {};
  const chosen = method && method !== "auto" ? method : plan.recommended || (payload.plan && payload.plan.method);
  const candidates = plan.candidates || [];
  const pick = candidates.find((c) => c.method === chosen) || {};
  const auto = plan.auto || {};
  return el("div", { class: "plan", "data-method": chosen || "" },
    kvTable([
      ["method", el("span", { "data-testid": "plan-method" }, `${chosen || "?"}${plan.reason ? ` — ${plan.reason}` : ""}`)],
      ["task", `${tune.task || plan.task || "?"}, ${tune.format || ""} format (${tune.reason || ""})`],
      ["memory", el("span", { "data-testid": "plan-memory" }, pick.predicted_bytes !== undefined
        ? `${fmtBytes(pick.predicted_bytes)} predicted of ${fmtBytes(plan.free_bytes)} free${pick.fits === false ? " — does NOT fit" : ""}`
        : "—")],
      ["time", el("span", { "data-testid": "plan-time" }, pick.run_seconds !== undefined && pick.run_seconds !== null
        ? `about ${fmtSeconds(pick.run_seconds)} for ${fmt(plan.planned_steps)} steps (${fmt(pick.seconds_per_step)} s/step measured)`
        : "—")],
      ["device", `${plan.device || "?"}, ${plan.precision || ""}; batch ${fmt(plan.batch_size)} × grad_accum ${fmt(plan.grad_accum)}, max_seq_len ${fmt(plan.max_seq_len)}`],
    ]),
    Object.keys(auto).length ? el("div", {}, el("h3", {}, "Auto settings and the rules that chose them"),
      el("table", { "data-testid": "plan-auto" }, el("tbody", {}, Object.entries(auto).map(([key, why]) =>
        el("tr", {}, el("th", {}, el("code", {}, key)), el("td", {}, typeof why === "object" ? JSON.stringify(why) : String(why))))))) : null,
    candidates.length ? el("details", {}, el("summary", {}, `Candidates (${candidates.length})`),
      el("table", {}, el("thead", {}, el("tr", {}, ["method", "fits", "memory", "time", "note"].map((h) => el("th", {}, h)))),
        el("tbody", {}, candidates.map((c) => el("tr", { class: c.method === chosen ? "chosen" : "" },
          el("td", {}, c.method), el("td", {}, c.fits ? "yes" : "no"), el("td", { class: "num" }, fmtBytes(c.predicted_bytes)),
          el("td", { class: "num" }, fmtSeconds(c.run_seconds)), el("td", { class: "muted small" }, c.error || "")))))) : null,
    (plan.warnings || []).length ? el("ul", { class: "warnings" }, plan.warnings.map((w) => el("li", {}, String(w)))) : null);
}
