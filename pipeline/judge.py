"""The ``heuristic`` judge: a deterministic, CPU-only stand-in for Flow Judge (METHOD.md §1.4).

The paper scores every instruction/answer pair with Flow Judge (3.8B) on a 5-point Likert
scale and keeps scores >= 4. Runs without a GPU (tests, local runs, cheap first passes)
still need a score with the same meaning, so this module approximates the rubric with
checks that need no model: each check that fails deducts points from 5 and names a reason,
so the filtered counts say *why* pairs were dropped. The scale mirrors the Likert rubric
(:data:`pipeline.judge_prompt.RUBRIC` is the model's version of it):

* 1 - irrelevant or off-topic, or not a finished pair (leftover ``<fi>`` tags);
* 2-3 - related but with several problems (weakly related, vague, padded, repetitive);
* 4 - addresses the query with one minor problem;
* 5 - addresses the query without extraneous, vague or repetitive content.

Mapping of checks to the rubric: ``unrelated``/``weakly_related`` = off-topic;
``*_too_short`` = vague; ``*_too_long`` and ``low_excerpt_share`` = extraneous (the answer
should be >= 80% document excerpts, METHOD.md §1.3); ``repetitive_answer`` = repetitive.

Inputs the caller computes:

* ``excerpt_share`` - the share of the answer's characters that came from expanded
  ``<excerpt>`` spans (0..1);
* ``relatedness`` - the cosine similarity between the embedding of the instruction and the
  embedding of the answer (-1..1), from the same normalised sentence encoder the pipeline
  uses elsewhere. The judge does not embed, so it stays pure and cheap; the thresholds
  below were chosen for a MiniLM/BGE-style encoder and are settings, not truths.
"""
from __future__ import annotations

import math
import re
from typing import NamedTuple, Tuple

#: Scores at or above this are kept (METHOD.md §1.4: "keep score >= 4"), for both judges.
KEEP_MIN_SCORE = 4
MAX_SCORE = 5
MIN_SCORE = 1

#: Word-count bounds (inclusive). Outside them: -1 each.
INSTRUCTION_MIN_WORDS = 3
INSTRUCTION_MAX_WORDS = 120
ANSWER_MIN_WORDS = 8
ANSWER_MAX_WORDS = 600

#: Repetition: share of the answer's word 3-grams that repeat an earlier 3-gram. Above: -1.
REPETITION_NGRAM = 3
REPETITION_MAX_SHARE = 0.3

#: Relatedness (instruction/answer cosine). Below UNRELATED: -2; else below WEAK: -1.
RELATEDNESS_UNRELATED = 0.15
RELATEDNESS_WEAK = 0.3

#: Excerpted share of the answer; the paper's answers are >= 80% excerpts. Below: -1.
EXCERPT_SHARE_MIN = 0.8

#: Points each reason deducts. ``leftover_tag`` is not a deduction: it forces MIN_SCORE.
DEDUCTIONS = {
    "instruction_too_short": 1,
    "instruction_too_long": 1,
    "answer_too_short": 2,  # a word or two is not an answer (Likert: vague)
    "answer_too_long": 1,
    "low_excerpt_share": 1,
    "repetitive_answer": 1,
    "unrelated": 2,
    "weakly_related": 1,
}
LEFTOVER_TAG = "leftover_tag"

_TAG_RE = re.compile(r"<\s*/?\s*fi\s*>", re.IGNORECASE)
_WORD_RE = re.compile(r"\w+")
_TOLERANCE = 1e-6


class JudgeResult(NamedTuple):
    """A 1..5 score and the reasons (in a fixed order) that lowered it from 5."""
    score: int
    reasons: Tuple[str, ...]


def words(text: str) -> list:
    """Lower-cased word tokens (``\\w+`` runs): punctuation and spacing do not count."""
    return _WORD_RE.findall(text.lower())


def repeated_ngram_share(text: str, n: int = REPETITION_NGRAM) -> float:
    """Share of the word n-grams of ``text`` that repeat an earlier one; 0.0 below n words."""
    tokens = words(text)
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def _check_unit_range(name: str, value: float, low: float, high: float) -> float:
    value = float(value)
    if math.isnan(value) or not (low - _TOLERANCE <= value <= high + _TOLERANCE):
        raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")
    return value


def heuristic_score(instruction: str, answer: str, excerpt_share: float,
                    relatedness: float) -> JudgeResult:
    """Score one pair: start at 5, deduct :data:`DEDUCTIONS` per failed check, clamp to 1..5.

    A ``<fi>``/``</fi>`` tag left in the instruction or the answer means the template was not
    instantiated: score 1 whatever else holds (the other reasons are still listed).
    ``relatedness`` is the instruction/answer embedding cosine computed by the caller.
    Raises ``ValueError`` for an ``excerpt_share`` outside 0..1 or a ``relatedness`` outside
    -1..1 (NaN included): those are caller bugs, not properties of the pair.
    """
    excerpt_share = _check_unit_range("excerpt_share", excerpt_share, 0.0, 1.0)
    relatedness = _check_unit_range("relatedness", relatedness, -1.0, 1.0)
    reasons = []
    leftover = bool(_TAG_RE.search(instruction) or _TAG_RE.search(answer))
    if leftover:
        reasons.append(LEFTOVER_TAG)
    # Tags are markup, not words: count and compare what a reader would see.
    instruction, answer = _TAG_RE.sub(" ", instruction), _TAG_RE.sub(" ", answer)
    n_instruction, n_answer = len(words(instruction)), len(words(answer))
    if n_instruction < INSTRUCTION_MIN_WORDS:
        reasons.append("instruction_too_short")
    elif n_instruction > INSTRUCTION_MAX_WORDS:
        reasons.append("instruction_too_long")
    if n_answer < ANSWER_MIN_WORDS:
        reasons.append("answer_too_short")
    elif n_answer > ANSWER_MAX_WORDS:
        reasons.append("answer_too_long")
    if excerpt_share < EXCERPT_SHARE_MIN:
        reasons.append("low_excerpt_share")
    if repeated_ngram_share(answer) > REPETITION_MAX_SHARE:
        reasons.append("repetitive_answer")
    if relatedness < RELATEDNESS_UNRELATED:
        reasons.append("unrelated")
    elif relatedness < RELATEDNESS_WEAK:
        reasons.append("weakly_related")
    if leftover:
        return JudgeResult(MIN_SCORE, tuple(reasons))
    score = MAX_SCORE - sum(DEDUCTIONS[r] for r in reasons)
    return JudgeResult(max(MIN_SCORE, min(MAX_SCORE, score)), tuple(reasons))
