"""Per-document token budget: seeded subset within budget, and the optional rollover."""
import pytest

from pipeline.token_budget import BudgetRollover, seed_from_key, select_within_budget

TOKENS = [120, 80, 200, 50, 150, 90]


@pytest.mark.parametrize("budget", [0, 49, 50, 100, 300, 400, 690, 10_000])
@pytest.mark.parametrize("key", ["doc-1", "doc-2", "https://example.org/a"])
def test_never_exceeds_budget_and_indices_are_sorted_and_unique(budget, key):
    kept = select_within_budget(TOKENS, budget, key)
    assert sum(TOKENS[i] for i in kept) <= budget
    assert kept == sorted(set(kept))
    assert all(0 <= i < len(TOKENS) for i in kept)


def test_greedy_fill_leaves_no_pair_that_would_still_fit():
    for key in ("a", "b", "c", "d"):
        kept = select_within_budget(TOKENS, 300, key)
        left = 300 - sum(TOKENS[i] for i in kept)
        assert all(TOKENS[i] > left for i in range(len(TOKENS)) if i not in kept)


def test_deterministic_for_the_same_key():
    first = select_within_budget(TOKENS, 300, "doc-42")
    assert [select_within_budget(TOKENS, 300, "doc-42") for _ in range(5)] == [first] * 5
    assert seed_from_key("doc-42") == seed_from_key("doc-42")
    assert seed_from_key("doc-42") != seed_from_key("doc-43")


def test_pinned_selection():
    # Pins the SHA-256 seed and CPython's seeded shuffle: a change here breaks rerun identity.
    assert seed_from_key("") == 0xE3B0C44298FC1C14
    assert select_within_budget([10] * 6, 30, "doc-1") == [1, 3, 4]
    assert select_within_budget([10] * 6, 30, "doc-2") == [0, 1, 4]
    assert select_within_budget(TOKENS, 300, "doc-1") == [1, 3, 4]  # 80 + 50 + 150 = 280
    assert select_within_budget(TOKENS, 300, "doc-2") == [0, 1, 5]  # 120 + 80 + 90 = 290


def test_differs_across_keys():
    selections = {tuple(select_within_budget([10] * 6, 30, f"doc-{k}")) for k in range(20)}
    assert len(selections) > 1
    assert all(len(s) == 3 for s in selections)


def test_zero_budget_keeps_nothing():
    assert select_within_budget(TOKENS, 0, "doc-1") == []
    assert select_within_budget([], 100, "doc-1") == []


def test_pair_bigger_than_budget_is_skipped_and_smaller_ones_kept():
    assert select_within_budget([500, 40, 60], 100, "doc-1") == [1, 2]
    assert select_within_budget([500], 499, "doc-1") == []
    assert select_within_budget([500], 500, "doc-1") == [0]


def test_everything_fits_keeps_everything():
    assert select_within_budget(TOKENS, sum(TOKENS), "any") == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("tokens, budget", [([10, -1], 100), ([10], -1)])
def test_negative_values_raise(tokens, budget):
    with pytest.raises(ValueError):
        select_within_budget(tokens, budget, "doc-1")


def test_rollover_carries_the_unused_remainder():
    r = BudgetRollover()
    assert r.carried == 0
    assert r.grant(100) == 100
    r.spend(60, 100)
    assert r.carried == 40
    assert r.grant(50) == 90
    r.spend(90, 90)
    assert r.carried == 0
    assert r.grant(30) == 30
    r.spend(0, 30)
    assert r.carried == 30
    r.reset()
    assert r.grant(10) == 10


def test_rollover_cap():
    r = BudgetRollover(max_carry=25)
    granted = r.grant(100)
    r.spend(10, granted)
    assert r.carried == 25
    assert r.grant(100) == 125
    r.spend(110, 125)
    assert r.carried == 15
    no_carry = BudgetRollover(max_carry=0)
    no_carry.spend(0, 100)
    assert no_carry.carried == 0
    assert no_carry.grant(70) == 70


def test_rollover_with_selection():
    r = BudgetRollover()
    granted = r.grant(100)
    kept = select_within_budget([70, 70], granted, "doc-1")
    assert len(kept) == 1
    r.spend(70, granted)
    assert r.grant(100) == 130
    assert select_within_budget([70, 70], r.grant(100), "doc-2") == [0]


@pytest.mark.parametrize("used, granted", [(-1, 10), (11, 10)])
def test_rollover_rejects_impossible_spend(used, granted):
    with pytest.raises(ValueError):
        BudgetRollover().spend(used, granted)


def test_rollover_rejects_negative_cap_and_doc_tokens():
    with pytest.raises(ValueError):
        BudgetRollover(max_carry=-1)
    with pytest.raises(ValueError):
        BudgetRollover().grant(-5)
