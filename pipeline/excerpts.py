"""Expansion of the instantiator's compact excerpt markers into verbatim document text.

The FineInstructions instantiator writes answers mostly as excerpts of the document, and
writes them compactly to save decoding: ``<excerpt>It is known that<...>the principle of
relativity.</excerpt>`` stands for the document span that starts with ``It is known that``
and ends with ``the principle of relativity.``; ``<excerpt>text</excerpt>`` (no ``<...>``)
stands for that exact text. The paper does not say how ambiguity or a missing boundary is
handled, so this module pins it (all pure functions, so tests fix the behaviour):

* a span is the *shortest* one that begins at an occurrence of the start string and ends
  with the end string, no longer than ``max_span_chars`` (a far-away end string is more
  likely a different passage than a long excerpt);
* exact matching first; only when the marker has no exact resolution, a whitespace- and
  case-tolerant match (runs of whitespace collapsed, casefolded), mapped back to offsets of
  the original document so the inserted text is always verbatim;
* among several resolutions, the one nearest ``focus`` (the centre of the chunk that
  retrieved the document for this template), else the first;
* an unresolvable marker filters the pair (``excerpt_not_found``): an invented excerpt is
  a hallucinated answer; a malformed one filters it too (``malformed_excerpt``), and so does a
  ``<...>`` or ``<fi>`` left outside any excerpt (``leftover_marker``);
* marker-like text of the document itself reaches the instantiator escaped
  (:func:`escape_markup`) and is matched unescaped, so any document round-trips.

The answer's excerpt share (paper: excerpts are >= 80% of the answer, a short lead-in being
allowed) is measured on the expanded text; :func:`check_excerpt_share` enforces it.
"""
from __future__ import annotations

import re
from bisect import bisect_left
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

from transforms.accounting import Rejected

OPEN_TAG = "<excerpt>"
CLOSE_TAG = "</excerpt>"
ELLIPSIS = "<...>"
#: Longest document span (chars) a ``start<...>end`` marker may stand for.
MAX_SPAN_CHARS = 5000
#: Paper: excerpted text is at least 80% of the answer.
MIN_EXCERPT_RATIO = 0.8

_TAG_RE = re.compile(r"<(/?)excerpt>")

#: Written after the ``<`` of a marker that is document text, not markup. The word joiner is
#: removed from documents at read (pipeline/documents.py), so it never occurs in them otherwise.
MARKUP_ESCAPE = "\u2060"
_MARKUP_RE = re.compile(r"<(/?excerpt>|\.\.\.>|/?fi>)")
_LEFTOVER_RE = re.compile(r"<(/?excerpt|\.\.\.|/?fi)>")


def escape_markup(text: str) -> str:
    """Document text with each ``<excerpt>``, ``</excerpt>``, ``<...>``, ``<fi>``, ``</fi>`` made
    inert (``<`` + word joiner): what the instantiator (model or extractive) is given, so text of
    the document can never be read as a marker; :func:`expand_excerpts` undoes it."""
    return _MARKUP_RE.sub("<" + MARKUP_ESCAPE + r"\1", text)


def unescape_markup(text: str) -> str:
    return text.replace("<" + MARKUP_ESCAPE, "<")

Span = Tuple[int, int]


class ExpandedAnswer(NamedTuple):
    """An answer with every marker replaced by ``document[start:end]`` for its span in ``spans``."""

    text: str
    excerpt_chars: int
    total_chars: int
    spans: Tuple[Span, ...]

    @property
    def excerpt_share(self) -> float:
        """Fraction of the expanded answer's characters that are verbatim excerpts (0 when empty)."""
        return self.excerpt_chars / self.total_chars if self.total_chars else 0.0


def _snippet(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _split_markers(answer: str) -> List[Tuple[int, int, str]]:
    """``(marker_start, marker_end, inner_text)`` for each marker, in order; malformed -> Rejected."""
    markers: List[Tuple[int, int, str]] = []
    open_at: Optional[int] = None
    for tag in _TAG_RE.finditer(answer):
        closing = tag.group(1) == "/"
        if not closing:
            if open_at is not None:
                raise Rejected("malformed_excerpt", f"nested <excerpt> at char {tag.start()}")
            open_at = tag.start()
            continue
        if open_at is None:
            raise Rejected("malformed_excerpt", f"stray </excerpt> at char {tag.start()}")
        markers.append((open_at, tag.end(), answer[open_at + len(OPEN_TAG):tag.start()]))
        open_at = None
    if open_at is not None:
        raise Rejected("malformed_excerpt", f"unclosed <excerpt> at char {open_at}")
    return markers


def _marker_parts(inner: str) -> Tuple[str, Optional[str]]:
    """``(start, end)`` of a ``start<...>end`` marker, or ``(text, None)`` for a verbatim one."""
    parts = inner.split(ELLIPSIS)
    if len(parts) > 2:
        raise Rejected("malformed_excerpt", f"more than one {ELLIPSIS} in {_snippet(inner)}")
    parts = [p.strip() for p in parts]
    if not all(parts):
        raise Rejected("malformed_excerpt", f"empty excerpt or boundary in {_snippet(inner)}")
    return (parts[0], parts[1]) if len(parts) == 2 else (parts[0], None)


def _occurrences(haystack: str, needle: str) -> List[int]:
    """Every (possibly overlapping) start index of ``needle`` in ``haystack``, ascending."""
    found, i = [], haystack.find(needle)
    while i >= 0:
        found.append(i)
        i = haystack.find(needle, i + 1)
    return found


class _Folded:
    """The document with whitespace runs collapsed to one space and casefolded.

    ``offsets[k]`` is the original index of folded char ``k``; a match ``[p, q)`` in folded
    text is the original span ``[offsets[p], offsets[q - 1] + 1)``.
    """

    def __init__(self, document: str):
        chars: List[str] = []
        offsets: List[int] = []
        in_space = False
        for i, c in enumerate(document):
            if c.isspace():
                if not in_space:
                    chars.append(" ")
                    offsets.append(i)
                in_space = True
                continue
            in_space = False
            folded = c.casefold()
            chars.append(folded)
            offsets.extend([i] * len(folded))
        self.text = "".join(chars)
        self.offsets = offsets

    @staticmethod
    def fold(pattern: str) -> str:
        return " ".join(pattern.split()).casefold()


def _candidates(haystack: str, start: str, end: Optional[str], max_span: int,
                to_start: Callable[[int], int], to_end: Callable[[int], int]) -> Tuple[List[Span], str]:
    """Original-document spans resolving a marker in ``haystack``, and why there are none.

    ``to_start(p)``/``to_end(q)`` map haystack offsets of a match ``[p, q)`` to the original.
    """
    starts = _occurrences(haystack, start)
    if not starts:
        return [], f"start {_snippet(start)} not in document"
    if end is None:
        return [(to_start(p), to_end(p + len(start))) for p in starts], ""
    ends = _occurrences(haystack, end)
    spans: List[Span] = []
    for p in starts:
        # Shortest span beginning at p that contains the start string and ends with the end one.
        i = bisect_left(ends, max(p, p + len(start) - len(end)))
        if i == len(ends):
            continue
        span = (to_start(p), to_end(ends[i] + len(end)))
        if span[1] - span[0] <= max_span:
            spans.append(span)
    if not spans:
        return [], f"end {_snippet(end)} not within {max_span} chars after start {_snippet(start)}"
    return spans, ""


def _nearest(spans: Sequence[Span], focus: Optional[int]) -> Span:
    """The span containing or closest to ``focus`` (ties: closest centre, then first); else the first."""
    if focus is None:
        return min(spans)

    def key(span: Span):
        s, e = span
        gap = s - focus if focus < s else (focus - e if focus > e else 0)
        return gap, abs((s + e) / 2 - focus), s

    return min(spans, key=key)


def _resolve(start: str, end: Optional[str], document: str, focus: Optional[int], max_span: int,
             folded: List[_Folded]) -> Span:
    """The document span of one marker: exact first, then whitespace/case tolerant."""
    spans, _ = _candidates(document, start, end, max_span, lambda p: p, lambda q: q)
    if not spans:
        if not folded:
            folded.append(_Folded(document))
        f = folded[0]
        spans, why = _candidates(f.text, _Folded.fold(start), None if end is None else _Folded.fold(end),
                                 max_span, lambda p: f.offsets[p], lambda q: f.offsets[q - 1] + 1)
        if not spans:
            raise Rejected("excerpt_not_found", why)
    return _nearest(spans, focus)


def expand_excerpts(answer: str, document: str, focus: Optional[int] = None, *,
                    max_span_chars: int = MAX_SPAN_CHARS) -> ExpandedAnswer:
    """Replace each excerpt marker in ``answer`` by its verbatim span of ``document``.

    ``focus`` is a char offset into ``document`` (the retrieving chunk's centre) used to
    choose among several matching spans. The result's text is stripped of surrounding
    whitespace; text outside markers (a lead-in) is kept and counts as non-excerpt.
    Raises :class:`Rejected` with ``malformed_excerpt`` or ``excerpt_not_found``.
    """
    pieces: List[str] = []
    spans: List[Span] = []
    folded: List[_Folded] = []  # built at most once, only when a marker needs tolerant matching
    cursor = 0
    for m_start, m_end, inner in _split_markers(answer):
        start, end = _marker_parts(inner)
        span = _resolve(unescape_markup(start), None if end is None else unescape_markup(end), document, focus,
                        max_span_chars, folded)
        pieces.append(_lead_in(answer[cursor:m_start]))
        pieces.append(document[span[0]:span[1]])
        spans.append(span)
        cursor = m_end
    pieces.append(_lead_in(answer[cursor:]))
    # Spans never begin or end with whitespace (boundaries are stripped), so stripping the
    # answer cannot shorten an inserted excerpt.
    text = "".join(pieces).strip()
    excerpt_chars = sum(e - s for s, e in spans)
    return ExpandedAnswer(text, excerpt_chars, len(text), tuple(spans))


def _lead_in(text: str) -> str:
    """Answer text outside the markers, unescaped; a marker left in it (``<...>`` or ``<fi>`` outside
    an excerpt) was not resolved: ``leftover_marker``."""
    leftover = _LEFTOVER_RE.search(text)
    if leftover:
        raise Rejected("leftover_marker", f"{leftover.group(0)} outside an excerpt in {_snippet(text)}")
    return unescape_markup(text)


def check_excerpt_share(expanded: ExpandedAnswer, min_ratio: float = MIN_EXCERPT_RATIO) -> ExpandedAnswer:
    """``expanded`` unchanged when excerpts make up at least ``min_ratio`` of it, else ``low_excerpt_share``."""
    share = expanded.excerpt_share
    if share < min_ratio:
        raise Rejected("low_excerpt_share",
                       f"excerpts are {expanded.excerpt_chars}/{expanded.total_chars} chars "
                       f"({share:.2f} < {min_ratio})")
    return expanded
