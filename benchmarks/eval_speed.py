"""Evaluation speed: rows/s of ftkit's batched evaluation against a one-row-at-a-time loop and against plain
transformers (batches of B rows), on SmolLM2-135M-Instruct and held-out chatterbot-chat conversations.

Two workloads, three sides each:

- loss (every eval row): ftkit `ftkit.evaluation.evaluate.evaluate` (the loss loop of
  `ftkit.evaluation.metrics.causal_lm_loss`: batches of at most 4,096 padded tokens, the chunked loss over labelled
  positions); one by one: `causal_lm_loss` on one row at a time, the token-weighted mean of those; plain: the same
  encoded rows, right-padded with `pad_sequence` in batches of B rows, `model(...)` and a summed cross-entropy over
  the shifted labels' full logits, written here as a user would.
- generation (the first `generate` rows; greedy, `max_new_tokens`): ftkit `generate_samples` + `score_samples`
  (what `evaluate` runs when `evaluation.generate` > 0); one by one: `greedy_generate` per prompt, then
  `score_generations`; plain: the same prompt texts left-padded in the same batches, `model.generate`,
  `batch_decode`, then `score_generations`. Metrics: exact_match and contains.

Correctness is part of the results: each side's mean loss (they must agree: `loss_diff`, largest |difference| from
plain), whether ftkit's answers equal plain `model.generate`'s, and each side's generation scores.

Each repetition is one child process: load once, warm up, then per workload time the sides in an order rotated
between repetitions (`generation_speed.side_orders`). Ratios pair the sides of one repetition.

    python -m benchmarks.eval_speed measure --model DIR --data FILE --batch-size 8 --generate 16 \
        --max-new-tokens 32 --order ftkit,one_by_one,plain
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.generation_speed import SIDES, side_orders
from benchmarks.harness import (
    REPO_ROOT,
    BenchResult,
    Row,
    Stat,
    check_target,
    child_env,
    ratio_stat,
    run_child,
)

NAME = "eval_speed"
METRICS = ["exact_match", "contains"]
LOSS_TOLERANCE = 1e-4  # nats: the sides sum the same fp32 cross-entropies, in other batch shapes
WORKLOADS = {
    "loss": {
        "ftkit": "ftkit evaluate() loss loop (batched)",
        "one_by_one": "one row at a time (causal_lm_loss per row)",
        "plain": "plain transformers forward + full-logits cross-entropy, batches of B rows",
    },
    "generation": {
        "ftkit": "ftkit generate_samples + score_samples (batched)",
        "one_by_one": "one row at a time (greedy_generate per row + score_generations)",
        "plain": "plain model.generate, same batches + score_generations",
    },
}


def eval_rows(reps: list[dict[str, Any]], command: str, what: dict[str, str]) -> list[Row]:
    """Per workload: rows/s per side and the paired ratios ftkit / one-by-one and ftkit / plain (median, min,
    max); then the correctness rows: largest loss difference between sides, ftkit answers equal to plain's."""
    rows = []
    for workload, names in WORKLOADS.items():
        rate = {
            side: [rep.get(workload, {}).get(side, {}).get("rows_per_s") for rep in reps] for side in SIDES
        }
        rows += [Row(NAME, f"{workload}: {names[side]} ({what[workload]})", "rows/s", Stat.of(rate[side]), command)
                 for side in SIDES]  # fmt: skip
        rows.append(Row(NAME, f"{workload}: ftkit batched / one row at a time", "x",
                        ratio_stat(rate["ftkit"], rate["one_by_one"]), command, key=f"{workload}_ratio_loop"))  # fmt: skip
        rows.append(Row(NAME, f"{workload}: ftkit batched / plain transformers (same batches)", "x",
                        ratio_stat(rate["ftkit"], rate["plain"]), command, key=f"{workload}_ratio_plain"))  # fmt: skip
    diffs = Stat.of([rep["loss"].get("loss_diff") for rep in reps if "loss" in rep])
    rows.append(Row(NAME, "loss: largest |mean loss difference| between sides", "nats", diffs, command,
                    target=f"<= {LOSS_TOLERANCE:g}", status=check_target(diffs.max, maximum=LOSS_TOLERANCE),
                    key="loss_diff"))  # fmt: skip
    same = Stat.of([float(rep["generation"]["same_answers"]) for rep in reps if "generation" in rep])
    rows.append(Row(NAME, "generation: ftkit answers equal plain model.generate's (1 = all repetitions)",
                    "fraction", same, command, target="1", status=check_target(same.min, minimum=1.0),
                    key="same_answers"))  # fmt: skip
    return rows


def run(ctx: Any) -> BenchResult:
    """`reps` child processes, sides rotated; rows/s per side and workload, paired ratios, correctness rows."""
    from benchmarks.assets import CHAT_FILE, data_split

    size = ctx.preset.eval_speed
    result, command = BenchResult(NAME), ctx.command(NAME)
    data = data_split("chat", 0, size.rows, ctx.workdir).eval
    reps = []
    for index, order in enumerate(side_orders(ctx.preset.reps)):
        ctx.log(f"{NAME}: repetition {index + 1}/{ctx.preset.reps}: {', '.join(order)}")
        child = run_child(
            [sys.executable, "-m", "benchmarks.eval_speed", "measure", "--model", str(ctx.model_dir), "--data",
             str(data), "--batch-size", str(size.batch_size), "--generate", str(size.generate),
             "--max-new-tokens", str(size.max_new_tokens), "--order", ",".join(order)],
            cwd=REPO_ROOT, env=child_env(), timeout=ctx.preset.child_timeout_s,
        )  # fmt: skip
        record = child.json() or {"error": child.tail()}
        record["order"] = list(order)
        if not child.ok or "error" in record:
            result.notes.append(f"repetition {index + 1} failed: {str(record.get('error'))[-300:]}")
        else:
            if record["loss"]["loss_diff"] > LOSS_TOLERANCE:
                result.notes.append(f"repetition {index + 1}: mean losses differ: {record['loss']}")
            if not record["generation"]["same_answers"]:
                result.notes.append(
                    f"repetition {index + 1}: ftkit's answers differ from plain model.generate's"
                )
        reps.append(record)
    what = {
        "loss": f"{size.rows} rows, batch {size.batch_size}",
        "generation": f"{size.generate} rows, batch {size.batch_size}, {size.max_new_tokens} new tokens, greedy",
    }
    result.rows = eval_rows(reps, command, what)
    result.details = {
        "settings": {"model": "SmolLM2-135M-Instruct (fp32 folder from the GGUF)", "data": str(CHAT_FILE),
                     "rows": size.rows, "generate": size.generate, "batch_size": size.batch_size,
                     "max_new_tokens": size.max_new_tokens, "metrics": METRICS},
        "repetitions": reps,
    }  # fmt: skip
    return result


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One repetition, in this process: load once, warm up, time each workload's sides in `args.order`."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    from ftkit.data.formats import normalize
    from ftkit.data.render import IGNORE_INDEX, prompt_text, reference_text, render_example
    from ftkit.evaluation.evaluate import evaluate, generate_samples, score_samples
    from ftkit.evaluation.generate import greedy_generate
    from ftkit.evaluation.metrics import causal_lm_loss
    from ftkit.evaluation.scoring import score_generations
    from ftkit.recipe.schema import EvaluationConfig
    from ftkit.targets import load_target

    device = "cuda" if torch.cuda.is_available() else "cpu"
    target = load_target(args.model, device=device)
    model, tokenizer, size = target.model, target.tokenizer, args.batch_size
    lines = Path(args.data).read_text().splitlines()
    examples = [normalize(json.loads(line), "chat") for line in lines if line.strip()]
    rows = []
    for example in examples:
        rendered = render_example(example, tokenizer, args.max_seq_len, "completion")
        rows.append({"input_ids": rendered.input_ids, "labels": rendered.labels})
    asked = examples[: args.generate]
    texts, references = [prompt_text(e, tokenizer) for e in asked], [reference_text(e) for e in asked]
    pad = tokenizer.pad_token_id

    def ftkit_loss() -> float:
        settings = EvaluationConfig(batch_size=size)
        return evaluate(model, tokenizer, rows, task="causal-lm", settings=settings, examples=examples,
                        device=device).metrics["loss"]  # fmt: skip

    def one_by_one_loss() -> float:
        scores = [causal_lm_loss(model, [row], pad, device=device) for row in rows]
        return sum(s["loss"] * s["tokens"] for s in scores) / sum(s["tokens"] for s in scores)

    def plain_loss() -> float:
        total, count = 0.0, 0
        with torch.no_grad():
            for start in range(0, len(rows), size):
                batch = rows[start : start + size]
                ids = pad_sequence(
                    [torch.tensor(r["input_ids"]) for r in batch], batch_first=True, padding_value=pad
                )
                labels = pad_sequence([torch.tensor(r["labels"]) for r in batch], batch_first=True,
                                      padding_value=IGNORE_INDEX)  # fmt: skip
                mask = pad_sequence([torch.ones(len(r["input_ids"]), dtype=torch.long) for r in batch],
                                    batch_first=True)  # fmt: skip
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                shifted = labels[:, 1:].to(device)
                total += torch.nn.functional.cross_entropy(
                    logits[:, :-1].flatten(0, 1).float(), shifted.flatten(), ignore_index=IGNORE_INDEX,
                    reduction="sum").item()  # fmt: skip
                count += int((shifted != IGNORE_INDEX).sum())
        return total / count

    def ftkit_generation() -> tuple[list[str], dict[str, float]]:
        samples = generate_samples(model, tokenizer, asked, max_new_tokens=args.max_new_tokens, batch_size=size,
                                   device=device)  # fmt: skip
        scores = score_samples(samples, METRICS)
        return [sample["prediction"] for sample in samples], scores

    def one_by_one_generation() -> tuple[list[str], dict[str, float]]:
        answers = [
            greedy_generate(model, tokenizer, text, args.max_new_tokens, True, device) for text in texts
        ]
        return answers, score_generations(METRICS, answers, references)[0]

    def plain_generation() -> tuple[list[str], dict[str, float]]:
        stops = sorted({t for t in (tokenizer.eos_token_id, pad) if t is not None})
        tokenizer.padding_side, answers = "left", []
        with torch.no_grad():
            for start in range(0, len(texts), size):
                batch = tokenizer(texts[start : start + size], add_special_tokens=False, padding=True,
                                  return_tensors="pt").to(device)  # fmt: skip
                out = model.generate(**batch, max_new_tokens=args.max_new_tokens, do_sample=False,
                                     pad_token_id=pad, eos_token_id=stops)  # fmt: skip
                answers += tokenizer.batch_decode(
                    out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True
                )
        return answers, score_generations(METRICS, answers, references)[0]

    sides = {
        "loss": {"ftkit": ftkit_loss, "one_by_one": one_by_one_loss, "plain": plain_loss},
        "generation": {
            "ftkit": ftkit_generation,
            "one_by_one": one_by_one_generation,
            "plain": plain_generation,
        },
    }
    causal_lm_loss(model, rows[:size], pad, device=device)  # warm-up
    generate_samples(model, tokenizer, asked[:size], max_new_tokens=args.max_new_tokens, batch_size=size,
                     device=device)  # fmt: skip
    record: dict[str, Any] = {"device": device, "threads": torch.get_num_threads()}
    for workload, count in (("loss", len(rows)), ("generation", len(texts))):
        outputs, timed = {}, {}
        for side in args.order.split(","):
            started = time.perf_counter()
            outputs[side] = sides[workload][side]()
            seconds = time.perf_counter() - started
            timed[side] = {"seconds": round(seconds, 3), "rows_per_s": round(count / seconds, 4)}
        if workload == "loss":
            for side in SIDES:
                timed[side]["loss"] = outputs[side]
            timed["loss_diff"] = max(abs(outputs[side] - outputs["plain"]) for side in SIDES)
        else:
            for side in SIDES:
                timed[side]["scores"] = outputs[side][1]
            timed["same_answers"] = outputs["ftkit"][0] == outputs["plain"][0]
            timed["one_by_one_agree"] = sum(
                a == b for a, b in zip(outputs["ftkit"][0], outputs["one_by_one"][0], strict=True)
            ) / max(1, len(texts))
        record[workload] = timed
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=("measure",))
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help="chat JSONL (messages), the eval rows")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--generate", type=int, default=16, help="answers generated for the first N rows")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--max-seq-len", type=int, default=1024)
    parser.add_argument("--order", default=",".join(SIDES))
    args = parser.parse_args(argv)
    print(json.dumps(measure(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
