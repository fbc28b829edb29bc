"""The instantiate and judge steps on a model backend: the prompt for a PairDraft, and the
parse of the model's text back into the draft (see :class:`transforms.generation.GenerativeStep`).
"""
from __future__ import annotations

from typing import Callable

from pipeline.instantiator_prompt import (INSTANTIATOR_SYSTEM_PROMPT, build_instantiator_messages,
                                          build_paper_style_prompt, parse_instantiator_output)
from pipeline.excerpts import escape_markup
from pipeline.judge_prompt import build_judge_messages, parse_judge_output
from pipeline.records import PairDraft
from transforms.accounting import Rejected
from transforms.generation import Generated
from transforms.generation_config import Prompt

INSTANTIATOR_SCHEMA = {
    "anyOf": [
        {"type": "null"},
        {"type": "object",
         "properties": {"instruction": {"type": "string"}, "answer": {"type": "string"}},
         "required": ["instruction", "answer"], "additionalProperties": False},
    ]
}
"""The instantiator's answer: ``{"instruction", "answer"}`` or ``null`` (for constrained decoding)."""


def instantiator_prompt(style: str) -> Callable[[PairDraft], Prompt]:
    """The prompt builder for ``--instantiator_prompt``: json | json_with_instructions | paper."""
    if style == "json":
        return lambda d: build_instantiator_messages(d.match.template, escape_markup(d.document))
    if style == "json_with_instructions":
        return lambda d: build_instantiator_messages(d.match.template, escape_markup(d.document),
                                                     INSTANTIATOR_SYSTEM_PROMPT)
    if style == "paper":
        return lambda d: [{"role": "user", "content": build_paper_style_prompt(d.match.template,
                                                                                escape_markup(d.document))}]
    raise ValueError(f"unknown instantiator prompt style {style!r}")


def parse_instantiation(generated: Generated) -> PairDraft:
    """The draft with the model's instruction and excerpt-marked answer; ``null`` is filtered."""
    result = parse_instantiator_output(generated.text)
    if result is None:
        raise Rejected("template_incompatible", "the model answered null: the document cannot fill the template")
    instruction, answer = result
    return generated.record._replace(instruction=instruction, answer=answer)


def judge_prompt(draft: PairDraft) -> Prompt:
    return build_judge_messages(draft.instruction, draft.answer)


def judge_parser(min_score: int) -> Callable[[Generated], PairDraft]:
    """Parse the judge's score into the draft; below ``min_score`` is filtered."""
    if not 1 <= min_score <= 5:
        raise ValueError(f"--min_score must be 1..5, got {min_score}")

    def parse(generated: Generated) -> PairDraft:
        score = parse_judge_output(generated.text)
        if score < min_score:
            raise Rejected("low_judge_score", f"judge score {score} < {min_score}")
        return generated.record._replace(judge_score=score, judge_reasons=["model"])

    return parse
