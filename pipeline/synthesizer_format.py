"""The instruction synthesizer's text format (Instruction Pre-Training, METHOD.md §2), as released.

The markers are plain text, not special tokens. One round's prompt is ``<s> <CON> {text} </CON>\\n\\n``
(the text is not stripped); the model answers ``<QUE> {question} <ANS> {answer} </END>`` pairs
joined by ``\\n\\n``, then its end of sequence. In a multi-round prompt each earlier text of the
chain comes first as ``<s> <CON> {t} </CON>\\n\\n`` + its pairs joined by ``\\n\\n`` + ``</s>``.
The leading literal ``<s>`` is the prompt's only BOS: backends send it with no BOS of their own
(``GenerationConfig.raw_prompt``).
"""
from __future__ import annotations

from collections import Counter
from typing import List, NamedTuple, Sequence, Tuple

SYNTHESIZER_MODEL = "instruction-pretrain/instruction-synthesizer"
"""The released context-based instruction synthesizer (Mistral-7B fine-tune, 4k context)."""

BOS, EOS = "<s>", "</s>"
CON, CON_END, QUE, ANS, END = "<CON>", "</CON>", "<QUE>", "<ANS>", "</END>"
MARKERS = (BOS, EOS, CON, CON_END, QUE, ANS, END)

DROP_REASONS = ("truncated_pair", "empty_fragment", "missing_answer_marker", "extra_answer_marker",
                "missing_question_marker", "empty_question", "empty_answer", "marker_in_pair",
                "duplicate_question")
"""Why a fragment of the model's output is not a pair (counted per reason by the parse stage)."""


class QAPair(NamedTuple):
    question: str
    answer: str


class Example(NamedTuple):
    """An earlier text of the chain and the pairs the model wrote for it."""
    text: str
    pairs: Tuple[QAPair, ...]


def context_block(text: str) -> str:
    """The prompt for one text on its own (round 1), exactly as the synthesizer was trained."""
    return f"{BOS} {CON} {text} {CON_END}\n\n"


def pair_text(pair: QAPair) -> str:
    return f"{QUE} {pair.question} {ANS} {pair.answer} {END}"


def example_block(example: Example) -> str:
    """An earlier text with its pairs, closed by ``</s>``, as multi-round prompts hold them."""
    return context_block(example.text) + "\n\n".join(pair_text(p) for p in example.pairs) + EOS


def build_prompt(examples: Sequence[Example], text: str) -> str:
    """The earlier examples (oldest first), directly followed by the text's own block."""
    return "".join(example_block(e) for e in examples) + context_block(text)


def parse_pairs(output: str) -> Tuple[List[QAPair], Counter]:
    """The pairs in the model's output, and a count of the fragments dropped, by reason.

    The output is split on ``</END>``; a last fragment not closed by it was cut by the token
    limit (``truncated_pair``). Each closed fragment must be ``<QUE> question <ANS> answer``
    with exactly one ``<ANS>``, neither part empty and no other marker inside (a pair holding
    ``<CON>`` or a second ``<QUE>`` would corrupt the corpus and later prompts). Questions are
    kept once per text, compared case-insensitively.
    """
    drops: Counter = Counter()
    text = output.strip()
    if text.endswith(EOS):  # a server that decodes the end of sequence as text
        text = text[:-len(EOS)].rstrip()
    fragments = text.split(END)
    if fragments[-1].strip():
        drops["truncated_pair"] += 1
    pairs: List[QAPair] = []
    seen = set()
    for fragment in fragments[:-1]:
        fragment = fragment.strip()
        if not fragment:
            drops["empty_fragment"] += 1
            continue
        parts = fragment.split(ANS)
        if len(parts) != 2:
            drops["missing_answer_marker" if len(parts) == 1 else "extra_answer_marker"] += 1
            continue
        question, answer = parts[0].strip(), parts[1].strip()
        if not question.startswith(QUE):
            drops["missing_question_marker"] += 1
            continue
        question = question[len(QUE):].strip()
        if not question:
            drops["empty_question"] += 1
            continue
        if not answer:
            drops["empty_answer"] += 1
            continue
        if any(m in question or m in answer for m in MARKERS):
            drops["marker_in_pair"] += 1
            continue
        key = " ".join(question.lower().split())
        if key in seen:
            drops["duplicate_question"] += 1
            continue
        seen.add(key)
        pairs.append(QAPair(question, answer))
    return pairs, drops
