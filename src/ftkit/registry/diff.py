"""Pure comparison of runs: flatten configs, compare metrics with direction, spot provenance drift, CI gates,
line up evaluation records made on the same data.

Nothing here reads the registry; callers pass the dicts that `RunRegistry.load_run` and `RunRegistry.evals`
return.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from ftkit.errors import UsageError

# Keys that differ between any two runs without meaning a different experiment.
NOISE_KEYS = {
    "name",
    "output",
    "output_dir",
    "output_path",
    "logging_dir",
    "run_id",
    "run_name",
    "id",
    "parent",
}
_NOISE_SUFFIXES = ("output_dir", "output_path", "logging_dir", "run_name", "run_id", "cache_dir")

_LOWER_BETTER = re.compile(
    r"loss|perplexity|ppl|wall_time|runtime|duration|seconds|latency|memory|mem_|_mem|vram|error|wer|cer|unparsed|"
    r"(?:^|[._])time(?:$|[._])",
    re.IGNORECASE,
)
_HIGHER_BETTER = re.compile(
    r"accuracy|(?:^|[._])acc(?:$|[._])|tokens_per_s|samples_per_s|steps_per_s|per_sec|throughput|f1|"
    r"exact_match|(?:^|[._])em(?:$|[._])|bleu|rouge|precision|recall|reward|win_rate|score|auc|"
    r"(?<!mis)match|(?<!in)valid|json_field|contains|pass_rate|agreement|kappa|consistency",
    re.IGNORECASE,
)
HEADLINE_METRICS = (
    "eval.loss",
    "eval.perplexity",
    "eval.accuracy",
    "eval.exact_match",
    "train.loss",
)


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to flat dotted keys; lists and scalars are leaves."""
    if not isinstance(data, dict):
        return {prefix: data} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted))
        else:
            out[dotted] = value
    return out


def is_noise(key: str) -> bool:
    """True for config keys that vary between runs by construction (names, output paths, run ids)."""
    return key in NOISE_KEYS or key.split(".")[-1] in _NOISE_SUFFIXES or key.startswith("output.")


def direction(metric: str) -> int:
    """-1 when lower is better, +1 when higher is better, 0 when unknown."""
    if metric.startswith("evals.") and metric.count(".") >= 2:
        metric = metric.split(".", 2)[
            2
        ]  # the data file's stem (`evals.<stem>.`) says nothing about direction
    if _HIGHER_BETTER.search(metric):
        return 1
    if _LOWER_BETTER.search(metric):
        return -1
    return 0


def headline_metric(metrics: dict[str, Any]) -> str | None:
    """The metric that best summarises a run (eval loss first), or None."""
    for key in HEADLINE_METRICS:
        if _number(metrics.get(key)) is not None:
            return key
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def config_changes(a: dict, b: dict, include_all: bool = False) -> list[dict]:
    """Rows {key, a, b, changed} over flattened configs; only changed keys unless `include_all`; noise skipped."""
    flat_a, flat_b = flatten(a or {}), flatten(b or {})
    rows = []
    for key in sorted(set(flat_a) | set(flat_b)):
        if is_noise(key):
            continue
        va, vb = flat_a.get(key, _MISSING), flat_b.get(key, _MISSING)
        changed = va != vb
        if changed or include_all:
            rows.append({"key": key, "a": _show(va), "b": _show(vb), "changed": changed})
    return rows


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def _show(value: Any) -> Any:
    return None if value is _MISSING else value


def metric_rows(a: dict, b: dict) -> list[dict]:
    """Rows {metric, a, b, delta, delta_pct, direction, verdict} for every metric in either run.

    verdict: "better", "worse", "same" or None (unknown direction or not numeric on both sides).
    """
    rows = []
    for key in sorted(set(a or {}) | set(b or {})):
        va, vb = (a or {}).get(key), (b or {}).get(key)
        na, nb = _number(va), _number(vb)
        delta = pct = None
        verdict = None
        sense = direction(key)
        if na is not None and nb is not None:
            delta = nb - na
            pct = _relative(delta, na)
            if delta == 0:
                verdict = "same"
            elif sense:
                verdict = "better" if delta * sense > 0 else "worse"
        rows.append(
            {
                "metric": key,
                "a": va,
                "b": vb,
                "delta": delta,
                "delta_pct": pct,
                "direction": sense,
                "verdict": verdict,
            }
        )
    return rows


def _relative(delta: float, base: float) -> float | None:
    if base == 0:
        return None if delta == 0 else math.copysign(math.inf, delta)
    return 100.0 * delta / abs(base)


def provenance_warnings(a: dict, b: dict) -> list[str]:
    """Human warnings when two loaded runs differ in base model, data fingerprints, package versions or code."""
    warnings = []
    run_a, run_b = a.get("run", {}), b.get("run", {})
    if run_a.get("model") != run_b.get("model"):
        warnings.append(f"base model differs: {run_a.get('model')} → {run_b.get('model')}")
    env_a, env_b = a.get("env") or {}, b.get("env") or {}
    pkgs_a, pkgs_b = env_a.get("packages") or {}, env_b.get("packages") or {}
    for name in sorted(set(pkgs_a) | set(pkgs_b)):
        if pkgs_a.get(name) != pkgs_b.get(name):
            warnings.append(
                f"package {name}: {pkgs_a.get(name) or 'absent'} → {pkgs_b.get(name) or 'absent'}"
            )
    if env_a.get("python") != env_b.get("python") and env_a.get("python") and env_b.get("python"):
        warnings.append(f"python: {env_a.get('python')} → {env_b.get('python')}")
    code_a, code_b = env_a.get("code") or {}, env_b.get("code") or {}
    if code_a.get("commit") != code_b.get("commit") and (code_a.get("commit") or code_b.get("commit")):
        warnings.append(f"code commit: {code_a.get('commit') or 'none'} → {code_b.get('commit') or 'none'}")
    if code_b.get("dirty"):
        warnings.append("B was run from a working tree with uncommitted changes")
    data_a, data_b = _fingerprints(a.get("data") or {}), _fingerprints(b.get("data") or {})
    for split in sorted(set(data_a) | set(data_b)):
        if data_a.get(split) != data_b.get(split):
            warnings.append(
                f"data {split} fingerprint differs: {_short(data_a.get(split))} → {_short(data_b.get(split))}"
            )
    hw_a, hw_b = env_a.get("hardware"), env_b.get("hardware")
    if hw_a and hw_b and hw_a != hw_b:
        warnings.append("hardware differs (timings and memory may not be comparable)")
    return warnings


def _short(value: Any) -> str:
    if value is None:
        return "absent"
    text = str(value)
    return text[:12] if len(text) > 12 else text


def _fingerprints(data: dict) -> dict[str, Any]:
    """Split name -> fingerprint from data.json, tolerant of a few shapes."""
    out: dict[str, Any] = {}
    items = data.get("files") if isinstance(data.get("files"), (dict, list)) else data
    if isinstance(items, list):
        items = {str(item.get("split") or item.get("path") or i): item for i, item in enumerate(items)}
    for split, info in (items or {}).items():
        if isinstance(info, dict):
            out[split] = info.get("sha256") or info.get("fingerprint") or info.get("hash")
        elif isinstance(info, str):
            out[split] = info
    return out


# -- CI gates ---------------------------------------------------------------------------------------------------

_GATE = re.compile(
    r"^\s*([A-Za-z0-9_.:/-]+)\s*(>=|<=|>|<)\s*([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:e[+-]?[0-9]+)?)"
    r"\s*(%?)\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Gate:
    """`metric op bound[%]`: fail when B's change from A (absolute, or percent of |A|) satisfies `op bound`."""

    expression: str
    metric: str
    op: str
    bound: float
    relative: bool

    def check(self, a: dict, b: dict) -> dict:
        """Evaluate on two metric dicts: {expression, metric, a, b, delta, failed, message}."""
        if self.metric not in a or self.metric not in b:
            missing = "A" if self.metric not in a else "B"
            hint = "gate on a metric both runs recorded (`ftkit show RUN` lists them)"
            if self.metric.startswith("evals."):
                hint = (
                    "evals.<data>.<metric> keys exist when both runs have an eval record on the same data "
                    "(same sha256); `ftkit show RUN` lists a run's evaluations, `ftkit eval RUN --data FILE` "
                    "records one"
                )
            raise UsageError(
                f"--fail-on {self.expression!r}: metric {self.metric!r} is missing from run {missing}",
                hint=hint,
            )
        na, nb = _number(a[self.metric]), _number(b[self.metric])
        if na is None or nb is None:
            raise UsageError(f"--fail-on {self.expression!r}: metric {self.metric!r} is not numeric")
        delta = nb - na
        value = _relative(delta, na) if self.relative else delta
        value = 0.0 if value is None else value
        failed = {">": value > self.bound, ">=": value >= self.bound, "<": value < self.bound,
                  "<=": value <= self.bound}[self.op]  # fmt: skip
        unit = "%" if self.relative else ""
        shown = f"{value:+.4g}{unit}"
        message = (
            f"{self.metric}: {na:.6g} → {nb:.6g} (change {shown}) "
            f"{'breaks' if failed else 'within'} bound {self.op}{self.bound:+g}{unit}"
        )
        return {
            "expression": self.expression,
            "metric": self.metric,
            "a": na,
            "b": nb,
            "delta": delta,
            "failed": failed,
            "message": message,
        }


def parse_gate(expression: str) -> Gate:
    """Parse `eval.loss>+0.02`, `eval.loss>+5%`, `eval.accuracy<-0.01`, `eval.accuracy<-2%`; UsageError if bad."""
    match = _GATE.match(expression or "")
    if not match:
        raise UsageError(
            f"invalid --fail-on expression {expression!r}",
            hint="write METRIC>+ABS, METRIC>+N%, METRIC<-ABS or METRIC<-N%, e.g. --fail-on 'eval.loss>+0.02'",
        )
    metric, op, number, percent = match.groups()
    return Gate(expression.strip(), metric, op, float(number), bool(percent))


# -- evaluation records -----------------------------------------------------------------------------------------

_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def eval_label(record: dict) -> str:
    """The evaluated file's stem as one metric-key segment (`test` for .../test.jsonl; characters outside
    [A-Za-z0-9_-], dots included, become `_`, so `--fail-on` can name it)."""
    data = record.get("data") or {}
    name = str(data.get("name") or data.get("path") or "data").replace("\\", "/")
    return _KEY_UNSAFE.sub("_", PurePosixPath(name).stem).strip("_") or "data"


def _newest_by_data(records: list[dict]) -> dict[str, dict]:
    """data sha256 -> the newest readable record on it (`records` come newest first)."""
    out: dict[str, dict] = {}
    for record in records:
        sha = (record.get("data") or {}).get("sha256")
        if "damage" not in record and isinstance(sha, str):
            out.setdefault(sha, record)
    return out


def _data_name(record: dict) -> str:
    data = record.get("data") or {}
    return str(data.get("name") or data.get("path") or "?")


def _setting_notes(key: str, a: dict, b: dict) -> list[str]:
    """Differences between two records on the same data that make their scores not quite comparable."""
    flat_a = {"rows": (a.get("data") or {}).get("rows"), **flatten(a.get("settings") or {})}
    flat_b = {"rows": (b.get("data") or {}).get("rows"), **flatten(b.get("settings") or {})}
    shown = lambda value: "absent" if value is _MISSING else value  # noqa: E731
    changed = [
        f"{name} {shown(flat_a.get(name, _MISSING))} → {shown(flat_b.get(name, _MISSING))}"
        for name in sorted(set(flat_a) | set(flat_b))
        if flat_a.get(name, _MISSING) != flat_b.get(name, _MISSING)
    ]
    return [f"{key}: evaluation settings differ: {'; '.join(changed)}"] if changed else []


def eval_lineup(evals_a: list[dict], evals_b: list[dict]) -> dict:
    """Line up two runs' evaluation records (each list newest first, as `RunRegistry.evals` returns them).

    Records on the same data fingerprint (sha256 of the file) are compared; on each side the newest record on that
    data counts. Their metrics become keys `evals.<stem>.<metric>` (stem: eval_label; when two fingerprints
    compared share a stem, `evals.<stem>:<sha256[:8]>.<metric>`), usable by `--fail-on`. Returns {"a", "b" (flat
    metric dicts), "metrics" (metric_rows of them), "records" ([{key, data, sha256, a, b}]), "provenance" (notes:
    different settings on the same data, data with different fingerprints, data only one side evaluated, damaged
    records left out)}.
    """
    newest_a, newest_b = _newest_by_data(evals_a), _newest_by_data(evals_b)
    common = [sha for sha in newest_a if sha in newest_b]
    stems = {sha: eval_label(newest_a[sha]) for sha in common}
    shared = Counter(stems.values())
    flat_a: dict[str, Any] = {}
    flat_b: dict[str, Any] = {}
    pairs, notes = [], []
    for sha in sorted(common, key=lambda digest: (stems[digest], digest)):
        key = f"evals.{stems[sha]}" + (f":{sha[:8]}" if shared[stems[sha]] > 1 else "")
        record_a, record_b = newest_a[sha], newest_b[sha]
        flat_a.update({f"{key}.{metric}": value for metric, value in (record_a.get("metrics") or {}).items()})
        flat_b.update({f"{key}.{metric}": value for metric, value in (record_b.get("metrics") or {}).items()})
        pairs.append({"key": key, "data": _data_name(record_a), "sha256": sha, "a": record_a.get("id"),
                      "b": record_b.get("id")})  # fmt: skip
        notes += _setting_notes(key, record_a, record_b)
    apart: dict[str, dict[str, list[str]]] = {}  # stem -> side -> fingerprints evaluated only on that side
    for side, newest, other in (("A", newest_a, newest_b), ("B", newest_b, newest_a)):
        for sha, record in newest.items():
            if sha not in other:
                apart.setdefault(eval_label(record), {}).setdefault(side, []).append(sha)
    for _stem, sides in sorted(apart.items()):
        record = (newest_a | newest_b)[(sides.get("A") or sides["B"])[0]]
        shown = {side: ", ".join(_short(sha) for sha in shas) for side, shas in sides.items()}
        if len(sides) == 2:
            notes.append(
                f"eval data {_data_name(record)}: fingerprint differs ({shown['A']} in A → {shown['B']} in B); "
                "its metrics are not compared"
            )
        else:
            side = next(iter(sides))
            notes.append(
                f"eval data {_data_name(record)} ({shown[side]}): only {side} has an eval record on it"
            )
    for side, records in (("A", evals_a), ("B", evals_b)):
        notes += [
            f"eval {record.get('id') or '?'} of {side} is damaged and left out (`ftkit registry verify` lists it)"
            for record in records
            if "damage" in record
        ]
    return {
        "a": flat_a,
        "b": flat_b,
        "metrics": metric_rows(flat_a, flat_b),
        "records": pairs,
        "provenance": notes,
    }
