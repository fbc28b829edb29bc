"""Template dedupe: pure merge, k-means, and the exact and semantic transforms on planted data."""
import math
import random

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from templates_mining.template_dedupe import (
    ExactTemplateDedupe, MergeTemplates, SemanticDedupe, SemanticDedupeConfig, merge_templates,
    similar_pairs, train_kmeans)
from transforms.accounting import NAMESPACE
from transforms.records import EmbeddedTemplate, Example, Filtered, Template

DIM = 8


def tpl(template_id, text, weight=1, sources=("s1",), examples=None):
    if examples is None:
        examples = [Example(f"query for {template_id}", s) for s in sorted(sources)]
    return Template(template_id, text, f"doc about {text}", text.count("<fi>"), weight, sorted(sources), examples)


def unit(*coords):
    v = np.zeros(DIM, dtype=np.float32)
    v[:len(coords)] = coords
    return v / np.linalg.norm(v)


def at_angle(degrees):
    """A unit vector in the first two dimensions; cosine between two is cos(angle difference)."""
    r = math.radians(degrees)
    return unit(math.cos(r), math.sin(r))


def emb(template, vector):
    return EmbeddedTemplate(template, np.asarray(vector, dtype="<f4").tobytes())


def combine(fn, parts):
    accs = []
    for part in parts:
        acc = fn.create_accumulator()
        for item in part:
            acc = fn.add_input(acc, item)
        accs.append(acc)
    return fn.extract_output(fn.merge_accumulators(accs))


#: Outputs gathered in this process (the direct runner runs in-process, threads included).
_SINKS = {}


def _collect(element, key, index):
    _SINKS[key][index].append(element)


def run_pipeline(transform, items, **options):
    """Runs ``transform``; returns (sorted out, sorted filtered, counters by name)."""
    out, filtered = [], []
    p = beam.Pipeline(options=PipelineOptions([], **options))
    result_pcolls = p | beam.Create(items) | transform
    key = id(out)
    _SINKS[key] = (out, filtered)
    _ = result_pcolls.out | "CollectOut" >> beam.Map(_collect, key, 0)
    _ = result_pcolls.filtered | "CollectFiltered" >> beam.Map(_collect, key, 1)
    result = p.run()
    result.wait_until_finish()
    del _SINKS[key]
    counters = {}
    for c in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        counters[c.key.metric.name] = counters.get(c.key.metric.name, 0) + (c.committed or 0)
    return sorted(out), sorted(filtered), counters


# --- merging ------------------------------------------------------------------------------

def test_merge_representative_weight_sources_examples():
    a = tpl("id_b", "what is <fi>a city</fi>?", 3, ["s2"])
    b = tpl("id_a", "what is <fi> a city </fi>", 3, ["s1", "s3"])
    c = tpl("id_c", "What is <fi>A city</fi>", 1, ["s1"])
    merged = merge_templates([a, b, c])
    assert merged.template_id == "id_a"  # tie on weight 3: smaller id
    assert merged.weight == 7 and merged.sources == ["s1", "s2", "s3"]
    assert merged.examples[:2] == b.examples  # representative's own first
    assert merged.examples[2:] == [Example("query for id_b", "s2"), Example("query for id_c", "s1")]
    assert merge_templates([c, tpl("id_z", "x", 9)]).template_id == "id_z"


def test_merge_caps_and_dedupes_examples():
    rep = tpl("r", "t", 10, examples=[Example("same", "s1")])
    other = tpl("o", "t", 1, examples=[Example("same", "s1")] + [Example(f"e{i}", "s") for i in range(9, -1, -1)])
    merged = merge_templates([other, rep])
    assert merged.examples == [Example("same", "s1")] + [Example(f"e{i}", "s") for i in range(4)]


def test_merge_embedded_keeps_representative_embedding():
    a = emb(tpl("a", "x", 1), at_angle(0))
    b = emb(tpl("b", "x", 5), at_angle(10))
    merged = merge_templates([a, b])
    assert merged.embedding == b.embedding and merged.template.weight == 6


def test_combine_fn_is_order_and_split_independent():
    rng = random.Random(5)
    items = [tpl(f"id{i:02d}", "t", rng.randint(1, 4), rng.sample(["a", "b", "c", "d"], rng.randint(1, 3)),
                 [Example(f"q{rng.randint(0, 30)}", "a") for _ in range(rng.randint(0, 3))]) for i in range(14)]
    fn = MergeTemplates()
    expected = combine(fn, [items])
    assert expected == merge_templates(items) and len(expected.examples) == 5
    for _ in range(25):
        shuffled = items[:]
        rng.shuffle(shuffled)
        cuts = sorted(rng.sample(range(1, len(shuffled)), 3))
        parts = [shuffled[i:j] for i, j in zip([0] + cuts, cuts + [len(shuffled)])] + [[]]
        assert combine(fn, parts) == expected


# --- config and k-means -------------------------------------------------------------------

def test_config_validation():
    cfg = SemanticDedupeConfig()
    assert cfg.validate() is cfg
    bad = [dict(threshold=0.0), dict(threshold=1.1), dict(partition_size=0), dict(kmeans_sample=0),
           dict(kmeans_iters=-1), dict(assign_top=0), dict(max_rounds=0)]
    for kwargs in bad:
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            SemanticDedupeConfig(**kwargs).validate()
    with pytest.raises(ValueError, match="threshold"):
        SemanticDedupe(SemanticDedupeConfig(threshold=2.0))


def test_train_kmeans_deterministic_unit_norm_and_separates_blobs():
    rng = np.random.default_rng(0)
    centres = np.eye(DIM, dtype=np.float32)[:3]
    x = np.concatenate([c + 0.05 * rng.standard_normal((40, DIM)) for c in centres]).astype(np.float32)
    c1 = train_kmeans(x, 3, seed=7, iters=20)
    c2 = train_kmeans(x.copy(), 3, seed=7, iters=20)
    assert c1.shape == (3, DIM) and c1.dtype == np.float32
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_allclose(np.linalg.norm(c1, axis=1), 1.0, rtol=1e-5)
    assert sorted(np.argmax(c1 @ centres.T, axis=1).tolist()) == [0, 1, 2]  # one centroid per blob


def test_train_kmeans_k_at_least_n_and_duplicates():
    x = np.stack([at_angle(0) * 3, at_angle(90)])
    np.testing.assert_allclose(train_kmeans(x, 5, seed=1, iters=10), np.stack([at_angle(0), at_angle(90)]), atol=1e-6)
    dupes = np.stack([at_angle(0)] * 6 + [at_angle(90)])
    c = train_kmeans(dupes, 3, seed=3, iters=10)  # an empty cluster must be reseeded, not NaN
    assert c.shape == (3, DIM) and np.all(np.isfinite(c))
    with pytest.raises(ValueError):
        train_kmeans(x, 0, seed=1, iters=1)


def test_similar_pairs_blocked_matches_full():
    rng = np.random.default_rng(1)
    base = rng.standard_normal((5, DIM))
    x = np.concatenate([base, base + 0.1 * rng.standard_normal((5, DIM))]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = [f"n{i:02d}" for i in range(len(x))]
    full = sorted(similar_pairs(ids, x, 0.9, block=len(x)))
    assert full and sorted(similar_pairs(ids, x, 0.9, block=3)) == full
    assert all(a < b for a, b in full)


# --- exact dedupe transform ---------------------------------------------------------------

def test_exact_template_dedupe_merges_normalized_duplicates():
    a = tpl("t1", "What is <fi>a city</fi>?", 2, ["reddit"])
    b = tpl("t2", "what is <fi> a city </fi>", 5, ["quora"])
    other = tpl("t3", "how to cook <fi>a dish</fi>", 1, ["reddit"])
    expected_out = [merge_templates([a, b]), other]
    assert expected_out[0].template_id == "t2" and expected_out[0].weight == 7
    with TestPipeline() as p:
        res = p | beam.Create([a, b, other]) | ExactTemplateDedupe()
        assert_that(res.out, equal_to(expected_out), label="Out")
        expected_filtered = [Filtered("template_exact_dedupe", "duplicate_template", a.template, "reddit")]
        assert_that(res.filtered, equal_to(expected_filtered), label="Filtered")


def test_exact_template_dedupe_counters():
    items = [tpl(f"t{i}", f"what is <fi>thing {i % 3}</fi>" + ("?" if i % 2 else ""), i + 1) for i in range(7)]
    out, filtered, counters = run_pipeline(ExactTemplateDedupe(stage="x"), items)
    assert len(out) == 3 and len(filtered) == 4
    assert sum(t.weight for t in out) == sum(t.weight for t in items)
    assert counters["x|in"] == 7 and counters["x|out"] == 3 and counters["x|filtered|duplicate_template"] == 4


# --- semantic dedupe transform ------------------------------------------------------------

def test_semantic_dedupe_near_and_distinct():
    a = emb(tpl("a", "what is <fi>a city</fi>", 4, ["s1"]), at_angle(0))
    b = emb(tpl("b", "which is <fi>a city</fi>", 1, ["s2"]), at_angle(math.degrees(math.acos(0.99))))
    c = emb(tpl("c", "how to cook <fi>a dish</fi>", 2, ["s3"]), at_angle(math.degrees(math.acos(0.2))))
    out, filtered, counters = run_pipeline(SemanticDedupe(), [a, b, c])
    assert [et.template.template_id for et in out] == ["a", "c"]
    merged = out[0]
    assert merged.embedding == a.embedding
    assert merged.template.weight == 5 and merged.template.sources == ["s1", "s2"]
    assert merged.template.examples == [Example("query for a", "s1"), Example("query for b", "s2")]
    assert all(et.template.cluster_id == 0 for et in out)  # k = ceil(3 / 2000) = 1
    assert filtered == [Filtered("semantic_dedupe", "semantic_duplicate", b.template.template, "s2")]
    assert counters["semantic_dedupe|in"] == 3 and counters["semantic_dedupe|out"] == 2
    assert counters["semantic_dedupe|filtered|semantic_duplicate"] == 1
    assert counters["semantic_dedupe|candidate_pairs"] == 1 and counters["semantic_dedupe|compared_pairs"] == 3


def test_semantic_dedupe_transitive_chain():
    # cos(A, B) = cos(B, C) = cos 20deg = 0.94 >= 0.9; cos(A, C) = cos 40deg = 0.77 < 0.9.
    a, b, c = (emb(tpl(name, f"template {name}", 1, [f"src_{name}"]), at_angle(deg))
               for name, deg in (("a", 0), ("b", 20), ("c", 40)))
    far = emb(tpl("d", "template d", 1, ["src_d"]), unit(0, 0, 1))
    out, filtered, counters = run_pipeline(SemanticDedupe(), [c, far, b, a])
    assert [et.template.template_id for et in out] == ["a", "d"]
    assert out[0].template.weight == 3 and out[0].template.sources == ["src_a", "src_b", "src_c"]
    assert [f.text for f in filtered] == ["template b", "template c"]
    assert {f.reason for f in filtered} == {"semantic_duplicate"}
    assert counters["semantic_dedupe|in"] == counters["semantic_dedupe|out"] + \
        counters["semantic_dedupe|filtered|semantic_duplicate"] == 4


def test_semantic_dedupe_empty_input():
    out, filtered, _ = run_pipeline(SemanticDedupe(), [])
    assert out == [] and filtered == []


def _random_topics(seed=3):
    """Topic blobs, each with a few near-duplicate templates and some loose relatives."""
    rng = np.random.default_rng(seed)
    items, i = [], 0
    for _ in range(6):
        centre = rng.standard_normal(DIM)
        for noise in (0.02, 0.03, 0.3, 0.5, 0.05):
            v = centre / np.linalg.norm(centre) + noise * rng.standard_normal(DIM)
            items.append(emb(tpl(f"t{i:03d}", f"template {i}", int(rng.integers(1, 5)), [f"s{i % 3}"]),
                             (v / np.linalg.norm(v)).astype(np.float32)))
            i += 1
    return items


def test_semantic_dedupe_same_output_for_one_and_two_workers():
    items = _random_topics()
    cfg = SemanticDedupeConfig(threshold=0.95, partition_size=5, kmeans_sample=20)
    one = run_pipeline(SemanticDedupe(cfg), items, direct_num_workers=1)
    two = run_pipeline(SemanticDedupe(cfg), items[::-1], direct_num_workers=2, direct_running_mode="multi_threading")
    assert one[0] == two[0] and one[1] == two[1]
    out, filtered, counters = one
    assert filtered and len(out) + len(filtered) == len(items)
    assert sum(et.template.weight for et in out) == sum(et.template.weight for et in items)
    k = math.ceil(len(items) / cfg.partition_size)
    assert {et.template.cluster_id for et in out} <= set(range(k)) and len({et.template.cluster_id for et in out}) > 1
    for _, _, c in (one, two):
        assert c["semantic_dedupe|in"] == len(items)
        assert c["semantic_dedupe|in"] == c["semantic_dedupe|out"] + c["semantic_dedupe|filtered|semantic_duplicate"]


def test_exact_template_dedupe_same_content_hash_ids_are_counted():
    """Genericized templates get content-hash ids, so exact duplicates share one id."""
    same = [Template("h1", "what is <fi>a city</fi>", "d", 1, w, [f"s{w}"], [Example(f"q{w}", f"s{w}")])
            for w in (1, 2, 3)]
    p = TestPipeline()
    res = p | beam.Create(same) | ExactTemplateDedupe()
    assert_that(res.out | beam.Map(lambda t: (t.template_id, t.weight, tuple(t.sources))),
                equal_to([("h1", 6, ("s1", "s2", "s3"))]), label="out")
    assert_that(res.filtered | beam.Map(lambda f: f.reason),
                equal_to(["duplicate_template"] * 2), label="filtered")
    result = p.run()
    result.wait_until_finish()
    counters = {c.key.metric.name: c.committed
                for c in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]}
    assert counters["template_exact_dedupe|in"] == 3
    assert counters["template_exact_dedupe|out"] == 1
    assert counters["template_exact_dedupe|filtered|duplicate_template"] == 2


def test_representative_is_order_independent_when_ids_tie():
    """Exact-template duplicates share their content-hash id: the choice must not follow input order."""
    ties = [Template("h1", "how do <fi>x</fi> work", "d", 1, 1, ["s"], [Example(q, "s")])
            for q in ("how do tides work", "how do vaccines work", "how do solar panels work")]
    results = [merge_templates(order) for order in (ties, ties[::-1], ties[1:] + ties[:1])]
    assert results[0] == results[1] == results[2]
    assert results[0].examples[0] == Example("how do solar panels work", "s") and results[0].weight == 3
