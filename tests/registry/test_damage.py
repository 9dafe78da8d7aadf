"""A damaged registry never answers wrong: a missing or unreadable object is named (run, file, repair command).

Registries are real git repositories filled through RunRegistry.commit_run; objects are deleted or overwritten
on disk the way a bad disk or a hand edit would (tests/registry/damage.py), and the summaries cache is dropped.
"""

from __future__ import annotations

import json
import time

import pytest

from ftkit.errors import RegistryError
from ftkit.registry.store import RunRegistry
from tests.registry.damage import break_run_file


def payload(result) -> dict:
    assert result.stdout.strip(), result.output
    return json.loads(result.stdout)


def _three_runs(add_run, pause: float = 0.0) -> tuple[str, str, str]:
    a = add_run(loss=2.0)
    b = add_run(loss=1.5)
    time.sleep(pause)  # the newest run's place is known from its commit time (whole seconds)
    c = add_run(loss=1.0)
    return a, b, c


@pytest.mark.parametrize("how", ["delete", "garbage"])
def test_damaged_run_json_of_newest_run_is_listed_and_latest_still_means_it(cli, add_run, registry, how):
    a, b, c = _three_runs(add_run, pause=2.1)
    break_run_file(registry.root, c, "run.json", how)

    listed = cli("runs", "--json")
    assert listed.exit_code == 0, listed.output
    runs = payload(listed)["runs"]
    assert [r["id"] for r in runs] == [c, b, a]  # not hidden, and still the newest
    assert runs[0]["status"] == "damaged"
    assert [d["file"] for d in runs[0]["damage"]] == ["run.json"]
    assert c in listed.stderr and "run.json" in listed.stderr and "ftkit registry verify" in listed.stderr

    shown = cli("show", "@latest")
    assert shown.exit_code == 2
    assert c in shown.stderr and "run.json" in shown.stderr and "ftkit registry verify" in shown.stderr
    assert b not in shown.stdout

    gate = cli("diff", "@latest~1", "@latest", "--fail-on", "eval.loss>+0.02")
    assert gate.exit_code == 2, gate.output  # not 0: the gate must not pass on the wrong pair
    assert c in gate.stderr and "run.json" in gate.stderr

    older = cli("show", "@latest~1", "--json")
    assert older.exit_code == 0 and payload(older)["id"] == b


def test_a_damaged_run_recorded_within_a_second_of_another_makes_latest_refuse(cli, add_run, registry):
    a, b, c = _three_runs(add_run)
    break_run_file(registry.root, c, "run.json")
    for ref in ("@latest", "@latest~1"):
        result = cli("show", ref)
        assert result.exit_code == 2, result.output
        assert c in result.stderr and "run.json" in result.stderr
    assert payload(cli("show", a, "--json"))["id"] == a  # full ids still answer


def test_names_are_refused_while_a_run_name_cannot_be_read(cli, add_run, registry):
    a, b, c = _three_runs(add_run)
    name_b = registry.load_run(b)["run"]["name"]
    break_run_file(registry.root, c, "run.json")
    result = cli("show", name_b)
    assert result.exit_code == 2
    assert c in result.stderr and "run id" in result.stderr


def test_missing_metrics_json_is_reported_not_shown_as_no_metrics(cli, add_run, registry):
    a, b, c = _three_runs(add_run)
    break_run_file(registry.root, b, "metrics.json")

    summaries = {s["id"]: s for s in RunRegistry.open(registry.root, create=False).summaries()}
    assert [d["file"] for d in summaries[b]["damage"]] == ["metrics.json"]
    assert "damage" not in summaries[a] and "damage" not in summaries[c]

    listed = cli("runs", "--json")
    assert listed.exit_code == 0
    assert b in listed.stderr and "metrics.json" in listed.stderr
    assert next(r for r in payload(listed)["runs"] if r["id"] == b)["status"] == "damaged"

    for args in (("show", b), ("diff", a, b, "--fail-on", "eval.loss>+0.02"), ("log",)):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert b in result.stderr and "metrics.json" in result.stderr, args


@pytest.mark.parametrize("name", ["history.jsonl", "resolved.yaml", "artifacts.json"])
def test_load_run_names_any_unreadable_file(registry, add_run, name):
    run_id = add_run(loss=0.7)
    sha = break_run_file(registry.root, run_id, name, "garbage")
    with pytest.raises(RegistryError) as caught:
        RunRegistry.open(registry.root, create=False).load_run(run_id)
    text = str(caught.value) + " ".join(caught.value.problems) + (caught.value.hint or "")
    assert run_id in text and name in text and sha[:12] in text and "ftkit registry verify" in text


def test_a_run_json_that_is_not_json_is_listed_as_damaged_and_show_names_it(registry, add_run, cli):
    a, b, c = _three_runs(add_run)
    break_run_file(registry.root, b, "run.json", "tamper")
    listed = cli("runs", "--json", "--all")
    assert listed.exit_code == 0, listed.output
    assert [r["id"] for r in payload(listed)["runs"] if r["status"] == "damaged"] == [b]
    assert {r["id"] for r in payload(listed)["runs"]} == {a, b, c}
    shown = cli("show", b)
    assert shown.exit_code == 2 and "run.json" in shown.stderr and "not valid JSON" in shown.stderr


def test_an_unreadable_runs_folder_is_named_with_the_repair(add_run, registry):
    import os
    import subprocess
    import sys

    from tests.registry.conftest import git
    from tests.registry.damage import break_object, drop_cache

    add_run(loss=1.0)
    sha = git(registry, "rev-parse", "main:runs").strip()
    break_object(registry.root, sha, "garbage")
    drop_cache(registry.root)
    # A new process: this one keeps parsed trees in memory (they never change while their objects exist).
    result = subprocess.run(
        [sys.executable, "-m", "ftkit", "runs"],
        env={**os.environ, "FTKIT_REGISTRY": str(registry.root)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2, result.stderr
    text = " ".join(result.stderr.split())
    assert "runs/ folder" in text and sha[:12] in text and "ftkit registry repair --from" in text
