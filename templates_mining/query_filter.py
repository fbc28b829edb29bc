"""Filter stage: length, not-a-query, PII and harmful content, each with a reason code.

Pure functions over normalized text; the Beam wrapper is ``transforms.accounting.accounted_map``.
The harmful-content filter is pluggable: anything with ``reason(text) -> str | None``.
"""
from __future__ import annotations

import importlib
import re
from importlib import resources
from typing import Callable, FrozenSet, NamedTuple, Optional, Protocol

from transforms.accounting import Rejected
from transforms.words import content_words


def _read_lines(name_or_path: str) -> list[str]:
    """Lines of a packaged resource (bare file name) or of a path (local or gs://), sans comments."""
    if "/" in name_or_path:
        from apache_beam.io.filesystems import FileSystems

        with FileSystems.open(name_or_path) as f:
            text = f.read().decode("utf-8")
    else:
        text = resources.files("templates_mining.resources").joinpath(name_or_path).read_text("utf-8")
    lines = (line.split("#", 1)[0].strip().lower() for line in text.splitlines())
    return [line for line in lines if line]


def load_words(name_or_path: str) -> FrozenSet[str]:
    """A whitespace-separated word list."""
    return frozenset(w for line in _read_lines(name_or_path) for w in line.split())


def load_phrases(name_or_path: str) -> FrozenSet[str]:
    """A list of phrases, one per line."""
    return frozenset(_read_lines(name_or_path))




# --- PII -------------------------------------------------------------------------------
# Each pattern: reason code, regex, scrub replacement (a neutral placeholder word).
PII_PATTERNS = (
    ("pii_url_credentials", re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@]+:[^\s/@]+@\S+", re.I), "URL_WITH_CREDENTIALS"),
    ("pii_url_token", re.compile(
        r"\bhttps?://\S*[?&](?:access_token|api_key|apikey|token|key|secret|password|sig|signature|auth)=[^\s&]{6,}\S*",
        re.I), "URL_WITH_TOKEN"),
    ("pii_secret", re.compile(r"\b(?:sk-[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}|ghp_[A-Za-z0-9]{30,}|xox[bp]-[A-Za-z0-9-]{10,})\b"),
     "SECRET_TOKEN"),
    ("pii_email", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-zA-Z]{2,}"), "EMAIL_ADDRESS"),
    ("pii_phone", re.compile(
        r"(?<![\w.])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\d{3}[\s.-])\d{3}[\s.-]\d{3,4}(?![\w.])"), "PHONE_NUMBER"),
    ("pii_ssn", re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), "ID_NUMBER"),
    ("pii_card", re.compile(r"(?<![\d-])(?:[3-6]\d{3}(?:[ -]\d{4}){3}|[3-6]\d{14,15})(?![\d-])"), "CARD_NUMBER"),
)


def luhn_valid(number: str) -> bool:
    """The Luhn checksum every payment card number satisfies (random digit runs mostly fail)."""
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return bool(digits) and total % 10 == 0


def _is_pii(reason: str, match: re.Match) -> bool:
    return reason != "pii_card" or luhn_valid(match.group(0))


def find_pii(text: str) -> list[str]:
    """The PII reason codes found in ``text`` (empty when clean)."""
    return [reason for reason, pattern, _ in PII_PATTERNS
            if any(_is_pii(reason, m) for m in pattern.finditer(text))]


def scrub_pii(text: str) -> str:
    """Replaces every PII match with its placeholder word."""
    for reason, pattern, placeholder in PII_PATTERNS:
        text = pattern.sub(lambda m: placeholder if _is_pii(reason, m) else m.group(0), text)
    return text


# --- harmful content -------------------------------------------------------------------
class HarmFilter(Protocol):
    """A harmful-content check: a reason code when harmful, else None."""

    def reason(self, text: str) -> Optional[str]: ...


class WordListHarmFilter:
    """Flags text containing any listed phrase on word boundaries (case-insensitive)."""

    def __init__(self, phrases: FrozenSet[str]):
        alternatives = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
        self._re = re.compile(rf"\b(?:{alternatives})\b", re.I) if phrases else None

    def reason(self, text: str) -> Optional[str]:
        return "harmful_wordlist" if self._re is not None and self._re.search(text) else None


class NoHarmFilter:
    def reason(self, text: str) -> Optional[str]:
        return None


def make_harm_filter(spec: str, wordlist: Optional[str] = None) -> HarmFilter:
    """``wordlist`` (default), ``none``, or ``package.module:ClassName`` (a model hook).

    A hook class is constructed with no arguments on each worker and must implement
    :class:`HarmFilter`; it fails fast here if it cannot be imported.
    """
    if spec == "wordlist":
        return WordListHarmFilter(load_phrases(wordlist or "harmful_phrases.txt"))
    if spec == "none":
        return NoHarmFilter()
    module_name, sep, class_name = spec.partition(":")
    if not sep:
        raise ValueError(f"--harm_filter must be 'wordlist', 'none' or 'module:Class', got {spec!r}")
    cls = getattr(importlib.import_module(module_name), class_name)
    instance = cls()
    if not callable(getattr(instance, "reason", None)):
        raise TypeError(f"{spec} has no reason(text) method")
    return instance


# --- the stage -------------------------------------------------------------------------
class FilterConfig(NamedTuple):
    min_chars: int = 8
    max_chars: int = 4000
    min_content_words: int = 1
    pii: str = "drop"  # or "scrub"
    harm_filter: str = "wordlist"
    harm_wordlist: Optional[str] = None

    def validate(self) -> "FilterConfig":
        if not 0 < self.min_chars < self.max_chars:
            raise ValueError(f"need 0 < min_chars < max_chars, got {self.min_chars}, {self.max_chars}")
        if self.pii not in ("drop", "scrub"):
            raise ValueError(f"--pii must be 'drop' or 'scrub', got {self.pii!r}")
        return self


def filter_query(text: str, config: FilterConfig, harm: HarmFilter) -> str:
    """Returns the (possibly PII-scrubbed) text, or raises :class:`Rejected` with a reason."""
    if len(text) < config.min_chars:
        raise Rejected("too_short")
    if len(text) > config.max_chars:
        raise Rejected("too_long")
    if len(content_words(text)) < config.min_content_words:
        raise Rejected("not_a_query")
    pii = find_pii(text)
    if pii:
        if config.pii == "drop":
            raise Rejected(pii[0])
        text = scrub_pii(text)
    harmful = harm.reason(text)
    if harmful:
        raise Rejected(harmful)
    return text


def query_filter_fn(config: FilterConfig) -> Callable:
    """A picklable ``Query -> Query`` for ``accounted_map``; the harm filter loads lazily per worker."""
    from transforms.records import Query

    state = {}

    def _filter(q: Query) -> Query:
        if "harm" not in state:
            state["harm"] = make_harm_filter(config.harm_filter, config.harm_wordlist)
        return Query(filter_query(q.text, config, state["harm"]), q.source)

    return _filter
