"""Each `auto` rule at its edges, against values computed by hand from the stated rule (not from the code)."""

from __future__ import annotations

import pytest

from ftkit.errors import ExitCode, UsageError
from ftkit.recipe import auto_rules as rules

# rows -> (causal-lm epochs, classification epochs), worked out from the rule:
# 1 row: 3 seen < 100 -> floor(100/1) = 100, capped at 25 | 30 rows: 90 < 100 -> floor(100/30) = 3
# 2,000: 6,000 seen, within -> 3 | 10,000: 30,000 > 25,000 -> floor(25,000/10,000) = 2 (classification: within, 3)
# 1,000,000: floor(25,000/1M) = 0 -> at least 1 (classification: floor(100,000/1M) = 0 -> 1)
# 40,000: causal floor(25,000/40,000)=0 -> 1; classification 120,000 > 100,000 -> floor(100,000/40,000) = 2
EPOCHS = {
    1: (25, 25),
    30: (3, 3),
    2_000: (3, 3),
    10_000: (2, 3),
    1_000_000: (1, 1),
    40_000: (1, 2),
    20: (5, 5),
}


@pytest.mark.parametrize("rows", sorted(EPOCHS))
def test_epochs_follow_openais_rule_and_classification_sees_more(rows):
    causal, classification = EPOCHS[rows]
    assert rules.epochs(rows, "causal-lm").value == causal
    assert rules.epochs(rows, "classification").value == classification


def test_epochs_evidence_states_the_examples_seen():
    choice = rules.epochs(2_026, "causal-lm")
    assert choice.value == 3
    assert "2,026 rows × 3 = 6,078 examples seen" in choice.evidence
    assert "25,000" in choice.rule and "OpenAI" in choice.rule


def test_the_issues_classification_run_gets_three_epochs_rate_2e3_and_batch_32():
    # The issue: 10k rows, 77 classes, MiniLM (22.7M parameters), LoRA: 3 epochs / 2e-3 / batch 32 reached 89 %.
    assert rules.epochs(10_000, "classification").value == 3
    assert rules.learning_rate("lora", 22_700_000, "classification").value == 2e-3
    assert rules.effective_batch(10_000, "classification").value == 32


@pytest.mark.parametrize(
    ("method", "params", "task", "rate"),
    [
        ("lora", 135_000_000, "causal-lm", 1e-3),
        ("dora", 1_000_000_000 - 1, "causal-lm", 1e-3),
        ("lora", 1_000_000_000, "causal-lm", 2e-4),  # 1B is "above" the small-model band
        ("qlora", 13_000_000_000 - 1, "causal-lm", 2e-4),
        ("dora", 13_000_000_000, "causal-lm", 1e-4),  # 13B is "above": the limit is exclusive
        ("lora", 99_999_999, "classification", 2e-3),
        ("lora", 100_000_000, "classification", 4e-4),
        ("lora", 1_500_000_000, "classification", 1e-4),
        ("full", 135_000_000, "causal-lm", 5e-5),
        ("freeze", 7_000_000_000, "causal-lm", 2e-5),
        ("full", 70_000_000_000, "causal-lm", 1e-5),
        ("full", 22_700_000, "classification", 5e-5),
    ],
)
def test_learning_rate_by_method_family_size_and_task(method, params, task, rate):
    assert rules.learning_rate(method, params, task).value == rate


def test_learning_rate_of_other_methods_is_their_own_at_every_size():
    assert rules.learning_rate("ia3", 7_000_000_000, "causal-lm", method_default=3e-3).value == 3e-3
    assert rules.learning_rate("prompt", 1_000, "classification", method_default=3e-2).value == 3e-2
    assert "PEFT" in rules.learning_rate("prefix", 1, "causal-lm", 1e-2).rule


def test_learning_rate_on_small_models_is_not_below_the_large_model_rate():
    for family in ("lora", "full"):
        for task in ("causal-lm", "classification"):
            small = rules.learning_rate(family, 20_000_000, task).value
            large = rules.learning_rate(family, 70_000_000_000, task).value
            assert small > large


@pytest.mark.parametrize(
    ("rows", "rank"), [(1, 8), (30, 8), (999, 8), (1_000, 16), (9_999, 16), (10_000, 32)]
)
def test_lora_rank_by_rows(rows, rank):
    assert rules.lora_rank(rows).value == rank
    assert rules.lora_rank(1_000_000).value == 32


def test_max_seq_len_is_the_p99_rounded_up_to_64_with_the_rows_it_cuts():
    # 100 rows: 98 of 50 tokens, one of 130, one of 900. Nearest-rank p99 = the 99th value = 130 -> 192.
    lengths = [50] * 98 + [130, 900]
    choice = rules.max_seq_len(lengths, model_context=2048)
    assert choice.value == 192
    assert "1 row truncated" in choice.evidence and "p99 of 100 rows = 130" in choice.evidence


def test_max_seq_len_is_at_least_64_and_exact_multiples_stay():
    assert rules.max_seq_len([3], 2048).value == 64
    assert rules.max_seq_len([128] * 10, 2048).value == 128
    assert rules.max_seq_len([129] * 10, None).value == 192


def test_max_seq_len_is_capped_by_a_context_shorter_than_the_p99():
    choice = rules.max_seq_len([300] * 50 + [40] * 50, model_context=128)
    assert choice.value == 128
    assert "50 rows truncated" in choice.evidence and "capped" in choice.evidence


def test_max_seq_len_without_rows_is_a_usage_error():
    with pytest.raises(UsageError) as error:
        rules.max_seq_len([], 512)
    assert error.value.exit_code == ExitCode.BAD_INPUT


@pytest.mark.parametrize(
    ("rows", "task", "batch"),
    # min(target, largest power of two <= rows / 8)
    [(1, "causal-lm", 1), (30, "causal-lm", 2), (2_000, "causal-lm", 16), (1_000_000, "causal-lm", 16),
     (200, "classification", 16), (10_000, "classification", 32), (1, "classification", 1)],
)  # fmt: skip
def test_effective_batch_by_task_and_rows(rows, task, batch):
    assert rules.effective_batch(rows, task).value == batch


def test_micro_batch_is_the_largest_power_of_two_that_fits_and_accum_keeps_the_effective_batch():
    asked: list[int] = []

    def fits(batch: int) -> bool:
        asked.append(batch)
        return batch <= 5

    choice = rules.batch_and_accum(32, fits)
    assert choice.value == (4, 8)
    assert asked == [32, 16, 8, 4]
    assert "micro-batch 4 × grad_accum 8 = 32" in choice.evidence
    assert rules.batch_and_accum(16, lambda b: True).value == (16, 1)
    assert rules.batch_and_accum(12, lambda b: True).value == (8, 1)  # not a power of two: the one below


def test_a_given_grad_accum_is_kept_and_the_micro_batch_fills_the_rest():
    assert rules.batch_and_accum(32, lambda b: True, fixed_accum=4).value == (8, 4)
    assert rules.batch_and_accum(32, lambda b: b <= 2, fixed_accum=4).value == (2, 4)


def test_nothing_fits_even_at_one_is_exit_2_with_the_cheaper_alternative():
    with pytest.raises(UsageError) as error:
        rules.batch_and_accum(8, lambda b: False, cheaper="use method.name: qlora (4-bit base)")
    assert error.value.exit_code == ExitCode.BAD_INPUT
    assert "tried micro-batches 8, 4, 2, 1" in error.value.message
    assert error.value.hint == "use method.name: qlora (4-bit base)"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("20m", 1200), ("90s", 90), ("1h30m", 5400), ("1h 5m 10s", 3910), (90, 90), ("45", 45), ("1.5h", 5400)],
)
def test_durations(text, seconds):
    assert rules.parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "20 minutes", "m", "-5m", 0, "0s", True, "1d"])
def test_bad_durations_say_the_accepted_forms(bad):
    with pytest.raises(ValueError, match="duration"):
        rules.parse_duration(bad)


def test_steps_for_budget_caps_the_planned_steps():
    # 20 minutes at 2.5 s per step: 480 steps; 1,000 planned -> 480, 100 planned -> 100.
    assert rules.steps_for_budget(1200, 2.5, 1_000).value == 480
    assert rules.steps_for_budget(1200, 2.5, 100).value == 100
    assert "20m / 2.50 s per step = 480 steps" in rules.steps_for_budget(1200, 2.5, 1_000).evidence


def test_a_budget_shorter_than_one_step_is_exit_2_with_the_minimum():
    with pytest.raises(UsageError) as error:
        rules.steps_for_budget(5, 7.2, 100)
    assert error.value.exit_code == ExitCode.BAD_INPUT
    assert "5s is too short for one training step" in error.value.message
    assert "at least 8s" in error.value.hint


def test_stated_rules_list_the_rank_for_the_lora_family_only():
    assert "method.r" in rules.stated_rules("dora")
    assert "method.r" not in rules.stated_rules("full")
    assert set(rules.stated_rules("ia3")) >= {
        "training.epochs",
        "training.learning_rate",
        "training.max_seq_len",
    }


def test_preference_rates_reproduce_the_alignment_handbooks_zephyr_dpo_rates():
    # zephyr-7b-beta DPO: 5e-6 with QLoRA, 5e-7 full (the handbook's recipes), from the 7B SFT rates
    assert rules.learning_rate("qlora", 7 * rules.BILLION, "preference").value == pytest.approx(5e-6)
    assert rules.learning_rate("full", 7 * rules.BILLION, "preference").value == pytest.approx(5e-7)
    small = rules.learning_rate("lora", 135_000_000, "preference")
    assert small.value == pytest.approx(1e-3 / 40) and "1/40" in small.rule
