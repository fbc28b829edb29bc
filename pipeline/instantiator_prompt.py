"""Prompt builder and strict output parser for the ``llm`` instantiator backend.

The model is the released FineInstructions instantiator,
``fineinstructions/template_instantiator`` (Llama-3.2-3B-Instruct, distilled). Given a
template and a compatible document it fills every ``<fi>`` tag and answers, with excerpt
markers (see :mod:`pipeline.excerpts`), as one JSON object ``{"instruction", "answer"}``, or
``null`` when the template does not fit the document. Building the prompt and parsing the
answer are pure functions so every backend shares them and tests pin them.

The user message is the JSON object ``{"instruction_template": ..., "document": ...}``
(:func:`build_instantiator_user_message`), as a third-party runbook feeds the released model;
with no system message by default, as the runbook sends none.
:data:`INSTANTIATOR_SYSTEM_PROMPT` restates the paper's prompt skeleton for a model that
needs the instructions: pass it as ``system_prompt``, or send the whole prompt, with the
paper's ``<<<Instruction Template:`` and ``<<<Compatible Document:`` blocks, as built by
:func:`build_paper_style_prompt`.
"""
from __future__ import annotations

import json
from typing import Dict, List, Optional, Tuple

# Reused so both llm parsers agree on fences and on duplicate keys.
from transforms.model_output import decode_one_json_value, string_fields

MODEL_NAME = "fineinstructions/template_instantiator"
TEMPLATE_FIELD = "instruction_template"
DOCUMENT_FIELD = "document"
INSTRUCTION_KEY = "instruction"
ANSWER_KEY = "answer"

#: The paper's prompt skeleton (our wording): the ``<fi>`` format, the two numbered tasks,
#: the excerpt-marker answer and the JSON-or-null output.
INSTANTIATOR_SYSTEM_PROMPT = """\
You are given an instruction template and a compatible document. The template is a real \
user instruction in which specific details were replaced by template variables written as \
<fi>short description of what goes there</fi>; the same kind of variable used more than \
once is numbered (#1, #2).

1. Task: instantiate the template by filling in the <fi></fi> template variables to create \
a realistic instruction that could be asked about the document. Replace every variable, \
mostly with words taken from the document, and keep the rest of the template as it is.

2. Answerability and Template Incompatibility: the instruction must be answerable from the \
document alone. If the template cannot be filled in so that the document answers it, the \
template is incompatible with the document: output null.

3. Answer: answer the instruction mostly with verbatim excerpts of the document; a short \
lead-in sentence is allowed. Write an excerpt as <excerpt>first words<...>last words</excerpt> \
for the document span that starts with the first words and ends with the last words, or as \
<excerpt>exact text</excerpt> for a short span.

Output exactly one JSON object and nothing else:
{"instruction": "...", "answer": "..."}
or, when the template is incompatible with the document:
null"""


def build_instantiator_user_message(template: str, document: str) -> str:
    """The runbook's user text: ``{"instruction_template": template, "document": document}``."""
    return json.dumps({TEMPLATE_FIELD: template, DOCUMENT_FIELD: document}, ensure_ascii=False)


def build_instantiator_messages(template: str, document: str,
                                system_prompt: Optional[str] = None) -> List[Dict[str, str]]:
    """Chat messages for one (template, document): an optional system message, then the JSON user text."""
    user = {"role": "user", "content": build_instantiator_user_message(template, document)}
    if system_prompt is None:
        return [user]
    return [{"role": "system", "content": system_prompt}, user]


def build_paper_style_prompt(template: str, document: str) -> str:
    """The whole paper-style prompt as one text: instructions, then the template and document blocks."""
    # An f-string, not str.format on a constant: templates and documents hold braces.
    return (f"{INSTANTIATOR_SYSTEM_PROMPT}\n\n"
            f"<<<Instruction Template:\n{template}\n>>>\n\n"
            f"<<<Compatible Document:\n{document}\n>>>")


def parse_instantiator_output(text: str) -> Optional[Tuple[str, str]]:
    """``(instruction, answer)`` from the model's output, or ``None`` for ``null`` (template does not fit).

    Accepts exactly one JSON object (or ``null``), optionally in a ```json fence and
    surrounded by whitespace; values are trimmed, extra keys ignored, the answer's excerpt
    markers left for :func:`pipeline.excerpts.expand_excerpts`. Raises
    :class:`InvalidRecord` with reason ``unparseable_output`` (not JSON, truncated, prose
    before it, unclosed fence), ``trailing_text``, ``duplicate_key``, ``not_an_object``,
    ``missing_key``, ``wrong_type`` (a value that is not a string) or ``empty_value``.
    """
    obj = decode_one_json_value(text)
    if obj is None:
        return None
    return string_fields(obj, (INSTRUCTION_KEY, ANSWER_KEY))
