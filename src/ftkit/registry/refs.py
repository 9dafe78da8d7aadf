"""Run ids, human names, tag names, and turning a reference into a run id.

A run id is `YYYYMMDD-HHMMSS-xxxxxx` (UTC time, then 6 random hex digits): ids sort by time and need no
coordination between machines. Each run also gets a short human name such as `brave-otter`.

A reference names a run by, in this order: `@latest` / `@latest~N` (the newest recorded run of any status, or the
N-th before it), full id, tag, exact name, then a unique prefix of an id or a name. Ambiguous or unknown references raise
RegistryError (exit 2) listing the candidates.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timezone

from ftkit.errors import RegistryError, UsageError
from ftkit.suggest import did_you_mean

RUN_ID_RE = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")
TAG_RE = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")
_LATEST_RE = re.compile(r"^@latest(?:~([0-9]+))?$")
_PATH_CHARS = re.compile(r"[/\\\x00]|\.\.")
_ID_PREFIX_RE = re.compile(r"^[0-9]{1,8}(-[0-9]{0,6}(-[0-9a-f]{0,6})?)?$")
# A run whose run.json cannot be read is placed by its commit's time, which git keeps in whole seconds.
_UNCERTAIN_S = 1.0

ADJECTIVES = (
    "amber", "bold", "brave", "brisk", "calm", "clever", "cosmic", "crisp", "dapper", "daring", "deft", "eager",
    "fancy", "fast", "fierce", "fluffy", "gentle", "giddy", "glad", "golden", "grand", "happy", "hardy", "hazy",
    "humble", "icy", "jolly", "keen", "kind", "lively", "lucky", "lunar", "mellow", "merry", "mighty", "misty",
    "modest", "nimble", "noble", "olive", "plucky", "polite", "proud", "quick", "quiet", "rapid", "rosy", "royal",
    "rustic", "shiny", "silent", "silver", "sleek", "smooth", "snowy", "solar", "steady", "stormy", "sunny",
    "swift", "tidy", "vivid", "witty", "zesty",
)  # fmt: skip
NOUNS = (
    "badger", "bat", "bear", "beaver", "bison", "cat", "cobra", "condor", "crane", "crow", "deer", "dingo",
    "dolphin", "dove", "eagle", "eel", "falcon", "ferret", "finch", "fox", "frog", "gecko", "goat", "goose",
    "hare", "hawk", "heron", "ibis", "jackal", "jaguar", "koala", "lark", "lemur", "lion", "llama", "lynx",
    "marmot", "mole", "moose", "newt", "ocelot", "orca", "otter", "owl", "panda", "parrot", "puffin", "quail",
    "raven", "robin", "salmon", "seal", "shark", "sloth", "swan", "tapir", "tiger", "toad", "trout", "turtle",
    "viper", "walrus", "wolf", "yak",
)  # fmt: skip


def new_run_id(now: datetime | None = None) -> str:
    """A fresh run id: UTC `YYYYMMDD-HHMMSS` plus 6 random hex digits."""
    now = now or datetime.now(timezone.utc)
    return f"{now.astimezone(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def validate_run_id(run_id: str) -> str:
    """Return `run_id` if it is a well-formed id; raise RegistryError otherwise (path characters included)."""
    if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id):
        raise RegistryError(
            f"invalid run id {run_id!r}",
            hint="run ids look like 20250101-120000-a1b2c3; get one from RunRegistry.new_run_id()",
        )
    return run_id


def validate_tag(name: str) -> str:
    """Return `name` if it can be a tag; raise UsageError otherwise."""
    if not TAG_RE.match(name or "") or ".." in name or name.endswith((".lock", ".")) or RUN_ID_RE.match(name):
        raise UsageError(
            f"invalid tag name {name!r}",
            hint="a tag starts with a letter and holds letters, digits, '.', '_' or '-' (at most 64), "
            "e.g. `production` or `baseline-v2`",
        )
    return name


def make_name(seed: str, taken: set[str]) -> str:
    """A short adjective-noun name derived from `seed`, avoiding names in `taken`."""
    digest = hashlib.sha256(seed.encode()).digest()
    start = int.from_bytes(digest[:4], "big")
    combos = len(ADJECTIVES) * len(NOUNS)
    for step in range(combos):
        index = (start + step * 2654435761) % combos
        name = f"{ADJECTIVES[index // len(NOUNS)]}-{NOUNS[index % len(NOUNS)]}"
        if name not in taken:
            return name
    counter = 2
    base = f"{ADJECTIVES[start % len(ADJECTIVES)]}-{NOUNS[start % len(NOUNS)]}"
    while f"{base}-{counter}" in taken:
        counter += 1
    return f"{base}-{counter}"


def _describe(run: dict) -> str:
    return f"{run['id']}  {run.get('name') or ''}  ({run.get('status', '?')}, {run.get('method') or '?'})"


def _listing(runs: list[dict], limit: int = 10) -> list[str]:
    lines = [_describe(run) for run in runs[:limit]]
    if len(runs) > limit:
        lines.append(f"... and {len(runs) - limit} more")
    return lines


def _seconds(value: object) -> float | None:
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def _check_order(ref: str, runs: list[dict], back: int) -> None:
    """Refuse `@latest~back` when a damaged run's place in the order is unknown or too close to call."""
    for run in (run for run in runs if run.get("unreadable")):
        when = _seconds(run.get("committed_at"))
        close = [
            index
            for index, other in enumerate(runs)
            if other is run
            or when is None
            or abs((_seconds(other.get("committed_at")) or float("inf")) - when) <= _UNCERTAIN_S
        ]
        if min(close) <= back <= max(close):
            raise RegistryError(
                f"cannot tell which run is {ref}: run {run['id']} is damaged "
                f"({', '.join(run['unreadable'])} cannot be read) and "
                + (
                    "no commit records when it was made"
                    if when is None
                    else f"was recorded within a second of {len(close) - 1} other run(s)"
                ),
                hint="name the run by its run id (`ftkit runs --all` lists them); `ftkit registry verify` lists "
                "the damage",
            )


def resolve_reference(ref: str, runs: list[dict], tags: dict[str, str]) -> str:
    """Resolve a reference against `runs` (dicts with id, name, status; newest first) and `tags` (name -> run id)."""
    ref = (ref or "").strip()
    if not ref:
        raise UsageError("empty run reference", hint="name a run by id, id prefix, name, tag or @latest")
    if _PATH_CHARS.search(ref):
        raise RegistryError(
            f"invalid run reference {ref!r}: it contains path characters",
            hint="name a run by id, id prefix, name, tag or @latest (see `ftkit runs`)",
        )
    by_id = {run["id"]: run for run in runs}
    unreadable = [run for run in runs if run.get("unreadable")]
    latest = _LATEST_RE.match(ref)
    if latest:
        back = int(latest.group(1) or 0)
        ordered = list(by_id)
        if not ordered:
            raise RegistryError("the registry has no runs yet", hint="run `ftkit run recipe.yaml` first")
        if back >= len(ordered):
            raise RegistryError(
                f"{ref} goes back further than the registry: it holds {len(ordered)} run(s)",
                hint=f"use @latest~0 … @latest~{len(ordered) - 1}",
            )
        _check_order(ref, runs, back)
        return ordered[back]
    if ref.startswith("@"):
        raise RegistryError(
            f"unknown reference {ref!r}", hint="the only @ references are @latest and @latest~N"
        )
    if ref in by_id:
        return ref
    if ref in tags:
        run_id = tags[ref]
        if run_id not in by_id:
            raise RegistryError(
                f"tag {ref!r} points at run {run_id}, which is not in this registry",
                hint=f"pull the registry that has it (`ftkit registry pull`) or move the tag: ftkit tag RUN {ref}",
            )
        return run_id
    if unreadable and not _ID_PREFIX_RE.match(ref):
        raise RegistryError(
            f"cannot resolve {ref!r} by name: the name of {len(unreadable)} damaged run(s) cannot be read, so it "
            "may be one of them",
            hint="name the run by its run id (ids are known for every run; `ftkit runs --all` lists them); "
            "`ftkit registry verify` lists the damage",
            problems=[
                f"run {run['id']}: {', '.join(run['unreadable'])} cannot be read" for run in unreadable
            ],
        )
    named = [run for run in runs if run.get("name") == ref]
    if len(named) == 1:
        return named[0]["id"]
    if len(named) > 1:
        raise RegistryError(
            f"run name {ref!r} is ambiguous: {len(named)} runs have it",
            hint="use the run id (or a longer prefix of it)",
            problems=_listing(sorted(named, key=lambda r: r["id"], reverse=True)),
        )
    matches = [run for run in runs if run["id"].startswith(ref) or (run.get("name") or "").startswith(ref)]
    if len(matches) == 1:
        return matches[0]["id"]
    if len(matches) > 1:
        raise RegistryError(
            f"run reference {ref!r} is ambiguous: it matches {len(matches)} runs",
            hint="give more characters of the id, the full name, or a tag",
            problems=_listing(sorted(matches, key=lambda r: r["id"], reverse=True)),
        )
    pool = list(by_id) + [run.get("name") for run in runs if run.get("name")] + list(tags)
    close = did_you_mean(ref, pool, n=5)
    raise RegistryError(
        f"no run matches {ref!r}",
        hint="`ftkit runs --all` lists every run" + (f"; did you mean: {', '.join(close)}?" if close else ""),
        problems=[f"candidate: {name}" for name in close],
    )
