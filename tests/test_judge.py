"""The heuristic judge: each deduction by name and size, leftover tags, clamping."""
import pytest

from pipeline.judge import (
    ANSWER_MAX_WORDS, DEDUCTIONS, INSTRUCTION_MAX_WORDS, KEEP_MIN_SCORE, JudgeResult,
    heuristic_score, repeated_ngram_share)

INSTRUCTION = "What effects does lupus have on the kidneys?"
ANSWER = ("Lupus nephritis is an inflammation of the kidneys caused by systemic lupus "
          "erythematosus. It can lead to blood in the urine, swelling of the legs, high blood "
          "pressure and, without treatment, kidney failure.")
GOOD = dict(excerpt_share=0.95, relatedness=0.6)


def distinct_words(n):
    return " ".join(f"w{i}" for i in range(n))


def test_good_pair_scores_5_with_no_reasons():
    assert heuristic_score(INSTRUCTION, ANSWER, **GOOD) == JudgeResult(5, ())
    assert KEEP_MIN_SCORE == 4


@pytest.mark.parametrize("instruction, answer, kwargs, reason, score", [
    ("Lupus effects?", ANSWER, GOOD, "instruction_too_short", 4),
    (distinct_words(INSTRUCTION_MAX_WORDS + 1), ANSWER, GOOD, "instruction_too_long", 4),
    (INSTRUCTION, "Lupus can damage the kidneys.", GOOD, "answer_too_short", 3),
    (INSTRUCTION, distinct_words(ANSWER_MAX_WORDS + 1), GOOD, "answer_too_long", 4),
    (INSTRUCTION, ANSWER, dict(excerpt_share=0.79, relatedness=0.6), "low_excerpt_share", 4),
    (INSTRUCTION, "the kidneys fail and " * 6, GOOD, "repetitive_answer", 4),
    (INSTRUCTION, ANSWER, dict(excerpt_share=0.95, relatedness=0.14), "unrelated", 3),
    (INSTRUCTION, ANSWER, dict(excerpt_share=0.95, relatedness=0.29), "weakly_related", 4),
])
def test_each_deduction(instruction, answer, kwargs, reason, score):
    assert heuristic_score(instruction, answer, **kwargs) == JudgeResult(score, (reason,))
    assert DEDUCTIONS[reason] == 5 - score


def test_boundaries_are_inclusive():
    assert heuristic_score("how lupus works", ANSWER, **GOOD) == JudgeResult(5, ())  # 3 words
    assert heuristic_score(distinct_words(INSTRUCTION_MAX_WORDS), ANSWER, **GOOD).reasons == ()
    assert heuristic_score(INSTRUCTION, distinct_words(8), **GOOD).reasons == ()
    assert heuristic_score(INSTRUCTION, distinct_words(ANSWER_MAX_WORDS), **GOOD).reasons == ()
    assert heuristic_score(INSTRUCTION, ANSWER, excerpt_share=0.8, relatedness=0.3) == JudgeResult(5, ())
    assert heuristic_score(INSTRUCTION, ANSWER, excerpt_share=0.95, relatedness=0.15) == \
        JudgeResult(4, ("weakly_related",))


def test_deductions_add_up():
    result = heuristic_score("Lupus?", ANSWER, excerpt_share=0.5, relatedness=0.2)
    assert result == JudgeResult(2, ("instruction_too_short", "low_excerpt_share", "weakly_related"))


def test_score_is_clamped_at_1():
    # -1 (short) -1 (short) -1 (excerpt) -1 (repetitive) -2 (unrelated) = 5 - 6 -> clamped to 1
    result = heuristic_score("Lupus?", "no no no no no", excerpt_share=0.0, relatedness=-0.5)
    assert result.score == 1
    assert result.reasons == ("instruction_too_short", "answer_too_short", "low_excerpt_share",
                              "repetitive_answer", "unrelated")


@pytest.mark.parametrize("instruction, answer", [
    ("What effects does <fi>a medical condition</fi> have?", ANSWER),
    (INSTRUCTION, ANSWER + " </fi>"),
    ("What effects does <FI>lupus have?", ANSWER),
])
def test_leftover_tag_scores_1(instruction, answer):
    result = heuristic_score(instruction, answer, **GOOD)
    assert result == JudgeResult(1, ("leftover_tag",))


def test_leftover_tag_keeps_other_reasons_listed():
    result = heuristic_score("<fi>x</fi>", ANSWER, excerpt_share=0.95, relatedness=0.1)
    assert result == JudgeResult(1, ("leftover_tag", "instruction_too_short", "unrelated"))


def test_repeated_ngram_share():
    assert repeated_ngram_share("a b c a b c") == pytest.approx(1 - 3 / 4)  # abc bca cab abc
    assert repeated_ngram_share("a b") == 0.0
    assert repeated_ngram_share("A, b. c! a b C") == pytest.approx(0.25)  # case/punctuation ignored
    assert repeated_ngram_share(ANSWER) == 0.0


@pytest.mark.parametrize("kwargs", [
    dict(excerpt_share=1.5, relatedness=0.5), dict(excerpt_share=-0.1, relatedness=0.5),
    dict(excerpt_share=float("nan"), relatedness=0.5), dict(excerpt_share=0.9, relatedness=1.5),
    dict(excerpt_share=0.9, relatedness=float("nan")),
])
def test_out_of_range_inputs_raise(kwargs):
    with pytest.raises(ValueError):
        heuristic_score(INSTRUCTION, ANSWER, **kwargs)


def test_float_rounding_at_the_range_edges_is_tolerated():
    assert heuristic_score(INSTRUCTION, ANSWER, excerpt_share=1.0000000001,
                           relatedness=1.0000000002) == JudgeResult(5, ())
