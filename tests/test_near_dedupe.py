"""NearDedupe: config checks, the cluster CombineFn, and whole-transform behaviour on planted data."""
import glob
import hashlib
import random

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from templates_mining.minhash import (
    estimated_jaccard, make_permutations, minhash_signatures, tokenize_for_shingles, word_shingles)
from templates_mining.near_dedupe import MergeCluster, NearDedupe, NearDedupeConfig
from transforms.accounting import NAMESPACE
from transforms.records import Example, Filtered, QueryCluster, UniqueQuery

# Looser than the defaults: more bands of fewer rows (LSH threshold ~0.35) and unigrams,
# so "whats the capital of france" (unigram Jaccard 4/7 with the plain form) is found.
LOOSE = NearDedupeConfig(num_perm=128, bands=64, rows=2, shingle_size=1, threshold=0.45)


def uq(text, count=1, sources=("s1",), query_id=None):
    qid = query_id or hashlib.sha1(text.encode()).hexdigest()[:16]
    return UniqueQuery(qid, text, count, sorted(sources), [Example(text, s) for s in sorted(sources)])


def run_near(queries, config, tmp_path, name="run", **options):
    """Runs NearDedupe; returns (sorted clusters, sorted filtered, counters by name).

    Outputs go through files (repr per line) so multi-process runs are read the same way.
    """
    out_dir = tmp_path / name
    p = beam.Pipeline(options=PipelineOptions([], **options))
    result_pcolls = p | beam.Create(queries) | NearDedupe(config)
    _ = result_pcolls.out | "WriteOut" >> beam.Map(repr) | "OutFile" >> beam.io.WriteToText(str(out_dir / "out"))
    _ = result_pcolls.filtered | "WriteF" >> beam.Map(repr) | "FFile" >> beam.io.WriteToText(str(out_dir / "filtered"))
    result = p.run()
    result.wait_until_finish()
    names = {"QueryCluster": QueryCluster, "UniqueQuery": UniqueQuery, "Example": Example, "Filtered": Filtered}

    def read(prefix):
        lines = []
        for path in glob.glob(str(out_dir / f"{prefix}*")):
            with open(path) as f:
                lines.extend(line.rstrip("\n") for line in f if line.strip())
        return sorted(eval(line, names) for line in lines)  # noqa: S307 - our own reprs

    counters = {}
    for c in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        counters[c.key.metric.name] = counters.get(c.key.metric.name, 0) + (c.committed or 0)
    return read("out"), read("filtered"), counters


# --- config -----------------------------------------------------------------------------

def test_config_validation():
    cfg = NearDedupeConfig()
    assert cfg.validate() is cfg
    assert cfg.theoretical_threshold() == pytest.approx((1 / 16) ** (1 / 8))
    bad = [dict(bands=20, rows=8), dict(threshold=0.0), dict(threshold=1.5), dict(num_perm=0),
           dict(shingle_size=0), dict(rows=0), dict(max_rounds=0)]
    for kwargs in bad:
        with pytest.raises(ValueError):
            NearDedupeConfig(**kwargs).validate()
    with pytest.raises(ValueError, match="bands \\* rows"):
        NearDedupe(NearDedupeConfig(num_perm=64))


# --- MergeCluster -----------------------------------------------------------------------

def combine(fn, parts):
    accs = []
    for part in parts:
        acc = fn.create_accumulator()
        for q in part:
            acc = fn.add_input(acc, q)
        accs.append(acc)
    return fn.extract_output(fn.merge_accumulators(accs))


def test_merge_cluster_representative_and_totals():
    a = uq("what is the capital of france", 5, ["s1"], "id_c")
    b = uq("what is the capital of france ?", 3, ["s2"], "id_a")
    c = uq("whats the capital of france", 1, ["s3", "s1"], "id_b")
    out = combine(MergeCluster(), [[a, b, c]])
    assert out.representative == a
    assert (out.cluster_key, out.count, out.size, out.sources) == ("id_a", 9, 3, ["s1", "s2", "s3"])
    # Representative's examples first, then other members' by smallest query_id.
    assert out.examples[0] == Example(a.text, "s1")
    assert [e.text for e in out.examples[1:]] == [b.text, c.text, c.text]


def test_merge_cluster_tie_breaks():
    long_ = uq("a longer query text", 4, query_id="id1")
    short = uq("short text", 4, query_id="id9")
    assert combine(MergeCluster(), [[long_, short]]).representative == short
    same_len_x = uq("xxxx", 2, query_id="id5")
    same_len_y = uq("yyyy", 2, query_id="id3")
    assert combine(MergeCluster(), [[same_len_x, same_len_y]]).representative == same_len_y


def test_merge_cluster_is_order_and_split_independent():
    rng = random.Random(3)
    queries = [uq(f"query number {i} " + "x" * rng.randint(0, 5), rng.randint(1, 4),
                  rng.sample(["a", "b", "c", "d"], rng.randint(1, 3))) for i in range(12)]
    fn = MergeCluster()
    expected = combine(fn, [queries])
    assert len(expected.examples) == 5
    for _ in range(20):
        shuffled = queries[:]
        rng.shuffle(shuffled)
        cuts = sorted(rng.sample(range(1, len(shuffled)), 3))
        parts = [shuffled[i:j] for i, j in zip([0] + cuts, cuts + [len(shuffled)])] + [[]]
        assert combine(fn, parts) == expected


# --- the transform ----------------------------------------------------------------------

def test_planted_near_duplicates_merge_with_right_representative(tmp_path):
    plain = uq("what is the capital of france", 5, ["reddit"])
    spaced = uq("what is the capital of france ?", 3, ["quora"])
    whats = uq("whats the capital of france", 2, ["forum", "reddit"])
    others = [uq("how do i bake sourdough bread at home", 4), uq("best running shoes for flat feet", 1),
              uq("???", 1), uq("!!!", 1)]  # no word tokens: never similar to anything
    clusters, filtered, counters = run_near([plain, spaced, whats] + others, LOOSE, tmp_path)

    merged = [c for c in clusters if c.size > 1]
    assert len(merged) == 1
    cluster = merged[0]
    assert cluster.representative == plain
    assert (cluster.count, cluster.size) == (10, 3)
    assert cluster.sources == ["forum", "quora", "reddit"]
    assert cluster.cluster_key == min(q.query_id for q in (plain, spaced, whats))
    assert cluster.examples[0] == Example(plain.text, "reddit")
    assert {c.representative.text for c in clusters if c.size == 1} == {q.text for q in others}
    assert all(c.cluster_key == c.representative.query_id for c in clusters if c.size == 1)

    assert filtered == sorted([Filtered("near_dedupe", "near_duplicate", spaced.text, "quora"),
                               Filtered("near_dedupe", "near_duplicate", whats.text, "forum,reddit")])
    assert counters["near_dedupe|in"] == 7
    assert counters["near_dedupe|out"] == len(clusters) == 5
    assert counters["near_dedupe|filtered|near_duplicate"] == 2
    assert counters["near_dedupe|in"] == counters["near_dedupe|out"] + counters["near_dedupe|filtered|near_duplicate"]
    assert counters["near_dedupe|verified_pairs"] >= 2
    assert counters["near_dedupe|candidate_pairs"] >= counters["near_dedupe|verified_pairs"]
    assert counters.get("near_dedupe|cc|unconverged_nodes", 0) == 0


def test_default_config_merges_token_identical_but_not_loose_paraphrase(tmp_path):
    # Bigram Jaccard of "whats the ..." with the plain form is 3/6 = 0.5 < 0.7.
    queries = [uq("what is the capital of france", 2), uq("What is the capital of France ?", 1),
               uq("whats the capital of france", 1)]
    clusters, filtered, _ = run_near(queries, NearDedupeConfig(), tmp_path)
    assert sorted(c.size for c in clusters) == [1, 2]
    assert [f.text for f in filtered] == ["What is the capital of France ?"]


def test_transitive_chain_merges(tmp_path):
    words = [f"w{i}" for i in range(50)]
    # Unigram Jaccard: A~B = B~C = 35/45 = 0.78, A~C = 30/50 = 0.6 (below the 0.7 threshold).
    a, b, c = (uq(" ".join(words[s:s + 40]), 1, [f"src{s}"]) for s in (0, 5, 10))
    unrelated = uq("completely different words here", 1)
    cfg = NearDedupeConfig(num_perm=256, bands=64, rows=4, shingle_size=1, threshold=0.7)
    sig_a, _, sig_c = minhash_signatures([word_shingles(t, 1) for t in tokenize_for_shingles([a.text, b.text, c.text])],
                                         make_permutations(cfg.num_perm, cfg.seed))
    assert estimated_jaccard(sig_a, sig_c) < cfg.threshold  # A and C only meet through B
    clusters, filtered, counters = run_near([a, b, c, unrelated], cfg, tmp_path)
    assert sorted(cl.size for cl in clusters) == [1, 3]
    chain = next(cl for cl in clusters if cl.size == 3)
    assert chain.cluster_key == min(a.query_id, b.query_id, c.query_id)
    assert chain.sources == ["src0", "src10", "src5"]
    assert len(filtered) == 2 and counters["near_dedupe|in"] == 4


def test_same_output_for_one_and_two_workers(tmp_path):
    rng = random.Random(11)
    vocab = [f"v{i}" for i in range(60)]
    base = [rng.sample(vocab, 8) for _ in range(15)]
    queries, seen = [], set()
    for words in base:
        for variant in range(rng.randint(1, 4)):
            w = words[:]
            if variant:
                w[rng.randrange(len(w))] = rng.choice(vocab)
            text = " ".join(w)
            if text not in seen:
                seen.add(text)
                queries.append(uq(text, rng.randint(1, 9), [rng.choice(["a", "b", "c"])]))
    cfg = NearDedupeConfig(bands=32, rows=4, shingle_size=1, threshold=0.6)
    one = run_near(queries, cfg, tmp_path, "one", direct_num_workers=1)
    two = run_near(queries, cfg, tmp_path, "two", direct_num_workers=2, direct_running_mode="multi_processing")
    assert one[0] == two[0] and one[1] == two[1]
    assert any(c.size > 1 for c in one[0])
    for _, _, counters in (one, two):
        assert counters["near_dedupe|in"] == len(queries)
        assert counters["near_dedupe|in"] == counters["near_dedupe|out"] + counters["near_dedupe|filtered|near_duplicate"]
