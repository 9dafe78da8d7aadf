"""The generation budget `ftkit tune` writes into its recipe: long enough that no reference answer is cut before it
is scored (the quickstart's JSON answers, ~2.2 characters per token, were cut at 3 characters per token)."""

from __future__ import annotations

from ftkit.tune.recipe import new_tokens_for


def test_the_budget_covers_the_longest_answer_at_two_characters_per_token():
    # By hand: 61 characters / 2 = 30.5 -> 31 tokens -> rounded up to 8 -> 32; the short answers do not lower it.
    assert new_tokens_for([5, 12, 61]) == 32


def test_the_budget_stays_within_16_and_256_tokens():
    assert new_tokens_for([]) == 16
    assert new_tokens_for([3]) == 16
    assert new_tokens_for([100_000]) == 256
