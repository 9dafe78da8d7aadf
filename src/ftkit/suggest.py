"""Suggestions for "did you mean": one rule for every place that names the valid choice closest to a typo."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# difflib's similarity ratio (2 * matching characters / total characters) a choice must reach to be suggested.
# 0.6 is difflib's own default: `lorra` -> `lora` (0.89) and `learnig_rate` -> `learning_rate` (0.96) pass, while
# unrelated words of similar length (`seed` for `steps`, 0.44) do not.
CUTOFF = 0.6


def did_you_mean(word: str, choices: Iterable[str], n: int = 1) -> list[str]:
    """Up to `n` of `choices` closest to `word`, best first; empty when none is close enough (see CUTOFF)."""
    return difflib.get_close_matches(word, list(dict.fromkeys(choices)), n=n, cutoff=CUTOFF)
