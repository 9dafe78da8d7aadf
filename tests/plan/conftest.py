"""Fixtures for the plan tests."""

from __future__ import annotations

import pytest

from tests.conftest import build_llama, build_tokenizer


@pytest.fixture(scope="session")
def broad_model_dir(tmp_path_factory):
    """A 2-layer Llama of hidden 1024 (about 21M parameters, 84 MB in fp32): big enough that its weights,
    gradients and optimizer states dwarf the allocator's noise, small enough for a 2-core test."""
    directory = tmp_path_factory.mktemp("broad-llama")
    tokenizer = build_tokenizer(directory)
    build_llama(directory, len(tokenizer), hidden_size=1024, intermediate_size=2048)
    return directory
