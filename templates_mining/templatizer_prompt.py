"""Prompt builder and strict output parser for the ``llm`` genericizer backend.

The model is the released FineInstructions query genericizer,
``fineinstructions/query_templatizer`` (Llama-3.2-1B-Instruct distilled from
Llama-3.3-70B). It answers with one JSON object holding ``template`` and
``compatible_document_description``. Building the prompt and parsing the answer are pure
functions so the ``vllm``/``openai``/``transformers`` backends share them and tests pin them.

The exact user text sent for a query is :data:`TEMPLATIZER_USER_TEMPLATE` (the bare query,
as a third-party runbook for the released model renders it); the instruction text is the
separate system message :data:`TEMPLATIZER_SYSTEM_PROMPT`, which a caller can drop with
``system_prompt=None`` when the model turns out to expect the bare query alone.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from transforms.template_format import validate_template
from transforms.model_output import decode_one_json_value, string_fields

MODEL_NAME = "fineinstructions/query_templatizer"
TEMPLATE_KEY = "template"
DESCRIPTION_KEY = "compatible_document_description"

#: The JSON schema of the answer, for servers that constrain decoding to it (vLLM, OpenAI).
OUTPUT_SCHEMA = {
    "type": "object",
    "properties": {TEMPLATE_KEY: {"type": "string"}, DESCRIPTION_KEY: {"type": "string"}},
    "required": [TEMPLATE_KEY, DESCRIPTION_KEY],
    "additionalProperties": False,
}

#: The instruction text: the ``<fi>`` format, with the FineInstructions paper's examples.
TEMPLATIZER_SYSTEM_PROMPT = """\
You turn a real user query into a reusable instruction template.

Replace every span of the query that names a specific entity, value or scenario (names of \
people, places, organizations, products, titles, numbers, dates, quoted or pasted material, \
code) with a tag <fi>short description of what may go there</fi>. Keep the words that frame \
the request (question words, "how to", "write", "explain", the kind of thing asked for) \
exactly as they are. Tags are never nested, and when the same kind of tag appears more than \
once, number it (#1, #2).

Examples of templates:
Give me free apps that convert a file from <fi>format #1</fi> to <fi>format #2</fi>
what effects does <fi>a medical or psychological condition</fi> have?

Also write a compatible document description: a short paragraph saying what kind of \
document could both fill in the tags and answer the query.

Answer with exactly one JSON object and nothing else:
{"template": "...", "compatible_document_description": "..."}"""

#: The exact user message for a query (``{query}`` is replaced by the query text).
TEMPLATIZER_USER_TEMPLATE = "{query}"


def build_templatizer_messages(query: str,
                               system_prompt: Optional[str] = TEMPLATIZER_SYSTEM_PROMPT) -> List[Dict[str, str]]:
    """Chat messages for one query: the system instruction (unless ``None``), then the query."""
    user = {"role": "user", "content": TEMPLATIZER_USER_TEMPLATE.replace("{query}", query)}
    if system_prompt is None:
        return [user]
    return [{"role": "system", "content": system_prompt}, user]


def parse_templatizer_output(text: str) -> Tuple[str, str]:
    """``(template, compatible_document_description)`` from the model's answer, strictly.

    Accepts exactly one JSON object, optionally in a ```json fence and surrounded by
    whitespace; extra keys are ignored. Raises :class:`InvalidRecord` with reason
    ``unparseable_output`` (not JSON, truncated, prose before the object), ``trailing_text``
    (anything after the object, e.g. a second object), ``duplicate_key``, ``not_an_object``,
    ``missing_key``, ``wrong_type`` (a value that is not a string), ``empty_value``, or a
    :func:`~transforms.template_format.validate_template` reason.
    """
    template, description = string_fields(decode_one_json_value(text), (TEMPLATE_KEY, DESCRIPTION_KEY))
    validate_template(template, description)
    return template, description
