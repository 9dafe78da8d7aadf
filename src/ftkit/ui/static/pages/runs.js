// /runs: every run of the registry in a sortable, filterable table; running jobs update live (every 2 s while
// any runs); two checked runs open the compare page.
import { api, el, errorBox, go } from "/static/app.js";
import { fmt, fmtSeconds, fmtTime, poll, statusBadge } from "/static/pages/util.js";

const FILTERS = ["status", "method", "model", "tag"];
const COLUMNS = [
  ["name", "Run"],
  ["status", "Status"],
  ["method", "Method"],
  ["model", "Model"],
  ["metric", "Metric"],
  ["tags", "Tags"],
  ["started_at", "Started"],
  ["duration_s", "Duration"],
];

/** Jobs started from this UI that have no run yet (still checking data or planning). */
async function startingJobs() {
  try {
    return ((await api("/api/jobs")).jobs || []).filter((job) => job.status === "running" && !job.run_id);
  } catch (error) {
    return [];
  }
}

function sortValue(run, key, metric) {
  if (key === "metric") return run.metrics ? run.metrics[metric] : undefined;
  if (key === "tags") return (run.tags || []).join(",");
  if (key === "name") return (run.name || run.id || "").toLowerCase();
  return run[key];
}

function compareRuns(a, b, key, order, metric) {
  const [x, y] = [sortValue(a, key, metric), sortValue(b, key, metric)];
  const missing = (v) => v === undefined || v === null || v === "";
  if (missing(x) && missing(y)) return 0;
  if (missing(x)) return 1; // runs without the value last, whatever the order
  if (missing(y)) return -1;
  const sign = order === "asc" ? 1 : -1;
  if (typeof x === "number" && typeof y === "number") return sign * (x - y);
  return sign * String(x).localeCompare(String(y));
}

export async function render(main, params) {
  const state = {
    status: params.status || "",
    method: params.method || "",
    model: params.model || "",
    tag: params.tag || "",
    q: params.q || "",
    sort: params.sort || "started_at",
    order: params.order || "desc",
    metric: params.metric || "",
  };
  const picked = new Set();
  const selects = {};
  const metricSelect = el("select", { "data-testid": "metric-column", "aria-label": "metric column" });
  const search = el("input", { type: "search", placeholder: "Search name, id, tag", value: state.q, "data-testid": "filter-q" });
  const compareButton = el("button", { "data-testid": "compare-picked", disabled: true }, "Compare 2 runs");
  const count = el("span", { class: "muted", "data-testid": "runs-count" });
  const tableHolder = el("div", { class: "table-wrap" });
  const errorHolder = el("div");
  const jobsHolder = el("div");
  for (const name of FILTERS) {
    selects[name] = el("select", { "data-testid": `filter-${name}`, "aria-label": name },
      el("option", { value: "" }, `any ${name}`));
  }

  main.append(
    el("div", { class: "page-head" },
      el("h1", {}, "Runs"),
      el("a", { class: "button primary", href: "/new" }, "New fine-tuning job")),
    el("div", { class: "toolbar" }, FILTERS.map((name) => selects[name]), search,
      el("label", {}, "metric ", metricSelect), compareButton, count),
    errorHolder, jobsHolder, tableHolder);

  let latest = { runs: [], filters: {}, metric_keys: [] };

  const query = () => {
    const q = new URLSearchParams();
    for (const key of [...FILTERS, "q"]) if (state[key]) q.set(key, state[key]);
    return q;
  };
  const syncUrl = () => {
    const q = query();
    if (state.sort !== "started_at") q.set("sort", state.sort);
    if (state.order !== "desc") q.set("order", state.order);
    if (state.metric) q.set("metric", state.metric);
    const text = q.toString();
    history.replaceState(null, "", text ? `/runs?${text}` : "/runs");
  };

  const fillOptions = (select, values, chosen, label) => {
    const wanted = [...new Set([...(values || []), ...(chosen ? [chosen] : [])])];
    const have = [...select.options].slice(1).map((o) => o.value);
    if (have.join("\u0000") !== wanted.join("\u0000")) {
      select.replaceChildren(el("option", { value: "" }, label), ...wanted.map((v) => el("option", { value: v }, v)));
    }
    select.value = chosen || "";
  };

  const header = () => el("thead", {}, el("tr", {},
    el("th", { class: "pick" }, ""),
    COLUMNS.map(([key, label]) => {
      const active = state.sort === key;
      const text = key === "metric" ? state.metric || label : label;
      const sortBy = () => {
        state.order = active && state.order === "desc" ? "asc" : active ? "desc" : key === "name" ? "asc" : "desc";
        state.sort = key;
        syncUrl();
        draw();
      };
      return el("th", {
        class: `sortable${active ? " sorted" : ""}`,
        "data-sort": key,
        tabindex: 0,
        "aria-sort": active ? (state.order === "asc" ? "ascending" : "descending") : "none",
        onclick: sortBy,
        onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(); } },
      }, text, active ? (state.order === "asc" ? " ▲" : " ▼") : "");
    })));

  const row = (run) => {
    const box = el("input", { type: "checkbox", "aria-label": `pick ${run.id}`, "data-testid": "pick-run", checked: picked.has(run.id) });
    box.addEventListener("change", () => {
      if (box.checked) picked.add(run.id);
      else picked.delete(run.id);
      compareButton.disabled = picked.size !== 2;
    });
    const progress = run.progress && run.progress.total_steps
      ? el("progress", { max: run.progress.total_steps, value: run.progress.step || 0 })
      : null;
    const metricValue = run.metrics ? run.metrics[state.metric] : undefined;
    return el("tr", { "data-testid": "run-row", "data-run-id": run.id, "data-status": run.status },
      el("td", { class: "pick" }, box),
      el("td", {}, el("a", { href: `/runs/${encodeURIComponent(run.id)}`, "data-testid": "run-link" }, run.name || run.id),
        el("div", { class: "muted small" }, run.id)),
      el("td", {}, statusBadge(run.status), progress,
        run.progress && run.progress.total_steps ? el("span", { class: "muted small" }, ` ${run.progress.step || 0}/${run.progress.total_steps}`) : null),
      el("td", {}, run.method || "—"),
      el("td", { class: "model" }, run.model || "—"),
      el("td", { class: "num" }, fmt(metricValue)),
      el("td", {}, (run.tags || []).map((tag) => el("span", { class: "tag" }, tag))),
      el("td", {}, fmtTime(run.started_at)),
      el("td", { class: "num" }, fmtSeconds(run.duration_s)));
  };

  const draw = () => {
    const runs = [...latest.runs].sort((a, b) => compareRuns(a, b, state.sort, state.order, state.metric));
    for (const id of [...picked]) if (!runs.some((r) => r.id === id)) picked.delete(id);
    compareButton.disabled = picked.size !== 2;
    count.textContent = `${runs.length} of ${latest.total ?? runs.length} runs`;
    if (!runs.length) {
      tableHolder.replaceChildren(el("p", { class: "empty", "data-testid": "runs-empty" },
        latest.total ? "No run matches these filters." : "No runs yet. ",
        latest.total ? null : el("a", { href: "/new" }, "Start a fine-tuning job")));
      return;
    }
    tableHolder.replaceChildren(el("table", { class: "runs", "data-testid": "runs-table" }, header(), el("tbody", {}, runs.map(row))));
  };

  const load = async () => {
    const q = query();
    q.set("limit", "1000");
    let starting = [];
    try {
      [latest, starting] = await Promise.all([api(`/api/runs?${q}`), startingJobs()]);
      errorHolder.replaceChildren();
      jobsHolder.replaceChildren(...starting.map((job) => el("div", { class: "starting", "data-testid": "starting-job" },
        statusBadge("running"), ` job ${job.id}: `, el("code", {}, job.command || ""), el("span", { class: "muted" }, " — starting (checking data, planning)…"))));
    } catch (error) {
      errorHolder.replaceChildren(errorBox(error));
      return true;
    }
    const filters = latest.filters || {};
    for (const name of FILTERS) fillOptions(selects[name], filters[name], state[name], `any ${name}`);
    const keys = latest.metric_keys || [];
    if (!state.metric) {
      const withHeadline = latest.runs.find((r) => r.headline && r.headline.key);
      state.metric = withHeadline ? withHeadline.headline.key : keys.includes("eval.loss") ? "eval.loss" : keys[0] || "";
    }
    fillOptions(metricSelect, keys, state.metric, "metric");
    draw();
    return starting.length > 0 || latest.runs.some((r) => r.status === "running");
  };

  let stop = poll(load, 2000);
  const reload = () => {
    stop();
    syncUrl();
    stop = poll(load, 2000);
  };
  for (const name of FILTERS) {
    selects[name].addEventListener("change", () => {
      state[name] = selects[name].value;
      reload();
    });
  }
  let typing = null;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      state.q = search.value.trim();
      reload();
    }, 250);
  });
  metricSelect.addEventListener("change", () => {
    state.metric = metricSelect.value;
    syncUrl();
    draw();
  });
  compareButton.addEventListener("click", () => {
    const [a, b] = [...picked];
    go(`/compare?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`);
  });
  return () => {
    stop();
    clearTimeout(typing);
  };
}
