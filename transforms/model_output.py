"""Strict decoding of a generative model's JSON answer, shared by every ``llm`` parser.

Models wrap JSON in fences, add prose, repeat keys or stop mid-object; each of those must be
a dead letter with its own reason code rather than a silently wrong record.
"""
from __future__ import annotations

import json
import re
from typing import Any, Sequence, Tuple

from transforms.accounting import InvalidRecord

_FENCE_OPEN_RE = re.compile(r"```(?:json|JSON)?[ \t]*\n?")


def _reject_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    duplicated = sorted({k for k in keys if keys.count(k) > 1})
    if duplicated:
        raise InvalidRecord("duplicate_key", f"duplicate keys {duplicated}")
    return dict(pairs)


def decode_one_json_value(text: Any) -> Any:
    """The single JSON value in ``text`` (optionally ```json-fenced, surrounded by whitespace).

    Raises :class:`InvalidRecord`: ``unparseable_output`` (not text, not JSON, truncated, prose
    before it, unclosed fence), ``trailing_text`` (anything after it), ``duplicate_key``.
    """
    if not isinstance(text, str):
        raise InvalidRecord("unparseable_output", f"model output is {type(text).__name__}, not text")
    body = text.strip()
    fence = _FENCE_OPEN_RE.match(body)
    if fence:
        body = body[fence.end():].lstrip()
    try:
        value, end = json.JSONDecoder(object_pairs_hook=_reject_duplicate_keys).raw_decode(body)
    except json.JSONDecodeError as e:
        raise InvalidRecord("unparseable_output", f"not one JSON value: {e}") from None
    rest = body[end:].strip()
    if fence:
        if not rest.startswith("```"):
            raise InvalidRecord("unparseable_output", "the ``` fence is never closed")
        rest = rest[3:].strip()
    if rest:
        raise InvalidRecord("trailing_text", f"text after the JSON value: {rest[:80]!r}")
    return value


def string_fields(obj: Any, keys: Sequence[str]) -> Tuple[str, ...]:
    """The trimmed string values of ``keys`` in a decoded JSON object (extra keys ignored).

    Raises :class:`InvalidRecord`: ``not_an_object``, ``missing_key``, ``wrong_type``, ``empty_value``.
    """
    if not isinstance(obj, dict):
        raise InvalidRecord("not_an_object", f"JSON {type(obj).__name__}, expected an object")
    for key in keys:
        if key not in obj:
            raise InvalidRecord("missing_key", f"no {key!r} in {sorted(obj)}")
        if not isinstance(obj[key], str):
            raise InvalidRecord("wrong_type", f"{key!r} is {type(obj[key]).__name__}")
        if not obj[key].strip():
            raise InvalidRecord("empty_value", f"{key!r} is empty")
    return tuple(obj[key].strip() for key in keys)
