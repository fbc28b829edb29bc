"""Genericize stage: a near-dedupe cluster's representative -> validated ``Template``.

The backend is chosen by ``--genericizer``; ``rules`` (the CPU default) needs the set of
*common words* (computed over the whole query set, a side input) so frequent words stay
literal template words. The model backends (vllm, openai, transformers) send the
representative to the query templatizer (:mod:`templates_mining.templatizer_prompt`) through
the generation seam. Invalid output (no tags, unbalanced tags, empty description, text that
is not the templatizer's JSON) becomes a dead letter with the reason and the raw text.
"""
from __future__ import annotations

from typing import FrozenSet, List, Optional

import apache_beam as beam

from templates_mining.exact_dedupe import content_id
from templates_mining.genericize_rules import genericize
from transforms.words import words
from transforms.template_format import TAG_RE, normalize_template, validate_template
from templates_mining.templatizer_prompt import (TEMPLATIZER_SYSTEM_PROMPT, build_templatizer_messages,
                                                 parse_templatizer_output)
from transforms.accounting import Rejected, accounted_map
from transforms.generation import GenerativeStep, Generated
from transforms.generation_config import MODEL_BACKENDS, GenerationConfig
from transforms.records import QueryCluster, Template
from transforms.slot_types import UNTYPED, base_description

STAGE = "genericize"


def query_words(text: str) -> List[str]:
    """The distinct lowercase words of a query (for document frequency)."""
    return sorted(set(words(text)))


def template_from_cluster(cluster: QueryCluster, common_words: FrozenSet[str]) -> Template:
    """Pure: genericize the representative and carry weight and provenance.

    A template with no literal word left (all tags, e.g. a query in a script the rules do
    not read) says nothing about what is asked: filtered as ``no_literal_text``; one with no
    slot (nothing in the query names a specific thing) as ``nothing_specific``. A slot whose
    kind could not be read ("a specific topic") is filtered as ``untyped_slot``: an
    instantiator could only guess what fills it.
    """
    template, description = genericize(cluster.representative.text, common_words)
    if template.strip() and not TAG_RE.search(template):
        raise Rejected("nothing_specific", "no span of the query names a specific entity or detail")
    record = template_record(cluster, template, description)
    untyped = [d for d in TAG_RE.findall(template) if base_description(d).casefold() in UNTYPED]
    if untyped:
        raise Rejected("untyped_slot", f"no kind of thing found for {untyped[0]!r} in {template!r}"[:300])
    return record


def template_from_output(generated: Generated) -> Template:
    """Pure: the templatizer's text for a cluster's representative -> the cluster's Template."""
    template, description = parse_templatizer_output(generated.text)
    return template_record(generated.record, template, description)


def template_record(cluster: QueryCluster, template: str, description: str) -> Template:
    """A validated template carrying the cluster's weight and provenance."""
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
    """QueryCluster -> Template; outputs ``out``, ``filtered``, ``dead_letters``.

    ``rules`` needs ``common_words`` (a singleton PCollection); a model backend needs
    ``generation`` (its GenerationConfig; the model is the query templatizer).
    """

    def __init__(self, backend: str, common_words=None, generation: Optional[GenerationConfig] = None,
                 accelerator: Optional[str] = None, system_prompt: bool = True, handler=None):
        super().__init__()
        if backend == "rules":
            if common_words is None:
                raise ValueError("the rules genericizer needs the common words")
        elif backend in MODEL_BACKENDS:
            if generation is None or generation.backend != backend:
                raise ValueError(f"the {backend} genericizer needs a {backend} GenerationConfig")
        else:
            raise ValueError(f"unknown genericizer backend {backend!r}")
        self._backend, self._common_words = backend, common_words
        self._generation, self._accelerator, self._handler = generation, accelerator, handler
        self._system_prompt = TEMPLATIZER_SYSTEM_PROMPT if system_prompt else None

    def expand(self, clusters):
        if self._backend == "rules":
            return clusters | "Templatize" >> accounted_map(
                STAGE, template_from_cluster, beam.pvalue.AsSingleton(self._common_words))
        system_prompt = self._system_prompt
        return clusters | "Templatize" >> GenerativeStep(
            STAGE, lambda cluster: build_templatizer_messages(cluster.representative.text, system_prompt),
            template_from_output, self._generation, self._accelerator, self._handler)
