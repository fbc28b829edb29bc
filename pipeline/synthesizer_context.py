"""The synthesizer's context budget, counted with its own tokenizer (not words x 1.5).

A prompt plus the tokens the model may write must fit the context: ``tokens(prompt) <=
context - max_new_tokens``. A text whose own prompt does not fit
``part_budget`` (room for a whole chain of texts and their pairs) is split at sentence
boundaries into consecutive parts that do (the parts concatenate back to the text exactly);
earlier examples of a multi-round prompt that do not fit are dropped oldest first, so the
nearest context stays.
"""
from __future__ import annotations

import re
from typing import Callable, List, Sequence, Tuple

from pipeline.synthesizer_format import Example, build_prompt, context_block

TokenCount = Callable[[str], int]

_SENTENCE_END = re.compile(r"(?<=[.!?\u2026])[\"'\u201d\u2019)\]]*\s+|\n\s*")
_WORD_END = re.compile(r"\s+")


def prompt_budget(context: int, max_new_tokens: int) -> int:
    """Most prompt tokens: the context less what the model may generate."""
    budget = context - max_new_tokens
    if budget < 1:
        raise ValueError(f"--synthesizer_context {context} leaves no room for a prompt after "
                         f"--synthesizer_max_tokens {max_new_tokens}")
    return budget


def part_budget(context: int, max_new_tokens: int, rounds: int) -> int:
    """Most prompt tokens of one text on its own, so that a whole chain of ``rounds`` such texts,
    each followed by up to ``max_new_tokens`` of pairs, fits the context: a long document split
    to fill the context alone would leave no room for the examples of a multi-round prompt."""
    return max(1, (context - rounds * max_new_tokens) // rounds)


def _pieces(text: str, boundary: re.Pattern) -> List[str]:
    """``text`` cut after each ``boundary`` match (the whitespace stays with the piece before)."""
    cuts = [m.end() for m in boundary.finditer(text) if 0 < m.end() < len(text)]
    return [text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])]


def _fine_pieces(piece: str, fits: Callable[[str], bool]) -> List[str]:
    """A sentence too long for one prompt, cut at word boundaries (a word too long: in halves)."""
    if fits(piece):
        return [piece]
    words = _pieces(piece, _WORD_END)
    if len(words) > 1:
        return [p for w in words for p in _fine_pieces(w, fits)]
    mid = len(piece) // 2
    return _fine_pieces(piece[:mid], fits) + _fine_pieces(piece[mid:], fits)


def split_text(text: str, count: TokenCount, budget: int) -> List[str]:
    """Consecutive parts of ``text`` whose one-round prompts each fit ``budget`` tokens, cut at
    sentence ends (within a sentence longer than a prompt: at spaces). ``"".join(parts) == text``.

    Sentences are packed greedily by their own token counts, then each part is counted whole
    (tokenization is not quite additive) and gives up its last sentence until it fits.
    """
    overhead = count(context_block(""))
    if overhead >= budget:
        raise ValueError(f"a prompt budget of {budget} tokens cannot hold even an empty text")

    def fits(part: str) -> bool:
        return count(context_block(part)) <= budget

    if fits(text):
        return [text]
    pieces = [p for s in _pieces(text, _SENTENCE_END) for p in _fine_pieces(s, fits)]
    sizes = [count(p) for p in pieces]
    parts: List[str] = []
    i = 0
    while i < len(pieces):
        j, used = i, overhead
        while j < len(pieces) and (j == i or used + sizes[j] <= budget):
            used += sizes[j]
            j += 1
        while j - i > 1 and not fits("".join(pieces[i:j])):
            j -= 1
        parts.append("".join(pieces[i:j]))
        i = j
    return parts


def fit_examples(examples: Sequence[Example], text: str, count: TokenCount, budget: int
                 ) -> Tuple[List[Example], int]:
    """``(examples kept, examples dropped)``: the newest earlier examples that fit with ``text``'s
    own block in ``budget`` tokens, dropping the oldest first (``text`` alone always fits:
    it was split to)."""
    kept = list(examples)
    while kept and count(build_prompt(kept, text)) > budget:
        kept.pop(0)
    return kept, len(examples) - len(kept)
