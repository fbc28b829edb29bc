"""Exact dedupe of normalized queries, keeping frequency, sources and example texts.

The key is a casefolded, whitespace- and end-punctuation-insensitive form of the text;
``query_id`` is a content hash of that key, so ids are stable across runs and workers.
"""
from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

import apache_beam as beam

from transforms.accounting import NAMESPACE, SEP, count_stage
from transforms.records import MAX_EXAMPLES, Example, Query, UniqueQuery

STAGE = "exact_dedupe"
_END_PUNCT_RE = re.compile(r"[\s?!.。？！]+$")
_WS_RE = re.compile(r"\s+")


def dedupe_key(text: str) -> str:
    """What two queries must share to count as the same query."""
    return _END_PUNCT_RE.sub("", _WS_RE.sub(" ", text.casefold())).strip()


def content_id(key: str) -> str:
    """A 16-hex-digit content hash."""
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


class _Acc(NamedTuple):
    count: int
    sources: frozenset
    examples: tuple  # sorted Examples, at most MAX_EXAMPLES


def _merge_examples(a, b) -> tuple:
    return tuple(sorted(set(a) | set(b))[:MAX_EXAMPLES])


class MergeQueries(beam.CombineFn):
    """Associative, order-independent merge of equal-key queries (deterministic output)."""

    def create_accumulator(self):
        return _Acc(0, frozenset(), ())

    def add_input(self, acc, q: Query):
        return _Acc(acc.count + 1, acc.sources | {q.source},
                    _merge_examples(acc.examples, (Example(q.text, q.source),)))

    def merge_accumulators(self, accs):
        accs = list(accs)
        examples: tuple = ()
        for a in accs:
            examples = _merge_examples(examples, a.examples)
        return _Acc(sum(a.count for a in accs), frozenset().union(*(a.sources for a in accs)), examples)

    def extract_output(self, acc):
        return acc


def to_unique_query(key: str, acc: _Acc) -> UniqueQuery:
    # The representative text is the first example in sorted order: deterministic.
    return UniqueQuery(content_id(key), acc.examples[0].text, acc.count,
                       sorted(acc.sources), [Example(*e) for e in acc.examples])


class ExactDedupe(beam.PTransform):
    """Query -> UniqueQuery; duplicates are counted as ``filtered|exact_duplicate``."""

    def expand(self, queries):
        duplicates = beam.metrics.Metrics.counter(NAMESPACE, f"{STAGE}{SEP}filtered{SEP}exact_duplicate")

        def _emit(kv):
            key, acc = kv
            duplicates.inc(acc.count - 1)
            return to_unique_query(key, acc)

        return (
            queries
            | "CountIn" >> beam.Map(count_stage(STAGE, "in"))
            | "Key" >> beam.Map(lambda q: (dedupe_key(q.text), q))
            | "Merge" >> beam.CombinePerKey(MergeQueries())
            | "ToUniqueQuery" >> beam.Map(_emit)
            | "CountOut" >> beam.Map(count_stage(STAGE, "out")))
