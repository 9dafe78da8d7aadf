"""How two runs' answers changed: the rows of their `samples.jsonl` (ftkit.evaluation.answers) paired for
`ftkit diff`. Pure functions over the dicts `RunRegistry.load_run` returns; standard library only.

Fixed prompts pair by the prompt itself (a string, or the same message list); a prompt only one run asked shows
the other side as missing. Eval samples pair by their prompt text (the n-th repeat of a prompt with the n-th) and
only when both runs answered it. Each pair compares A's tuned answer with B's. When either run stored no
answers (recorded before ftkit kept them, or with no prompts and no generated samples), nothing pairs.
"""

from __future__ import annotations

import json
from typing import Any


def prompt_label(prompt: Any) -> str:
    """A one-line human form of a stored prompt: the string, or `role: content` turns joined by ` / `."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        return " / ".join(
            f"{m.get('role')}: {m.get('content')}" if isinstance(m, dict) else str(m) for m in prompt
        )
    return "" if prompt is None else str(prompt)


def _keyed(samples: list[dict], kind: str) -> dict[tuple[str, int], dict]:
    """Rows of `kind` by (prompt as canonical JSON, its occurrence number), in the order they were stored."""
    keyed: dict[tuple[str, int], dict] = {}
    seen: dict[str, int] = {}
    for row in samples or []:
        if not isinstance(row, dict) or row.get("kind") != kind:
            continue
        text = json.dumps(row.get("prompt"), sort_keys=True, ensure_ascii=False)
        seen[text] = seen.get(text, 0) + 1
        keyed[(text, seen[text])] = row
    return keyed


def answer_rows(a_samples: list[dict], b_samples: list[dict], include_all: bool = False) -> dict[str, Any]:
    """{"rows": [...], "unchanged": n, "paired": n}: each row {kind, prompt, label, reference, a, b, changed}
    (fixed prompts first, then eval samples, each in A's order then B's); only changed rows unless
    `include_all`. `unchanged` counts the pairs whose tuned answers are equal."""
    rows: list[dict[str, Any]] = []
    if not a_samples or not b_samples:  # a run recorded without answers has nothing to compare
        return {"rows": [], "unchanged": 0, "paired": 0}
    for kind in ("prompt", "eval"):
        a_rows, b_rows = _keyed(a_samples, kind), _keyed(b_samples, kind)
        keys = list(a_rows) + [key for key in b_rows if key not in a_rows]
        if kind == "eval":  # eval sets may differ: only the prompts both runs answered compare
            keys = [key for key in keys if key in a_rows and key in b_rows]
        for key in keys:
            a_row, b_row = a_rows.get(key), b_rows.get(key)
            source = a_row or b_row or {}
            a_answer = a_row.get("tuned") if a_row else None
            b_answer = b_row.get("tuned") if b_row else None
            rows.append(
                {
                    "kind": kind,
                    "prompt": source.get("prompt"),
                    "label": prompt_label(source.get("prompt")),
                    "reference": source.get("reference"),
                    "a": a_answer,
                    "b": b_answer,
                    "changed": a_answer != b_answer,
                }
            )
    unchanged = sum(not row["changed"] for row in rows)
    shown = rows if include_all else [row for row in rows if row["changed"]]
    return {"rows": shown, "unchanged": unchanged, "paired": len(rows)}
