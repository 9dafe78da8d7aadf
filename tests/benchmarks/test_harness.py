"""The benchmark harness's own logic: statistics, paired ratios, JSON parsing, child processes, git state.

No timing is asserted here: measurements live in `python -m benchmarks`, never in the test suite.
"""

from __future__ import annotations

import json
import subprocess
import sys

from benchmarks.harness import (
    Stat,
    check_target,
    cpu_flags_summary,
    git_state,
    last_json_object,
    ratio_stat,
    run_child,
)
from benchmarks.sides import steady_rate


def test_stat_median_min_max_ignore_missing_values():
    stat = Stat.of([3.0, None, 1.0, 2.0, 10.0])
    assert (stat.median, stat.min, stat.max, stat.n) == (2.5, 1.0, 10.0, 4)
    assert Stat.of([5]).median == 5.0
    empty = Stat.of([None])
    assert (empty.median, empty.min, empty.max, empty.n) == (None, None, None, 0)


def test_ratio_stat_pairs_repetitions_and_skips_broken_pairs():
    stat = ratio_stat([10.0, 12.0, None, 9.0], [10.0, 10.0, 5.0, 0.0])
    assert stat.values == [1.0, 1.2]
    assert stat.median == 1.1


def test_check_target():
    assert check_target(1.01, minimum=1.0) == "met"
    assert check_target(0.99, minimum=1.0) == "missed"
    assert check_target(0.31, maximum=0.3) == "missed"
    assert check_target(None, minimum=1.0) == "n/a"


def test_steady_rate_leaves_out_the_first_step():
    steps = [
        {"step": 1, "time_s": 10.0, "tokens": 100},
        {"step": 2, "time_s": 12.0, "tokens": 200},
        {"step": 3, "time_s": 14.0, "tokens": 300},
    ]
    assert steady_rate(steps) == 50.0
    assert steady_rate(steps[:1]) is None


def test_last_json_object_finds_the_payload_after_other_output():
    text = 'loading...\n{"a": 1}\nnoise\n' + json.dumps({"status": "ok", "metrics": {"x": 2}}, indent=2)
    assert last_json_object(text) == {"status": "ok", "metrics": {"x": 2}}
    assert last_json_object('progress\n{"b": 2}\n') == {"b": 2}
    assert last_json_object("no json here") is None


def test_run_child_reports_exit_code_output_and_peak_rss():
    child = run_child([sys.executable, "-c", "import json; print(json.dumps({'v': 7})); raise SystemExit(3)"])
    assert child.returncode == 3
    assert child.json() == {"v": 7}
    assert child.max_rss_mb and child.max_rss_mb > 1


def test_cpu_flags_summary_lists_matmul_features_and_native_bf16():
    summary = cpu_flags_summary({"fpu", "avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
    assert summary == {
        "present": ["avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"],
        "native_bf16": ["amx_bf16", "avx512_bf16"],
    }
    assert cpu_flags_summary({"avx2"}) == {"present": ["avx2"], "native_bf16": []}


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True)


def test_git_state_of_a_real_repository(tmp_path):
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "results").mkdir()
    (repo / "src" / "a.py").write_text("a = 1\n")
    (repo / "results" / "r.json").write_text("{}\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout
    clean = git_state(repo, exclude=("results",))
    assert clean == {"commit": head.strip(), "clean": True, "changed": []}

    (repo / "results" / "r.json").write_text('{"new": 1}\n')  # the harness's own outputs do not count
    assert git_state(repo, exclude=("results",))["clean"] is True
    assert git_state(repo, exclude=())["changed"] == ["results/r.json"]

    (repo / "src" / "a.py").write_text("a = 2\n")
    (repo / "src" / "new.py").write_text("b = 1\n")
    dirty = git_state(repo, exclude=("results",))
    assert dirty["clean"] is False
    assert dirty["changed"] == ["src/a.py", "src/new.py"]

    _git(repo, "checkout", "--", "src/a.py")
    _git(repo, "add", "src/new.py")  # staged but not committed is still not the commit
    assert git_state(repo, exclude=("results",))["changed"] == ["src/new.py"]


def test_git_state_outside_a_repository_is_not_clean(tmp_path):
    state = git_state(tmp_path / "nowhere")
    assert state["clean"] is False and state["commit"] is None
