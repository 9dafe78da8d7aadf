// /playground: chat with a run's tuned model (and, side by side, another run and/or the base models), tokens
// streamed as they are generated through POST /api/chat (the same inference path as `ftkit chat`).
import { api, el, errorBox, writeHeaders } from "/static/app.js";
import { runLabel } from "/static/pages/util.js";

/** Stream one answer: POST /api/chat, read `data: {...}` lines, call onToken for each token. Returns the done event. */
async function streamChat(body, onToken, signal) {
  const response = await fetch("/api/chat", { method: "POST", headers: writeHeaders(), body: JSON.stringify(body), signal });
  if (!response.ok) {
    const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    throw Object.assign(new Error(data.error || `HTTP ${response.status}`), data);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    const lines = buffer.split("\n");
    buffer = lines.pop();
    for (const line of lines) {
      if (!line.startsWith("data:")) continue;
      const event = JSON.parse(line.slice(5).trim());
      if (event.error) throw Object.assign(new Error(event.error), { hint: event.hint });
      if (event.done) return event;
      if (event.token !== undefined) onToken(event.token);
    }
  }
  throw new Error("the answer stream ended before its last event");
}

export async function render(main, params) {
  let runs = [];
  try {
    runs = ((await api("/api/runs?status=succeeded&limit=1000")).runs || []);
  } catch (error) {
    main.append(errorBox(error));
    return;
  }
  const controller = new AbortController();
  const picker = (testid, chosen, optional) => {
    const select = el("select", { "data-testid": testid, "aria-label": testid },
      optional ? el("option", { value: "" }, "none") : null,
      runs.map((r) => el("option", { value: r.id }, `${runLabel(r)} · ${r.method || ""}`)));
    if (chosen && !runs.some((r) => r.id === chosen)) select.append(el("option", { value: chosen }, chosen));
    select.value = chosen || (optional ? "" : (runs[0] && runs[0].id) || "");
    return select;
  };
  const pickA = picker("run-a", params.a, false);
  const pickB = picker("run-b", params.b, true);
  const withBase = el("input", { type: "checkbox", "data-testid": "compare-base", checked: params.base === "1" });
  const maxTokens = el("input", { type: "number", min: 1, max: 2048, value: 64, "data-testid": "max-tokens", class: "narrow" });
  const temperature = el("input", { type: "number", min: 0, max: 2, step: 0.1, value: 0, "data-testid": "temperature", class: "narrow" });
  const prompt = el("textarea", { "data-testid": "prompt", rows: 3, placeholder: "Ask something… (Ctrl+Enter sends)" });
  const send = el("button", { class: "primary", "data-testid": "send" }, "Send");
  const clear = el("button", { "data-testid": "clear" }, "Clear");
  const panesBox = el("div", { class: "panes" });
  let panes = [];

  const layout = () => {
    const chosen = [["a", pickA.value], ["b", pickB.value]].filter(([, id]) => id);
    panes = [];
    for (const [slot, id] of chosen) {
      const run = runs.find((r) => r.id === id) || { id };
      panes.push({ slot, run, which: "tuned", title: `${runLabel(run)} — tuned`, messages: [] });
      if (withBase.checked) panes.push({ slot, run, which: "base", title: `${run.model || "base"} — base model of ${runLabel(run)}`, messages: [] });
    }
    for (const pane of panes) {
      pane.log = el("div", { class: "chat-log" });
      pane.node = el("div", { class: "pane", "data-testid": `pane-${pane.slot}${pane.which === "base" ? "-base" : ""}` },
        el("h3", {}, pane.title), pane.log);
    }
    panesBox.replaceChildren(...(panes.length ? panes.map((p) => p.node) : [el("p", { class: "muted" }, "No succeeded run to chat with yet.")]));
    panesBox.dataset.count = String(panes.length);
    const q = new URLSearchParams();
    if (pickA.value) q.set("a", pickA.value);
    if (pickB.value) q.set("b", pickB.value);
    if (withBase.checked) q.set("base", "1");
    history.replaceState(null, "", `/playground?${q}`);
  };

  const ask = async (pane, text) => {
    pane.messages.push({ role: "user", content: text });
    const testid = `answer-${pane.slot}${pane.which === "base" ? "-base" : ""}`;
    const answer = el("div", { class: "msg assistant streaming", "data-testid": testid });
    pane.log.append(el("div", { class: "msg user" }, text), answer);
    let streamed = "";
    try {
      const done = await streamChat({
        run: pane.run.id, which: pane.which, messages: pane.messages,
        max_new_tokens: Number(maxTokens.value) || 64, temperature: Number(temperature.value) || 0,
      }, (token) => {
        streamed += token;
        answer.textContent = streamed;
        pane.log.scrollTop = pane.log.scrollHeight;
      }, controller.signal);
      const final = typeof done.text === "string" ? done.text : streamed;
      answer.textContent = final || "(empty answer)";
      answer.classList.toggle("empty", !final);
      answer.dataset.done = "true";
      answer.dataset.tokens = String(done.tokens ?? "");
      pane.messages.push({ role: "assistant", content: final });
    } catch (error) {
      if (error.name === "AbortError") return;
      answer.replaceWith(errorBox(error));
      pane.messages.pop();
    } finally {
      answer.classList.remove("streaming");
    }
  };

  const submit = async () => {
    const text = prompt.value.trim();
    if (!text || !panes.length) return;
    prompt.value = "";
    send.disabled = true;
    await Promise.all(panes.map((pane) => ask(pane, text)));
    send.disabled = false;
    prompt.focus();
  };

  send.addEventListener("click", submit);
  prompt.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) submit(); });
  clear.addEventListener("click", layout);
  for (const control of [pickA, pickB, withBase]) control.addEventListener("change", layout);

  main.append(
    el("div", { class: "page-head" }, el("h1", {}, "Playground")),
    el("div", { class: "toolbar" }, el("label", {}, "Run ", pickA), el("label", {}, "side by side with ", pickB),
      el("label", {}, withBase, " with its base model"), el("label", {}, "max tokens ", maxTokens),
      el("label", {}, "temperature ", temperature)),
    panesBox,
    el("div", { class: "composer" }, prompt, el("div", { class: "col" }, send, clear)));
  layout();
  return () => controller.abort();
}
