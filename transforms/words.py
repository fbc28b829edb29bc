"""Words both jobs count the same way: the tokenizer for content words and the stopword list.

Part of the contract between the jobs (like :mod:`transforms.template_format`): mining decides
which query words are frame words with it, and the pipeline decides which document spans are
content with the same list, so both read it from here.
"""
from __future__ import annotations

import re
from importlib import resources
from typing import FrozenSet


def packaged_lines(package: str, name: str) -> list[str]:
    """Lines of a packaged text resource, lowercased, comments and blanks dropped."""
    text = resources.files(package).joinpath(name).read_text("utf-8")
    lines = (line.split("#", 1)[0].strip().lower() for line in text.splitlines())
    return [line for line in lines if line]


#: English function words (transforms/resources/stopwords.txt).
STOPWORDS: FrozenSet[str] = frozenset(
    w for line in packaged_lines("transforms.resources", "stopwords.txt") for w in line.split())
_WORD_RE = re.compile(r"[^\W\d_]{2,}", re.UNICODE)


def words(text: str) -> list[str]:
    """Lowercase alphabetic words of 2+ letters, in order."""
    return [m.group(0).lower() for m in _WORD_RE.finditer(text)]


def content_words(text: str) -> list[str]:
    """Alphabetic words of 2+ letters that are not function words."""
    return [w for w in words(text) if w not in STOPWORDS]
