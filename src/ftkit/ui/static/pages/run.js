// /runs/<id>: one run — status and live progress, curves, events, base vs tuned metrics, samples, the review's
// suggested next runs (buttons that start them), recipe, data fingerprints, lineage and exports. While the run is
// running the page polls every 2 s and redraws its live parts; "Stop" stops the job that runs it.
import { api, el, errorBox, go } from "/static/app.js";
import {
  dataSection, evalChart, eventsList, exportsSection, findingsSection, lineageSection, metricsSection,
  recipeSection, samplesSection, trainChart,
} from "/static/pages/runparts.js";
import { fmt, fmtSeconds, fmtTime, poll, section, statusBadge, waitForRun } from "/static/pages/util.js";

async function runningJob(id) {
  try {
    const { jobs } = await api("/api/jobs");
    return (jobs || []).find((job) => job.run_id === id && job.status === "running") || null;
  } catch (error) {
    return null;
  }
}

function progressBlock(payload) {
  const run = payload.run || {};
  const p = payload.progress;
  if (run.status === "running") {
    if (!p) return el("div", { "data-testid": "run-progress", "data-step": 0 }, el("span", { class: "muted" }, "starting…"));
    const total = p.total_steps || 0;
    return el("div", { "data-testid": "run-progress", "data-step": p.step || 0, "data-total": total },
      total ? el("progress", { max: total, value: p.step || 0 }) : null,
      ` step ${fmt(p.step || 0)}${total ? ` of ${fmt(total)}` : ""}`,
      p.phase ? ` · ${p.phase}` : "",
      p.tokens_per_sec ? ` · ${fmt(p.tokens_per_sec)} tokens/s` : "");
  }
  const steps = payload.metrics && payload.metrics["train.steps"];
  const planned = ((payload.resolved || {}).training || {}).max_steps;
  const cut = run.status !== "succeeded" && typeof planned === "number" && typeof steps === "number" && steps < planned;
  const total = cut ? planned : steps;
  return el("div", { "data-testid": "run-progress", "data-step": steps ?? "", "data-total": total ?? "", class: "muted" },
    cut ? el("progress", { max: planned, value: steps }) : null,
    typeof steps === "number" ? (cut ? ` ${run.status} at step ${fmt(steps)} of ${fmt(planned)}` : `${fmt(steps)} steps`) : "",
    run.duration_s ? ` in ${fmtSeconds(run.duration_s)}` : "");
}

export async function render(main, params) {
  const id = params.id;
  let stopped = false;
  let stopPolling = () => {};
  let job = null;
  let lastStatus = null;
  const parts = {};

  const put = (key, node) => {
    if (parts[key] && parts[key].isConnected) parts[key].replaceWith(node);
    parts[key] = node;
    return node;
  };

  const suggest = async (sets, button) => {
    button.disabled = true;
    button.textContent = "starting…";
    try {
      const started = (await api(`/api/runs/${encodeURIComponent(id)}/rerun`, { method: "POST", body: { set: sets } })).job;
      const done = await waitForRun(started, () => {}, () => stopped);
      if (done.run_id) go(`/runs/${encodeURIComponent(done.run_id)}`);
      else button.replaceWith(errorBox({ message: `the rerun ended ${done.status} before its run started`, hint: [].concat(done.log_tail || []).slice(-3).join(" ") }));
    } catch (error) {
      button.replaceWith(errorBox(error));
    }
  };

  const stopButton = () => {
    if (!job) return put("stop", el("span"));
    const button = el("button", { class: "danger", "data-testid": "stop-job" }, "Stop");
    button.addEventListener("click", async () => {
      button.disabled = true;
      button.textContent = "stopping…";
      try {
        await api(`/api/jobs/${encodeURIComponent(job.id)}/stop`, { method: "POST", body: {} });
      } catch (error) {
        button.replaceWith(errorBox(error));
      }
    });
    return put("stop", button);
  };

  const header = (payload) => {
    const run = payload.run || {};
    return el("div", { class: "page-head" },
      el("div", {},
        el("h1", {}, run.name || payload.id, " ", put("status", statusBadge(run.status, { "data-testid": "run-status" }))),
        el("div", { class: "muted" }, el("code", {}, payload.id), ` · ${run.method || "?"} on `, el("code", {}, run.model || "?"),
          ` · ${run.task || ""} · started ${fmtTime(run.started_at)}`,
          (payload.tags || []).map((t) => el("span", { class: "tag" }, t)))),
      el("div", { class: "actions" },
        stopButton(),
        el("a", { class: "button", href: `/playground?a=${encodeURIComponent(payload.id)}` }, "Open in playground"),
        el("a", { class: "button", href: `/compare?a=${encodeURIComponent(run.parent || payload.id)}&b=${encodeURIComponent(payload.id)}` }, "Compare")));
  };

  const eventsBox = (payload) => {
    const old = parts.events;
    const box = el("div", { class: "events-box", "data-testid": "events" }, eventsList(payload.events));
    const atEnd = !old || old.scrollTop + old.clientHeight >= old.scrollHeight - 8;
    put("events", box);
    if (atEnd) box.scrollTop = box.scrollHeight;
    else box.scrollTop = old.scrollTop;
    return box;
  };

  const live = (payload) => {
    if (Boolean(job) !== (parts.stop && parts.stop.tagName === "BUTTON")) stopButton();
    put("status", statusBadge(payload.run && payload.run.status, { "data-testid": "run-status" }));
    put("progress", progressBlock(payload));
    put("train", trainChart(payload.history));
    put("eval", evalChart(payload.history));
    eventsBox(payload);
    const error = payload.run && payload.run.error;
    put("error", error ? errorBox({ message: typeof error === "string" ? error : error.message || JSON.stringify(error), hint: error.hint }) : el("div"));
  };

  const full = (payload) => {
    for (const key of Object.keys(parts)) delete parts[key];
    main.replaceChildren(
      header(payload),
      put("error", el("div")),
      section("Progress", "progress-card", put("progress", el("div"))),
      el("div", { class: "two" }, section("Training loss", "train-card", put("train", el("div"))), section("Eval loss", "eval-card", put("eval", el("div")))),
      put("metrics", metricsSection(payload.metrics, payload.base_vs_tuned)),
      put("findings", findingsSection(payload.review, suggest)),
      put("samples", samplesSection(payload.samples)),
      section("Events", "events-card", put("events", el("div"))),
      recipeSection(payload),
      dataSection(payload.data),
      lineageSection(payload),
      exportsSection(payload.exports));
    live(payload);
  };

  const load = async () => {
    let payload;
    try {
      payload = await api(`/api/runs/${encodeURIComponent(id)}`);
    } catch (error) {
      if (error.status === 404 && (job || (job = await runningJob(id)))) {
        main.replaceChildren(el("p", { "data-testid": "run-status", class: "muted" }, "starting…"));
        return true;
      }
      main.replaceChildren(errorBox(error), el("p", {}, el("a", { href: "/runs" }, "All runs")));
      return false;
    }
    const status = payload.run && payload.run.status;
    if (status === "running") job = job || (await runningJob(payload.id));
    else job = null;
    if (status !== lastStatus) full(payload);
    else live(payload);
    lastStatus = status;
    return status === "running" || Boolean(job);
  };

  main.append(el("p", { class: "muted" }, "loading…"));
  stopPolling = poll(load, 2000);
  return () => {
    stopped = true;
    stopPolling();
  };
}
