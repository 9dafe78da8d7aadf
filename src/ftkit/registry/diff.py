"""Pure comparison of runs: flatten configs, compare metrics with direction, spot provenance drift, CI gates.

Nothing here reads the registry; callers pass the dicts that `RunRegistry.load_run` returns.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
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
    r"loss|perplexity|ppl|wall_time|runtime|duration|seconds|latency|memory|mem_|_mem|vram|error|wer|cer|"
    r"(?:^|[._])time(?:$|[._])",
    re.IGNORECASE,
)
_HIGHER_BETTER = re.compile(
    r"accuracy|(?:^|[._])acc(?:$|[._])|tokens_per_s|samples_per_s|steps_per_s|per_sec|throughput|f1|"
    r"exact_match|(?:^|[._])em(?:$|[._])|bleu|rouge|precision|recall|reward|win_rate|score|auc",
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
            raise UsageError(
                f"--fail-on {self.expression!r}: metric {self.metric!r} is missing from run {missing}",
                hint="gate on a metric both runs recorded (`ftkit show RUN` lists them)",
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
