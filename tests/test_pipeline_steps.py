"""Tests for pipeline.steps (expansion step, pair rows), pipeline.budget.TokenBudget and
transforms.record_io.WriteSortedShards."""
from __future__ import annotations

import glob
import hashlib
import json
import os

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.budget import TokenBudget
from pipeline.records import Document, PairDraft, TemplateMatch
from pipeline.steps import (HeuristicJudgeStep, count_tokens, expand_step, load_tokenizer, pair_id, pair_record,
                            pair_text)
from pipeline.token_budget import select_within_budget
from transforms.accounting import DEAD, FILTERED, NAMESPACE, Rejected, accounted_map
from transforms.embedding import DEFAULT_EMBEDDING_MODEL
from transforms.record_io import WriteSortedShards, shard_name

DOCUMENT = ("Lisbon is the capital of Portugal. The city of Lisbon has about 545,000 residents. "
            "Its population grew after 1990.")
MATCH = TemplateMatch("tpl-1", "What is the population of <fi>a city</fi>?", "a text about a city", 1, 2, 0.73)


def draft(**kw) -> PairDraft:
    base = dict(doc_id="doc-1", document=DOCUMENT, num_tokens=100, focus=40, match=MATCH,
                instruction="What is the population of Lisbon?",
                answer="<excerpt>The city of Lisbon has about 545,000 residents.</excerpt>")
    base.update(kw)
    return PairDraft(**base)


def _counters(result) -> dict:
    totals: dict = {}
    for c in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        totals[c.key.metric.name] = totals.get(c.key.metric.name, 0) + c.committed
    return totals


# --- expand_step -------------------------------------------------------------------------


def test_expand_step_success_sets_spans_and_clears_document():
    out = expand_step(0.8)(draft())
    assert out.answer == "The city of Lisbon has about 545,000 residents."
    assert out.excerpt_share == 1.0
    assert out.excerpt_spans == [[35, 82]]
    assert DOCUMENT[35:82] == out.answer
    assert out.document == ""
    assert (out.doc_id, out.instruction, out.match, out.num_tokens, out.focus) == (
        "doc-1", "What is the population of Lisbon?", MATCH, 100, 40)


def test_expand_step_compact_marker_and_lead_in():
    d = draft(answer="In short: <excerpt>Lisbon is the<...>545,000 residents.</excerpt>")
    out = expand_step(0.8)(d)
    assert out.answer == "In short: " + DOCUMENT[:82]
    assert out.excerpt_spans == [[0, 82]]
    assert out.excerpt_share == round(82 / (82 + 10), 6)


@pytest.mark.parametrize("instruction", ["What is the population of <fi>a city</fi>?",
                                         "What is the population of <fi>a city?", "Population of a city</fi>?"])
def test_expand_step_leftover_tag(instruction):
    with pytest.raises(Rejected) as err:
        expand_step(0.8)(draft(instruction=instruction))
    assert err.value.reason == "leftover_tag"


def test_expand_step_low_excerpt_share():
    d = draft(answer="This is a long lead-in written by the model that is not in the document at all: "
                     "<excerpt>Lisbon</excerpt>")
    with pytest.raises(Rejected) as err:
        expand_step(0.8)(d)
    assert err.value.reason == "low_excerpt_share"
    assert "< 0.8" in err.value.detail
    out = expand_step(0.0)(d)  # the same answer passes with no minimum
    assert out.excerpt_share == round(6 / len(out.answer), 6)


def test_expand_step_excerpt_not_found_and_empty():
    with pytest.raises(Rejected) as err:
        expand_step(0.8)(draft(answer="<excerpt>Madrid is in Spain.</excerpt>"))
    assert err.value.reason == "excerpt_not_found"
    with pytest.raises(Rejected) as err:
        expand_step(0.0)(draft(answer="   "))
    assert err.value.reason == "empty_answer"


@pytest.mark.parametrize("ratio", [-0.1, 1.5])
def test_expand_step_bad_ratio(ratio):
    with pytest.raises(ValueError, match="min_excerpt_ratio"):
        expand_step(ratio)


def test_expand_step_in_accounted_map():
    good = draft(doc_id="a")
    leftover = draft(doc_id="b", instruction="Tell me about <fi>a city</fi>")
    with TestPipeline() as p:
        res = p | beam.Create([good, leftover]) | accounted_map("expand", expand_step(0.8))
        assert_that(res["out"] | beam.Map(lambda d: (d.doc_id, d.answer, d.excerpt_spans, d.document)),
                    equal_to([("a", "The city of Lisbon has about 545,000 residents.", [[35, 82]], "")]),
                    label="out")
        assert_that(res[FILTERED] | beam.Map(lambda f: (f.stage, f.reason, f.source)),
                    equal_to([("expand", "leftover_tag", "b")]), label="filtered")
        assert_that(res[DEAD], equal_to([]), label="dead")


# --- --embedding_device ------------------------------------------------------------------


def test_embedding_device_flag_reaches_every_model_load(monkeypatch):
    import argparse

    import pipeline.steps as steps_module
    from pipeline.job import embedding_device
    from pipeline.steps import EmbedStep, ExtractiveInstantiateStep, MatchStep
    assert embedding_device(argparse.Namespace(embedding_device="auto")) is None
    assert embedding_device(argparse.Namespace(embedding_device="cpu")) == "cpu"
    loads, real = [], steps_module.load_embedding_model
    monkeypatch.setattr(steps_module, "load_embedding_model",
                        lambda name, device=None: loads.append(device) or real(name, device))
    embed = EmbedStep(DEFAULT_EMBEDDING_MODEL, 5, 0.05, 1.0, 512, 8, device="cpu")
    instantiate = ExtractiveInstantiateStep(DEFAULT_EMBEDDING_MODEL, None, device="cpu")
    for step in (embed, MatchStep(DEFAULT_EMBEDDING_MODEL, 5, 0.3, 2, "library", 1, device="cpu"), instantiate,
                 HeuristicJudgeStep(DEFAULT_EMBEDDING_MODEL, 4, device="cpu")):
        step.setup()
    # the embed and instantiate steps load their model on the first record not in the cache
    embed(Document("d", "Lisbon is the capital of Portugal.", "", "s", "h"))
    instantiate._load()
    assert loads == ["cpu"] * 4


# --- HeuristicJudgeStep -------------------------------------------------------------------


def test_judge_uses_the_instantiators_relatedness_and_embeds_otherwise():
    step = HeuristicJudgeStep(DEFAULT_EMBEDDING_MODEL, min_score=1)
    step.setup()
    answer = "The city of Lisbon has about 545,000 residents, more than any other city in Portugal today."
    embedded = step(draft(answer=answer, excerpt_share=1.0))
    assert embedded.judge_score == 5 and not embedded.judge_reasons   # related: MiniLM says so
    given = step(draft(answer=answer, excerpt_share=1.0, relatedness=0.05))
    assert given.judge_reasons == ["unrelated"] and given.judge_score < 5
    strict = HeuristicJudgeStep(DEFAULT_EMBEDDING_MODEL, min_score=5)
    strict.setup()
    with pytest.raises(Rejected, match="unrelated"):
        strict(draft(answer=answer, excerpt_share=1.0, relatedness=0.05))


# --- pair_text / pair_id / pair_record -----------------------------------------------------


def test_pair_text_format():
    assert pair_text("Q?", "A.") == "Instruction: Q?\n\nAnswer: A."
    assert pair_text("", "") == "Instruction: \n\nAnswer: "


def test_pair_id_stable_and_content_dependent():
    pid = pair_id("doc-1", "tpl-1", "Instruction: Q\n\nAnswer: A")
    assert pid == hashlib.sha256("doc-1\x00tpl-1\x00Instruction: Q\n\nAnswer: A".encode("utf-8")).hexdigest()[:32]
    assert len(pid) == 32
    assert pid == pair_id("doc-1", "tpl-1", "Instruction: Q\n\nAnswer: A")
    assert pid != pair_id("doc-2", "tpl-1", "Instruction: Q\n\nAnswer: A")
    assert pid != pair_id("doc-1", "tpl-2", "Instruction: Q\n\nAnswer: A")
    assert pid != pair_id("doc-1", "tpl-1", "Instruction: Q\n\nAnswer: B")
    # The separator keeps field boundaries: ("ab", "c") is not ("a", "bc").
    assert pair_id("ab", "c", "t") != pair_id("a", "bc", "t")


def test_pair_record():
    d = expand_step(0.8)(draft())._replace(judge_score=4, judge_reasons=["ok"])
    rec = pair_record(d, {"instantiator": "extractive", "judge": "heuristic"})
    text = "Instruction: What is the population of Lisbon?\n\nAnswer: The city of Lisbon has about 545,000 residents."
    assert rec == {
        "pair_id": pair_id("doc-1", "tpl-1", text),
        "doc_id": "doc-1",
        "template_id": "tpl-1",
        "template": "What is the population of <fi>a city</fi>?",
        "chunk": 2,
        "match_score": 0.73,
        "instruction": "What is the population of Lisbon?",
        "answer": "The city of Lisbon has about 545,000 residents.",
        "excerpt_share": 1.0,
        "excerpt_spans": [[35, 82]],
        "judge_score": 4,
        "instantiator": "extractive",
        "judge": "heuristic",
        "text": text,
    }
    assert list(rec)[-1] == "text"
    other = pair_record(d._replace(answer="Different."), {})
    assert other["pair_id"] != rec["pair_id"]
    assert "instantiator" not in other


# --- TokenBudget ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(None, DEFAULT_EMBEDDING_MODEL)


def _budget_drafts(doc_id, num_tokens, n=4):
    m = lambda i: MATCH._replace(template_id=f"tpl-{i}")  # noqa: E731
    return [PairDraft(doc_id, "", num_tokens, 0, m(i), f"Question number {i} about {doc_id}?",
                      f"Answer {i}: " + "word " * (3 * i + 1)) for i in range(n)]


def _run_budget(drafts, **kw):
    p = TestPipeline()
    res = p | beam.Create(drafts) | TokenBudget(DEFAULT_EMBEDDING_MODEL, **kw)
    return p, res


def test_budget_small_document_filters_all(tokenizer):
    drafts = _budget_drafts("small", num_tokens=3)
    assert min(count_tokens(tokenizer, pair_text(d.instruction, d.answer)) for d in drafts) > 3
    p, res = _run_budget(drafts)
    assert_that(res["out"], equal_to([]), label="out")
    assert_that(res[FILTERED] | beam.Map(lambda f: (f.stage, f.reason, f.source)),
                equal_to([("budget", "over_token_budget", "small")] * 4), label="filtered")
    counters = _counters(p.run())
    assert counters["budget|in"] == 4
    assert counters.get("budget|out", 0) == 0
    assert counters["budget|filtered|over_token_budget"] == 4


def test_budget_large_document_keeps_all():
    drafts = _budget_drafts("large", num_tokens=10_000)
    p, res = _run_budget(drafts)
    assert_that(res["out"], equal_to(drafts), label="out")
    assert_that(res[FILTERED], equal_to([]), label="filtered")
    counters = _counters(p.run())
    assert counters["budget|in"] == counters["budget|out"] == 4


def test_budget_partial_selection_conserves_counts(tokenizer):
    tight = _budget_drafts("tight", num_tokens=0)
    tokens = [count_tokens(tokenizer, pair_text(d.instruction, d.answer)) for d in tight]
    budget = tokens[0] + tokens[1]  # room for some, never all
    tight = [d._replace(num_tokens=budget) for d in tight]
    roomy = _budget_drafts("roomy", num_tokens=10_000, n=3)
    expected_kept = select_within_budget(tokens, budget, "0\x00tight")
    assert 0 < len(expected_kept) < 4
    assert sum(tokens[i] for i in expected_kept) <= budget
    p, res = _run_budget(list(reversed(tight)) + roomy)  # input order must not matter
    assert_that(res["out"] | beam.Map(lambda d: (d.doc_id, d.match.template_id)),
                equal_to([("tight", f"tpl-{i}") for i in expected_kept]
                         + [("roomy", f"tpl-{i}") for i in range(3)]), label="out")
    assert_that(res[FILTERED] | beam.Map(lambda f: f.source),
                equal_to(["tight"] * (4 - len(expected_kept))), label="filtered")
    counters = _counters(p.run())
    assert counters["budget|in"] == 7
    assert counters["budget|out"] + counters.get("budget|filtered|over_token_budget", 0) == 7
    assert counters["budget|out"] == len(expected_kept) + 3


def test_budget_token_counts_ignore_special_tokens(tokenizer):
    assert count_tokens(tokenizer, "") == 0
    assert count_tokens(tokenizer, "hello world") == 2


# --- WriteSortedShards ------------------------------------------------------------------------

SCHEMA = pa.schema([("pair_id", pa.string()), ("doc_id", pa.string()), ("score", pa.float64()),
                    ("spans", pa.list_(pa.list_(pa.int64()))), ("text", pa.string())])


def _records(n=30):
    return [{"pair_id": hashlib.sha256(str(i).encode()).hexdigest()[:16], "doc_id": f"d{i % 7}",
             "score": i / 10, "spans": [[i, i + 5]], "text": f"text {i} ☕"} for i in range(n)]


def _write(records, out_dir, **kw):
    prefix = os.path.join(out_dir, "pairs")
    with TestPipeline() as p:
        paths = p | beam.Create(records) | WriteSortedShards(prefix, SCHEMA, "pair_id", **kw)
        if kw.get("num_shards") == 2:
            assert_that(paths, equal_to([shard_name(prefix, s, 2, ext) for s in (0, 1)
                                         for ext in (".parquet", ".jsonl")]))
    return prefix


def test_write_sorted_shards_byte_identical_across_input_orders(tmp_path):
    records = _records()
    a = _write(records, str(tmp_path / "a"), num_shards=2)
    b = _write(list(reversed(records[15:])) + records[:15][::-1], str(tmp_path / "b"), num_shards=2)
    names = sorted(os.path.basename(f) for f in glob.glob(a + "*"))
    assert names == ["pairs-00000-of-00002.jsonl", "pairs-00000-of-00002.parquet",
                     "pairs-00001-of-00002.jsonl", "pairs-00001-of-00002.parquet"]
    assert sorted(os.path.basename(f) for f in glob.glob(b + "*")) == names
    for name in names:
        with open(os.path.join(tmp_path / "a", name), "rb") as fa, open(os.path.join(tmp_path / "b", name), "rb") as fb:
            assert fa.read() == fb.read(), name

    jsonl_rows, parquet_rows = [], []
    for shard in (0, 1):
        with open(shard_name(a, shard, 2, ".jsonl"), encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        assert [r["pair_id"] for r in rows] == sorted(r["pair_id"] for r in rows)  # sorted within a shard
        jsonl_rows += rows
        table = pq.read_table(shard_name(a, shard, 2, ".parquet"))
        assert table.schema.equals(SCHEMA)
        parquet_rows += table.to_pylist()
    key = lambda r: r["pair_id"]  # noqa: E731
    assert sorted(jsonl_rows, key=key) == sorted(records, key=key)
    assert sorted(parquet_rows, key=key) == sorted(records, key=key)


def test_write_sorted_shards_assignment_is_a_stable_hash(tmp_path):
    records = _records(12)
    prefix = _write(records, str(tmp_path), num_shards=2)
    for shard in (0, 1):
        with open(shard_name(prefix, shard, 2, ".jsonl"), encoding="utf-8") as f:
            for line in f:
                pid = json.loads(line)["pair_id"]
                digest = hashlib.blake2b(pid.encode("utf-8"), digest_size=8).digest()
                assert int.from_bytes(digest, "little") % 2 == shard


def test_write_sorted_shards_auto_shard_count_and_formats(tmp_path):
    records = _records(25)
    prefix = os.path.join(str(tmp_path), "auto")
    with TestPipeline() as p:
        _ = p | beam.Create(records) | WriteSortedShards(prefix, SCHEMA, "pair_id", rows_per_shard=10,
                                                         formats=("jsonl",))
    files = sorted(glob.glob(prefix + "*"))
    assert [os.path.basename(f) for f in files] == [f"auto-0000{i}-of-00003.jsonl" for i in range(3)]
    total = 0
    for path in files:
        with open(path, encoding="utf-8") as f:
            total += sum(1 for _ in f)
    assert total == 25


@pytest.mark.parametrize("kw", [{"num_shards": -1}, {"rows_per_shard": 0}])
def test_write_sorted_shards_bad_settings(kw):
    with pytest.raises(ValueError, match="num_shards must be >= 0"):
        WriteSortedShards("x", SCHEMA, "pair_id", **kw)


def test_budget_keeps_one_pair_per_answer_and_caps_pairs_per_document():
    m = lambda i, score: MATCH._replace(template_id=f"tpl-{i}", score=score)  # noqa: E731
    same = "Lisbon is the capital of Portugal."
    drafts = [PairDraft("doc-1", "", 1000, 0, m(0, 0.5), "What is the capital of Portugal?", same),
              PairDraft("doc-1", "", 1000, 0, m(1, 0.6), "Which city is the capital of Portugal?", same)]
    drafts += [PairDraft("doc-1", "", 1000, 0, m(i, 0.1 * i), f"Question {i}?", f"Answer number {i}.")
               for i in range(2, 6)]
    with TestPipeline() as p:
        res = p | beam.Create(drafts) | TokenBudget(DEFAULT_EMBEDDING_MODEL, max_pairs=3)
        assert_that(res.out | beam.Map(lambda d: d.match.template_id),
                    equal_to(["tpl-1", "tpl-5", "tpl-4"]), label="kept")      # best scores, one per answer
        assert_that(res.filtered | beam.Map(lambda f: f.reason),
                    equal_to(["same_answer", "over_pair_cap", "over_pair_cap"]), label="dropped")


def test_budget_keeps_two_questions_of_different_kinds_on_one_answer():
    from pipeline.budget import question_word

    assert [question_word(q) for q in ("Which city is it?", "who was X", "Where did X die?", "Name X")] == [
        "what", "who", "where", ""]
    m = lambda i, score: MATCH._replace(template_id=f"tpl-{i}", score=score)  # noqa: E731
    same = "Tarkovsky died in Paris on 29 December 1986."
    drafts = [PairDraft("doc-1", "", 1000, 0, m(0, 0.5), "When did Tarkovsky die?", same),
              PairDraft("doc-1", "", 1000, 0, m(1, 0.6), "Where did Tarkovsky die?", same),
              PairDraft("doc-1", "", 1000, 0, m(2, 0.4), "Where did Tarkovsky pass away?", same)]
    with TestPipeline() as p:
        res = p | beam.Create(drafts) | TokenBudget(DEFAULT_EMBEDDING_MODEL, max_pairs=3)
        assert_that(res.out | beam.Map(lambda d: d.match.template_id), equal_to(["tpl-0", "tpl-1"]), label="kept")
        assert_that(res.filtered | beam.Map(lambda f: f.reason), equal_to(["same_answer"]), label="dropped")


def test_template_cap_keeps_each_templates_best_pairs():
    from pipeline.template_cap import TemplateCap, template_cap

    assert template_cap(1000, 0.01, 3) == 10 and template_cap(30, 0.01, 3) == 3
    drafts = [PairDraft(f"doc-{i}", "", 100, 0, MATCH._replace(score=i / 10), "Q?", f"A {i}.") for i in range(6)]
    drafts.append(PairDraft("doc-9", "", 100, 0, MATCH._replace(template_id="tpl-2"), "Q2?", "A2."))
    with TestPipeline() as p:
        res = p | beam.Create(drafts) | TemplateCap(0.01)
        assert_that(res.out | beam.Map(lambda d: d.doc_id), equal_to(["doc-3", "doc-4", "doc-5", "doc-9"]),
                    label="kept")
        assert_that(res.filtered | beam.Map(lambda f: (f.reason, f.source)),
                    equal_to([("over_template_share", f"doc-{i}") for i in range(3)]), label="dropped")
    with pytest.raises(ValueError):
        TemplateCap(0.0)


# --- the cache of finished work (--generation_cache) ----------------------------------------


def test_embed_results_come_back_from_the_cache_bitwise_and_without_a_model(tmp_path, monkeypatch):
    import pipeline.steps as steps_module
    from pipeline.steps import EmbedStep

    doc = Document("d", DOCUMENT, "", "s", "h")
    first = EmbedStep(DEFAULT_EMBEDDING_MODEL, 5, 0.05, 1.0, 512, 8, keep_token_vectors=True, device="cpu",
                      cache_dir=str(tmp_path))
    first.setup()
    fresh = first(doc)
    assert list((tmp_path / "embed").rglob("*.npz"))
    monkeypatch.setattr(steps_module, "load_embedding_model", lambda *a, **k: pytest.fail("loaded a model"))
    again = EmbedStep(DEFAULT_EMBEDDING_MODEL, 5, 0.05, 1.0, 512, 8, keep_token_vectors=True, device="cpu",
                      cache_dir=str(tmp_path))
    again.setup()
    assert again(doc) == fresh          # every field, token embeddings included
    # another setting is another key: computed, not read back
    other = EmbedStep(DEFAULT_EMBEDDING_MODEL, 3, 0.05, 1.0, 512, 8, keep_token_vectors=True, device="cpu",
                      cache_dir=str(tmp_path))
    other.setup()
    with pytest.raises(pytest.fail.Exception, match="loaded a model"):
        other(doc)


def test_an_unreadable_cache_entry_is_redone(tmp_path):
    from pipeline.steps import EmbedStep

    doc = Document("d", DOCUMENT, "", "s", "h")
    step = EmbedStep(DEFAULT_EMBEDDING_MODEL, 5, 0.05, 1.0, 512, 8, device="cpu", cache_dir=str(tmp_path))
    step.setup()
    fresh = step(doc)
    (entry,) = (tmp_path / "embed").rglob("*.npz")
    entry.write_bytes(b"torn")
    assert step(doc) == fresh and entry.read_bytes() != b"torn"


def test_extractive_instantiations_and_nulls_come_back_from_the_cache(tmp_path, monkeypatch):
    from pipeline.extractive import ExtractiveConfig
    from pipeline.steps import ExtractiveInstantiateStep

    def step():
        s = ExtractiveInstantiateStep(DEFAULT_EMBEDDING_MODEL, ExtractiveConfig(), device="cpu",
                                      cache_dir=str(tmp_path))
        s.setup()
        return s

    doc = "Lisbon is the capital of Portugal. Lisbon was founded by the Phoenicians in the year 1147 BC."
    fits = draft(document=doc, focus=0, match=MATCH._replace(template="When was <fi>a city</fi> founded?", chunk=0),
                 instruction="", answer="")
    null = draft(document=doc, match=MATCH._replace(template="Write a poem about <fi>a city</fi>"), instruction="",
                 answer="")
    first = step()
    made = first(fits)
    with pytest.raises(Rejected):
        first(null)
    assert len(list((tmp_path / "instantiate").rglob("*.json"))) == 2
    second = step()
    second._instantiate = lambda d: pytest.fail("instantiated again")
    assert second(fits) == made
    with pytest.raises(Rejected, match="generative_request"):
        second(null)
