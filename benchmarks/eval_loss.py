"""Evaluate trained outputs the same way, whichever tool trained them: ftkit's rendering and loss function.

Every output (a LoRA adapter folder or a full model folder) is scored on the same eval rows with
`ftkit.evaluation.metrics.causal_lm_loss`: mean cross-entropy over completion tokens (assistant replies for chat
rows, the answer for question/answer rows), rows rendered by `ftkit.data.render.render_example`.

    python benchmarks/eval_loss.py --base MODEL_DIR --eval FILE --format chat OUTPUT_DIR [OUTPUT_DIR ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True)
    parser.add_argument("--eval", required=True)
    parser.add_argument("--format", choices=("chat", "completion"), required=True)
    parser.add_argument("--max-seq-len", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("outputs", nargs="+")
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftkit.data.formats import normalize
    from ftkit.data.render import render_example
    from ftkit.evaluation.metrics import causal_lm_loss

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(args.base)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    rows = []
    for line in Path(args.eval).read_text().splitlines():
        if line.strip():
            example = normalize(json.loads(line), args.format)
            rendered = render_example(example, tokenizer, args.max_seq_len, "completion")
            rows.append({"input_ids": rendered.input_ids, "labels": rendered.labels})

    results = {}
    base = (
        None  # loaded once; each LoRA adapter goes on and comes off again (unload restores the base exactly)
    )
    for output in args.outputs:
        started = time.perf_counter()
        folder = Path(output)
        if (folder / "adapter_config.json").exists():
            from peft import PeftModel

            if base is None:
                base = AutoModelForCausalLM.from_pretrained(args.base, dtype=torch.float32).to(device)
            model = PeftModel.from_pretrained(base, str(folder)).to(device)
        else:
            model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).to(device)
        scores = causal_lm_loss(
            model, rows, tokenizer.pad_token_id, args.batch_size * args.max_seq_len, device
        )
        scores["seconds"] = round(time.perf_counter() - started, 2)
        results[output] = scores
        if model is not base and hasattr(model, "unload") and model.peft_type == "LORA":
            base = model.unload()
        elif base is not None and model is not base and hasattr(model, "peft_config"):
            base = None  # another adapter kind: load a fresh base for the next one
        del model
    print(json.dumps({"rows": len(rows), "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
