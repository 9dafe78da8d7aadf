// ftkit ui: the page shell's script. Pages are ES modules under /static/pages/, each exporting
// `render(main, params)`; this file routes URLs to them and offers the helpers they share.
// Text from the registry (run names, tags, recipe values, data rows, generated samples) is only ever put in the
// page with textContent or attribute values through `el`, never parsed as HTML.

const TOKEN = document.querySelector('meta[name="ftkit-token"]').content;

/** Call the JSON API. Writes carry the server's token; a non-2xx answer throws ApiError with its message. */
export async function api(path, { method = "GET", body, form, signal } = {}) {
  const headers = {};
  let payload;
  if (method !== "GET") headers["X-Ftkit-Token"] = TOKEN;
  if (form) payload = form;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload, signal });
  const type = response.headers.get("content-type") || "";
  const data = type.includes("application/json") ? await response.json() : await response.text();
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** The headers a streaming write (fetch with a body read as it arrives) must carry. */
export function writeHeaders() {
  return { "X-Ftkit-Token": TOKEN, "Content-Type": "application/json" };
}

export class ApiError extends Error {
  constructor(status, data) {
    super(typeof data === "object" && data ? data.error : String(data));
    this.status = status;
    this.hint = data && data.hint;
    this.problems = (data && data.problems) || [];
  }
}

/** Build an element: el("a", {href: "/runs/x", class: "id"}, "text", child, ...). Strings become text nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An error box: the message, its hint and its located problems. */
export function errorBox(error) {
  return el("div", { class: "error", role: "alert" },
    el("strong", {}, error.message || String(error)),
    error.hint ? el("p", { class: "hint" }, error.hint) : null,
    error.problems && error.problems.length ? el("ul", {}, error.problems.map((p) => el("li", {}, p))) : null);
}

const ROUTES = [
  [/^\/runs\/?$/, "runs"],
  [/^\/runs\/([^/]+)\/?$/, "run"],
  [/^\/compare\/?$/, "compare"],
  [/^\/new\/?$/, "new"],
  [/^\/playground\/?$/, "playground"],
];

let current = null; // the page's cleanup (stops its polling) when another page opens

/** Open the page for a URL (pushState navigation within the app). */
export async function go(url, replace = false) {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  await route();
}

async function route() {
  const main = document.getElementById("page");
  if (current) current();
  current = null;
  main.replaceChildren();
  const path = location.pathname;
  const match = ROUTES.map(([pattern, name]) => [path.match(pattern), name]).find(([m]) => m);
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", Boolean(match) && link.dataset.nav === match[1].replace(/^run$/, "runs"));
  }
  if (!match) {
    main.append(el("p", {}, "No page at ", el("code", {}, path), ". ", el("a", { href: "/runs" }, "All runs")));
    return;
  }
  const [found, name] = match;
  const params = Object.fromEntries(new URLSearchParams(location.search));
  if (found[1]) params.id = decodeURIComponent(found[1]);
  try {
    const module = await import(`/static/pages/${name}.js`);
    current = (await module.render(main, params)) || null;
  } catch (error) {
    main.append(errorBox(error));
  }
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href]");
  if (!link || link.target || event.ctrlKey || event.metaKey || event.shiftKey) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/") || url.pathname.startsWith("/static/")) return;
  event.preventDefault();
  go(url.pathname + url.search);
});
window.addEventListener("popstate", route);
document.addEventListener("DOMContentLoaded", route);
