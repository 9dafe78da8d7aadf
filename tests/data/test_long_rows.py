"""One row far beyond max_seq_len is cut by characters before tokenizing, so it neither takes seconds and
gigabytes to check nor changes the tokens a run trains on; the cut is counted."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

from transformers import AutoTokenizer

from ftkit.data.render import render_example

FTKIT = Path(sys.executable).with_name("ftkit")
MAX_LEN = 64


def long_text(chars: int) -> str:
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    text = " ".join(words[i % len(words)] + str(i % 97) for i in range(chars // 6 + 1))
    return text[:chars]


def test_a_huge_row_keeps_the_tokens_of_its_start(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = long_text(100_000)
    rendered = render_example({"text": text}, tokenizer, MAX_LEN)
    reference = tokenizer(text + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    assert rendered.input_ids == reference[:MAX_LEN]
    # 64 tokens * 32 characters is below the 65,536-character floor, so the floor is what is kept
    assert rendered.truncated_chars == len(text) + len(tokenizer.eos_token) - 65_536


def test_data_check_with_a_model_bounds_a_20_mb_row(tmp_path, tiny_model_dir):
    data = tmp_path / "long.jsonl"
    rows = [{"text": "a short row"}, {"text": long_text(20_000_000)}]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = subprocess.run(
        [
            str(FTKIT),
            "data",
            "check",
            str(data),
            "--model",
            str(tiny_model_dir),
            "--max-seq-len",
            str(MAX_LEN),
        ]
        + ["--json"],
        capture_output=True,
        text=True,
        timeout=120,  # unbounded, this row took minutes and over 7 GB
    )
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    text = json.dumps(report)
    assert '"char_capped_rows": 1' in text
    assert "more were cut before tokenizing" in text
    # Python, torch and transformers take ~0.5 GB; tokenizing the whole row took over 7 GB.
    assert peak_mb < 2000, peak_mb
