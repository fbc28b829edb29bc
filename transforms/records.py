"""The record types that cross stage boundaries, in one place.

Each is a ``typing.NamedTuple`` so it pickles cheaply, compares by value in tests and
reads like a schema. Stages exchange only these (plus plain ``str``/``bytes``).
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional


MAX_EXAMPLES = 5
"""Source queries kept as provenance on a UniqueQuery, QueryCluster or Template."""


class Query(NamedTuple):
    """One real user query as read from a source (after field mapping)."""
    text: str
    source: str


class Example(NamedTuple):
    """A source query kept as provenance on a template."""
    text: str
    source: str


class UniqueQuery(NamedTuple):
    """A normalised query after exact dedupe.

    ``query_id`` is a content hash of ``text``; ``count`` is how many input queries had
    this normalised text; ``examples`` are up to 5 of the original texts with sources.
    """
    query_id: str
    text: str
    count: int
    sources: List[str]
    examples: List[Example]


class QueryCluster(NamedTuple):
    """A near-duplicate cluster of unique queries with one representative.

    ``cluster_key`` is the smallest ``query_id`` of the members (stable across runs and
    worker counts); ``count`` sums the members' counts; ``size`` is the member count.
    """
    cluster_key: str
    representative: UniqueQuery
    count: int
    size: int
    sources: List[str]
    examples: List[Example]


class Template(NamedTuple):
    """A genericized query: ``<fi>`` template plus compatible document description."""
    template_id: str
    template: str
    description: str
    num_tags: int
    weight: int
    sources: List[str]
    examples: List[Example]
    cluster_id: int = -1


class EmbeddedTemplate(NamedTuple):
    """A template with the unit-norm float32 embedding of its description (what the library
    indexes) and, optionally, the vector semantic dedupe compares (empty: the embedding)."""
    template: Template
    embedding: bytes  # float32 little-endian, unit norm
    dedupe_embedding: bytes = b""


class Filtered(NamedTuple):
    """A record a stage removed on purpose, with the reason code."""
    stage: str
    reason: str
    text: str
    source: str


class DeadLetter(NamedTuple):
    """A record a stage could not process: the original input and the error."""
    stage: str
    reason: str
    error: str
    raw: str
    source: str
    locator: Optional[str] = None  # e.g. "path:line" for read errors
