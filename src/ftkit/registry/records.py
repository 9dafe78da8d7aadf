"""A run record and the files of its registry folder, both ways, with no git and no disk: `render` turns a
RunRecord into the bytes of `runs/<run-id>/*` (secrets scrubbed, 1 MiB per file), `parse` reads them back;
`check_format` reads the registry's own `registry.json`.

    run.json          id, name, status (running, succeeded, failed, interrupted, lost), method, model, task,
                      config hash, parent, times, error, headline, process {host, pid, pid_start},
                      last_checkpoint {step, path}, lost {reason, noticed_at} (lifecycle.py),
                      start_checkpoint {run, step, path} (a fork: `ftkit rerun --from-checkpoint`),
                      overrides (the `--set KEY=VALUE` list as typed, secrets scrubbed), auto (each `auto` value chosen:
                      {key: {value, rule, evidence}}, when the recipe had any)
    recipe.yaml       the recipe as given (secrets scrubbed), before the overrides
    resolved.yaml     every value filled in
    metrics.json      flat dotted keys
    history.jsonl     per-step values (thinned to every k-th row, plus the last, past 1 MiB)
    events.jsonl      run events
    env.json          package versions, Python, platform, code commit, seed, hardware
    data.json         data fingerprints and row counts
    artifacts.json    [{name, sha256, size, path}] pointing into objects/
    review.json       the run's review (ftkit.review), computed before the commit; absent in older runs
    samples.jsonl     what the models answered: eval samples and fixed prompts (ftkit.evaluation.answers), each
                      text cut to MAX_SAMPLE_CHARS, thinned like history past 1 MiB; absent when there were none
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ftkit.errors import RegistryError
from ftkit.registry import diff as diffing
from ftkit.registry import refs, scrub

FORMAT_VERSION = 1
MAX_FILE_BYTES = 1 << 20
FINAL_STATUSES = ("succeeded", "failed", "interrupted")
# `running`: committed before the model loads (lifecycle.py); `lost`: a running run whose process is gone.
STATUSES = (*FINAL_STATUSES, "running", "lost")
RUN_FILES = (
    "run.json",
    "recipe.yaml",
    "resolved.yaml",
    "metrics.json",
    "history.jsonl",
    "events.jsonl",
    "env.json",
    "data.json",
    "artifacts.json",
)
# Files a run folder may lack: runs recorded before they existed are still whole without them.
OPTIONAL_RUN_FILES = ("review.json", "samples.jsonl")
MAX_SAMPLE_CHARS = 4000  # per answer, prompt or reference in samples.jsonl: enough to read, bounded for git


@dataclass
class RunRecord:
    """Everything one run commits. `metrics` may be nested; it is stored flat with dotted keys."""

    run_id: str
    status: str
    name: str = ""
    method: str | None = None
    model: str | None = None
    task: str | None = None
    config_hash: str | None = None
    parent: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    recipe_text: str = ""
    overrides: list[str] = field(default_factory=list)
    resolved: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    events: list = field(default_factory=list)
    env: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    output_dir: str | None = None
    error: str | None = None
    review: dict | None = None  # ftkit.review.Review.to_dict(), written as review.json when present
    auto: dict = field(default_factory=dict)  # `auto` values chosen: key -> {value, rule, evidence}
    samples: list = field(default_factory=list)  # answers (ftkit.evaluation.answers rows), as samples.jsonl
    process: dict = field(default_factory=dict)  # {host, pid, pid_start} of the process that ran it
    last_checkpoint: dict | None = None  # {step, path} of the newest complete checkpoint, when there is one
    start_checkpoint: dict | None = (
        None  # a fork's starting point {run, step, path} (`rerun --from-checkpoint`)
    )
    tracking: dict = field(default_factory=dict)  # tracker name -> its run {run_id, url, log_dir, ...}
    # `model: run:<ref>`: the run trained from {run, ref, method, base_model, folder}
    model_run: dict | None = None


def now_iso() -> str:
    """UTC time with microseconds, so runs and tag moves within one second still order correctly."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def json_safe(value: Any) -> Any:
    """Non-finite floats become strings ("NaN", "Infinity") so every file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """The registry's JSON file form: strict, indented, sorted keys, UTF-8 kept, newline at the end."""
    return json.dumps(json_safe(value), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def check_format(registry_json: bytes | None, where: Any) -> None:
    """Refuse a registry whose root has no registry.json, a corrupt one, or a newer format than this ftkit reads."""
    if registry_json is None:
        raise RegistryError(
            f"{where} is a git repository but not an ftkit registry (no registry.json at its root)",
            hint="point --registry at an ftkit registry or at a new folder",
        )
    try:
        version = int(json.loads(registry_json)["format"])
    except (ValueError, KeyError, TypeError) as error:
        raise RegistryError(
            f"{where} has a corrupt registry.json ({error})", hint="restore it from a backup or a remote"
        ) from error
    if version > FORMAT_VERSION:
        raise RegistryError(
            f"{where} was written by a newer ftkit (registry format {version}; this ftkit reads up to "
            f"{FORMAT_VERSION}); nothing was changed",
            hint="upgrade ftkit: pip install -U ftkit",
        )


def validate(record: RunRecord) -> None:
    """Raise RegistryError for a run id, parent id or status that must not reach the registry."""
    refs.validate_run_id(record.run_id)
    if record.status not in STATUSES:
        raise RegistryError(f"invalid run status {record.status!r}", hint=f"use one of {', '.join(STATUSES)}")
    if record.parent is not None:
        refs.validate_run_id(record.parent)


def render(
    record: RunRecord, artifacts: list[dict], committed_at: str, env_values: list[str]
) -> tuple[dict[str, bytes], dict]:
    """(file name -> bytes, the run.json dict) for `record`; `env_values` are secret values to redact."""
    from ftkit import yamlio  # PyYAML only for writing and loading runs, never for listing them

    clean = lambda value: scrub.scrub_data(yamlio.normalize(value), env_values)  # noqa: E731
    metrics = clean(diffing.flatten(record.metrics or {}))
    headline = diffing.headline_metric(metrics)
    started, ended = _parse_time(record.started_at), _parse_time(record.ended_at)
    run = {
        "format": FORMAT_VERSION,
        "id": record.run_id,
        "name": record.name,
        "status": record.status,
        "method": record.method,
        "model": record.model,
        "task": record.task,
        "config_hash": record.config_hash,
        "parent": record.parent,
        "overrides": [_scrub_override(item, env_values) for item in record.overrides or []],
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "duration_s": round((ended - started).total_seconds(), 3) if started and ended else None,
        "committed_at": committed_at,
        "output_dir": record.output_dir,
        "error": scrub.scrub_text(record.error, env_values) if record.error else None,
        "headline": {headline: metrics[headline]} if headline else {},
    }
    history, history_every = jsonl(clean(list(record.history or [])))
    events, events_every = jsonl(clean(list(record.events or [])))
    if record.auto:  # each `auto` value with its rule and evidence (recipe/auto_rules.py)
        run["auto"] = record.auto
    if record.process:
        run["process"] = record.process
    if record.last_checkpoint:
        run["last_checkpoint"] = record.last_checkpoint
    if record.start_checkpoint:
        run["start_checkpoint"] = record.start_checkpoint
    if record.tracking:
        run["tracking"] = record.tracking
    if record.model_run:
        run["model_run"] = record.model_run
    if history_every > 1 or events_every > 1:
        run["thinned"] = {"history_every": history_every, "events_every": events_every}
    files = {
        "run.json": dumps(clean(run)),
        "recipe.yaml": scrub.scrub_yaml_text(record.recipe_text or "", env_values),
        "resolved.yaml": yamlio.dump(
            clean(record.resolved or {}), header=f"resolved recipe of run {record.run_id}"
        ),
        "metrics.json": dumps(metrics),
        "history.jsonl": history,
        "events.jsonl": events,
        "env.json": dumps(clean(record.env or {})),
        "data.json": dumps(clean(record.data or {})),
        "artifacts.json": dumps(artifacts),
    }
    if record.review is not None:
        files["review.json"] = dumps(clean(record.review))
    if record.samples:
        files["samples.jsonl"] = jsonl(clean(_cut_texts(list(record.samples))))[0]
    out: dict[str, bytes] = {}
    plain_values = [v for v in env_values if '"' not in v and "\\" not in v]
    for name, text in files.items():
        scrubbed = scrub.scrub_text(text, plain_values)
        if scrubbed != text and name.endswith((".json", ".jsonl")) and not _parses(scrubbed, name):
            scrubbed = text  # the structured scrub already ran; never write broken JSON
        data = scrubbed.encode("utf-8")
        if len(data) > MAX_FILE_BYTES:
            raise RegistryError(
                f"run {record.run_id}: {name} is {len(data) / 1048576:.1f} MiB; registry files are limited to 1 MiB",
                hint="large outputs belong in the run's output folder (stored in objects/), not in the registry",
            )
        out[name] = data
    return out, run


def commit_message(record: RunRecord, run: dict, env_values: list[str] | None = None) -> str:
    """One subject line a `git log --oneline` reader understands, then trailers naming the run and its status.
    Secrets in the name or model (tokens, URL passwords, secret environment values) are redacted."""
    subject = (
        f"run {record.run_id} {record.name}: {record.method or '?'} on {record.model or '?'}, {record.status}"
    )
    headline = next(iter(run["headline"].items()), None)
    if headline:
        value = headline[1]
        subject += f", {headline[0]}={f'{value:.4g}' if isinstance(value, float) else value}"
    subject = scrub.scrub_text(subject, env_values)
    return f"{subject}\n\nFtkit-Run: {record.run_id}\nFtkit-Status: {record.status}\n"


def jsonl(rows: list) -> tuple[str, int]:
    """(JSON lines text, k): every row, or every k-th row plus the last when the file would pass 1 MiB."""
    lines = [json.dumps(json_safe(row), sort_keys=True, ensure_ascii=False, allow_nan=False) for row in rows]
    size = sum(len(line.encode()) + 1 for line in lines)
    every = 1
    if size > MAX_FILE_BYTES:
        every = math.ceil(size / (MAX_FILE_BYTES * 0.9))
        kept = lines[::every]
        if (len(lines) - 1) % every:
            kept.append(lines[-1])
        lines = kept
    return ("\n".join(lines) + "\n") if lines else "", every


class RunDamaged(RegistryError):
    """A run folder that cannot be read whole; `damage` lists {"file", "object", "problem"} (damage.py)."""

    def __init__(self, run_id: str, damage: list[dict], hint: str | None = None):
        files = ", ".join(dict.fromkeys(item["file"] for item in damage))
        super().__init__(
            f"run {run_id} is damaged: {files} cannot be read",
            hint=hint,
            problems=[f"run {run_id}: {item['file']}: {item['problem']}" for item in damage],
        )
        self.run_id = run_id
        self.damage = damage


def parse(run_id: str, files: dict[str, bytes]) -> dict:
    """The files of one run folder, parsed: run, recipe (text), resolved_text, resolved, metrics, history, events,
    env, data, artifacts, review (None without review.json), samples ([] without samples.jsonl). A missing file
    reads as empty; a damaged one raises RunDamaged naming it."""
    from ftkit import yamlio

    def text(name: str) -> str:
        return files[name].decode("utf-8") if name in files else ""

    def parsed(name: str, default: Any) -> Any:
        if name not in files:
            return default
        try:
            if name.endswith(".jsonl"):
                return [json.loads(line) for line in text(name).splitlines() if line.strip()]
            return json.loads(files[name])
        except ValueError as error:
            raise RunDamaged(run_id, [_bad(name, f"not valid JSON ({error})")]) from error

    try:
        resolved = yamlio.load(text("resolved.yaml"))
    except ValueError as error:  # UnicodeDecodeError included
        raise RunDamaged(run_id, [_bad("resolved.yaml", f"not valid YAML ({error})")]) from error
    return {
        "id": run_id,
        "run": parsed("run.json", {}),
        "recipe": text("recipe.yaml"),
        "resolved_text": text("resolved.yaml"),
        "resolved": resolved,
        "metrics": parsed("metrics.json", {}),
        "history": parsed("history.jsonl", []),
        "events": parsed("events.jsonl", []),
        "env": parsed("env.json", {}),
        "data": parsed("data.json", {}),
        "artifacts": parsed("artifacts.json", []),
        "review": parsed("review.json", None),
        "samples": parsed("samples.jsonl", []),
    }


def _cut_texts(value: Any) -> Any:
    """`value` with every string longer than MAX_SAMPLE_CHARS cut there (marked with `…`)."""
    if isinstance(value, str) and len(value) > MAX_SAMPLE_CHARS:
        return value[:MAX_SAMPLE_CHARS] + "…"
    if isinstance(value, dict):
        return {key: _cut_texts(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_cut_texts(item) for item in value]
    return value


def _bad(name: str, problem: str) -> dict:
    return {"file": name, "object": None, "problem": problem}


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _scrub_override(override: str, env_values: list[str]) -> str:
    """`KEY=VALUE` with the value redacted when KEY names a secret, and credential-looking text redacted."""
    key, sep, value = override.partition("=")
    if sep and value and scrub.is_secret_key(key.strip()):
        return f"{key}={scrub.REDACTED}"
    return scrub.scrub_text(override, env_values)


def _parses(text: str, name: str) -> bool:
    try:
        if name.endswith(".jsonl"):
            for line in text.splitlines():
                if line.strip():
                    json.loads(line)
        else:
            json.loads(text)
    except ValueError:
        return False
    return True
