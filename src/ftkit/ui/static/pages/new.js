// /new: the one-click fine-tuning job. Choose a data file (upload or a path on this machine), see its data check
// (errors located by row, warnings, token statistics, detected task), choose a base model (recent ones offered)
// and a method (auto), see the plan, press "Fine-tune": the job starts `ftkit tune` in the background and the
// page opens the run's page once its run id is known.
import { api, el, errorBox, go } from "/static/app.js";
import { checkView, planView } from "/static/pages/newparts.js";
import { waitForRun } from "/static/pages/util.js";

const METHODS = ["auto", "lora", "dora", "qlora", "ia3", "prefix", "prompt", "full", "freeze"];

export async function render(main, params) {
  let cancelled = false;
  let data = null; // {upload: {...}} or {path: "..."} once checked without errors
  const fileInput = el("input", { type: "file", "data-testid": "data-file", accept: ".jsonl,.json,.csv,.tsv,.parquet" });
  const pathInput = el("input", { type: "text", "data-testid": "data-path", placeholder: "/path/to/train.jsonl", value: params.data || "", size: 48 });
  const pathButton = el("button", { "data-testid": "check-path" }, "Check");
  const checkBox = el("div", { "data-testid": "data-check" }, el("p", { class: "muted" }, "No data file chosen yet."));
  const modelInput = el("input", { type: "text", list: "recent-models", "data-testid": "base-model", placeholder: "hub id, model folder or .gguf file", value: params.model || "", size: 48 });
  const recent = el("datalist", { id: "recent-models" });
  const recentList = el("div", { class: "chips", "data-testid": "recent-models" });
  const methodSelect = el("select", { "data-testid": "method" }, METHODS.map((m) => el("option", { value: m }, m === "auto" ? "auto (chosen by the plan)" : m)));
  const nameInput = el("input", { type: "text", "data-testid": "run-name", placeholder: "optional", size: 32 });
  const overrides = el("textarea", { "data-testid": "overrides", rows: 3, cols: 48, placeholder: "training.max_steps=100\nevaluation.generate=5" });
  const planButton = el("button", { "data-testid": "show-plan" }, "Show plan");
  const planBox = el("div", { "data-testid": "plan" }, el("p", { class: "muted" }, "The plan shows the method, memory and time estimate and the auto settings with their rules."));
  const tuneButton = el("button", { class: "primary big", "data-testid": "fine-tune", disabled: true }, "Fine-tune");
  const jobBox = el("div", { "data-testid": "job-status" });

  const sets = () => overrides.value.split(/\n/).map((s) => s.trim()).filter(Boolean);
  const dataRef = () => (data && data.upload ? data.upload.id : data && data.path);
  const ready = () => {
    tuneButton.disabled = !data || !modelInput.value.trim();
    planButton.disabled = !data || !modelInput.value.trim();
  };

  const check = async (body, label) => {
    data = null;
    ready();
    planBox.replaceChildren(el("p", { class: "muted" }, "The plan needs checked data and a base model."));
    checkBox.replaceChildren(el("p", { class: "muted", "data-testid": "checking" }, `checking ${label}…`));
    try {
      const report = await api("/api/data/check", { method: "POST", body });
      checkBox.replaceChildren(checkView(report));
      if (report.ok ?? !report.errors) data = body;
    } catch (error) {
      checkBox.replaceChildren(errorBox(error));
    }
    ready();
  };

  fileInput.addEventListener("change", async () => {
    const file = fileInput.files[0];
    if (!file) return;
    pathInput.value = "";
    checkBox.replaceChildren(el("p", { class: "muted" }, `uploading ${file.name}…`));
    const form = new FormData();
    form.append("file", file);
    try {
      const { upload } = await api("/api/uploads", { method: "POST", form });
      await check({ upload: upload.id }, upload.name || file.name);
      if (data) data = { upload };
    } catch (error) {
      data = null;
      ready();
      checkBox.replaceChildren(errorBox(error));
    }
  });
  const checkPath = () => {
    const path = pathInput.value.trim();
    if (path) check({ path }, path);
  };
  pathButton.addEventListener("click", checkPath);
  pathInput.addEventListener("keydown", (e) => { if (e.key === "Enter") checkPath(); });
  const stalePlan = () => {
    if (planBox.querySelector(".plan")) planBox.replaceChildren(el("p", { class: "muted" }, "Changed: show the plan again."));
    ready();
  };
  for (const input of [modelInput, methodSelect, overrides]) input.addEventListener("input", stalePlan);
  methodSelect.addEventListener("change", stalePlan);

  planButton.addEventListener("click", async () => {
    planButton.disabled = true;
    planBox.replaceChildren(el("p", { class: "muted", "data-testid": "planning" }, "planning… (a short probe measures memory and speed)"));
    try {
      const plan = await api("/api/plan", { method: "POST", body: { data: dataRef(), model: modelInput.value.trim(), method: methodSelect.value, set: sets() } });
      planBox.replaceChildren(planView(plan, methodSelect.value));
    } catch (error) {
      planBox.replaceChildren(errorBox(error));
    }
    ready();
  });

  tuneButton.addEventListener("click", async () => {
    tuneButton.disabled = true;
    planButton.disabled = true;
    jobBox.replaceChildren(el("p", { class: "muted" }, "starting…"));
    const body = { data: dataRef(), model: modelInput.value.trim(), method: methodSelect.value, set: sets() };
    if (nameInput.value.trim()) body.name = nameInput.value.trim();
    try {
      const { job } = await api("/api/jobs", { method: "POST", body });
      const show = (j) => jobBox.replaceChildren(el("p", { class: "muted" }, `job ${j.id}: ${j.status}${j.run_id ? "" : " — starting…"}`));
      show(job);
      const done = await waitForRun(job, show, () => cancelled);
      if (cancelled) return;
      if (done.run_id) {
        go(`/runs/${encodeURIComponent(done.run_id)}`);
        return;
      }
      jobBox.replaceChildren(errorBox({ message: `the job ended ${done.status} before its run started`, hint: "its log:" }),
        el("pre", { "data-testid": "job-log" }, [].concat(done.log_tail || []).join("\n")));
    } catch (error) {
      jobBox.replaceChildren(errorBox(error));
    }
    ready();
  });

  main.append(
    el("div", { class: "page-head" }, el("h1", {}, "New fine-tuning job")),
    el("section", { class: "card step" }, el("h2", {}, "1. Training data"),
      el("div", { class: "row" }, el("label", {}, "Upload a file ", fileInput), el("span", { class: "muted" }, "or"),
        el("label", {}, "a path on this machine ", pathInput), pathButton),
      el("p", { class: "muted small" }, "JSONL/JSON/CSV/TSV/Parquet: chat (messages), instruction, completion, text, classification or preference rows."),
      checkBox),
    el("section", { class: "card step" }, el("h2", {}, "2. Base model and method"),
      el("div", { class: "row" }, el("label", {}, "Base model ", modelInput, recent)), recentList,
      el("div", { class: "row" }, el("label", {}, "Method ", methodSelect), el("label", {}, "Name ", nameInput)),
      el("details", {}, el("summary", {}, "Advanced overrides"),
        el("p", { class: "muted small" }, "One KEY=VALUE per line, as `ftkit tune --set` takes them."), overrides)),
    el("section", { class: "card step" }, el("h2", {}, "3. Plan"), planButton, planBox),
    el("div", { class: "row" }, tuneButton, jobBox));

  if (params.data) checkPath();
  api("/api/models/recent").then(({ models }) => {
    for (const m of models || []) {
      recent.append(el("option", { value: m.model }));
      recentList.append(el("button", { class: "chip", type: "button", "data-testid": "recent-model", onclick: () => { modelInput.value = m.model; ready(); } },
        m.model, el("span", { class: "muted small" }, ` · ${m.runs} run${m.runs === 1 ? "" : "s"}`)));
    }
    if (models && models.length) recentList.prepend(el("span", { class: "muted small" }, "Recently used: "));
  }).catch(() => {});
  ready();
  return () => { cancelled = true; };
}
