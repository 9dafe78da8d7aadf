"""Generation speed: rows/s of ftkit's batched generation against a one-row-at-a-time loop and against plain
`model.generate` on the same batches, on SmolLM2-135M-Instruct, greedy, the same prompts and token budget.

- ftkit: `ftkit.inference.generate_batch(target, prompts, batch_size=B)` on `ftkit.targets.load_target(MODEL)`, the
  path `ftkit generate` takes (chat template, left-padded batches, cached decoding).
- one by one: `ftkit.inference.generate(target, prompt)` for each prompt, what a loop over the API does.
- plain: transformers alone: the same chat-template texts, tokenized left-padded in the same batches,
  `model.generate(do_sample=False)`, `batch_decode` of the new tokens.

Each repetition is one child process that loads the model once, decodes a warm-up batch, then times the three
sides in an order that rotates between repetitions (so no side always runs first or last). Ratios pair the sides of
one repetition; the rows give median, min and max over the repetitions. The child also reports whether ftkit's
answers equal plain `model.generate`'s (they should: same texts, same batches, greedy).

    python -m benchmarks.generation_speed measure --model DIR --prompts FILE --batch-size 8 --max-new-tokens 32 \
        --order ftkit,one_by_one,plain
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import REPO_ROOT, BenchResult, Row, Stat, child_env, ratio_stat, run_child

NAME = "generation_speed"
SIDES = ("ftkit", "one_by_one", "plain")
SIDE_NAMES = {
    "ftkit": "ftkit generate_batch (batched)",
    "one_by_one": "one row at a time (ftkit generate in a loop)",
    "plain": "plain model.generate, same batches",
}


def side_orders(reps: int) -> list[tuple[str, ...]]:
    """The order of the sides in each repetition: rotated, so each side takes each position in turn."""
    return [SIDES[index % len(SIDES) :] + SIDES[: index % len(SIDES)] for index in range(reps)]


def chat_prompts(rows: list[dict], count: int) -> list[list[dict[str, str]]]:
    """The first `count` distinct conversations, each cut before its first assistant reply (a user's question)."""
    prompts, seen = [], set()
    for row in rows:
        messages = row.get("messages") or []
        cut = next((i for i, m in enumerate(messages) if m.get("role") == "assistant"), len(messages))
        prompt = [{"role": m["role"], "content": m["content"]} for m in messages[:cut]]
        key = json.dumps(prompt)
        if prompt and prompt[-1]["role"] == "user" and key not in seen:
            seen.add(key)
            prompts.append(prompt)
        if len(prompts) == count:
            break
    return prompts


def speed_rows(reps: list[dict[str, Any]], command: str, what: str) -> list[Row]:
    """Rows/s per side and the paired ratios ftkit / one-by-one and ftkit / plain (median, min, max)."""
    rate = {side: [rep.get(side, {}).get("rows_per_s") for rep in reps] for side in SIDES}
    rows = [
        Row(NAME, f"{SIDE_NAMES[side]} ({what})", "rows/s", Stat.of(rate[side]), command) for side in SIDES
    ]
    rows.append(Row(NAME, "ftkit batched / one row at a time", "x", ratio_stat(rate["ftkit"], rate["one_by_one"]),
                    command, key="ratio_loop"))  # fmt: skip
    rows.append(Row(NAME, "ftkit batched / plain model.generate (same batches)", "x",
                    ratio_stat(rate["ftkit"], rate["plain"]), command, key="ratio_plain"))  # fmt: skip
    return rows


def run(ctx: Any) -> BenchResult:
    """`reps` child processes, sides rotated; rows/s per side and paired ratios."""
    from benchmarks.assets import CHAT_FILE, _read_jsonl

    size = ctx.preset.generation
    result, command = BenchResult(NAME), ctx.command(NAME)
    prompts_file = ctx.workdir / "generation_prompts.json"
    prompts_file.write_text(json.dumps(chat_prompts(_read_jsonl(CHAT_FILE), size.prompts)))
    reps = []
    for index, order in enumerate(side_orders(ctx.preset.reps)):
        ctx.log(f"{NAME}: repetition {index + 1}/{ctx.preset.reps}: {', '.join(order)}")
        child = run_child(
            [sys.executable, "-m", "benchmarks.generation_speed", "measure", "--model", str(ctx.model_dir), "--prompts",
             str(prompts_file), "--batch-size", str(size.batch_size), "--max-new-tokens", str(size.max_new_tokens),
             "--order", ",".join(order)],
            cwd=REPO_ROOT, env=child_env(), timeout=ctx.preset.child_timeout_s,
        )  # fmt: skip
        record = child.json() or {"error": child.tail()}
        record["order"] = list(order)
        if not child.ok or "error" in record:
            result.notes.append(f"repetition {index + 1} failed: {str(record.get('error'))[-300:]}")
        elif not record.get("same_answers"):
            result.notes.append(f"repetition {index + 1}: ftkit's answers differ from plain model.generate's")
        reps.append(record)
    what = f"{size.prompts} prompts, batch {size.batch_size}, {size.max_new_tokens} new tokens, greedy"
    result.rows = speed_rows(reps, command, what)
    result.details = {
        "settings": {"model": "SmolLM2-135M-Instruct (fp32 folder from the GGUF)", "data": str(CHAT_FILE),
                     "prompts": size.prompts, "batch_size": size.batch_size,
                     "max_new_tokens": size.max_new_tokens},
        "repetitions": reps,
    }  # fmt: skip
    return result


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One repetition, in this process: load once, warm up, time each side in `args.order`."""
    import torch

    from ftkit.inference import generate, generate_batch, render_prompt
    from ftkit.targets import load_target

    prompts = json.loads(Path(args.prompts).read_text())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    target = load_target(args.model, device=device)
    model, tokenizer = target.model, target.tokenizer
    texts = [render_prompt(tokenizer, prompt) for prompt in prompts]
    stops = sorted({t for t in (tokenizer.eos_token_id, tokenizer.pad_token_id) if t is not None})

    def plain() -> list[str]:
        tokenizer.padding_side = "left"
        answers = []
        with torch.no_grad():
            for start in range(0, len(texts), args.batch_size):
                batch = tokenizer(texts[start : start + args.batch_size], add_special_tokens=False, padding=True,
                                  return_tensors="pt").to(device)  # fmt: skip
                out = model.generate(**batch, max_new_tokens=args.max_new_tokens, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=stops)  # fmt: skip
                answers += tokenizer.batch_decode(
                    out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True
                )
        return answers

    sides = {
        "ftkit": lambda: generate_batch(target, prompts, args.max_new_tokens, batch_size=args.batch_size),
        "one_by_one": lambda: [generate(target, prompt, args.max_new_tokens) for prompt in prompts],
        "plain": plain,
    }
    generate_batch(
        target, prompts[: args.batch_size], args.max_new_tokens, batch_size=args.batch_size
    )  # warm-up
    record: dict[str, Any] = {"device": device, "threads": torch.get_num_threads()}
    answers = {}
    for side in args.order.split(","):
        started = time.perf_counter()
        answers[side] = sides[side]()
        seconds = time.perf_counter() - started
        record[side] = {"seconds": round(seconds, 3), "rows_per_s": round(len(prompts) / seconds, 4)}
    record["same_answers"] = answers.get("ftkit") == answers.get("plain")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=("measure",))
    parser.add_argument("--model", required=True)
    parser.add_argument("--prompts", required=True)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--order", default=",".join(SIDES))
    args = parser.parse_args(argv)
    print(json.dumps(measure(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
