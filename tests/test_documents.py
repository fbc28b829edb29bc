"""Tests for pipeline.documents: row -> Document, length filter, ReadDocuments and DedupeDocuments."""
from __future__ import annotations

import hashlib

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.documents import (DedupeDocuments, DocumentFields, ReadDocuments, _RowProblem, content_hash,
                                document_format, document_from_fields, keep_first, length_filter)
from pipeline.records import Document
from transforms.accounting import DEAD, FILTERED, NAMESPACE, Rejected, accounted_map
from transforms.records import Filtered

NAMES = DocumentFields()


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _counters(result) -> dict:
    totals: dict = {}
    for c in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        totals[c.key.metric.name] = totals.get(c.key.metric.name, 0) + c.committed
    return totals


def _problem(fields, names=NAMES):
    with pytest.raises(_RowProblem) as err:
        document_from_fields(fields, names, "src")
    return err.value.reason, str(err.value)


# --- content_hash / document_from_fields --------------------------------------------


def test_content_hash_is_truncated_sha256():
    assert content_hash("héllo") == hashlib.sha256("héllo".encode("utf-8")).hexdigest()[:32]
    assert len(content_hash("x")) == 32
    assert content_hash("a") != content_hash("b")


def test_string_id_is_kept():
    doc = document_from_fields({"id": "doc-7", "text": "Some text.", "url": "https://x.org/a"}, NAMES, "f.jsonl")
    assert doc == Document("doc-7", "Some text.", "https://x.org/a", "f.jsonl", _hash("Some text."))


def test_int_id_becomes_string():
    doc = document_from_fields({"id": 42, "text": "Body"}, NAMES, "s")
    assert doc.doc_id == "42"
    assert isinstance(doc.doc_id, str)
    assert document_from_fields({"id": 0, "text": "Body"}, NAMES, "s").doc_id == "0"


@pytest.mark.parametrize("fields", [{"text": "Body text"}, {"id": None, "text": "Body text"},
                                    {"id": "", "text": "Body text"}])
def test_missing_or_empty_id_uses_content_hash(fields):
    doc = document_from_fields(fields, NAMES, "s")
    assert doc.doc_id == "sha256:" + _hash("Body text")
    assert doc.content_hash == _hash("Body text")


@pytest.mark.parametrize("raw_id, type_name", [(True, "bool"), (False, "bool"), ([1, 2], "list"),
                                               ({"a": 1}, "dict"), (1.5, "float")])
def test_bad_id_type_is_wrong_type(raw_id, type_name):
    reason, error = _problem({"id": raw_id, "text": "Body"})
    assert reason == "wrong_type"
    assert error == f"field 'id' is {type_name}, not a string or int"


def test_missing_text_is_missing_field():
    reason, error = _problem({"id": "a", "url": "u"})
    assert reason == "missing_field"
    assert error == "no value for field 'text' (fields: id, url)"
    assert _problem({"id": "a", "text": None})[0] == "missing_field"


def test_non_string_text_is_wrong_type():
    assert _problem({"id": "a", "text": 12}) == ("wrong_type", "field 'text' is int, not a string")
    assert _problem({"id": "a", "text": ["x"]})[0] == "wrong_type"


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_text_is_empty_text(text):
    assert _problem({"id": "a", "text": text}) == ("empty_text", "field 'text' is empty or whitespace only")


def test_url_is_optional_and_non_string_url_becomes_empty():
    assert document_from_fields({"id": "a", "text": "T"}, NAMES, "s").url == ""
    assert document_from_fields({"id": "a", "text": "T", "url": None}, NAMES, "s").url == ""
    assert document_from_fields({"id": "a", "text": "T", "url": 5}, NAMES, "s").url == ""


def test_custom_field_names():
    names = DocumentFields(id_field="doc", text_field="body", url_field="link")
    doc = document_from_fields({"doc": 9, "body": "Hello", "link": "l", "text": "ignored", "id": "x"}, names, "s")
    assert doc == Document("9", "Hello", "l", "s", _hash("Hello"))
    assert _problem({"doc": 9, "text": "Hello"}, names)[0] == "missing_field"


def test_text_is_kept_verbatim_and_hash_covers_whitespace():
    doc = document_from_fields({"text": "  padded  "}, NAMES, "s")
    assert doc.text == "  padded  "
    assert doc.doc_id == "sha256:" + _hash("  padded  ")
    assert doc.content_hash != _hash("padded")


def test_accounting_text():
    doc = Document("d1", "x" * 500, "", "s", "h")
    assert doc.accounting_text() == "d1: " + "x" * 300


# --- length_filter ---------------------------------------------------------------------


def _doc(doc_id: str, text: str, url: str = "", source: str = "s") -> Document:
    return Document(doc_id, text, url, source, _hash(text))


def test_length_filter_bounds_are_inclusive_and_on_stripped_text():
    check = length_filter(3, 5)
    for text in ("abc", "abcde", "  abc  ", "\nabcde\n"):
        doc = _doc("d", text)
        assert check(doc) is doc


def test_length_filter_too_short_and_too_long():
    check = length_filter(3, 5)
    with pytest.raises(Rejected) as short:
        check(_doc("d", "  ab   "))
    assert (short.value.reason, short.value.detail) == ("too_short", "2 < 3 characters")
    with pytest.raises(Rejected) as long:
        check(_doc("d", "abcdef"))
    assert (long.value.reason, long.value.detail) == ("too_long", "6 > 5 characters")


@pytest.mark.parametrize("lo, hi", [(-1, 5), (6, 5), (1, -1)])
def test_length_filter_invalid_bounds(lo, hi):
    with pytest.raises(ValueError, match="min_document_chars"):
        length_filter(lo, hi)


def test_length_filter_zero_bounds_allowed():
    check = length_filter(0, 0)
    doc = _doc("d", "   ")
    assert check(doc) is doc
    with pytest.raises(Rejected):
        check(_doc("d", "x"))


def test_length_filter_in_accounted_map():
    docs = [_doc("a", "tiny"), _doc("b", "just right"), _doc("c", "x" * 40)]
    with TestPipeline() as p:
        res = p | beam.Create(docs) | accounted_map("length", length_filter(5, 20))
        assert_that(res["out"], equal_to([docs[1]]), label="out")
        assert_that(res[FILTERED] | beam.Map(lambda f: (f.stage, f.reason, f.text)),
                    equal_to([("length", "too_short", "a: tiny"), ("length", "too_long", "c: " + "x" * 40)]),
                    label="filtered")
        assert_that(res[DEAD], equal_to([]), label="dead")


# --- keep_first ----------------------------------------------------------------------


def test_keep_first_smallest_id_any_order():
    docs = [_doc("b", "t"), _doc("c", "t"), _doc("a", "t")]
    for order in (docs, docs[::-1], [docs[1], docs[2], docs[0]]):
        kept, dropped = keep_first(iter(order))
        assert kept.doc_id == "a"
        assert [d.doc_id for d in dropped] == ["b", "c"]


def test_keep_first_ties_broken_by_url_then_source():
    docs = [_doc("a", "t", url="u2", source="s1"), _doc("a", "t", url="u1", source="s2"),
            _doc("a", "t", url="u1", source="s1")]
    kept, dropped = keep_first(docs)
    assert (kept.url, kept.source) == ("u1", "s1")
    assert [(d.url, d.source) for d in dropped] == [("u1", "s2"), ("u2", "s1")]


def test_keep_first_single():
    d = _doc("only", "t")
    assert keep_first([d]) == (d, [])


# --- ReadDocuments ---------------------------------------------------------------------


def _write(path, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def test_read_documents_jsonl_good_and_bad_lines(tmp_path):
    path = _write(tmp_path / "docs.jsonl", (
        b'{"id": "d1", "text": "First document.", "url": "https://a.example/1"}\n'
        b'{"id": 2, "text": "Second document."}\n'
        b'\n'
        b'{"text": "No id here."}\n'
        b'{"id": "d4", "text": broken\n'
        b'{"id": "d5", "url": "u"}\n'
        b'{"id": "d6", "text": "bad \xff byte"}\n'
        b'{"id": "d7", "text": 7}\n'
        b'{"id": "d8", "text": "   "}\n'
        b'{"id": [1], "text": "Listed id."}\n'
        b'["not", "an", "object"]\n'))
    p = TestPipeline()
    res = p | ReadDocuments(path, "jsonl")
    assert_that(res["out"], equal_to([
        Document("d1", "First document.", "https://a.example/1", path, _hash("First document.")),
        Document("2", "Second document.", "", path, _hash("Second document.")),
        Document("sha256:" + _hash("No id here."), "No id here.", "", path, _hash("No id here.")),
    ]), label="docs")
    assert_that(res[DEAD] | beam.Map(lambda d: (d.stage, d.reason, d.raw, d.source, d.locator)), equal_to([
        ("read", "invalid_json", '{"id": "d4", "text": broken', "documents", f"{path}:5"),
        ("read", "missing_field", '{"id": "d5", "url": "u"}', "documents", f"{path}:6"),
        ("read", "invalid_utf8", '{"id": "d6", "text": "bad \\xff byte"}', "documents", f"{path}:7"),
        ("read", "wrong_type", '{"id": "d7", "text": 7}', "documents", f"{path}:8"),
        ("read", "empty_text", '{"id": "d8", "text": "   "}', "documents", f"{path}:9"),
        ("read", "wrong_type", '{"id": [1], "text": "Listed id."}', "documents", f"{path}:10"),
        ("read", "not_an_object", '["not", "an", "object"]', "documents", f"{path}:11"),
    ]), label="dead")
    assert_that(res[DEAD] | "Errors" >> beam.Map(lambda d: (d.locator.rsplit(":", 1)[1], d.error))
                | beam.Filter(lambda t: t[0] in ("6", "10")),
                equal_to([("6", "no value for field 'text' (fields: id, url)"),
                          ("10", "field 'id' is list, not a string or int")]), label="errors")
    counters = _counters(p.run())
    assert counters["read|in"] == 10  # the blank line is not a row
    assert counters["read|out"] == 3
    assert {k: v for k, v in counters.items() if k.startswith("read|dead|")} == {
        "read|dead|invalid_json": 1, "read|dead|missing_field": 1, "read|dead|invalid_utf8": 1,
        "read|dead|wrong_type": 2, "read|dead|empty_text": 1, "read|dead|not_an_object": 1}


def test_read_documents_custom_fields_and_stage(tmp_path):
    path = _write(tmp_path / "d.jsonl", b'{"key": "k1", "body": "Body one.", "link": "L"}\n{"key": "k2"}\n')
    names = DocumentFields("key", "body", "link")
    with TestPipeline() as p:
        res = p | ReadDocuments(path, "jsonl", names, stage="docs_in")
        assert_that(res["out"], equal_to([Document("k1", "Body one.", "L", path, _hash("Body one."))]),
                    label="docs")
        assert_that(res[DEAD] | beam.Map(lambda d: (d.stage, d.reason, d.locator)),
                    equal_to([("docs_in", "missing_field", f"{path}:2")]), label="dead")


def test_read_documents_parquet_glob(tmp_path):
    table = pa.table({"id": pa.array([10, 11], pa.int64()), "text": ["Alpha text.", None],
                      "url": ["u1", "u2"]})
    path = str(tmp_path / "part-0.parquet")
    pq.write_table(table, path)
    with TestPipeline() as p:
        res = p | ReadDocuments(str(tmp_path / "*.parquet"), "parquet")
        assert_that(res["out"], equal_to([Document("10", "Alpha text.", "u1", path, _hash("Alpha text."))]),
                    label="docs")
        assert_that(res[DEAD] | beam.Map(lambda d: (d.reason, d.locator)),
                    equal_to([("missing_field", f"{path}:row 2")]), label="dead")


def test_read_documents_rejects_other_formats():
    with pytest.raises(ValueError, match="jsonl or parquet"):
        ReadDocuments("x.csv", "csv")


def test_read_documents_empty_glob_fails(tmp_path):
    with pytest.raises(Exception, match="Empty match for pattern"):
        with TestPipeline() as p:
            _ = p | ReadDocuments(str(tmp_path / "nothing-*.jsonl"), "jsonl")


# --- DedupeDocuments -------------------------------------------------------------------


def test_dedupe_documents_keeps_smallest_id():
    a1, a2, a3 = _doc("doc-b", "Same text."), _doc("doc-a", "Same text."), _doc("doc-c", "Same text.")
    b = _doc("doc-z", "Other text.")
    c1, c2 = _doc("sha256:" + _hash("Third."), "Third."), _doc("7", "Third.")
    p = TestPipeline()
    res = p | beam.Create([a1, b, c1, a3, a2, c2]) | DedupeDocuments()
    assert_that(res["out"], equal_to([a2, b, c2]), label="out")
    assert_that(res[FILTERED], equal_to([
        Filtered("dedupe_documents", "duplicate_document", "doc-b duplicates doc-a", "s"),
        Filtered("dedupe_documents", "duplicate_document", "doc-c duplicates doc-a", "s"),
        Filtered("dedupe_documents", "duplicate_document", f"sha256:{_hash('Third.')} duplicates 7", "s"),
    ]), label="filtered")
    counters = _counters(p.run())
    assert counters["dedupe_documents|in"] == 6
    assert counters["dedupe_documents|out"] == 3
    assert counters["dedupe_documents|filtered|duplicate_document"] == 3


def test_dedupe_documents_distinct_texts_untouched():
    docs = [_doc(str(i), f"text {i}") for i in range(5)]
    with TestPipeline() as p:
        res = p | beam.Create(docs) | DedupeDocuments(stage="dd")
        assert_that(res["out"], equal_to(docs), label="out")
        assert_that(res[FILTERED], equal_to([]), label="filtered")


def test_dedupe_documents_whitespace_difference_is_not_duplicate():
    x, y = _doc("x", "Text."), _doc("y", "Text. ")
    with TestPipeline() as p:
        res = p | beam.Create([x, y]) | DedupeDocuments()
        assert_that(res["out"], equal_to([x, y]))


# --- document_format -------------------------------------------------------------------


@pytest.mark.parametrize("pattern, fmt, expected", [
    ("data/*.jsonl", None, "jsonl"),
    ("data/part-*.parquet", None, "parquet"),
    ("data/docs.jsonl.gz", None, "jsonl"),
    ("data/docs.json", None, "jsonl"),
    ("data/docs.txt", "parquet", "parquet"),
    ("data/docs.parquet", "jsonl", "jsonl"),
])
def test_document_format(pattern, fmt, expected):
    assert document_format(pattern, fmt) == expected


@pytest.mark.parametrize("pattern, fmt", [("data/docs.csv", None), ("data/docs.txt", None),
                                          ("data/docs.jsonl", "csv")])
def test_document_format_rejects_non_document_formats(pattern, fmt):
    with pytest.raises(ValueError, match="--documents must be JSONL or Parquet"):
        document_format(pattern, fmt)


def test_document_format_unknown_extension():
    with pytest.raises(ValueError, match="cannot infer the format"):
        document_format("data/docs.bin", None)


# --- bad unicode and invisible characters (issue 13: one record must not crash the job) -------

def test_a_lone_surrogate_in_text_or_id_is_invalid_unicode():
    assert _problem({"id": "a", "text": "fine text \ud800 here"})[0] == "invalid_unicode"
    assert _problem({"id": "bad \udfff id", "text": "fine text"})[0] == "invalid_unicode"
    # A surrogate URL is dropped, not fatal.
    assert document_from_fields({"id": "a", "text": "ok", "url": "http://x/\ud800"}, NAMES, "s").url == ""


def test_control_and_invisible_characters_are_cleaned_but_joiners_stay():
    doc = document_from_fields({"id": "a", "text": "NUL\x00 ESC\x1b[31m zero\u200bwidth \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645\tok\r\n"},
                               NAMES, "s")
    assert doc.text == "NUL ESC[31m zerowidth \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645\tok\r\n"
    assert doc.content_hash == _hash(doc.text)
    assert _problem({"id": "a", "text": "\x00\x1b\u200b"})[0] == "empty_text"


def test_bad_unicode_rows_are_dead_letters_and_their_writer_does_not_crash(tmp_path):
    import json

    from transforms.record_io import WriteJsonl

    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("\n".join([
        json.dumps({"id": "ok-1", "text": "A fine document."}),
        '{"id": "sur-text", "text": "broken \\ud800 text"}',
        '{"id": "sur-id-\\udc00", "text": "fine text, bad id"}',
        json.dumps({"id": "ctl", "text": "bell\x07 and NUL\x00 inside"}),
    ]) + "\n", encoding="utf-8")
    table = pa.table({"id": ["ok-2", "sur-pq"], "text": ["Another fine one.", "bad"]})
    pq.write_table(table, tmp_path / "docs.parquet")
    # Parquet stores valid UTF-8 only; a surrogate reaches the reader through a JSON field instead.
    p = TestPipeline()
    for fmt in ("jsonl", "parquet"):
        read = p | f"Read{fmt}" >> ReadDocuments(str(tmp_path / f"docs.{fmt}"), fmt, stage=f"read_{fmt}")
        _ = read[DEAD] | f"Dead{fmt}" >> WriteJsonl(str(tmp_path / f"dead_{fmt}"), num_shards=1)
        _ = read["out"] | f"Ids{fmt}" >> beam.Map(lambda d: d.doc_id) | f"WriteIds{fmt}" >> beam.io.WriteToText(
            str(tmp_path / f"ids_{fmt}"), shard_name_template="")
    result = p.run()
    dead = [json.loads(line) for line in (tmp_path / "dead_jsonl-00000-of-00001.jsonl").read_text("utf-8").splitlines()]
    assert sorted(d["reason"] for d in dead) == ["invalid_unicode", "invalid_unicode"]
    assert sorted((tmp_path / "ids_jsonl").read_text().split()) == ["ctl", "ok-1"]
    assert sorted((tmp_path / "ids_parquet").read_text().split()) == ["ok-2", "sur-pq"]
    assert _counters(result)["read_jsonl|cleaned_control_characters"] == 1


def test_a_record_holding_a_lone_surrogate_is_written_escaped():
    import json

    from transforms.record_io import _to_json_line

    line = _to_json_line({"raw": "x\ud800y", "ok": "é"})
    line.encode("utf-8")
    assert json.loads(line) == {"raw": "x\ud800y", "ok": "é"}
    assert _to_json_line({"ok": "é"}) == '{"ok": "é"}'
