"""Write a run's trained model where tools without ftkit can load it.

    from ftkit.export.export import export_run
    export_run("@latest", Path("exported"), mode="merge", dtype="fp32", registry=reg)

`merge`: the adapter folded into the base (mergeable methods; full and freeze runs are whole models already),
saved as safetensors with its config and the tokenizer carrying the chat template used in training.
`adapter`: the PEFT adapter folder (`PeftModel.from_pretrained`). Both get a model card (README.md). Everything is
written into a staging folder beside the destination and renamed into place at the end, so a failure leaves
nothing half-written. Heavy libraries are imported inside the functions.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ftkit.errors import UsageError

DTYPES = ("fp32", "bf16", "fp16")


def check_destination(out_dir: Path, force: bool) -> None:
    """Refuse a destination that is a file, or a folder that is not empty (unless `force`)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"-o {out_dir}: a file is there, not a folder", hint="choose another -o folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise UsageError(
            f"-o {out_dir}: the folder exists and is not empty",
            hint="choose an empty or new folder, or pass --force to replace its contents",
        )


def check_mode(method: Any, mode: str) -> None:
    """Refuse a mode the run's method cannot give: merging prefix/prompt tuning, an adapter of a whole model."""
    if mode == "merge" and method.is_adapter and not method.mergeable:
        raise UsageError(
            f"method `{method.name}` cannot be merged into the base model (its weights are virtual tokens, not "
            "changes to the base's layers)",
            hint="export it with --adapter (a PEFT adapter folder, loaded with PeftModel.from_pretrained)",
        )
    if mode == "adapter" and not method.is_adapter:
        raise UsageError(
            f"method `{method.name}` trains the model's own weights, so the run has no adapter to export",
            hint="export it with --merge (a standard transformers folder)",
        )


def sha256_files(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, by relative path."""
    found = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        found[path.relative_to(folder).as_posix()] = digest.hexdigest()
    return found


def _save_model(output_dir: Path, staging: Path, mode: str, dtype: str) -> Any:
    import torch

    from ftkit.data.render import ensure_chat_template
    from ftkit.inference import load_trained_model
    from ftkit.train.quiet import quiet_libraries

    quiet_libraries()
    merge = mode == "merge"
    trained = load_trained_model(output_dir, merge=merge and trained_is_adapter(output_dir))
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    model = trained.model.to(torch_dtype)
    model.save_pretrained(staging, safe_serialization=True)
    if merge and trained.labels and getattr(model.config, "id2label", None):
        model.config.save_pretrained(staging)
    # The chat template the run trained with: the run's own, or ftkit's default that training added.
    ensure_chat_template(trained.tokenizer)
    trained.tokenizer.save_pretrained(staging)
    return trained


def trained_is_adapter(output_dir: Path) -> bool:
    """Whether the run's method is an adapter method (its output holds an adapter, not a whole model)."""
    from ftkit.inference import _method_of, read_resolved

    return _method_of(read_resolved(output_dir))[0].is_adapter


def export_run(
    output_dir: Path,
    out_dir: Path,
    *,
    mode: str,
    dtype: str,
    force: bool,
    record: dict | None = None,
    evals: list[dict] | None = None,
    run_id: str | None = None,
) -> dict:
    """Export the run output `output_dir` to `out_dir`; returns what was written (files with sha256).

    record/evals: the registry's run record (`RunRegistry.load_run`) and eval records, for the model card."""
    from ftkit.export.model_card import model_card
    from ftkit.inference import _method_of, read_resolved

    if dtype not in DTYPES:
        raise UsageError(f"--dtype {dtype}: unknown", hint=f"use one of {', '.join(DTYPES)}")
    resolved = read_resolved(output_dir)
    method, _ = _method_of(resolved)
    check_mode(method, mode)
    out_dir = out_dir.expanduser().absolute()
    check_destination(out_dir, force)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent))
    try:
        _save_model(output_dir, staging, mode, dtype)
        card = model_card(resolved, method, mode, dtype, record or {}, evals or [], run_id)
        (staging / "README.md").write_text(card, encoding="utf-8")
        files = sha256_files(staging)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"run_id": run_id, "mode": mode, "dtype": dtype, "method": method.name, "output": str(out_dir),
            "files": files}  # fmt: skip
