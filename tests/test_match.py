"""Tests for pipeline.match: candidates, tag distributions, seeded weighted sampling, library checks."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.match import (Candidate, LoadedLibrary, bucket, candidates, check_library_matches,
                            library_tag_distribution, match_document, parse_tag_distribution, sample_templates,
                            seeded_rng)
from transforms.accounting import Rejected

# --- candidates ----------------------------------------------------------------------


def test_candidates_threshold_is_strict():
    rows = np.array([[0, 1, 2]])
    scores = np.array([[0.5, 0.50001, 0.9]], dtype=np.float32)
    got = candidates(rows, scores, 0.5)
    assert [c.row for c in got] == [1, 2]
    assert got[0].chunk == 0
    assert got[1].score == pytest.approx(0.9)


def test_candidates_best_score_per_row_with_its_chunk():
    rows = np.array([[5, 3, 7],
                     [3, 5, -1],
                     [7, 9, 3]])
    scores = np.array([[0.6, 0.55, 0.9],
                       [0.8, 0.4, 0.99],
                       [0.7, 0.3, 0.81]])
    got = candidates(rows, scores, 0.5)
    assert got == [Candidate(3, 2, 0.81), Candidate(5, 0, 0.6), Candidate(7, 0, 0.9)]
    assert all(isinstance(c.row, int) and isinstance(c.score, float) for c in got)


def test_candidates_equal_scores_keep_first_chunk():
    rows = np.array([[4], [4]])
    scores = np.array([[0.7], [0.7]])
    assert candidates(rows, scores, 0.1) == [Candidate(4, 0, 0.7)]


def test_candidates_negative_rows_ignored_and_empty():
    rows = np.array([[-1, -1], [-1, 2]])
    scores = np.array([[0.99, 0.98], [0.97, 0.2]])
    assert candidates(rows, scores, 0.3) == []
    assert candidates(rows, scores, 0.1) == [Candidate(2, 1, 0.2)]


# --- tag distributions --------------------------------------------------------------


def test_parse_tag_distribution_normalises_and_sorts():
    assert parse_tag_distribution("3:3,1:1") == {1: 0.25, 3: 0.75}
    dist = parse_tag_distribution("1:0.4,2:0.3,3:0.3")
    assert list(dist) == [1, 2, 3]
    assert dist == pytest.approx({1: 0.4, 2: 0.3, 3: 0.3})
    assert parse_tag_distribution("2:5") == {2: 1.0}
    assert parse_tag_distribution("1:1, 2:0") == {1: 1.0, 2: 0.0}


@pytest.mark.parametrize("spec", ["", "library", "1", "1:0.5,2", "a:1", "1:x", "1:2:3", "1:0.5,,2:0.5"])
def test_parse_tag_distribution_malformed(spec):
    with pytest.raises(ValueError, match="expected 'library' or 'tags:share"):
        parse_tag_distribution(spec)


@pytest.mark.parametrize("spec", ["0:1", "-1:1,2:1", "1:-0.5,2:1", "1:0,2:0"])
def test_parse_tag_distribution_bad_values(spec):
    with pytest.raises(ValueError, match="tag counts must be >= 1"):
        parse_tag_distribution(spec)


def test_library_tag_distribution_weights_by_source_queries():
    dist = library_tag_distribution([1, 1, 2, 3], [3, 0, 4, 1])  # weight 0 counts as 1
    assert list(dist) == [1, 2, 3]
    assert dist == pytest.approx({1: 4 / 9, 2: 4 / 9, 3: 1 / 9})
    assert library_tag_distribution([2], [10]) == {2: 1.0}


@pytest.mark.parametrize("num_tags, expected", [(1, 1), (2, 2), (3, 3), (4, 3), (10, 3)])
def test_bucket_top_key_takes_larger_counts(num_tags, expected):
    assert bucket(num_tags, {1: 0.4, 2: 0.3, 3: 0.3}) == expected


def test_bucket_below_smallest_key_and_gaps():
    dist = {2: 0.5, 4: 0.5}
    assert bucket(1, dist) == 2
    assert bucket(0, dist) == 2
    assert bucket(3, dist) == 3  # a gap keeps its own count: not a key, so weight 0 when sampling
    assert bucket(7, dist) == 4


# --- seeded_rng ----------------------------------------------------------------------


def test_seeded_rng_stable_and_key_dependent():
    a = seeded_rng(0, "doc-1").random(4)
    assert np.array_equal(a, seeded_rng(0, "doc-1").random(4))
    assert not np.array_equal(a, seeded_rng(1, "doc-1").random(4))
    assert not np.array_equal(a, seeded_rng(0, "doc-2").random(4))
    # No separator ambiguity: (1, "2x") and (12, "x") differ.
    assert not np.array_equal(seeded_rng(1, "2x").random(2), seeded_rng(12, "x").random(2))


def test_seeded_rng_pinned_value():
    """The stream is a function of sha256(seed NUL key) only (stable across processes and versions)."""
    import hashlib

    digest = hashlib.sha256(b"7\x00abc").digest()
    expected = np.random.default_rng(int.from_bytes(digest[:8], "little")).integers(0, 1 << 30, 3)
    assert np.array_equal(seeded_rng(7, "abc").integers(0, 1 << 30, 3), expected)


# --- sample_templates ----------------------------------------------------------------


def _cands(n):
    return [Candidate(row=i, chunk=i % 3, score=0.5 + i / 100) for i in range(n)]


def test_sample_templates_deterministic_for_same_seed():
    cands, tags = _cands(10), [1, 2, 3, 1, 2, 3, 1, 2, 3, 4]
    dist = {1: 0.4, 2: 0.3, 3: 0.3}
    first = sample_templates(cands, tags, dist, 4, seeded_rng(3, "doc"))
    assert len(first) == 4
    assert len({c.row for c in first}) == 4  # without replacement
    for _ in range(3):
        assert sample_templates(cands, tags, dist, 4, seeded_rng(3, "doc")) == first
    others = {tuple(c.row for c in sample_templates(cands, tags, dist, 4, seeded_rng(3, f"doc{i}")))
              for i in range(20)}
    assert len(others) > 1


def test_sample_templates_never_returns_zero_weight_buckets():
    cands = _cands(6)
    tags = [1, 2, 2, 3, 1, 2]
    dist = {1: 0.5, 3: 0.5}  # 2 lies in a gap: weight 0
    for seed in range(50):
        picked = sample_templates(cands, tags, dist, 6, seeded_rng(seed, "d"))
        assert sorted(c.row for c in picked) == [0, 3, 4]
    zero_share = {1: 1.0, 2: 0.0, 3: 0.0}
    for seed in range(50):
        picked = sample_templates(cands, tags, zero_share, 3, seeded_rng(seed, "d"))
        assert sorted(c.row for c in picked) == [0, 4]


def test_sample_templates_n_larger_than_candidates():
    cands = _cands(5)
    tags = [1, 1, 2, 3, 5]
    picked = sample_templates(cands, tags, {1: 0.2, 2: 0.3, 3: 0.5}, 50, np.random.default_rng(0))
    assert sorted(picked) == cands  # 5 tags falls in the top bucket (3)


def test_sample_templates_empty_and_nonpositive_n():
    assert sample_templates([], [], {1: 1.0}, 3, np.random.default_rng(0)) == []
    assert sample_templates(_cands(3), [1, 1, 1], {1: 1.0}, 0, np.random.default_rng(0)) == []
    # With target {1: 1.0}, 2-tag templates fall in the top bucket (1) and are drawn.
    assert sorted(sample_templates(_cands(2), [2, 2], {1: 1.0}, 3, np.random.default_rng(0))) == _cands(2)


def test_sample_templates_all_in_unlisted_buckets_returns_nothing():
    # Tag counts 2 with target {1, 3}: every candidate has weight 0.
    assert sample_templates(_cands(3), [2, 2, 2], {1: 0.5, 3: 0.5}, 3, np.random.default_rng(0)) == []


def test_sample_templates_follows_target_not_candidate_counts():
    cands = _cands(10)
    tags = [1] * 8 + [3] * 2
    dist = {1: 0.5, 3: 0.5}
    draws = 3000
    three = sum(tags[sample_templates(cands, tags, dist, 1, seeded_rng(11, f"doc-{i}"))[0].row] == 3
                for i in range(draws))
    share = three / draws
    assert abs(share - 0.5) < 0.05, share  # uniform over candidates would give 2/10 = 0.2
    # Within the 3-tag bucket the two templates are picked equally often.
    rows = [sample_templates(cands, tags, dist, 1, seeded_rng(11, f"doc-{i}"))[0].row for i in range(draws)]
    assert abs(rows.count(8) - rows.count(9)) < 0.1 * three


def test_sample_templates_is_reproducible_as_a_whole():
    cands, tags = _cands(10), [1] * 8 + [3] * 2
    run = lambda: [sample_templates(cands, tags, {1: 0.5, 3: 0.5}, 2, seeded_rng(5, f"d{i}"))  # noqa: E731
                   for i in range(100)]
    assert run() == run()


# --- check_library_matches -----------------------------------------------------------


MANIFEST = {"embedding": {"name": "model-a", "dimension": 384, "pooling": "mean"}}


def test_check_library_matches_passes():
    assert check_library_matches(MANIFEST, "model-a") is None
    assert check_library_matches(MANIFEST, "model-a", {"dimension": 384, "pooling": "mean", "extra": 1}) is None


def test_check_library_matches_name_mismatch():
    with pytest.raises(ValueError) as err:
        check_library_matches(MANIFEST, "model-b")
    msg = str(err.value)
    assert msg.startswith("template library does not match this job's embedding: ")
    assert "embedding model 'model-a' != --embedding_model 'model-b'" in msg
    assert msg.endswith("Mine the library with the same model, or pass its --embedding_model.")


def test_check_library_matches_dimension_and_pooling():
    with pytest.raises(ValueError) as err:
        check_library_matches(MANIFEST, "model-a", {"dimension": 768, "pooling": "cls"})
    msg = str(err.value)
    assert "dimension 384 != the model's 768" in msg
    assert "pooling 'mean' != the model's 'cls'" in msg
    assert "embedding model" not in msg
    with pytest.raises(ValueError, match="dimension 384 != the model's 768; pooling"):
        check_library_matches(MANIFEST, "model-a", {"dimension": 768, "pooling": "cls"})


def test_check_library_matches_missing_embedding_section():
    with pytest.raises(ValueError, match="embedding model None != --embedding_model 'model-a'"):
        check_library_matches({}, "model-a")


# --- match_document ------------------------------------------------------------------


class FakeSearcher:
    """``search(vectors, k)`` -> rows/scores of templates, scored by dot product with fixed vectors."""

    def __init__(self, template_vectors: np.ndarray):
        self.template_vectors = template_vectors
        self.calls = []

    def search(self, vectors, k):
        self.calls.append((vectors.shape, k))
        scores = vectors @ self.template_vectors.T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return order, np.take_along_axis(scores, order, axis=1)


def _library(num_tags):
    n = len(num_tags)
    tv = np.eye(n, dtype=np.float32)
    return LoadedLibrary(FakeSearcher(tv), [f"t{i}" for i in range(n)], [f"tpl {i} <fi>x</fi>" for i in range(n)],
                         [f"desc {i}" for i in range(n)], list(num_tags), [1] * n)


def test_match_document_samples_from_candidates():
    lib = _library([1, 2, 1, 3])
    vectors = np.array([[0.9, 0.1, 0.0, 0.0],     # global: template 0
                        [0.0, 0.2, 0.7, 0.0],     # chunk 1: template 2
                        [0.0, 0.0, 0.0, 0.6]], dtype=np.float32)
    picked = match_document(vectors, "doc-1", lib, {1: 0.5, 2: 0.25, 3: 0.25}, top_k=2, threshold=0.5, n=5, seed=0)
    assert sorted(picked) == [Candidate(0, 0, pytest.approx(0.9)), Candidate(2, 1, pytest.approx(0.7)),
                              Candidate(3, 2, pytest.approx(0.6))]
    assert lib.library.calls == [((3, 4), 2)]
    again = match_document(vectors, "doc-1", lib, {1: 0.5, 2: 0.25, 3: 0.25}, top_k=2, threshold=0.5, n=2, seed=0)
    assert again == match_document(vectors, "doc-1", lib, {1: 0.5, 2: 0.25, 3: 0.25}, 2, 0.5, 2, 0)
    assert len(again) == 2 and set(again) <= set(picked)


def test_match_document_nothing_above_threshold():
    lib = _library([1, 1])
    vectors = np.array([[0.3, 0.2]], dtype=np.float32)
    with pytest.raises(Rejected) as err:
        match_document(vectors, "d", lib, {1: 1.0}, top_k=2, threshold=0.4, n=1, seed=0)
    assert err.value.reason == "no_candidate_templates"
    assert err.value.detail.startswith("best cosine 0.300 <= threshold 0.4")


def test_match_document_candidates_only_in_zero_weight_buckets():
    lib = _library([2, 2])
    vectors = np.array([[0.9, 0.8]], dtype=np.float32)
    with pytest.raises(Rejected) as err:
        match_document(vectors, "d", lib, {1: 0.5, 3: 0.5}, top_k=2, threshold=0.4, n=1, seed=0)
    assert err.value.reason == "no_candidate_templates"
    assert "tag count" in err.value.detail


def test_match_document_ignores_padding_rows():
    class Padded:
        def search(self, vectors, k):
            return np.array([[-1, -1]]), np.array([[0.95, 0.9]])

    lib = LoadedLibrary(Padded(), ["t0"], ["x"], ["d"], [1], [1])
    with pytest.raises(Rejected) as err:
        match_document(np.zeros((1, 2), np.float32), "d", lib, {1: 1.0}, 2, 0.5, 1, 0)
    assert err.value.reason == "no_candidate_templates"


def test_sample_templates_temperature_prefers_the_best_matches():
    cands = [Candidate(row=i, chunk=0, score=0.3 + 0.01 * i) for i in range(20)]
    tags = [1] * 20
    picked = [sample_templates(cands, tags, {1: 1.0}, 3, np.random.default_rng(s), temperature=0.01)
              for s in range(50)]
    flat = [c.row for p in picked for c in p]
    assert np.mean(flat) > 15            # the top rows (scores 0.45-0.49) dominate the draws
    uniform = [c.row for s in range(50)
               for c in sample_templates(cands, tags, {1: 1.0}, 3, np.random.default_rng(s), temperature=0.0)]
    assert np.mean(uniform) < 13
