"""`runs`, `show`, `log` and `diff` at 80 and 120 columns: no cell wraps, no column is cut to nothing, user text is
printed as written (never as markup); piped, the same commands print full values tab-separated."""

from __future__ import annotations

import re

import pytest

from ftkit.registry.store import RunRecord, RunRegistry
from tests.cli.terminal import assert_fits, column_starts, piped, row_cells, sections, shows_enough, terminal

LONG_PATH = "/home/someone/projects/fine-tuning/data/customer-support/2025-01/train-deduplicated.jsonl"
RUNS = [  # oldest first; two ids share their first 16 characters, as runs started in the same second do
    {"run_id": "20250101-120000-aaaaaa", "name": "brave-otter", "status": "succeeded", "method": "lora",
     "model": "Qwen/Qwen2.5-0.5B-Instruct", "loss": 2.0, "accuracy": 0.5, "lr": 1e-4, "tags": []},
    {"run_id": "20250101-120000-bbbbbb", "name": "[red]alert[/red]", "status": "failed", "method": "qlora",
     "model": "/home/user/models/llama-3.2-1b-instruct-q4_k_m.gguf", "loss": 1.75, "accuracy": 0.625,
     "lr": 2e-4, "tags": []},
    {"run_id": "20250102-093000-cccccc", "name": "calm-heron", "status": "interrupted", "method": "dora",
     "model": "HuggingFaceTB/SmolLM2-135M-Instruct", "loss": 1.5, "accuracy": 0.75, "lr": 2e-4, "tags": []},
    {"run_id": "20250301-080000-dddddd", "name": "quick-lynx", "status": "succeeded", "method": "prefix",
     "model": "tiny-llama", "loss": 1.25, "accuracy": 0.875, "lr": 3e-4, "tags": ["baseline", "production"]},
]  # fmt: skip
# The shortest unique prefixes, at least 7 characters, worked out by hand.
PREFIX = {
    "20250101-120000-aaaaaa": "20250101-120000-a",
    "20250101-120000-bbbbbb": "20250101-120000-b",
    "20250102-093000-cccccc": "20250102",
    "20250301-080000-dddddd": "2025030",
}
ENDED = {run["run_id"]: f"2025-01-0{i + 1}T12:00:42+00:00" for i, run in enumerate(RUNS)}
WIDTHS = (80, 120)


@pytest.fixture
def registry_path(tmp_path, monkeypatch):
    """A registry holding RUNS (committed through the API, no training), named by FTKIT_REGISTRY."""
    registry = RunRegistry.open(tmp_path / "registry")
    with registry:
        for i, run in enumerate(RUNS):
            registry.commit_run(
                RunRecord(
                    run_id=run["run_id"],
                    name=run["name"],
                    status=run["status"],
                    method=run["method"],
                    model=run["model"],
                    task="causal-lm",
                    started_at=f"2025-01-0{i + 1}T12:00:00+00:00",
                    ended_at=ENDED[run["run_id"]],
                    recipe_text="model: x\n",
                    resolved={
                        "model": run["model"],
                        "data": {"train": LONG_PATH if i % 2 else LONG_PATH.replace("2025-01", "2024-12")},
                        "training": {"learning_rate": run["lr"], "epochs": 1},
                    },
                    metrics={"eval": {"loss": run["loss"], "accuracy": run["accuracy"]}},
                    env={"python": "3.11.0", "packages": {"torch": "2.4.0"}, "seed": 42},
                    data={"train": {"path": LONG_PATH, "sha256": "ab" * 32, "rows": 1200}},
                )
            )
            for tag in run["tags"]:
                registry.tag(run["run_id"], tag)
    monkeypatch.setenv("FTKIT_REGISTRY", str(registry.root))
    return registry.root


@pytest.mark.parametrize("width", WIDTHS)
def test_runs_fits_the_terminal(registry_path, width):
    _, lines = terminal(["runs", "--all"], width)
    assert_fits(lines, width)
    header, rows, notes = lines[0], lines[1:5], lines[5:]
    assert not notes or notes[0].startswith("hidden to fit: ")  # then only that hint, wrapped by word
    starts = column_starts(header)
    assert {"id", "name", "status", "model", "eval.loss"} <= set(starts)
    if width == 120:
        assert {"method", "eval.accuracy"} <= set(starts)
    hidden = set(" ".join(notes).split(": ", 1)[1].split(" (")[0].split(", ")) if notes else set()
    assert set(starts) | hidden == {"id", "name", "status", "method", "model", "eval.loss", "eval.accuracy",
                                    "tags", "when"}  # fmt: skip
    by_id = {run["run_id"]: run for run in RUNS}
    for line in rows:
        cells = row_cells(line, starts)
        run = next(by_id[full] for full, prefix in PREFIX.items() if cells["id"] == prefix)
        assert cells["name"] == run["name"]  # as written, markup-like text included
        assert cells["status"] == run["status"]
        assert shows_enough(cells["model"], run["model"], at_least=10), cells["model"]
        assert float(cells["eval.loss"]) == run["loss"]
        if "method" in cells:
            assert cells["method"] == run["method"]
        if "tags" in cells and run["tags"]:
            assert shows_enough(cells["tags"], ", ".join(run["tags"]), at_least=8)


def test_runs_wide_shows_every_column_in_full(registry_path):
    _, lines = terminal(["runs", "--all", "--wide"], 80)
    starts = column_starts(lines[0])
    assert list(starts) == [
        "id",
        "name",
        "status",
        "method",
        "model",
        "eval.loss",
        "eval.accuracy",
        "tags",
        "when",
    ]
    assert len(lines) == 5  # header and four rows: nothing hidden, nothing wrapped
    models = {row_cells(line, starts)["model"] for line in lines[1:]}
    assert models == {run["model"] for run in RUNS}


def test_runs_piped_is_full_tab_separated(registry_path):
    result, lines = piped(["runs", "--all"])
    assert lines[0] == "id\tname\tstatus\tmethod\tmodel\teval.loss\teval.accuracy\ttags\twhen"
    expected = [
        "\t".join([run["run_id"], run["name"], run["status"], run["method"], run["model"], f"{run['loss']:g}",
                   f"{run['accuracy']:g}", ",".join(run["tags"]), ENDED[run["run_id"]]])
        for run in reversed(RUNS)
    ]  # fmt: skip
    assert sorted(lines[1:]) == sorted(expected)
    hidden_note = piped(["runs"])[0]
    assert (
        "hidden" not in hidden_note.stdout and "--all shows them" in hidden_note.stderr
    )  # hints leave the pipe


@pytest.mark.parametrize("width", WIDTHS)
def test_show_fits_the_terminal(registry_path, width):
    _, lines = terminal(["show", "20250101-120000-b"], width)
    assert_fits(lines, width)
    blocks = sections(lines)
    title = "Run 20250101-120000-bbbbbb ([red]alert[/red])"
    assert list(blocks)[:4] == [title, "Metrics", "Data", "Environment"]
    assert list(blocks)[4].startswith("no stored review (recorded before reviews existed)")
    facts = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in blocks[title])
    assert len(blocks[title]) == 14  # one line per fact: none wrapped
    assert facts["status"] == "failed" and facts["seed"] == "42" and facts["config hash"] == "—"
    assert shows_enough(facts["model"], RUNS[1]["model"], at_least=16)
    metrics = blocks["Metrics"]
    assert column_starts(metrics[0]) == {"metric": 0, "value": metrics[0].index("value")}
    assert [line.split() for line in metrics[1:]] == [["eval.accuracy", "0.625"], ["eval.loss", "1.75"]]
    data = blocks["Data"]
    cells = row_cells(data[1], column_starts(data[0]))
    assert len(data) == 2 and cells["role"] == "train" and cells["rows"] == "1200"
    assert shows_enough(cells["path"], LONG_PATH, at_least=16) and cells["sha256"] == "ab" * 6
    assert len(blocks["Environment"]) == 3  # python, platform, torch


def test_show_piped(registry_path):
    _, lines = piped(["show", "quick-lynx"])
    assert lines[0] == "# Run 20250301-080000-dddddd (quick-lynx)"
    assert "tags\tbaseline, production" in lines and "model\ttiny-llama" in lines
    assert lines[lines.index("# Data") + 1 :][:2] == [
        "role\tpath\trows\tsha256",
        f"train\t{LONG_PATH}\t1200\t{'ab' * 32}",
    ]


@pytest.mark.parametrize("width", WIDTHS)
def test_log_fits_the_terminal(registry_path, width):
    _, lines = terminal(["log", "--all"], width)
    assert_fits(lines, width)
    entries = sections(lines)
    assert len(entries) == 4
    for head, details in entries.items():
        run = next(r for r in RUNS if head.startswith(PREFIX[r["run_id"]] + " "))
        assert head.split()[1] == run["name"] and run["status"] in head
        model = head.rsplit(" on ", 1)[1].split("  ")[0]
        assert shows_enough(model, run["model"], at_least=8), head
        # metric line, then the learning-rate change or "config unchanged" (no change line is cut off the entry)
        assert details[0].split()[:2] == ["eval.loss", f"{run['loss']:g}"]
        assert all(line.startswith("    ") for line in details)
    newest = next(details for head, details in entries.items() if head.startswith("2025030 "))
    assert "    ~ training.learning_rate: 0.0002 → 0.0003" in newest


def test_log_piped_records(registry_path):
    _, lines = piped(["log", "--all"])
    d, c = "20250301-080000-dddddd", "20250102-093000-cccccc"
    assert (
        lines[0] == f"run\t{d}\tquick-lynx\tsucceeded\tprefix\ttiny-llama\t{ENDED[d]}\tbaseline,production\t"
    )
    assert f"metric\t{d}\teval.loss\t1.25\t-0.25\t-16.6666666666667" in lines
    assert f"change\t{d}\ttraining.learning_rate\t0.0002\t0.0003" in lines
    assert (
        f"run\t{c}\tcalm-heron\tinterrupted\tdora\tHuggingFaceTB/SmolLM2-135M-Instruct\t{ENDED[c]}\t\t"
        in lines
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_diff_fits_the_terminal(registry_path, width):
    _, lines = terminal(["diff", "brave-otter", "quick-lynx"], width)
    assert_fits(lines, width)
    blocks = sections(lines)
    assert list(blocks) == ["Runs", "Config (changed keys)", "Metrics"]
    runs = blocks["Runs"]
    starts = column_starts(runs[0])
    assert (
        list(starts) == ["", "A", "B"] and len(runs) == 7
    )  # header, id, name, status, method, model, commit
    model = row_cells(runs[5], starts)
    assert shows_enough(model["A"], RUNS[0]["model"], 14) and shows_enough(model["B"], RUNS[3]["model"], 10)
    config = blocks["Config (changed keys)"]
    starts = column_starts(config[0])
    changed = {row_cells(line, starts)["key"]: row_cells(line, starts) for line in config[1:]}
    assert set(changed) == {"data.train", "model", "training.learning_rate"}
    assert shows_enough(changed["data.train"]["A"], LONG_PATH.replace("2025-01", "2024-12"), at_least=10)
    assert shows_enough(changed["data.train"]["B"], LONG_PATH, at_least=10)
    assert changed["training.learning_rate"]["B"] == "0.0003"
    metrics = blocks["Metrics"]
    starts = column_starts(metrics[0])
    assert list(starts) == ["metric", "A", "B", "Δ", "Δ%"]
    loss = next(row_cells(line, starts) for line in metrics[1:] if line.startswith("eval.loss"))
    assert loss == {"metric": "eval.loss", "A": "2", "B": "1.25", "Δ": "-0.75", "Δ%": "-37.5%"}


def test_diff_piped(registry_path):
    _, lines = piped(["diff", "brave-otter", "quick-lynx"])
    assert lines[:2] == ["# Runs", "\tA\tB"]
    assert "model\tQwen/Qwen2.5-0.5B-Instruct\ttiny-llama" in lines
    assert "eval.loss\t2\t1.25\t-0.75\t-37.5" in lines
    assert f"data.train\t{LONG_PATH.replace('2025-01', '2024-12')}\t{LONG_PATH}" in lines
