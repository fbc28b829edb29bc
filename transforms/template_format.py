"""The ``<fi>`` template format, as pure functions every genericizer backend shares.

A template is a query whose specific spans became ``<fi>description</fi>`` tags (the
FineInstructions format, e.g. ``what effects does <fi>a medical or psychological
condition</fi> have?``). Tags are flat: no nesting, every ``<fi>`` closed by ``</fi>``,
and every tag holds a non-empty description of what may go there.
"""
from __future__ import annotations

import re

from transforms.accounting import InvalidRecord

OPEN = "<fi>"
CLOSE = "</fi>"

#: One well-formed tag; group 1 is its description.
TAG_RE = re.compile(r"<fi>(.*?)</fi>", re.DOTALL)

_MARKER_RE = re.compile(r"</?fi>")
_SPACE_RE = re.compile(r"\s+")
_NUMBER_SIGN_RE = re.compile(r"#\s+(?=\d)")
_TRAILING_PUNCT_RE = re.compile(r"[\s?!.,;:。？！]+$")
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


def count_tags(template: str) -> int:
    """The number of well-formed ``<fi>...</fi>`` tags (no validation)."""
    return len(TAG_RE.findall(template))


def validate_template(template: str, description: str) -> int:
    """Returns the number of tags, or raises :class:`InvalidRecord` with the reason.

    Reasons: ``empty_template``, ``empty_description``, ``nested_tags`` (``<fi>`` inside an
    open tag), ``unbalanced_tags`` (a stray ``</fi>`` or an unclosed ``<fi>``), ``no_tags``,
    ``empty_tag`` (a tag whose description is blank).
    """
    if not isinstance(template, str) or not template.strip():
        raise InvalidRecord("empty_template", "template is empty")
    if not isinstance(description, str) or not description.strip():
        raise InvalidRecord("empty_description", "compatible document description is empty")
    depth = 0
    for marker in _MARKER_RE.finditer(template):
        if marker.group(0) == OPEN:
            if depth:
                raise InvalidRecord("nested_tags", f"<fi> inside an open tag at {marker.start()}")
            depth = 1
        else:
            if not depth:
                raise InvalidRecord("unbalanced_tags", f"</fi> without <fi> at {marker.start()}")
            depth = 0
    if depth:
        raise InvalidRecord("unbalanced_tags", "a <fi> is never closed")
    contents = TAG_RE.findall(template)
    if not contents:
        raise InvalidRecord("no_tags", "template holds no <fi> tag")
    if any(not c.strip() for c in contents):
        raise InvalidRecord("empty_tag", "a <fi></fi> tag has an empty description")
    return len(contents)


def _normalize_description(description: str) -> str:
    d = _SPACE_RE.sub(" ", description.translate(_QUOTES).casefold()).strip()
    d = _NUMBER_SIGN_RE.sub("#", d)
    return _TRAILING_PUNCT_RE.sub("", d)


def normalize_template(template: str) -> str:
    """Canonical form for exact template dedupe.

    Casefolds, unifies curly quotes, collapses whitespace (inside and around tags), drops
    trailing punctuation, so ``What is <fi>Name of a city</fi>?`` and
    ``what is <fi> name of a city </fi>`` compare equal.
    """
    t = template.translate(_QUOTES)
    t = TAG_RE.sub(lambda m: OPEN + _normalize_description(m.group(1)) + CLOSE, t)
    t = _SPACE_RE.sub(" ", t.casefold()).strip()
    return _TRAILING_PUNCT_RE.sub("", t)


def render_with_descriptions(template: str) -> str:
    """The template as plain text, each tag replaced by its (whitespace-trimmed) description."""
    return TAG_RE.sub(lambda m: _SPACE_RE.sub(" ", m.group(1)).strip(), template)
