"""Near-duplicate clustering of unique queries: MinHash LSH + verification + connected components.

Pipeline (every step keyed, so no worker ever holds all queries):

1. Batched MinHash signatures (one TensorFlow Text call per batch) -> one
   ``(band_key, (query_id, signature))`` per LSH band.
2. ``GroupByKey`` per band bucket; within a bucket, the smallest-id member is compared
   with every other member and an edge is emitted where the estimated Jaccard reaches
   ``threshold`` (star edges: linear in bucket size, not quadratic).
3. Distinct edges -> :class:`ConnectedComponents` -> label = smallest query_id of the
   component (queries without an edge are their own cluster).
4. ``CombinePerKey`` by label with an associative, order-independent ``CombineFn`` builds
   the :class:`QueryCluster`; members other than the representative leave as ``filtered``
   with reason ``near_duplicate``.

Accounting (``near_dedupe|...``): ``in`` = unique queries, ``out`` = clusters,
``filtered|near_duplicate`` = merged members, so ``in = out + filtered``; plus
``candidate_pairs`` / ``verified_pairs`` (pair checks, counted once per band bucket) and
``cc|unconverged_nodes``. Input ``query_id`` values are assumed unique (exact-dedupe output).
"""
from __future__ import annotations

from typing import Any, List, NamedTuple, Optional, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from templates_mining.minhash import (
    band_keys, estimated_jaccard, make_permutations, minhash_signatures, tokenize_for_shingles,
    word_shingles)
from transforms.accounting import FILTERED, NAMESPACE, SEP, StageCounters, count_stage
from transforms.connected_components import ConnectedComponents
from transforms.records import MAX_EXAMPLES, Example, Filtered, QueryCluster, UniqueQuery

NEAR_DUPLICATE = "near_duplicate"


class NearDedupeConfig(NamedTuple):
    """MinHash/LSH settings. ``threshold`` is the estimated Jaccard a candidate pair must reach."""
    num_perm: int = 128
    bands: int = 16
    rows: int = 8
    shingle_size: int = 2
    threshold: float = 0.7
    seed: int = 42
    max_rounds: int = 20

    def validate(self) -> "NearDedupeConfig":
        """Raises ``ValueError`` naming the bad setting; returns ``self`` for chaining."""
        if self.num_perm < 1:
            raise ValueError(f"num_perm must be >= 1, got {self.num_perm}")
        if self.bands < 1 or self.rows < 1:
            raise ValueError(f"bands and rows must be >= 1, got bands={self.bands} rows={self.rows}")
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands * rows must be <= num_perm, got {self.bands} * {self.rows} = "
                             f"{self.bands * self.rows} > {self.num_perm}")
        if self.shingle_size < 1:
            raise ValueError(f"shingle_size must be >= 1, got {self.shingle_size}")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.max_rounds < 1:
            raise ValueError(f"max_rounds must be >= 1, got {self.max_rounds}")
        return self

    def theoretical_threshold(self) -> float:
        """The Jaccard similarity at which a pair becomes an LSH candidate with ~50%
        probability, ``(1/bands)**(1/rows)``; pairs well below it are rarely even compared."""
        return (1.0 / self.bands) ** (1.0 / self.rows)


class _BandKeys(beam.DoFn):
    """A batch of UniqueQuery -> ``(band_key, (query_id, signature bytes))`` per band.

    Queries without any word token (no shingles) emit nothing: they stay singletons
    instead of all colliding on the empty signature.
    """

    def __init__(self, config: NearDedupeConfig):
        self._config = config

    def setup(self):
        self._perms = make_permutations(self._config.num_perm, self._config.seed)

    def process(self, batch: List[UniqueQuery]):
        cfg = self._config
        shingle_sets = [word_shingles(tokens, cfg.shingle_size)
                        for tokens in tokenize_for_shingles([q.text for q in batch])]
        signatures = minhash_signatures(shingle_sets, self._perms)
        for query, shingles, signature in zip(batch, shingle_sets, signatures):
            if not shingles:
                continue
            value = (query.query_id, signature.astype("<u4").tobytes())
            for key in band_keys(signature, cfg.bands, cfg.rows):
                yield key, value


class _StarEdges(beam.DoFn):
    """One bucket -> edges ``(smallest id, member)`` for members similar enough to it."""

    def __init__(self, stage: str, threshold: float):
        self._stage = stage
        self._threshold = threshold

    def setup(self):
        self._candidates = Metrics.counter(NAMESPACE, f"{self._stage}{SEP}candidate_pairs")
        self._verified = Metrics.counter(NAMESPACE, f"{self._stage}{SEP}verified_pairs")

    def process(self, bucket):
        _, members = bucket
        # Two passes over the (re-iterable, possibly disk-backed) group: the minimum first.
        anchor_id, anchor_sig = min(members, key=lambda m: m[0])
        anchor = np.frombuffer(anchor_sig, dtype="<u4")
        candidates = verified = 0
        for query_id, sig in members:
            if query_id == anchor_id:
                continue
            candidates += 1
            if estimated_jaccard(np.frombuffer(sig, dtype="<u4"), anchor) >= self._threshold:
                verified += 1
                yield anchor_id, query_id
        if candidates:
            self._candidates.inc(candidates)
        if verified:
            self._verified.inc(verified)


@beam.typehints.with_output_types(Tuple[str, Any])
class _AssignCluster(beam.DoFn):
    """``(query_id, {"query": [q], "label": [label?]})`` -> ``(cluster key, q)``; members
    of a multi-query component also go to the ``clustered`` output for the filtered side."""

    def process(self, joined):
        query_id, grouped = joined
        labels = list(grouped["label"])
        for query in grouped["query"]:
            if labels:
                yield labels[0], query
                yield beam.pvalue.TaggedOutput("clustered", (labels[0], query))
            else:
                yield query_id, query


def _rep_key(q: UniqueQuery):
    """Representative order: highest count, then shorter text, then smaller query_id."""
    return (-q.count, len(q.text), q.query_id, q.text)


class _ClusterAcc(NamedTuple):
    representative: Optional[UniqueQuery]
    min_id: Optional[str]
    count: int
    size: int
    sources: frozenset
    # (query_id, position, Example) of the smallest ids; 2*MAX_EXAMPLES so that after
    # dropping the final representative's own entries MAX_EXAMPLES others remain.
    examples: tuple


def _smallest(entries, limit=2 * MAX_EXAMPLES) -> tuple:
    return tuple(sorted(entries)[:limit])


class MergeCluster(beam.CombineFn):
    """UniqueQuery members -> cluster summary; associative and commutative (any split,
    any order gives the same result), so the combiner can run before the shuffle."""

    def create_accumulator(self):
        return _ClusterAcc(None, None, 0, 0, frozenset(), ())

    def add_input(self, acc: _ClusterAcc, q: UniqueQuery):
        own = _ClusterAcc(q, q.query_id, q.count, 1, frozenset(q.sources),
                          tuple((q.query_id, i, Example(*e)) for i, e in enumerate(q.examples[:MAX_EXAMPLES])))
        return self.merge_accumulators([acc, own])

    def merge_accumulators(self, accs):
        accs = [a for a in accs if a.size]
        if not accs:
            return self.create_accumulator()
        return _ClusterAcc(
            representative=min((a.representative for a in accs), key=_rep_key),
            min_id=min(a.min_id for a in accs),
            count=sum(a.count for a in accs),
            size=sum(a.size for a in accs),
            sources=frozenset().union(*(a.sources for a in accs)),
            examples=_smallest(e for a in accs for e in a.examples))

    def extract_output(self, acc: _ClusterAcc) -> QueryCluster:
        rep = acc.representative
        examples = [Example(*e) for e in rep.examples[:MAX_EXAMPLES]]
        for query_id, _, example in acc.examples:
            if len(examples) >= MAX_EXAMPLES:
                break
            if query_id != rep.query_id:
                examples.append(example)
        return QueryCluster(cluster_key=acc.min_id, representative=rep, count=acc.count,
                            size=acc.size, sources=sorted(acc.sources), examples=examples)


@beam.typehints.with_output_types(Any)
class _EmitClusters(beam.DoFn):
    """Cluster + its multi-query members -> the QueryCluster and one Filtered per merged member."""

    def __init__(self, stage: str):
        self._stage = stage

    def setup(self):
        self._counters = StageCounters(self._stage)

    def process(self, joined):
        _, grouped = joined
        for cluster in grouped["cluster"]:
            rep_id = cluster.representative.query_id
            merged = 0
            for query in grouped["members"]:
                if query.query_id != rep_id:
                    merged += 1
                    yield beam.pvalue.TaggedOutput(
                        FILTERED, Filtered(self._stage, NEAR_DUPLICATE, query.text, ",".join(query.sources)))
            if merged:
                self._counters.filtered(NEAR_DUPLICATE, merged)
            self._counters.inc_out()
            yield cluster


class NearDedupe(beam.PTransform):
    """``PCollection[UniqueQuery]`` -> outputs ``out`` (QueryCluster) and ``filtered`` (Filtered)."""

    def __init__(self, config: NearDedupeConfig = NearDedupeConfig(), stage: str = "near_dedupe"):
        super().__init__()
        self._config = config.validate()
        self._stage = stage

    def expand(self, queries):
        cfg, stage = self._config, self._stage
        queries = queries | "CountIn" >> beam.Map(count_stage(stage, "in"))
        edges = (
            queries
            | "Batch" >> beam.BatchElements(min_batch_size=16, max_batch_size=1024)
            | "BandKeys" >> beam.ParDo(_BandKeys(cfg))
            | "GroupBuckets" >> beam.GroupByKey()
            | "StarEdges" >> beam.ParDo(_StarEdges(stage, cfg.threshold))
            | "DistinctEdges" >> beam.Distinct())
        labels = edges | "Components" >> ConnectedComponents(cfg.max_rounds, stage=f"{stage}{SEP}cc")
        assigned = (
            {"query": queries | "KeyById" >> beam.Map(lambda q: (q.query_id, q)), "label": labels}
            | "JoinLabels" >> beam.CoGroupByKey()
            | "AssignCluster" >> beam.ParDo(_AssignCluster()).with_outputs("clustered", main="all"))
        clusters = assigned.all | "MergeCluster" >> beam.CombinePerKey(MergeCluster())
        return (
            {"cluster": clusters, "members": assigned.clustered}
            | "JoinMembers" >> beam.CoGroupByKey()
            | "EmitClusters" >> beam.ParDo(_EmitClusters(stage)).with_outputs(FILTERED, main="out"))
