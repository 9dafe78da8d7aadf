"""Fixtures for the data tests: a tiny tokenizer (no model, no torch), real data paths, a CLI runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Beside the repository, wherever it is cloned (CI clones it next to a copy of shared/).
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    """The byte-level BPE tokenizer of tests/conftest.py (ChatML template, `<|im_end|>` as eos)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_ftkit_root_conftest", REPO / "tests" / "conftest.py")
    root = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(root)
    return root.build_tokenizer(tmp_path_factory.mktemp("tiny-tokenizer"))


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tiny_tokenizer, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("tiny-tokenizer-dir")
    tiny_tokenizer.save_pretrained(directory)
    return directory


def shared(relative: str) -> Path:
    """A file under ../shared/data, or a skip that says why (a failure under CI=true)."""
    from tests.conftest import require_shared_data

    return require_shared_data(SHARED_DATA / relative)


def write_lines(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def cli(*args: str):
    """Run `ftkit ...` in-process; returns click's Result (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from ftkit.cli.app import app

    return CliRunner().invoke(app, list(args))
