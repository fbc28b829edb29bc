"""End-to-end runs of the pipeline job: bundled sample documents, and shared Wikipedia articles."""
import collections
import glob
import itertools
import json
import pathlib

import pytest

from pipeline.job import STAGES, read_pairs, run
from pipeline.grounding import library_template_ids, read_documents, ungrounded

REPO = pathlib.Path(__file__).resolve().parent.parent
SAMPLE_DOCS = REPO / "sample_data" / "documents"

pytestmark = pytest.mark.e2e


def _jsonl(pattern):
    rows = []
    for path in sorted(glob.glob(str(pattern))):
        rows += [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    return rows


def assert_grounded(pairs, docs, library):
    """Every pair traces to its document and template, excerpts are verbatim, no tag is left."""
    assert pairs
    assert ungrounded(pairs, docs, library_template_ids(str(library))) == {}


@pytest.fixture(scope="module")
def sample_pairs_run(sample_library, tmp_path_factory):
    library, _ = sample_library
    out = tmp_path_factory.mktemp("pairs") / "out"
    report = run(["--documents", str(SAMPLE_DOCS / "*.jsonl"), "--templates", str(library), "--output", str(out),
                  "--augmented_corpus"])
    return library, out, report


def test_sample_run_accounts_for_every_document(sample_pairs_run):
    library, out, report = sample_pairs_run
    assert report["conservation_ok"], report
    # --augmented_corpus adds one chained stage: every deduplicated document is augmented.
    assert all(c["ok"] for c in report["chain"]) and len(report["chain"]) == len(STAGES)
    stages = {s["stage"]: s for s in report["stages"]}
    lines = sum(1 for f in SAMPLE_DOCS.glob("*.jsonl") for line in f.read_text("utf-8").splitlines() if line.strip())
    assert stages["read"]["in"] == lines == 36
    # The planted bad lines: malformed JSON, missing / empty / non-string text, a duplicate,
    # a five-word document.
    assert stages["read"]["dead_letters_by_reason"] == {"invalid_json": 1, "missing_field": 1,
                                                         "empty_text": 1, "wrong_type": 1}
    assert stages["dedupe_documents"]["filtered_by_reason"] == {"duplicate_document": 1}
    assert stages["filter_documents"]["filtered_by_reason"] == {"too_short": 1}
    dead = _jsonl(out / "dead_letters" / "*.jsonl")
    assert len(dead) == 4 and all(d["reason"] and d["locator"] for d in dead)
    filtered = _jsonl(out / "filtered" / "*.jsonl")
    total_filtered = sum(s["filtered"] for s in report["stages"])
    assert len(filtered) == total_filtered


def test_sample_pairs_are_grounded(sample_pairs_run):
    library, out, report = sample_pairs_run
    pairs = read_pairs(str(out))
    # The extractive instantiator keeps a pair only when a sentence answers the filled request
    # (issue 11): few of the sample's how-to documents do; its factoid documents do.
    assert len(pairs) >= 3 and len({p["doc_id"] for p in pairs}) >= 2
    assert_grounded(pairs, read_documents(str(SAMPLE_DOCS / "*.jsonl")), library)
    parquet = sorted(glob.glob(str(out / "pairs" / "*.parquet")))
    import pyarrow.parquet as pq
    assert sorted(pq.read_table(parquet).to_pylist(), key=lambda r: r["pair_id"]) == pairs


def test_augmented_corpus_holds_every_document_followed_by_its_pairs(sample_pairs_run):
    _, out, report = sample_pairs_run
    stages = {s["stage"]: s for s in report["stages"]}
    augmented = _jsonl(out / "augmented" / "*.jsonl")
    assert stages["augment"]["in"] == stages["augment"]["out"] == stages["dedupe_documents"]["out"] == len(augmented)
    docs = read_documents(str(SAMPLE_DOCS / "*.jsonl"))
    pairs = read_pairs(str(out))
    by_doc = {a["doc_ids"][0]: a for a in augmented}
    for doc_id, a in by_doc.items():
        assert a["text"].startswith(docs[doc_id])
        assert a["num_pairs"] == sum(p["doc_id"] == doc_id for p in pairs)
    for p in pairs:
        text = by_doc[p["doc_id"]]["text"][len(docs[p["doc_id"]]):]
        assert p["instruction"] in text and p["answer"] in text


def test_rerun_is_byte_identical_with_two_workers(sample_pairs_run, tmp_path):
    library, out, _ = sample_pairs_run
    other = tmp_path / "out"
    run(["--documents", str(SAMPLE_DOCS / "*.jsonl"), "--templates", str(library), "--output", str(other),
         "--direct_num_workers", "2", "--direct_running_mode", "multi_threading", "--augmented_corpus"])
    for sub in ("pairs", "augmented"):
        names = sorted(p.name for p in (out / sub).iterdir())
        assert names == sorted(p.name for p in (other / sub).iterdir())
        for name in names:
            assert (out / sub / name).read_bytes() == (other / sub / name).read_bytes(), name


def test_library_from_another_model_is_refused(sample_library, tmp_path):
    library, _ = sample_library
    with pytest.raises(ValueError, match="embedding model"):
        run(["--documents", str(SAMPLE_DOCS / "*.jsonl"), "--templates", str(library), "--output",
             str(tmp_path / "o"), "--embedding_model", "some/other-model"])


def test_200_wikipedia_articles(real_library, shared_data, tmp_path):
    library, _ = real_library
    docs_dir = tmp_path / "docs"
    docs_dir.mkdir()
    lines = []
    for path in sorted((shared_data / "documents" / "wikipedia").glob("wiki_*.jsonl")):
        lines += list(itertools.islice(open(path, encoding="utf-8"), 9))
    lines = lines[:200]
    (docs_dir / "articles.jsonl").write_text("".join(lines), encoding="utf-8")
    out = tmp_path / "out"
    # 100 templates tried per document instead of 400 keeps this test's time in CI's budget; the
    # full default run over all 1,534 articles is benchmarks/pair_quality.py (docs/benchmarks.md).
    report = run(["--documents", str(docs_dir / "*.jsonl"), "--templates", str(library), "--output", str(out),
                  "--templates_per_document", "100"])
    assert report["conservation_ok"], report
    stages = {s["stage"]: s for s in report["stages"]}
    assert stages["read"]["in"] == 200
    pairs = read_pairs(str(out))
    # precision first: a pair only where a sentence answers the request (25 at 5927c60; 18 at session 9's
    # code, which declines bare surnames the article does not resolve and templates with split names)
    assert len(pairs) >= 15
    assert_grounded(pairs, read_documents(str(docs_dir / "*.jsonl")), library)
    per_template = collections.Counter(p["template_id"] for p in pairs)
    assert max(per_template.values()) <= max(3, len(pairs) // 100)   # --max_template_share 0.01
