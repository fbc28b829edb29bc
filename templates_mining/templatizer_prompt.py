"""Prompt builder and strict output parser for the ``llm`` genericizer backend.

The released model ``fineinstructions/query_templatizer`` answers a real query with one JSON
object holding ``template`` and ``compatible_document_description`` (FineInstructions §1.1).
Generation is not trusted: anything but exactly one well-formed object with two non-empty
string values becomes an :class:`InvalidRecord` (a dead letter with a countable reason).
"""
from __future__ import annotations

import json
import re
from typing import Dict, List, Tuple

from templates_mining.template_format import validate_template
from transforms.accounting import InvalidRecord

KEYS = ("template", "compatible_document_description")

TEMPLATIZER_SYSTEM_PROMPT = """\
You turn a real user query into a reusable instruction template.

Replace every span of the query that names a specific entity, number, date, title, piece of \
pasted text or code, or scenario with a template variable written as \
<fi>short description of what goes there</fi>. Keep the rest of the query's wording. Tags are \
flat (never nested), every <fi> is closed by </fi>, and every tag holds a non-empty \
description. When the same kind of variable appears more than once, number it.

Examples of templates:
- Give me free apps that convert a file from <fi>format #1</fi> to <fi>format #2</fi>
- what effects does <fi>a medical or psychological condition</fi> have?
- what is <fi>a person or organization</fi>'s brother

Also write a compatible document description: one to three sentences saying what kind of \
document could both fill the template variables and answer the query.

Answer with exactly one JSON object and nothing else:
{"template": "...", "compatible_document_description": "..."}"""


def build_templatizer_messages(query: str) -> List[Dict[str, str]]:
    """Chat messages asking the templatizer to genericize ``query``."""
    return [
        {"role": "system", "content": TEMPLATIZER_SYSTEM_PROMPT},
        {"role": "user", "content": query},
    ]


_FENCE_RE = re.compile(r"\A```(?:json|JSON)?[ \t]*\n?(.*?)\n?```\Z", re.DOTALL)


def parse_templatizer_output(text: str) -> Tuple[str, str]:
    """Model output -> (template, compatible document description), or raises InvalidRecord.

    Reasons: ``unparseable_output``, ``not_an_object``, ``trailing_text``, ``missing_key``,
    ``wrong_type``, ``empty_value``, then those of ``validate_template``.
    """
    if not isinstance(text, str):
        raise InvalidRecord("unparseable_output", f"output is {type(text).__name__}, not text")
    body = text.strip()
    fence = _FENCE_RE.match(body)
    if fence:
        body = fence.group(1).strip()
    try:
        obj, end = json.JSONDecoder().raw_decode(body)
    except (json.JSONDecodeError, RecursionError) as e:
        raise InvalidRecord("unparseable_output", f"not JSON: {e}") from None
    if body[end:].strip():
        raise InvalidRecord("trailing_text", f"text after the JSON value: {body[end:end + 40]!r}")
    if not isinstance(obj, dict):
        raise InvalidRecord("not_an_object", f"JSON value is a {type(obj).__name__}")
    for key in KEYS:
        if key not in obj:
            raise InvalidRecord("missing_key", f"no {key!r}")
    for key in KEYS:
        if not isinstance(obj[key], str):
            raise InvalidRecord("wrong_type", f"{key!r} is a {type(obj[key]).__name__}")
    template, description = obj["template"].strip(), obj["compatible_document_description"].strip()
    if not template or not description:
        raise InvalidRecord("empty_value", "template or description is blank")
    validate_template(template, description)
    return template, description
