"""The model card (README.md with the Hugging Face Hub's YAML metadata header) written beside an export."""

from __future__ import annotations

from typing import Any

import yaml

from ftkit import __version__


def _header(resolved: dict[str, Any], mode: str, task: str, datasets: list[str]) -> str:
    base = str(resolved.get("model") or "")
    meta: dict[str, Any] = {
        "base_model": base,
        "library_name": "peft" if mode == "adapter" else "transformers",
        "pipeline_tag": "text-classification" if task == "classification" else "text-generation",
        "tags": ["ftkit", str((resolved.get("method") or {}).get("name") or "lora")],
    }
    if datasets:
        meta["datasets"] = datasets
    if resolved.get("license"):
        meta["license"] = resolved["license"]
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def _table(rows: list[tuple[Any, ...]], head: tuple[str, ...]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join("—" if v is None else str(v) for v in row) + " |" for row in rows]
    return lines


def model_card(
    resolved: dict[str, Any],
    method: Any,
    mode: str,
    dtype: str,
    record: dict[str, Any],
    evals: list[dict[str, Any]],
    run_id: str | None,
) -> str:
    """The card's text: what the model is, how it was trained, on what, how it scored, and how to train it again.

    record: the registry's run record (`RunRegistry.load_run`), {} for a run output outside a registry."""
    run = record.get("run") or {}
    data = {k: v for k, v in (record.get("data") or {}).items() if isinstance(v, dict)}
    task = str(resolved.get("task") or "causal-lm")
    base = str(resolved.get("model") or "")
    options = {k: v for k, v in (resolved.get("method") or {}).items() if k != "name"}
    datasets = [str(item.get("path")) for item in data.values() if item.get("path")]
    lines = [_header(resolved, mode, task, datasets), f"# {run.get('name') or run_id or 'ftkit export'}", ""]
    what = "the adapter merged into the base weights" if mode == "merge" and method.is_adapter else (
        "the PEFT adapter" if mode == "adapter" else "the fine-tuned model")  # fmt: skip
    lines += [f"Fine-tuned from `{base}` with ftkit (method `{method.name}`); this folder holds {what}, "
              f"saved in {dtype}.", ""]  # fmt: skip
    if base.endswith(".gguf"):
        lines += ["The base model was loaded from a GGUF file and is exported de-quantized: a plain transformers "
                  "model, not a GGUF file.", ""]  # fmt: skip
    lines += ["## Training", "", f"- base model: `{base}`", f"- task: {task}", f"- method: `{method.name}`"]
    lines += [f"  - {key}: `{value}`" for key, value in options.items()]
    if run_id:
        lines.append(f"- ftkit run: `{run_id}`" + (f" (status {run['status']})" if run.get("status") else ""))
    lines += [f"- parent run: `{run['parent']}`" if run.get("parent") else "- parent run: none", ""]
    if data:
        lines += ["## Data", ""] + _table(
            [(role, item.get("path"), item.get("rows"), item.get("sha256")) for role, item in data.items()],
            ("role", "file", "rows", "sha256"),
        ) + [""]  # fmt: skip
    metrics = record.get("metrics") or {}
    if metrics:
        lines += ["## Metrics (base vs tuned, as the run recorded them)", ""]
        lines += _table(sorted(metrics.items()), ("metric", "value")) + [""]
    if evals:
        lines += ["## Evaluations", ""]
        for item in evals:
            where = (item.get("data") or {}).get("path")
            lines.append(f"- `{item.get('id')}` on `{where}`:")
            base_metrics = item.get("base_metrics") or {}
            for key, value in sorted((item.get("metrics") or {}).items()):
                lines.append(
                    f"  - {key}: {value}" + (f" (base {base_metrics[key]})" if key in base_metrics else "")
                )
        lines.append("")
    lines += [
        "## Resolved recipe",
        "",
        "```yaml",
        yaml.safe_dump(resolved, sort_keys=False).rstrip(),
        "```",
        "",
    ]
    lines += ["## Reproduce", "", "```sh"]
    lines += [f"ftkit rerun {run_id}"] if run_id else ["ftkit run resolved.yaml   # the recipe above"]
    lines += ["```", "", f"Exported by ftkit {__version__}.", ""]
    return "\n".join(lines)
