"""Template dedupe: exact (normalised text) and semantic (embedding cosine) merging.

Many queries genericize to the same ``<fi>`` template, and many templates differ only in
wording. Two stages fold them together, keeping the provenance of every member:

* :class:`ExactTemplateDedupe` keys templates by :func:`normalize_template` and merges
  each key's members with :class:`MergeTemplates`.
* :class:`SemanticDedupe` partitions templates by their nearest k-means centroids
  (spherical k-means on a bounded, deterministic sample), compares all pairs inside each
  partition by cosine similarity, links pairs at or above ``threshold`` with
  :class:`ConnectedComponents` and merges each component the same way.

Merging (pure functions, one associative and commutative ``CombineFn``): the
representative is the member with the highest ``weight``, ties broken by the smaller
``template_id``; ``weight`` is the sum, ``sources`` the sorted union, ``examples`` the
representative's own first, then the other members' smallest distinct examples, up to
:data:`MAX_EXAMPLES`. Every other member leaves on the ``filtered`` output, so per stage
``in = out + filtered|<reason>``. Members may share the representative's ``template_id`` (it is a content hash).
"""
from __future__ import annotations

import math
from typing import Any, Iterable, List, NamedTuple, Tuple, Union

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from transforms.template_format import normalize_template
from transforms.accounting import FILTERED, NAMESPACE, SEP, StageCounters, count_stage
from transforms.connected_components import ConnectedComponents
from transforms.records import MAX_EXAMPLES, EmbeddedTemplate, Example, Filtered, Template

DUPLICATE_TEMPLATE = "duplicate_template"
SEMANTIC_DUPLICATE = "semantic_duplicate"

#: Rows of a partition compared against the whole partition in one matmul (bounds memory).
PAIR_BLOCK = 1024

Mergeable = Union[Template, EmbeddedTemplate]


# --- merging (pure) ---------------------------------------------------------------------

def _template(item: Mergeable) -> Template:
    return item.template if isinstance(item, EmbeddedTemplate) else item


def representative_key(template: Template) -> tuple:
    """Representative order: highest weight, then smaller template_id, then the rest of the
    record, so the order is total: exact duplicates share a content-hash template_id, and
    a tie left to input order would differ between runs and worker counts."""
    return (-template.weight, template.template_id, template.template, template.description,
            tuple(template.examples), tuple(template.sources))


class MergeState(NamedTuple):
    """Partial merge of some members; ``examples`` are their smallest distinct examples."""
    representative: Any  # Template or EmbeddedTemplate, the same kind as the members
    weight: int
    sources: frozenset
    # 2 * MAX_EXAMPLES so that, after skipping the final representative's own examples,
    # MAX_EXAMPLES others are still at hand.
    examples: tuple
    size: int


EMPTY_STATE = MergeState(None, 0, frozenset(), (), 0)


def merge_state(item: Mergeable) -> MergeState:
    """The state of a single member."""
    t = _template(item)
    examples = tuple(sorted({Example(*e) for e in t.examples}))[:2 * MAX_EXAMPLES]
    return MergeState(item, t.weight, frozenset(t.sources), examples, 1)


def combine_states(states: Iterable[MergeState]) -> MergeState:
    """Merges partial states; associative and commutative, so any split gives one answer."""
    states = [s for s in states if s.size]
    if not states:
        return EMPTY_STATE
    return MergeState(
        representative=min((s.representative for s in states), key=lambda r: representative_key(_template(r))),
        weight=sum(s.weight for s in states),
        sources=frozenset().union(*(s.sources for s in states)),
        examples=tuple(sorted({e for s in states for e in s.examples}))[:2 * MAX_EXAMPLES],
        size=sum(s.size for s in states))


def finish_state(state: MergeState) -> Mergeable:
    """The merged member: the representative with summed weight, union of sources, examples."""
    rep = state.representative
    t = _template(rep)
    examples = [Example(*e) for e in t.examples[:MAX_EXAMPLES]]
    for example in state.examples:
        if len(examples) >= MAX_EXAMPLES:
            break
        if example not in examples:
            examples.append(example)
    merged = t._replace(weight=state.weight, sources=sorted(state.sources), examples=examples)
    return rep._replace(template=merged) if isinstance(rep, EmbeddedTemplate) else merged


def merge_templates(items: Iterable[Mergeable]) -> Mergeable:
    """Merges members in one call (what :class:`MergeTemplates` computes per key)."""
    return finish_state(combine_states(merge_state(i) for i in items))


class MergeTemplates(beam.CombineFn):
    """Beam wrapper of the pure merge; order- and split-independent, so it may pre-combine."""

    def create_accumulator(self):
        return EMPTY_STATE

    def add_input(self, acc, item):
        return combine_states([acc, merge_state(item)])

    def merge_accumulators(self, accs):
        return combine_states(accs)

    def extract_output(self, acc):
        return finish_state(acc)


def _member_summary(item: Mergeable) -> Tuple[str, str, str]:
    """What the filtered side needs of a member: id, template text, joined sources."""
    t = _template(item)
    return t.template_id, t.template, ",".join(t.sources)


@beam.typehints.with_output_types(Any)
class _EmitMerged(beam.DoFn):
    """``(key, {"merged": [m], "members": [summaries]})`` -> ``m`` plus one Filtered per
    member other than the representative."""

    def __init__(self, stage: str, reason: str):
        self._stage = stage
        self._reason = reason

    def setup(self):
        self._counters = StageCounters(self._stage)

    def process(self, joined):
        _, grouped = joined
        for merged in grouped["merged"]:
            rep_id = _template(merged).template_id
            dropped, rep_seen = 0, False
            # Exact duplicates share the representative's content-hash id: keep only one.
            for template_id, text, sources in sorted(grouped["members"]):
                if template_id == rep_id and not rep_seen:
                    rep_seen = True
                    continue
                dropped += 1
                yield beam.pvalue.TaggedOutput(FILTERED, Filtered(self._stage, self._reason, text, sources))
            if dropped:
                self._counters.filtered(self._reason, dropped)
            self._counters.inc_out()
            yield merged


def _merged_groups(keyed, label: str = "Merge"):
    """``PCollection[(group key, member)]`` -> ``(key, {"merged": [m], "members": [summaries]})``."""
    merged = keyed | f"{label}/Combine" >> beam.CombinePerKey(MergeTemplates())
    members = keyed | f"{label}/Summaries" >> beam.MapTuple(lambda k, item: (k, _member_summary(item)))
    return {"merged": merged, "members": members} | f"{label}/Join" >> beam.CoGroupByKey()


def _emit(groups, stage: str, reason: str):
    """Joined groups -> outputs ``out`` (merged) and ``filtered``."""
    return groups | "Emit" >> beam.ParDo(_EmitMerged(stage, reason)).with_outputs(FILTERED, main="out")


# --- exact dedupe -----------------------------------------------------------------------

class ExactTemplateDedupe(beam.PTransform):
    """``PCollection[Template]`` -> outputs ``out`` (Template) and ``filtered`` (Filtered,
    reason ``duplicate_template``), one template per :func:`normalize_template` key."""

    def __init__(self, stage: str = "template_exact_dedupe"):
        super().__init__()
        self._stage = stage

    def expand(self, templates):
        keyed = (
            templates
            | "CountIn" >> beam.Map(count_stage(self._stage, "in"))
            | "KeyByNormalized" >> beam.Map(lambda t: (normalize_template(t.template), t)))
        return _emit(_merged_groups(keyed), self._stage, DUPLICATE_TEMPLATE)


# --- semantic dedupe --------------------------------------------------------------------

class SemanticDedupeConfig(NamedTuple):
    """``threshold``: cosine a pair must reach to merge; ``partition_size``: templates per
    k-means partition on average (k = ceil(n / partition_size)); ``kmeans_sample``: the
    bounded number of embeddings k-means trains on; ``assign_top``: partitions each template
    joins, so near pairs split by a partition boundary still meet."""
    threshold: float = 0.9
    partition_size: int = 2000
    kmeans_sample: int = 20000
    kmeans_iters: int = 20
    assign_top: int = 2
    seed: int = 42
    max_rounds: int = 20

    def validate(self) -> "SemanticDedupeConfig":
        """Raises ``ValueError`` naming the bad setting; returns ``self`` for chaining."""
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.partition_size < 1:
            raise ValueError(f"partition_size must be >= 1, got {self.partition_size}")
        if self.kmeans_sample < 1:
            raise ValueError(f"kmeans_sample must be >= 1, got {self.kmeans_sample}")
        if self.kmeans_iters < 0:
            raise ValueError(f"kmeans_iters must be >= 0, got {self.kmeans_iters}")
        if self.assign_top < 1:
            raise ValueError(f"assign_top must be >= 1, got {self.assign_top}")
        if self.max_rounds < 1:
            raise ValueError(f"max_rounds must be >= 1, got {self.max_rounds}")
        return self


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _nearest(x: np.ndarray, centroids: np.ndarray, block: int = 4096) -> Tuple[np.ndarray, np.ndarray]:
    """Index and cosine of each row's nearest centroid, in row blocks to bound memory."""
    labels = np.empty(len(x), dtype=np.int64)
    best = np.empty(len(x), dtype=np.float32)
    for start in range(0, len(x), block):
        sims = x[start:start + block] @ centroids.T
        labels[start:start + block] = np.argmax(sims, axis=1)
        best[start:start + block] = sims[np.arange(len(sims)), labels[start:start + block]]
    return labels, best


def train_kmeans(vectors: np.ndarray, k: int, seed: int, iters: int) -> np.ndarray:
    """Spherical k-means: ``(k, d)`` float32 unit-norm centroids, assignment by cosine.

    Seeded random initialisation (distinct rows) and Lloyd iterations, so the same input
    gives the same centroids. With ``k >= n`` the (normalised) vectors themselves are the
    centroids. A cluster left empty is reseeded with the row farthest from its centroid.
    """
    x = _unit_rows(np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1))
    n = len(x)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k >= n:
        return x.copy()
    rng = np.random.default_rng(seed)
    centroids = x[np.sort(rng.choice(n, size=k, replace=False))].copy()
    labels = None
    for _ in range(iters):
        new_labels, sims = _nearest(x, centroids)
        if labels is not None and np.array_equal(new_labels, labels):
            break
        labels = new_labels
        sums = np.zeros_like(centroids)
        np.add.at(sums, labels, x)
        counts = np.bincount(labels, minlength=k)
        empty = np.flatnonzero(counts == 0)
        if len(empty):
            farthest = np.argsort(sims, kind="stable")[:len(empty)]
            sums[empty] = x[farthest]
        norms = np.linalg.norm(sums, axis=1)
        keep = norms > 0  # members cancelling out: keep the previous centroid
        centroids[keep] = sums[keep] / norms[keep, None]
    return centroids.astype(np.float32)


def decode_embedding(embedding: bytes) -> np.ndarray:
    return np.frombuffer(embedding, dtype="<f4")


def dedupe_bytes(et: EmbeddedTemplate) -> bytes:
    """The vector semantic dedupe compares: ``dedupe_embedding`` when set, else ``embedding``."""
    return et.dedupe_embedding or et.embedding


def with_dedupe_vector(described_and_query, query_weight: float) -> EmbeddedTemplate:
    """``((Template, description embedding), query embedding)`` -> EmbeddedTemplate."""
    (template, description), query = described_and_query
    vector = dedupe_vector(decode_embedding(query), decode_embedding(description), query_weight)
    return EmbeddedTemplate(template, description, vector.tobytes())


def dedupe_vector(query: np.ndarray, description: np.ndarray, query_weight: float) -> np.ndarray:
    """Concatenation whose cosine is ``w * cos(queries) + (1 - w) * cos(descriptions)``.

    Both inputs are unit norm, so scaling by sqrt(w) and sqrt(1 - w) keeps the result unit
    norm. Source-query similarity is the strong paraphrase signal (see
    benchmarks/dedupe_quality.py); the description share keeps templates whose documents
    would differ apart.
    """
    if not 0.0 <= query_weight <= 1.0:
        raise ValueError(f"query_weight must be in [0, 1], got {query_weight}")
    return np.concatenate([np.sqrt(query_weight) * query,
                           np.sqrt(1.0 - query_weight) * description]).astype(np.float32)


def nearest_centroids(vector: np.ndarray, centroids: np.ndarray, top: int) -> List[int]:
    """Indices of the ``top`` most similar centroids, most similar first (ties: lower index)."""
    sims = centroids @ vector
    return [int(i) for i in np.argsort(-sims, kind="stable")[:top]]


def similar_pairs(ids: List[str], vectors: np.ndarray, threshold: float,
                  block: int = PAIR_BLOCK) -> Iterable[Tuple[str, str]]:
    """All ``(id_a, id_b)``, ``id_a < id_b``, whose cosine reaches ``threshold`` (rows unit norm).

    Blocked upper-triangle matmul: memory is ``block x n`` similarities, not ``n x n``.
    """
    n = len(ids)
    for start in range(0, n, block):
        sims = vectors[start:start + block] @ vectors[start:].T
        rows, cols = np.nonzero(np.triu(sims >= threshold, k=1))
        for r, c in zip(rows.tolist(), cols.tolist()):
            a, b = ids[start + r], ids[start + c]
            yield (a, b) if a < b else (b, a)


def _train_centroids(sample: List[Tuple[str, bytes]], n: int, config: SemanticDedupeConfig) -> np.ndarray:
    """Centroids from the sample (sorted by template_id, hence deterministic)."""
    if not sample:
        return np.zeros((0, 0), dtype=np.float32)
    k = max(1, math.ceil(n / config.partition_size))
    vectors = np.stack([decode_embedding(e) for _, e in sorted(sample)])
    return train_kmeans(vectors, k, config.seed, config.kmeans_iters)


def _sample_key(id_and_embedding: Tuple[str, bytes]) -> str:
    return id_and_embedding[0]


@beam.typehints.with_output_types(Any)
class _AssignPartitions(beam.DoFn):
    """EmbeddedTemplate -> ``(template_id, template with cluster_id)`` on the main output
    and ``(partition, (template_id, embedding))`` per nearest centroid on ``partitions``."""

    def __init__(self, assign_top: int):
        self._assign_top = assign_top

    def process(self, et: EmbeddedTemplate, centroids: np.ndarray):
        nearest = nearest_centroids(decode_embedding(dedupe_bytes(et)), centroids, self._assign_top)
        t = et.template._replace(cluster_id=nearest[0])
        yield t.template_id, et._replace(template=t)
        for partition in nearest:
            yield beam.pvalue.TaggedOutput("partitions", (partition, (t.template_id, dedupe_bytes(et))))


class _PartitionEdges(beam.DoFn):
    """One partition -> its similar pairs, as edges for connected components."""

    def __init__(self, stage: str, threshold: float):
        self._stage = stage
        self._threshold = threshold

    def setup(self):
        self._compared = Metrics.counter(NAMESPACE, f"{self._stage}{SEP}compared_pairs")
        self._candidates = Metrics.counter(NAMESPACE, f"{self._stage}{SEP}candidate_pairs")

    def process(self, partition):
        _, members = partition
        members = sorted(members)
        ids = [m[0] for m in members]
        vectors = np.stack([decode_embedding(m[1]) for m in members])
        n = len(ids)
        if n > 1:
            self._compared.inc(n * (n - 1) // 2)
        found = 0
        for edge in similar_pairs(ids, vectors, self._threshold):
            found += 1
            yield edge
        if found:
            self._candidates.inc(found)


@beam.typehints.with_output_types(Any)
class _AssignComponent(beam.DoFn):
    """``(template_id, {"template": [et], "label": [label?]})`` -> ``(label, et)`` for
    members of a component; a template without edges is already final and goes to
    ``single`` in the shape :class:`_EmitMerged` reads, skipping the merge shuffle."""

    def process(self, joined):
        template_id, grouped = joined
        labels = list(grouped["label"])
        for et in grouped["template"]:
            if labels:
                yield labels[0], et
            else:
                yield beam.pvalue.TaggedOutput("single", (template_id, {"merged": [et], "members": []}))


class SemanticDedupe(beam.PTransform):
    """``PCollection[EmbeddedTemplate]`` -> outputs ``out`` (EmbeddedTemplate, ``cluster_id``
    = nearest centroid) and ``filtered`` (Filtered, reason ``semantic_duplicate``).

    Counters ``<stage>|in``, ``|out``, ``|filtered|semantic_duplicate`` (conserved),
    ``|compared_pairs``, ``|candidate_pairs`` (pairs at or above threshold, per partition,
    before dedupe of pairs seen in two partitions) and ``|cc|unconverged_nodes``. Every
    step is keyed or bounded (the k-means sample), except that one partition is held on
    one worker for its pairwise pass, so ``partition_size`` bounds typical memory.
    """

    def __init__(self, config: SemanticDedupeConfig = SemanticDedupeConfig(), stage: str = "semantic_dedupe"):
        super().__init__()
        self._config = config.validate()
        self._stage = stage

    def expand(self, embedded):
        cfg, stage = self._config, self._stage
        embedded = embedded | "CountIn" >> beam.Map(count_stage(stage, "in"))
        n = embedded | "CountAll" >> beam.combiners.Count.Globally()
        centroids = (
            embedded
            | "SampleKeys" >> beam.Map(lambda et: (et.template.template_id, dedupe_bytes(et)))
            | "Sample" >> beam.combiners.Top.Smallest(cfg.kmeans_sample, key=_sample_key)
            | "TrainKMeans" >> beam.Map(_train_centroids, n=beam.pvalue.AsSingleton(n), config=cfg))
        assigned = embedded | "AssignPartitions" >> beam.ParDo(
            _AssignPartitions(cfg.assign_top), beam.pvalue.AsSingleton(centroids)).with_outputs(
                "partitions", main="by_id")
        edges = (
            assigned.partitions
            | "GroupPartitions" >> beam.GroupByKey()
            | "PartitionEdges" >> beam.ParDo(_PartitionEdges(stage, cfg.threshold))
            | "DistinctEdges" >> beam.Distinct())
        labels = edges | "Components" >> ConnectedComponents(cfg.max_rounds, stage=f"{stage}{SEP}cc")
        components = (
            {"template": assigned.by_id, "label": labels}
            | "JoinLabels" >> beam.CoGroupByKey()
            | "AssignComponent" >> beam.ParDo(_AssignComponent()).with_outputs("single", main="grouped"))
        groups = (_merged_groups(components.grouped), components.single) | "WithSingles" >> beam.Flatten()
        return _emit(groups, stage, SEMANTIC_DUPLICATE)
