"""Genericize stage: a near-dedupe cluster's representative -> validated ``Template``.

The backend is chosen by ``--genericizer``; ``rules`` (the CPU default) needs the set of
*common words* (computed over the whole query set, a side input) so frequent words stay
literal template words. Invalid output (no tags, unbalanced tags, empty description)
becomes a dead letter with the reason.
"""
from __future__ import annotations

from typing import FrozenSet, List

import apache_beam as beam

from templates_mining.exact_dedupe import content_id
from templates_mining.genericize_rules import genericize
from templates_mining.query_filter import words
from templates_mining.template_format import TAG_RE, normalize_template, validate_template
from transforms.accounting import Rejected, accounted_map
from transforms.records import QueryCluster, Template

STAGE = "genericize"


def query_words(text: str) -> List[str]:
    """The distinct lowercase words of a query (for document frequency)."""
    return sorted(set(words(text)))


def template_from_cluster(cluster: QueryCluster, common_words: FrozenSet[str]) -> Template:
    """Pure: genericize the representative and carry weight and provenance.

    A template with no literal word left (all tags, e.g. a query in a script the rules do
    not read) says nothing about what is asked: filtered as ``no_literal_text``.
    """
    template, description = genericize(cluster.representative.text, common_words)
    num_tags = validate_template(template, description)
    if not words(TAG_RE.sub(" ", template)):
        raise Rejected("no_literal_text")
    return Template(
        template_id=content_id(normalize_template(template)),
        template=template,
        description=description,
        num_tags=num_tags,
        weight=cluster.count,
        sources=list(cluster.sources),
        examples=list(cluster.examples),
    )


class CommonWords(beam.PTransform):
    """The words in at least ``max(min_count, min_df * n)`` queries, as one frozenset.

    Bounded: at most ``max_words`` words (the most frequent) reach the side input.
    """

    def __init__(self, min_df: float, min_count: int, max_words: int = 50_000):
        super().__init__()
        self._min_df, self._min_count, self._max_words = min_df, min_count, max_words

    def expand(self, clusters):
        n = clusters | "Count" >> beam.combiners.Count.Globally()
        min_df, min_count = self._min_df, self._min_count
        return (
            clusters
            | "Words" >> beam.FlatMap(lambda c: query_words(c.representative.text))
            | "DF" >> beam.combiners.Count.PerElement()
            | "Frequent" >> beam.Filter(lambda kv, n: kv[1] >= max(min_count, min_df * n),
                                        n=beam.pvalue.AsSingleton(n))
            | "Top" >> beam.combiners.Top.Of(self._max_words, key=lambda kv: (kv[1], kv[0]))
            | "ToSet" >> beam.Map(lambda top: frozenset(w for w, _ in top)))


class Genericize(beam.PTransform):
    """QueryCluster -> Template (main ``out``), with ``filtered`` and ``dead_letters``."""

    def __init__(self, backend: str, common_words):
        super().__init__()
        if backend != "rules":
            raise ValueError(f"unknown genericizer backend {backend!r}")
        self._common_words = common_words

    def expand(self, clusters):
        return clusters | "Templatize" >> accounted_map(
            STAGE, template_from_cluster, beam.pvalue.AsSingleton(self._common_words))
