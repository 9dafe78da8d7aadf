"""Evaluation records built by hand for the registry and CLI tests (no model): a data file, its predictions file,
and an EvalRecord whose fingerprint is computed here with hashlib, independently of ftkit."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ftkit.registry.evals import EvalRecord


def write_data(path: Path, rows: int = 3, salt: str = "") -> dict:
    """A JSONL data file of `rows` rows; returns the `data` of an EvalRecord (sha256 by hashlib)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"prompt": f"q{i}{salt}", "completion": f"#### {i}"}) for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"path": str(path), "sha256": digest, "rows": rows, "format": "prompt-completion"}


def make_eval(tmp: Path, run: str | None, metrics: dict, data: dict | None = None, **fields) -> tuple:
    """(EvalRecord, files) evaluating `run` on `data` (a fresh test.jsonl when None) with a predictions file."""
    if data is None:
        data = write_data(tmp / "data" / "test.jsonl")
    predictions = tmp / f"predictions-{hashlib.sha256(repr(metrics).encode()).hexdigest()[:8]}.jsonl"
    predictions.write_text(json.dumps({"row": 0, "prediction": "#### 0", "reference": "#### 0"}) + "\n")
    record = EvalRecord(
        run=run,
        data=data,
        metrics=metrics,
        base=fields.pop("base", "tiny-llama"),
        base_metrics=fields.pop("base_metrics", None) or {k: v / 4 for k, v in metrics.items()},
        settings=fields.pop(
            "settings", {"metrics": sorted(metrics), "max_rows": None, "answer_regex": "#### (.+)"}
        ),
        started_at="2025-02-01T10:00:00+00:00",
        ended_at="2025-02-01T10:00:05+00:00",
        env={"packages": {"ftkit": "0.1.0", "torch": "2.13.0", "transformers": "5.0.0"}},
        **fields,
    )
    return record, {"predictions.jsonl": predictions}
