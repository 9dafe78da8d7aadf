"""Run ids, names, tags and reference resolution."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ftkit.errors import RegistryError, UsageError
from ftkit.registry import refs


def runs(*items: tuple[str, str]) -> list[dict]:
    """Newest first, as the registry passes them."""
    return [{"id": run_id, "name": name, "status": "succeeded", "method": "lora"} for run_id, name in items]


RUNS = runs(
    ("20250102-090000-cccccc", "swift-otter"),
    ("20250101-120000-bbbbbb", "brave-fox"),
    ("20250101-120000-aaaaaa", "brave-owl"),
)


def test_new_run_id_shape_and_time():
    run_id = refs.new_run_id(datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone.utc))
    assert run_id.startswith("20250304-050607-")
    assert refs.RUN_ID_RE.match(run_id)
    assert len({refs.new_run_id() for _ in range(200)}) == 200


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("20250101-120000-aaaaaa", "20250101-120000-aaaaaa"),
        ("20250102", "20250102-090000-cccccc"),
        ("20250101-120000-b", "20250101-120000-bbbbbb"),
        ("brave-fox", "20250101-120000-bbbbbb"),
        ("swift", "20250102-090000-cccccc"),
        ("prod", "20250101-120000-aaaaaa"),
        ("@latest", "20250102-090000-cccccc"),
        ("@latest~0", "20250102-090000-cccccc"),
        ("@latest~1", "20250101-120000-bbbbbb"),
        ("@latest~2", "20250101-120000-aaaaaa"),
    ],
)
def test_resolve(ref, expected):
    assert refs.resolve_reference(ref, RUNS, {"prod": "20250101-120000-aaaaaa"}) == expected


def test_tag_wins_over_name_prefix():
    assert (
        refs.resolve_reference("brave", RUNS, {"brave": "20250102-090000-cccccc"}) == "20250102-090000-cccccc"
    )


def test_ambiguous_prefix_lists_candidates():
    with pytest.raises(RegistryError) as error:
        refs.resolve_reference("20250101", RUNS, {})
    assert "ambiguous" in error.value.message and error.value.exit_code == 2
    assert any("brave-fox" in line for line in error.value.problems)
    assert any("brave-owl" in line for line in error.value.problems)


def test_ambiguous_name_prefix():
    with pytest.raises(RegistryError, match="ambiguous"):
        refs.resolve_reference("brave", RUNS, {})


def test_duplicate_exact_name_is_ambiguous():
    dup = runs(("20250101-120000-aaaaaa", "same"), ("20250101-120000-bbbbbb", "same"))
    with pytest.raises(RegistryError, match="run name 'same' is ambiguous"):
        refs.resolve_reference("same", dup, {})


def test_unknown_reference_suggests_close_matches():
    with pytest.raises(RegistryError) as error:
        refs.resolve_reference("brave-foz", RUNS, {})
    assert "no run matches" in error.value.message
    assert "brave-fox" in (error.value.hint or "")


def test_latest_beyond_history():
    with pytest.raises(RegistryError, match="holds 3 run"):
        refs.resolve_reference("@latest~3", RUNS, {})
    with pytest.raises(RegistryError, match="no runs yet"):
        refs.resolve_reference("@latest", [], {})
    with pytest.raises(RegistryError, match="unknown reference .@head."):
        refs.resolve_reference("@head", RUNS, {})  # the hint names the valid forms


@pytest.mark.parametrize("ref", ["../x", "a/b", "a\\b", "..", "x\x00"])
def test_path_characters_rejected(ref):
    with pytest.raises(RegistryError, match="path characters"):
        refs.resolve_reference(ref, RUNS, {})


def test_empty_reference():
    with pytest.raises(UsageError):
        refs.resolve_reference("  ", RUNS, {})


def test_tag_pointing_at_missing_run():
    with pytest.raises(RegistryError, match="not in this registry"):
        refs.resolve_reference("old", RUNS, {"old": "20240101-000000-dddddd"})


@pytest.mark.parametrize("name", ["production", "baseline-v2", "a.b_c"])
def test_valid_tags(name):
    assert refs.validate_tag(name) == name


@pytest.mark.parametrize(
    "name", ["", "-x", "a/b", "a..b", "x.lock", "@latest", "20250101-120000-aaaaaa", "a b"]
)
def test_invalid_tags(name):
    with pytest.raises(UsageError, match="invalid tag"):
        refs.validate_tag(name)


def test_make_name_is_deterministic_and_avoids_taken():
    first = refs.make_name("seed", set())
    assert first == refs.make_name("seed", set())
    assert refs.make_name("seed", {first}) != first
    every = {f"{a}-{n}" for a in refs.ADJECTIVES for n in refs.NOUNS}
    assert refs.make_name("seed", every).endswith("-2")
