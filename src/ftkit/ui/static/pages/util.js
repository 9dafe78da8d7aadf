// Helpers the pages share: number and time formatting, status badges, sections, key/value tables, polling and
// waiting for a job's run. Everything builds DOM through `el` (text nodes only).
import { api, el } from "/static/app.js";

/** A number as people read it: integers with separators, others with 4 significant digits. */
export function fmt(value) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value !== "number") return typeof value === "object" ? JSON.stringify(value) : String(value);
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value)) return value.toLocaleString("en-US");
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return Number(value.toPrecision(4)).toExponential();
  return String(Number(value.toPrecision(4)));
}

/** A signed delta, e.g. "+0.012" or "−3.1 %" when pct is true. */
export function fmtDelta(value, pct = false) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  const text = pct ? `${fmt(Math.abs(value))} %` : fmt(Math.abs(value));
  return value > 0 ? `+${text}` : value < 0 ? `−${text}` : pct ? "0 %" : "0";
}

/** Bytes as MB/GB. */
export function fmtBytes(bytes) {
  if (typeof bytes !== "number") return "—";
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(1)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(0)} MB`;
  return `${(bytes / 1e3).toFixed(0)} kB`;
}

/** Seconds as "42 s", "3 m 05 s", "1 h 02 m". */
export function fmtSeconds(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "—";
  if (seconds < 1) return "under 1 s";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} m ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} m`;
}

/** An ISO time as local "YYYY-MM-DD HH:MM". */
export function fmtTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** A status badge. */
export function statusBadge(status, attrs = {}) {
  return el("span", { ...attrs, class: `badge status-${status || "unknown"}` }, status || "unknown");
}

/** A titled section of a page. */
export function section(title, testid, ...children) {
  return el("section", { class: "card", "data-testid": testid }, el("h2", {}, title), ...children);
}

/** A two-column table of [key, value] pairs (values may be nodes). */
export function kvTable(pairs, attrs = {}) {
  return el("table", { class: "kv", ...attrs },
    el("tbody", {}, pairs.map(([key, value]) =>
      el("tr", {}, el("th", {}, key), el("td", {}, value instanceof Node ? value : fmt(value))))));
}

/** Call `fn` now and then every `ms` while it returns true; returns a function that stops it. */
export function poll(fn, ms) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    let again = false;
    try {
      again = await fn();
    } catch (error) {
      console.error(error);
      again = true;
    }
    if (!stopped && again) timer = setTimeout(tick, ms);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** Wait until a started job knows its run id (polling /api/jobs/<id>); resolves to the job. */
export async function waitForRun(job, onUpdate = () => {}, isCancelled = () => false) {
  let current = job;
  while (!current.run_id && !isCancelled()) {
    if (current.status && current.status !== "running" && current.status !== "starting") {
      return current;
    }
    await new Promise((resolve) => setTimeout(resolve, 700));
    current = (await api(`/api/jobs/${encodeURIComponent(current.id)}`)).job;
    onUpdate(current);
  }
  return current;
}

/** The `--set KEY=VALUE` overrides in a suggested command such as `ftkit rerun RUN --set a=1 --set 'b=x y'`. */
export function setsOf(command) {
  const tokens = (String(command || "").match(/'[^']*'|"[^"]*"|\S+/g) || []).map((t) => t.replace(/^['"]|['"]$/g, ""));
  const sets = [];
  tokens.forEach((token, i) => {
    if (token === "--set" && tokens[i + 1]) sets.push(tokens[i + 1]);
    else if (token.startsWith("--set=")) sets.push(token.slice(6));
  });
  return sets;
}

/** A run's label: its name and short id. */
export function runLabel(run) {
  const id = run.id || run.run_id || "";
  return run.name ? `${run.name} (${id.slice(-6)})` : id;
}
