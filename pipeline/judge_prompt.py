"""Prompt builder and strict score parser for the ``llm`` judge (Flow Judge, METHOD.md §1.4).

The paper judges each instruction/answer pair with Flow Judge (3.8B,
``flowaicom/Flow-Judge-v0.1``) on a 5-point Likert scale and keeps scores >= 4. Flow Judge
was trained on one prompt layout: a task description, the task inputs in ``<inputs>``, the
output to judge in ``<output>``, the criteria in ``<evaluation_criteria>``, the five levels in
``<scoring_rubric>``, then instructions to reason inside ``<feedback>`` and end with
``<score>N</score>``. The tags are written in lower case, as in the model's own prompts.
Building the prompt and parsing the answer are pure functions so every serving backend
shares them and tests pin them; the rubric text is :data:`RUBRIC` and the criteria
:data:`EVALUATION_CRITERIA`, so a run can record exactly what the judge was asked.
"""
from __future__ import annotations

import re
from typing import Dict, List

from transforms.accounting import InvalidRecord

MODEL_NAME = "flowaicom/Flow-Judge-v0.1"

#: What the judge evaluates (the question the rubric answers).
EVALUATION_CRITERIA = (
    "Does the response address the user's instruction directly and completely, staying on "
    "topic, without extraneous, vague or repetitive content?"
)

#: The 5-point Likert rubric: 1 irrelevant or off-topic ... 5 addresses the query without
#: extraneous, vague or repetitive content (the paper's two anchors, verbatim in meaning).
RUBRIC = """\
- Score 1: The response is irrelevant or off-topic: it does not address the instruction at all.
- Score 2: The response touches the topic of the instruction but mostly fails to address \
what was asked, or is largely vague, padded with unrelated material, or repetitive.
- Score 3: The response partly addresses the instruction but leaves important parts \
unanswered, or contains a noticeable amount of extraneous, vague or repetitive content.
- Score 4: The response addresses the instruction well, with only minor extraneous, vague \
or repetitive content.
- Score 5: The response addresses the instruction fully and directly, without extraneous, \
vague or repetitive content."""

#: The whole user message; ``{instruction}``, ``{answer}``, ``{criteria}``, ``{rubric}`` are
#: replaced one after the other by plain substitution (braces in the texts survive).
JUDGE_PROMPT_TEMPLATE = """\
# GOAL
Your job is to evaluate a task carried out by an AI system powered by a large language model.

You will be given the inputs and the output of the task, together with evaluation criteria \
and a scoring rubric. Evaluate the output of the AI system using the evaluation criteria \
and the scoring rubric.

# INPUT
Below are the inputs of the task:
<inputs>
<user_instruction>
{instruction}
</user_instruction>
</inputs>

# OUTPUT
Below is the output of the task:
<output>
{answer}
</output>

# EVALUATION CRITERIA AND SCORING RUBRIC
Use these evaluation criteria and this rubric to evaluate the task:
<evaluation_criteria>
{criteria}
</evaluation_criteria>

<scoring_rubric>
{rubric}
</scoring_rubric>

# INSTRUCTIONS FOR THE EVALUATION
1. Read the evaluation criteria and the scoring rubric.
2. Read the inputs and the output of the task.
3. Compare the output with the description of each score in the rubric.
4. Note the strengths and the weaknesses of the output against the criteria.
5. Choose the one score from the rubric that fits the output best.
6. Write feedback that explains the score, citing parts of the output.

## FORMAT FOR THE EVALUATION
- Write the feedback inside <feedback> tags, with no text around them.
- Write the score, a single integer from 1 to 5, inside <score> tags, with no text around \
it, after the feedback.

Evaluate the task accurately and follow the evaluation criteria and the rubric strictly."""

_PLACEHOLDERS = ("{instruction}", "{answer}", "{criteria}", "{rubric}")
_OPEN_RE = re.compile(r"<\s*score\s*>", re.IGNORECASE)
_ELEMENT_RE = re.compile(r"<\s*score\s*>(.*?)<\s*/\s*score\s*>", re.IGNORECASE | re.DOTALL)
_INT_RE = re.compile(r"[+-]?\d+")


def build_judge_prompt(instruction: str, answer: str) -> str:
    """The judge's user text for one pair (:data:`JUDGE_PROMPT_TEMPLATE` filled in)."""
    values = {"{instruction}": instruction, "{answer}": answer,
              "{criteria}": EVALUATION_CRITERIA, "{rubric}": RUBRIC}
    # Split on placeholders once so a placeholder-looking string inside the pair is kept as is.
    pattern = re.compile("|".join(re.escape(p) for p in _PLACEHOLDERS))
    return pattern.sub(lambda m: values[m.group(0)], JUDGE_PROMPT_TEMPLATE)


def build_judge_messages(instruction: str, answer: str) -> List[Dict[str, str]]:
    """Chat messages for one pair: a single user message, the layout Flow Judge expects."""
    return [{"role": "user", "content": build_judge_prompt(instruction, answer)}]


def parse_judge_output(text: str) -> int:
    """The 1..5 score from the judge's answer, strictly.

    Accepts exactly one ``<score>N</score>`` element (tags case-insensitive, whitespace
    around N allowed) anywhere in the text, usually after ``<feedback>...</feedback>``.
    Raises :class:`InvalidRecord` with reason ``missing_score`` (no ``<score>`` tag, or no
    text at all), ``multiple_scores`` (more than one ``<score>`` tag), ``unparseable_score``
    (an unclosed tag, or content that is not a plain integer: ``4.5``, ``four``, ``4/5``)
    or ``score_out_of_range`` (an integer outside 1..5).
    """
    if not isinstance(text, str):
        raise InvalidRecord("missing_score", f"judge output is {type(text).__name__}, not text")
    opens = len(_OPEN_RE.findall(text))
    if opens == 0:
        raise InvalidRecord("missing_score", f"no <score> tag in {text[-80:]!r}")
    elements = _ELEMENT_RE.findall(text)
    if opens > 1 or len(elements) > 1:
        raise InvalidRecord("multiple_scores", f"{opens} <score> tags")
    if not elements:
        raise InvalidRecord("unparseable_score", "the <score> tag is never closed")
    content = elements[0].strip()
    if not _INT_RE.fullmatch(content):
        raise InvalidRecord("unparseable_score", f"score {content[:40]!r} is not an integer")
    score = int(content)
    if not 1 <= score <= 5:
        raise InvalidRecord("score_out_of_range", f"score {score} is outside 1..5")
    return score
