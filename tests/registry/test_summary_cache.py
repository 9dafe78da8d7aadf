"""The summaries cache is validated against the commit it was built from; anything else in its place is rebuilt.

The reference for every listing is git itself (`git show main:runs/ID/metrics.json`), never the code under test.
"""

from __future__ import annotations

import json

import pytest

from tests.registry.conftest import git


def payload(result) -> dict:
    assert result.stdout.strip(), result.output
    return json.loads(result.stdout)


def _git_metrics(registry, run_id: str) -> dict:
    return json.loads(git(registry, "show", f"main:runs/{run_id}/metrics.json"))


@pytest.fixture
def two_runs(cli, add_run, registry):
    a, b = add_run(loss=2.0), add_run(loss=1.0)
    assert payload(cli("runs", "--json"))["total"] == 2  # the cache is written
    return a, b


def _cache(registry):
    return registry.root / ".git" / "ftkit-cache" / "summaries.json"


def _listed_metrics(cli) -> dict[str, dict]:
    result = cli("runs", "--json", "--all")
    assert result.exit_code == 0, result.output
    return {r["id"]: r["metrics"] for r in payload(result)["runs"]}


def test_fake_metrics_in_a_cache_whose_runs_tree_still_matches_are_not_shown(cli, registry, two_runs):
    a, b = two_runs
    cache = _cache(registry)
    text = cache.read_text()
    assert json.loads(text)["runs_tree"] == git(registry, "rev-parse", "main:runs").strip()
    cache.write_text(text.replace('"eval.loss":1.0', '"eval.loss":0.001'))
    assert cache.read_text() != text
    listed = _listed_metrics(cli)
    assert listed == {a: _git_metrics(registry, a), b: _git_metrics(registry, b)}
    shown = payload(cli("show", b, "--json"))["metrics"]
    assert listed[b] == shown
    assert json.loads(cache.read_text())["runs"][b]["metrics"]["eval.loss"] == 1.0  # rebuilt


def test_a_hand_written_cache_in_the_old_layout_is_not_trusted(cli, registry, two_runs):
    a, b = two_runs
    runs_tree = git(registry, "rev-parse", "main:runs").strip()
    entries = json.loads(_cache(registry).read_text())["runs"]
    entries[a]["metrics"] = {"eval.loss": 0.0}
    _cache(registry).write_text(json.dumps({"version": 1, "runs_tree": runs_tree, "runs": entries}))
    assert _listed_metrics(cli)[a] == _git_metrics(registry, a)


@pytest.mark.parametrize(
    "content",
    [
        b'{"version":1,"runs":[]}',
        b'{"version":2,"runs":[]}',
        b'{"version":2,"runs_tree":5,"sha256":null,"runs":{}}',
        b"[]",
        b"null",
        b"",
        b"\x00\xff\xfe binary \x89PNG",
        b'{"version":2,"runs_tree":"x","sha256":"y","runs":',
        '{"runs": "caf\u00e9"}'.encode("utf-16"),
    ],
    ids=["v1-list", "v2-list", "wrong-types", "array", "null", "empty", "binary", "truncated", "utf16"],
)
def test_any_malformed_cache_is_rebuilt_silently(cli, registry, two_runs, content):
    a, b = two_runs
    _cache(registry).write_bytes(content)
    result = cli("runs", "--json", "--all")
    assert result.exit_code == 0, result.output
    assert "error" not in result.stderr and "warning" not in result.stderr
    assert {r["id"]: r["metrics"] for r in payload(result)["runs"]} == {
        a: _git_metrics(registry, a),
        b: _git_metrics(registry, b),
    }
    assert set(json.loads(_cache(registry).read_text())["runs"]) == {a, b}


def test_entries_of_the_wrong_shape_under_a_valid_checksum_are_read_again(cli, registry, two_runs):
    import hashlib

    a, b = two_runs
    runs_tree = git(registry, "rev-parse", "main:runs").strip()
    body = json.dumps(
        {a: {"tree": 5, "run": [], "metrics": "x"}, b: "nonsense"}, separators=(",", ":")
    ).encode()
    digest = hashlib.sha256(runs_tree.encode() + b"\n" + body).hexdigest()
    header = json.dumps({"version": 2, "runs_tree": runs_tree, "sha256": digest}, separators=(",", ":"))
    _cache(registry).write_bytes(header[:-1].encode() + b',"runs":' + body + b"}")
    assert _listed_metrics(cli) == {a: _git_metrics(registry, a), b: _git_metrics(registry, b)}
