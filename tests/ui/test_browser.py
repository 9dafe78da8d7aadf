"""`ftkit ui` driven in a real headless Chromium (Debian's, through Playwright's sync client) against a real server
on a tiny model: upload data and see its check, start a one-click job and follow it to its run page (curves with
points), the runs table, compare two runs, chat in the playground (streamed answer), stop a running job (recorded
as interrupted), a bad upload starting nothing, and a `<script>` run name shown as text.

One server, one browser and two tiny runs are shared by the module. Each page is screenshotted into the test's
screenshot folder (and copied to $FTKIT_UI_SCREENSHOTS when set) for a person to look at.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import chat_rows, write_jsonl
from tests.ui.conftest import UiServer, start_ui, stop_ui

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
XSS_NAME = "<script>window.__xss=1</script>"
RUN_URL = re.compile(r".*/runs/\d{8}-\d{6}-[0-9a-f]+$")
JOB_WAIT_S = 240  # the longest a tiny job may take on a busy 2-core machine before the test gives up


def call(server: UiServer, method: str, path: str, body: dict | None = None) -> dict:
    """The JSON API as the page calls it (writes carry the page's token)."""
    headers = {"Content-Type": "application/json"}
    if method != "GET":
        headers["X-Ftkit-Token"] = server.token
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{server.url}{path}", data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_job(server: UiServer, job_id: str) -> dict:
    """The job once it ended (polled through the API)."""
    deadline = time.monotonic() + JOB_WAIT_S
    while time.monotonic() < deadline:
        job = call(server, "GET", f"/api/jobs/{job_id}")["job"]
        if job["status"] != "running":
            return job
        time.sleep(1)
    raise AssertionError(f"job {job_id} still running after {JOB_WAIT_S} s")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ui-browser")


@pytest.fixture(scope="module")
def server(folder) -> UiServer:
    running = start_ui(folder / "registry")
    yield running
    for job in call(running, "GET", "/api/jobs")["jobs"]:  # no job outlives the tests
        if job["status"] == "running":
            with contextlib.suppress(urllib.error.HTTPError):  # it may have ended meanwhile
                call(running, "POST", f"/api/jobs/{job['id']}/stop", {})
    stop_ui(running)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium (apt-get install chromium; "
            ".ci/run installs it)",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(folder) -> Path:
    directory = folder / "screenshots"
    directory.mkdir()
    return directory


def screenshot(page, shots: Path, name: str) -> None:
    """A full-page PNG under `shots`, copied to $FTKIT_UI_SCREENSHOTS when that is set."""
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    extra = os.environ.get("FTKIT_UI_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / path.name)


@pytest.fixture
def page(browser, server):
    """A fresh page; any uncaught script error on it fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.set_default_timeout(30_000)
    yield opened
    context.close()
    assert not errors, f"script errors on the page: {errors}"


@pytest.fixture(scope="module")
def data_file(folder) -> Path:
    return write_jsonl(folder / "data" / "chat.jsonl", chat_rows(64, seed=1))


@pytest.fixture(scope="module")
def runs(browser, server, folder, data_file, tiny_model_dir, shots) -> dict:
    """Two finished runs: `tuned` made through the /new page (upload, check, plan, one click), and one named
    with a `<script>` started through the API at the same time, with fewer steps and a learning rate too small to
    gain anything (so its review finds `no_gain` and suggests `training.learning_rate=auto`)."""
    from playwright.sync_api import expect

    outputs = folder / "outputs"
    other = call(server, "POST", "/api/jobs", {
        "data": str(data_file), "model": str(tiny_model_dir), "name": XSS_NAME,
        "set": ["training.max_steps=3", "training.learning_rate=1e-7", "evaluation.generate=2", f"output={outputs}"],
    })["job"]  # fmt: skip

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{server.url}/new")
    page.get_by_test_id("data-file").set_input_files(str(data_file))
    summary = page.get_by_test_id("check-summary")
    expect(summary).to_contain_text("Ready to train")
    seen = {"check": summary.inner_text(), "stats": page.get_by_test_id("token-stats").inner_text()}
    page.get_by_test_id("base-model").fill(str(tiny_model_dir))
    page.locator("details", has=page.get_by_test_id("overrides")).locator("summary").click()
    page.get_by_test_id("overrides").fill(f"training.max_steps=4\nevaluation.generate=2\noutput={outputs}")
    page.get_by_test_id("show-plan").click()
    expect(page.get_by_test_id("plan-method")).to_contain_text("lora", timeout=120_000)
    seen["plan"] = page.get_by_test_id("plan").inner_text()
    screenshot(page, shots, "new-job")
    page.get_by_test_id("fine-tune").click()
    page.wait_for_url(RUN_URL, timeout=120_000)
    tuned = page.url.rsplit("/", 1)[1]
    expect(page.get_by_test_id("run-status")).to_have_text("succeeded", timeout=JOB_WAIT_S * 1000)
    context.close()
    other = wait_job(server, other["id"])
    assert other["status"] == "succeeded", other.get("log_tail")
    return {"tuned": tuned, "xss": other["run_id"], "seen": seen}


def test_new_job_checks_the_upload_and_shows_the_plan(runs):
    seen = runs["seen"]
    assert "64 rows (64 valid)" in seen["check"] and "task causal-lm" in seen["check"]
    assert "tokens" in seen["stats"] and "length per row" in seen["stats"]
    assert "training.learning_rate" in seen["plan"] and "predicted" in seen["plan"]


def test_one_click_job_reaches_its_end_with_curves(runs, page, server, shots):
    from playwright.sync_api import expect

    page.goto(f"{server.url}/runs/{runs['tuned']}")
    expect(page.get_by_test_id("run-status")).to_have_text("succeeded")
    progress = page.get_by_test_id("run-progress")
    assert progress.get_attribute("data-step") == progress.get_attribute("data-total") == "4"  # the override
    train_points = page.get_by_test_id("chart-train").get_by_test_id("curve").first.get_attribute("points")
    assert len(train_points.split()) == 4  # one point per logged step
    assert page.get_by_test_id("chart-eval").get_by_test_id("curve").count() >= 1
    expect(page.get_by_test_id("metrics")).to_contain_text("eval.loss")
    assert page.get_by_test_id("events").locator("li").count() > 3
    expect(page.get_by_test_id("recipe")).to_contain_text("training.max_steps=4")
    expect(page.get_by_test_id("data")).to_contain_text("chat.jsonl")
    screenshot(page, shots, "run")


def test_runs_table_lists_filters_and_escapes(runs, page, server, shots):
    from playwright.sync_api import expect

    page.goto(f"{server.url}/runs")
    rows = page.get_by_test_id("run-row")
    expect(page.locator(f'[data-testid="run-row"][data-run-id="{runs["tuned"]}"]')).to_contain_text(
        "succeeded"
    )
    xss_row = page.locator(f'[data-testid="run-row"][data-run-id="{runs["xss"]}"]')
    expect(xss_row.get_by_test_id("run-link")).to_have_text(XSS_NAME)  # shown as text, never run
    page.get_by_test_id("filter-status").select_option("succeeded")
    expect(page).to_have_url(re.compile(r".*status=succeeded"))
    statuses = set(rows.evaluate_all("rows => rows.map(r => r.dataset.status)"))
    assert statuses == {"succeeded"}
    page.locator('th[data-sort="name"]').click()
    expect(rows.first).to_have_attribute("data-run-id", runs["xss"])  # "<" sorts before letters
    screenshot(page, shots, "runs")
    page.goto(f"{server.url}/runs/{runs['xss']}")
    expect(page.locator("h1")).to_contain_text(XSS_NAME)
    assert page.evaluate("window.__xss") is None


def test_compare_two_runs_picked_in_the_table(runs, page, server, shots):
    from playwright.sync_api import expect

    page.goto(f"{server.url}/runs")
    for run_id in (runs["tuned"], runs["xss"]):
        page.locator(f'[data-testid="run-row"][data-run-id="{run_id}"]').get_by_test_id("pick-run").check()
    page.get_by_test_id("compare-picked").click()
    page.wait_for_url(re.compile(r".*/compare\?a=.+&b=.+"))
    keys = page.get_by_test_id("changed-key")
    expect(keys.first).to_be_visible()
    changed = set(keys.evaluate_all("rows => rows.map(r => r.dataset.key)"))
    assert {"training.max_steps", "training.learning_rate"} <= changed  # what the two jobs set differently
    expect(page.get_by_test_id("metric-deltas")).to_contain_text("eval.loss")
    assert page.get_by_test_id("chart-compare").get_by_test_id("curve").count() >= 2
    assert page.get_by_test_id("samples").get_by_test_id("sample").count() >= 1
    assert page.evaluate("window.__xss") is None
    screenshot(page, shots, "compare")


def test_playground_streams_answers_from_tuned_base_and_another_run(runs, page, server, shots):
    from playwright.sync_api import expect

    page.goto(f"{server.url}/playground?a={runs['tuned']}")
    page.get_by_test_id("compare-base").check()
    page.get_by_test_id("max-tokens").fill("12")
    page.get_by_test_id("prompt").fill("what is the color of the fox")
    page.get_by_test_id("send").click()
    for testid in ("answer-a", "answer-a-base"):
        answer = page.get_by_test_id(testid)
        expect(answer).to_have_attribute("data-done", "true", timeout=120_000)
        assert int(answer.get_attribute("data-tokens")) > 0
    screenshot(page, shots, "playground")
    page.get_by_test_id("compare-base").uncheck()
    page.get_by_test_id("run-b").select_option(runs["xss"])  # two runs side by side
    page.get_by_test_id("prompt").fill("what is the color of the owl")
    page.get_by_test_id("send").click()
    for testid in ("answer-a", "answer-b"):
        expect(page.get_by_test_id(testid)).to_have_attribute("data-done", "true", timeout=120_000)
    expect(page.get_by_test_id("answer-a-base")).to_have_count(0)
    screenshot(page, shots, "playground-two-runs")


def test_a_review_suggestion_starts_the_next_run(runs, page, server, shots):
    from playwright.sync_api import expect

    page.goto(f"{server.url}/runs/{runs['xss']}")
    suggestion = page.get_by_test_id("suggestion").first
    expect(suggestion).to_have_attribute("data-set", "training.learning_rate=auto")  # the review's next run
    screenshot(page, shots, "run-review")
    suggestion.click()
    page.wait_for_url(lambda url: bool(RUN_URL.match(url)) and not url.endswith(runs["xss"]), timeout=120_000)
    child = page.url.rsplit("/", 1)[1]
    expect(page.get_by_test_id("lineage-parent")).to_contain_text(runs["xss"], timeout=JOB_WAIT_S * 1000)
    for job in call(server, "GET", "/api/jobs")["jobs"]:  # proven started; stop it to spare the CPU
        if job["run_id"] == child and job["status"] == "running":
            with contextlib.suppress(urllib.error.HTTPError):  # it may have ended meanwhile
                call(server, "POST", f"/api/jobs/{job['id']}/stop", {})


def test_stop_a_running_job_records_it_interrupted(
    runs, page, server, data_file, tiny_model_dir, folder, shots
):
    from playwright.sync_api import expect

    page.goto(f"{server.url}/new")
    page.get_by_test_id("data-path").fill(str(data_file))
    page.get_by_test_id("check-path").click()
    expect(page.get_by_test_id("check-summary")).to_contain_text("Ready to train")
    page.get_by_test_id("base-model").fill(str(tiny_model_dir))
    page.get_by_test_id("method").select_option("lora")
    page.locator("details", has=page.get_by_test_id("overrides")).locator("summary").click()
    page.get_by_test_id("overrides").fill(
        f"training.epochs=1000\ntraining.max_steps=20000\nevaluation.generate=0\noutput={folder / 'outputs'}"
    )
    page.get_by_test_id("fine-tune").click()
    page.wait_for_url(RUN_URL, timeout=120_000)
    expect(page.get_by_test_id("run-status")).to_have_text("running", timeout=120_000)
    expect(page.get_by_test_id("run-progress")).not_to_have_attribute(
        "data-step", re.compile(r"^0?$"), timeout=120_000
    )
    screenshot(page, shots, "run-live")
    page.get_by_test_id("stop-job").click()
    expect(page.get_by_test_id("run-status")).to_have_text("interrupted", timeout=120_000)
    run_id = page.url.rsplit("/", 1)[1]
    assert call(server, "GET", f"/api/runs/{run_id}")["run"]["status"] == "interrupted"
    screenshot(page, shots, "run-interrupted")


def test_a_bad_upload_shows_located_errors_and_starts_nothing(page, server, folder, tiny_model_dir, shots):
    from playwright.sync_api import expect

    bad = folder / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n{"foo": 1}\n')
    jobs_before = len(call(server, "GET", "/api/jobs")["jobs"])
    page.goto(f"{server.url}/new")
    page.get_by_test_id("data-file").set_input_files(str(bad))
    errors = page.get_by_test_id("data-errors")
    expect(errors).to_be_visible()
    lines = errors.get_by_test_id("problem").evaluate_all("rows => rows.map(r => r.dataset.line)")
    assert lines == ["1", "2", "3"]  # each bad row located
    page.get_by_test_id("base-model").fill(str(tiny_model_dir))
    expect(page.get_by_test_id("fine-tune")).to_be_disabled()
    assert len(call(server, "GET", "/api/jobs")["jobs"]) == jobs_before
    screenshot(page, shots, "new-bad-data")
