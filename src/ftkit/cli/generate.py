"""`ftkit generate RUN|MODEL`: answers to prompts from a registry run or any model, batched.

Prompts come from `--prompt` (repeatable) or `--file` (.jsonl rows or .txt lines; see ftkit/prompt_file.py), are
checked before the model loads, and go through the chat template unless `--raw`. Generation is
`ftkit.inference.generate_batch` in batches of `--batch-size` (each method's decoding quirks included), so the
answers are the inference API's. Human output: a prompt block and an answer block per prompt; `--json`: one JSON
object per prompt and line (JSONL), written as each batch finishes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from ftkit.cli._options import registry_option
from ftkit.cli._output import Output
from ftkit.cli._target import REF_HELP, describe, load_for_generation, locate
from ftkit.errors import UsageError


def generate_command(
    ref: str = typer.Argument(..., metavar="RUN|MODEL", help=REF_HELP),
    prompt: list[str] | None = typer.Option(None, "--prompt", "-p", help="A prompt (repeat for more)."),
    file: Path | None = typer.Option(
        None,
        "--file",
        "-f",
        help='Prompts: .jsonl rows ({"prompt": ...} or {"messages": [...]}) or .txt lines.',
    ),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", min=1, help="Most tokens per answer."),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0, help="0: greedy; above 0: sampled."),
    top_p: float = typer.Option(
        1.0, "--top-p", min=0.0, max=1.0, help="Nucleus sampling mass (with temperature)."
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="Seed for sampling: the same seed repeats the answers."
    ),
    raw: bool = typer.Option(False, "--raw", help="Send prompts as plain text, without the chat template."),
    json_mode: bool = typer.Option(False, "--json", help="One JSON object per prompt (JSONL) on stdout."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Prompts decoded together."),
    registry: Path | None = registry_option(),
) -> None:
    """Generate answers to prompts with a registry run or any model (batched; JSONL with --json)."""
    from ftkit.prompt_file import PromptRow, read_prompt_file

    out = Output(json_mode)
    if prompt and file:
        raise UsageError("give prompts with --prompt or with --file, not both")
    if not prompt and file is None:
        raise UsageError("no prompts: pass --prompt TEXT (repeatable) or --file prompts.jsonl|.txt")
    if top_p <= 0.0:
        raise UsageError(
            "--top-p must be above 0 (it is the probability mass kept)", hint="use 0.9, or 1 for all"
        )
    rows = read_prompt_file(file, raw) if file is not None else [
        PromptRow(text, "--prompt", index) for index, text in enumerate(prompt or [], 1)]  # fmt: skip
    source = locate(ref, registry)
    target = load_for_generation(source, "generate", out)
    if not raw and target.data_format in ("completion", "text"):
        out.warn(
            f"{target.label} was trained on plain prompts (data.format: {target.data_format}), not chat turns: "
            "pass --raw to prompt it the way it was trained"
        )
    out.hint(describe(target))
    _check_lengths(target, rows, raw, max_new_tokens)
    _generate(target, rows, out, raw=raw, max_new_tokens=max_new_tokens, batch_size=batch_size,
              temperature=temperature, top_p=top_p, seed=seed)  # fmt: skip


def _check_lengths(target: Any, rows: list, raw: bool, max_new_tokens: int) -> None:
    """Refuse, before generating anything, prompts that leave no room for the answer in the model's context."""
    from ftkit.errors import DataError
    from ftkit.inference import render_prompt

    limit = target.max_length
    if limit is None:
        return
    too_long = []
    for row in rows:
        tokens = len(target.tokenizer(render_prompt(target.tokenizer, row.prompt, not raw), add_special_tokens=False)
                     ["input_ids"])  # fmt: skip
        if tokens + max_new_tokens > limit:
            too_long.append(f"{row.where}: {tokens} prompt tokens + {max_new_tokens} new > {limit}")
    if too_long:
        raise DataError(
            f"{len(too_long)} prompt(s) leave no room for a {max_new_tokens}-token answer in the model's {limit} "
            "positions; nothing was generated",
            hint="shorten them, or lower --max-new-tokens",
            problems=too_long,
        )


def _generate(target: Any, rows: list, out: Output, *, raw: bool, max_new_tokens: int, batch_size: int,
              temperature: float, top_p: float, seed: int | None) -> None:  # fmt: skip
    """Batch by batch: the answers of each batch are printed as soon as it finishes."""
    import torch

    from ftkit.inference import generate_batch

    if seed is not None:  # once, as generate_batch(seed=...) over all prompts does
        torch.manual_seed(seed)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        answers = generate_batch(target, [row.prompt for row in chunk], max_new_tokens, chat=not raw,
                                 batch_size=batch_size, temperature=temperature, top_p=top_p)  # fmt: skip
        for number, (row, answer) in enumerate(zip(chunk, answers, strict=True), start + 1):
            if out.json_mode:
                _write_json_line(target, row, answer)
            else:
                _print_block(out, number, row, answer)


def _write_json_line(target: Any, row: Any, answer: str) -> None:
    from ftkit.registry.scrub import scrub_text

    record: dict[str, Any] = {"prompt": row.prompt, "answer": answer, "target": target.label,
                              "run_id": target.run_id, "source": row.where}  # fmt: skip
    if row.reference is not None:
        record["reference"] = row.reference
    sys.stdout.write(scrub_text(json.dumps(record, ensure_ascii=False)) + "\n")
    sys.stdout.flush()
    Output.document_emitted = True  # a later error goes to stderr only: stdout stays one object per line


def _print_block(out: Output, number: int, row: Any, answer: str) -> None:
    console = out.console
    if isinstance(row.prompt, list):
        shown = "\n".join(f"{turn['role']}: {turn['content']}" for turn in row.prompt)
    else:
        shown = row.prompt
    where = f" ({row.where})" if row.source != "--prompt" else ""
    console.print(f"── prompt {number}{where}", style="bold", markup=False, highlight=False)
    console.print(shown, markup=False, highlight=False)
    console.print(f"── answer {number}", style="bold green", markup=False, highlight=False)
    console.print(answer, markup=False, highlight=False)
    console.print()


def register(app: typer.Typer) -> None:
    """Add `ftkit generate`."""
    app.command("generate")(generate_command)
