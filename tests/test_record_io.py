"""Tests for transforms.record_io: source lists, row readers, ReadQueries and writers."""
from __future__ import annotations

import csv
import glob
import gzip
import json
import os

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms.accounting import DEAD, NAMESPACE
from transforms.record_io import (
    ReadQueries, Row, RowError, SourceSpec, WriteJsonl, WriteParquet, infer_format,
    iter_rows, load_sources, to_jsonable,
)
from transforms.records import DeadLetter, Example, Query, UniqueQuery

REAL_QUERIES = "/work/shared/data/queries"


def _write(path, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def _rows(path, fmt, text_field="text", header=True):
    return list(iter_rows(str(path), SourceSpec("s", str(path), fmt, text_field, header)))


def _counters(result) -> dict:
    """Counter totals by name, summed over the steps that report them."""
    totals: dict = {}
    for c in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        totals[c.key.metric.name] = totals.get(c.key.metric.name, 0) + c.committed
    return totals


# --- iter_rows -------------------------------------------------------------------


def test_jsonl_rows_and_errors(tmp_path):
    p = _write(tmp_path / "q.jsonl", (
        b'\xef\xbb\xbf{"q": "first"}\r\n'
        b'\n'
        b'   \n'
        b'{"q": "  spaced  "}\n'
        b'{"q": broken\n'
        b'[1, 2]\n'
        b'{"q": "bad \xff byte"}\n'
        b'{"q": "last, no newline"}'))
    assert _rows(p, "jsonl") == [
        Row({"q": "first"}, '{"q": "first"}', f"{p}:1"),
        Row({"q": "  spaced  "}, '{"q": "  spaced  "}', f"{p}:4"),
        RowError("invalid_json", "Expecting value: line 1 column 7 (char 6)", '{"q": broken', f"{p}:5"),
        RowError("not_an_object", "expected a JSON object, got list", "[1, 2]", f"{p}:6"),
        RowError("invalid_utf8",
                 "'utf-8' codec can't decode byte 0xff in position 11: invalid start byte",
                 '{"q": "bad \\xff byte"}', f"{p}:7"),
        Row({"q": "last, no newline"}, '{"q": "last, no newline"}', f"{p}:8"),
    ]


def test_text_rows_keep_spaces_and_skip_blank_lines(tmp_path):
    p = _write(tmp_path / "q.txt", b"\xef\xbb\xbfone\r\n\n  two  \n\t\nbad\xc3\n")
    rows = _rows(p, "text", text_field="query")
    assert rows[:2] == [Row({"query": "one"}, "one", f"{p}:1"), Row({"query": "  two  "}, "  two  ", f"{p}:3")]
    assert [(r.reason, r.raw, r.locator) for r in rows[2:]] == [("invalid_utf8", "bad\\xc3", f"{p}:5")]


def test_gzipped_jsonl_is_decompressed(tmp_path):
    p = _write(tmp_path / "q.jsonl.gz", gzip.compress(b'{"q": "zipped"}\n'))
    assert infer_format(p) == "jsonl"
    assert _rows(p, "jsonl") == [Row({"q": "zipped"}, '{"q": "zipped"}', f"{p}:1")]


def test_csv_header_quoted_multiline_and_bad_rows(tmp_path):
    p = _write(tmp_path / "q.csv", (
        b'\xef\xbb\xbfid,text\r\n'
        b'1,plain\r\n'
        b'2,"quoted, with comma\r\nand a second line"\r\n'
        b'\r\n'
        b'3,too,many\r\n'
        b'4,"say ""hi"""\r\n'
        b'5,caf\xe9\r\n'))
    assert _rows(p, "csv") == [
        Row({"id": "1", "text": "plain"}, "1,plain", f"{p}:2"),
        Row({"id": "2", "text": "quoted, with comma\r\nand a second line"},
            '2,"quoted, with comma\r\nand a second line"', f"{p}:3"),
        RowError("bad_csv_row", "expected 2 columns, got 3", "3,too,many", f"{p}:6"),
        Row({"id": "4", "text": 'say "hi"'}, '4,"say ""hi"""', f"{p}:7"),
        RowError("invalid_utf8", "'utf-8' codec can't decode byte 0xe9 in position 5: invalid continuation byte",
                 "5,caf\\xe9", f"{p}:8"),
    ]


def test_csv_parser_error_is_a_dead_row_and_reading_goes_on(tmp_path):
    p = _write(tmp_path / "q.csv", b"text\nshort\n" + b"x" * 50 + b"\nafter\n")
    limit = csv.field_size_limit(20)
    try:
        rows = _rows(p, "csv")
    finally:
        csv.field_size_limit(limit)
    assert rows == [
        Row({"text": "short"}, "short", f"{p}:2"),
        RowError("bad_csv_row", "field larger than field limit (20)", "x" * 50, f"{p}:3"),
        Row({"text": "after"}, "after", f"{p}:4"),
    ]


def test_tsv_without_header_msmarco_style(tmp_path):
    p = _write(tmp_path / "q.tsv", b'1048585\twhat is paula deen\'s brother\n2\t Androgen receptor define\n'
                                   b'3\t"quoted" is literal in tsv\n\n4\n')
    assert _rows(p, "tsv", text_field="1", header=False) == [
        Row({"0": "1048585", "1": "what is paula deen's brother"}, "1048585\twhat is paula deen's brother", f"{p}:1"),
        Row({"0": "2", "1": " Androgen receptor define"}, "2\t Androgen receptor define", f"{p}:2"),
        Row({"0": "3", "1": '"quoted" is literal in tsv'}, '3\t"quoted" is literal in tsv', f"{p}:3"),
        Row({"0": "4"}, "4", f"{p}:5"),
    ]


def test_parquet_rows_and_unreadable_file(tmp_path):
    p = str(tmp_path / "q.parquet")
    pq.write_table(pa.table({"q": ["a", None], "n": [1, 2]}), p)
    assert _rows(p, "parquet") == [
        Row({"q": "a", "n": 1}, '{"n": 1, "q": "a"}', f"{p}:row 1"),
        Row({"q": None, "n": 2}, '{"n": 2, "q": null}', f"{p}:row 2"),
    ]
    bad = _write(tmp_path / "bad.parquet", b"definitely not parquet")
    [err] = _rows(bad, "parquet")
    assert (err.reason, err.raw, err.locator) == ("parquet_read_error", "", f"{bad}:row 1")


@pytest.mark.parametrize("path,fmt", [
    ("a/b.jsonl", "jsonl"), ("b.JSON", "jsonl"), ("gs://bucket/x/*.parquet", "parquet"),
    ("c.csv", "csv"), ("d.tsv.bz2", "tsv"), ("e.txt", "text"),
])
def test_infer_format(path, fmt):
    assert infer_format(path) == fmt


def test_infer_format_unknown_extension():
    with pytest.raises(ValueError, match="cannot infer the format of 'data/\\*'"):
        infer_format("data/*")


# --- load_sources ----------------------------------------------------------------


def test_load_sources_yaml_resolves_relative_paths(tmp_path):
    (tmp_path / "conf").mkdir()
    p = _write(tmp_path / "conf" / "sources.yaml", b"""
- name: nq
  path: ../data/nq.jsonl
  text_field: question
- name: marco
  path: data/*.tsv
  format: tsv
  header: false
  text_field: 1
- name: plain
  path: /abs/lines.txt
- name: cloud
  path: gs://bucket/q-*.parquet
  text_field: q
""")
    assert load_sources(p) == [
        SourceSpec("nq", str(tmp_path / "data" / "nq.jsonl"), "jsonl", "question", True),
        SourceSpec("marco", str(tmp_path / "conf" / "data" / "*.tsv"), "tsv", "1", False),
        SourceSpec("plain", "/abs/lines.txt", "text", "text", True),
        SourceSpec("cloud", "gs://bucket/q-*.parquet", "parquet", "q", True),
    ]


def test_load_sources_json(tmp_path):
    p = _write(tmp_path / "sources.json", json.dumps([
        {"name": "c", "path": "q.csv", "text_field": "query", "header": True},
    ]).encode())
    assert load_sources(p) == [SourceSpec("c", str(tmp_path / "q.csv"), "csv", "query", True)]


@pytest.mark.parametrize("entries,message", [
    ([{"name": "a", "path": "x.jsonl", "format": "xml", "text_field": "q"}],
     r"source #1 \('a'\): unknown format 'xml'"),
    ([{"name": "a", "text_field": "q"}], r"source #1 \('a'\): missing required keys \['path'\]"),
    ([{"name": "a", "path": "x.jsonl"}], r"source #1 \('a'\): missing required key 'text_field'"),
    ([{"name": "a", "path": "x.jsonl", "text_field": "q"}, {"name": "a", "path": "y.jsonl", "text_field": "q"}],
     r"source #2: duplicate name 'a'"),
    ([{"name": "a", "path": "x.jsonl", "text_feild": "q"}], r"source #1 \('a'\): unknown keys \['text_feild'\]"),
    ([{"name": "a", "path": "x.tsv", "header": False, "text_field": "query"}], r"0-based column index"),
    ([{"name": "a", "path": "x.jsonl", "header": False, "text_field": "1"}], r"header applies only to csv"),
    ([{"name": "a", "path": "x.csv", "header": "no", "text_field": "q"}], r"header must be true or false"),
    ([{"name": "a", "path": "data/*", "text_field": "q"}], r"source #1 \('a'\): cannot infer the format"),
    ([{"name": "a|b", "path": "x.jsonl", "text_field": "q"}], r"name may use only"),
    (["x.jsonl"], r"source #1: expected a mapping, got str"),
    ({"name": "a"}, r"expected a non-empty list of sources"),
    ([], r"expected a non-empty list of sources"),
])
def test_load_sources_rejects_bad_entries(tmp_path, entries, message):
    p = _write(tmp_path / "sources.json", json.dumps(entries).encode())
    with pytest.raises(ValueError, match=message):
        load_sources(p)


def test_load_sources_invalid_yaml(tmp_path):
    p = _write(tmp_path / "sources.yaml", b"- name: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_sources(p)


# --- ReadQueries -----------------------------------------------------------------


@pytest.fixture
def mixed_sources(tmp_path):
    """Five small sources, one per format, with every per-row dead-letter reason."""
    jl = _write(tmp_path / "a.jsonl", (
        b'{"q": "jsonl one"}\n{"q": 7}\n{"other": "x"}\n{"q": "   "}\n{oops\n"str"\n{"q": "x\xff"}\n'))
    tsv = _write(tmp_path / "b.tsv", b"1\ttsv one\n2\ttsv two\n3\n")
    csv_path = _write(tmp_path / "c.csv", b'id,query\n1,"csv\nmultiline"\n2\n')
    txt = _write(tmp_path / "d.txt", b"text one\n\ntext two\n")
    pq_path = str(tmp_path / "e.parquet")
    pq.write_table(pa.table({"q": ["parquet one", None]}), pq_path)
    specs = [
        SourceSpec("jl", jl, "jsonl", "q"),
        SourceSpec("tsv", tsv, "tsv", "1", header=False),
        SourceSpec("csv", csv_path, "csv", "query"),
        SourceSpec("txt", txt, "text", "text"),
        SourceSpec("pq", pq_path, "parquet", "q"),
    ]
    expected_out = [
        Query("jsonl one", "jl"), Query("tsv one", "tsv"), Query("tsv two", "tsv"),
        Query("csv\nmultiline", "csv"), Query("text one", "txt"), Query("text two", "txt"),
        Query("parquet one", "pq"),
    ]
    expected_dead = [
        DeadLetter("read", "wrong_type", "field 'q' is int, not a string", '{"q": 7}', "jl", f"{jl}:2"),
        DeadLetter("read", "missing_field", "no value for field 'q' (fields: other)", '{"other": "x"}', "jl",
                   f"{jl}:3"),
        DeadLetter("read", "empty_text", "field 'q' is empty or whitespace only", '{"q": "   "}', "jl", f"{jl}:4"),
        DeadLetter("read", "invalid_json",
                   "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)", "{oops", "jl",
                   f"{jl}:5"),
        DeadLetter("read", "not_an_object", "expected a JSON object, got str", '"str"', "jl", f"{jl}:6"),
        DeadLetter("read", "invalid_utf8", "'utf-8' codec can't decode byte 0xff in position 8: invalid start byte",
                   '{"q": "x\\xff"}', "jl", f"{jl}:7"),
        DeadLetter("read", "missing_field", "no value for field '1' (fields: 0)", "3", "tsv", f"{tsv}:3"),
        DeadLetter("read", "bad_csv_row", "expected 2 columns, got 1", "2", "csv", f"{csv_path}:4"),
        DeadLetter("read", "missing_field", "no value for field 'q' (fields: q)", '{"q": null}', "pq",
                   f"{pq_path}:row 2"),
    ]
    return specs, expected_out, expected_dead


def test_read_queries_outputs_and_dead_letters(mixed_sources):
    specs, expected_out, expected_dead = mixed_sources
    p = TestPipeline()
    result = p | ReadQueries(specs)
    assert_that(result["out"], equal_to(expected_out), label="CheckOut")
    assert_that(result[DEAD], equal_to(expected_dead), label="CheckDead")
    counters = _counters(p.run())
    dead = {k: v for k, v in counters.items() if k.startswith("read|dead|")}
    assert counters["read|in"] == 16
    assert counters["read|out"] == len(expected_out)
    assert counters["read|in"] == counters["read|out"] + sum(dead.values())
    assert dead == {"read|dead|wrong_type": 1, "read|dead|missing_field": 3, "read|dead|empty_text": 1,
                    "read|dead|invalid_json": 1, "read|dead|not_an_object": 1, "read|dead|invalid_utf8": 1,
                    "read|dead|bad_csv_row": 1}
    assert {k: v for k, v in counters.items() if k.startswith("read|source|")} == {
        "read|source|jl": 7, "read|source|tsv": 3, "read|source|csv": 2, "read|source|txt": 2, "read|source|pq": 2}


def test_read_queries_glob_reads_every_file(tmp_path):
    for i in range(3):
        _write(tmp_path / f"part-{i}.jsonl", f'{{"q": "q{i}"}}\n'.encode())
    with TestPipeline() as p:
        result = p | ReadQueries([SourceSpec("g", str(tmp_path / "part-*.jsonl"), "jsonl", "q")], stage="ingest")
        assert_that(result["out"], equal_to([Query(f"q{i}", "g") for i in range(3)]))


def test_read_queries_empty_match_names_the_source(tmp_path):
    ok = _write(tmp_path / "ok.jsonl", b'{"q": "x"}\n')
    missing = str(tmp_path / "nothing-*.jsonl")
    with pytest.raises(Exception, match=r"(?s)Empty match for pattern .*nothing-\*\.jsonl.*Read\[ghost\]"):
        with TestPipeline() as p:
            _ = p | ReadQueries([SourceSpec("ok", ok, "jsonl", "q"), SourceSpec("ghost", missing, "jsonl", "q")])


@pytest.mark.skipif(not os.path.isdir(REAL_QUERIES), reason="shared query data not present")
def test_read_queries_real_sources():
    d = REAL_QUERIES
    specs = [
        SourceSpec("nq_open", f"{d}/nq_open_dev.jsonl", "jsonl", "question"),
        SourceSpec("msmarco", f"{d}/msmarco_passage_dev_queries.tsv", "tsv", "1", header=False),
        SourceSpec("webquestions", f"{d}/webquestions_test.jsonl", "jsonl", "question"),
        SourceSpec("arena_hard", f"{d}/arena_hard_v2_prompts.jsonl", "jsonl", "prompt"),
        SourceSpec("self_instruct", f"{d}/self_instruct_seed_tasks.jsonl", "jsonl", "instruction"),
    ]
    expected = {"nq_open": 3610, "msmarco": 6980, "webquestions": 2032, "arena_hard": 750, "self_instruct": 175}
    p = TestPipeline()
    result = p | ReadQueries(specs)
    assert_that(result[DEAD], equal_to([]), label="NoDead")
    per_source = result["out"] | beam.Map(lambda q: q.source) | beam.combiners.Count.PerElement()
    assert_that(per_source, equal_to(list(expected.items())), label="PerSource")
    counters = _counters(p.run())
    total = sum(expected.values())
    assert counters["read|in"] == counters["read|out"] == total
    assert not [k for k in counters if k.startswith("read|dead|")]
    assert {k.split("|")[-1]: v for k, v in counters.items() if k.startswith("read|source|")} == expected


# --- writers ---------------------------------------------------------------------


UNIQUE = [
    UniqueQuery("id1", "café ☕", 2, ["nq", "web"], [Example("Café ☕", "nq"), Example("cafe", "web")]),
    UniqueQuery("id2", "b", 1, ["nq"], [Example("b", "nq")]),
]


def test_to_jsonable_nested_bytes_and_numpy():
    rec = {"u": UNIQUE[1], "e": b"\x00\x01", "v": np.float32(0.5), "a": np.arange(2)}
    assert to_jsonable(rec) == {
        "u": {"query_id": "id2", "text": "b", "count": 1, "sources": ["nq"],
              "examples": [{"text": "b", "source": "nq"}]},
        "e": "AAE=", "v": 0.5, "a": [0, 1]}
    assert to_jsonable(b"\x00", keep_bytes=True) == b"\x00"


def test_write_jsonl_round_trip_and_rerun_overwrites(tmp_path):
    prefix = str(tmp_path / "out" / "unique")
    for _ in range(2):
        with TestPipeline() as p:
            _ = p | beam.Create(UNIQUE) | WriteJsonl(prefix, num_shards=1)
    files = glob.glob(prefix + "*")
    assert files == [prefix + "-00000-of-00001.jsonl"]
    with open(files[0], encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert sorted((json.loads(line) for line in lines), key=lambda r: r["query_id"]) == [to_jsonable(u) for u in UNIQUE]
    assert any("café ☕" in line for line in lines)
    assert all(list(json.loads(line)) == sorted(json.loads(line)) for line in lines)


def test_write_parquet_round_trip(tmp_path):
    example = pa.struct([("text", pa.string()), ("source", pa.string())])
    schema = pa.schema([("query_id", pa.string()), ("text", pa.string()), ("count", pa.int64()),
                        ("sources", pa.list_(pa.string())), ("examples", pa.list_(example))])
    prefix = str(tmp_path / "unique")
    with TestPipeline() as p:
        _ = p | beam.Create(UNIQUE) | WriteParquet(prefix, schema, num_shards=2)
    files = sorted(glob.glob(prefix + "*"))
    assert files == [f"{prefix}-0000{i}-of-00002.parquet" for i in range(2)]
    rows = [r for path in files for r in pq.read_table(path).to_pylist()]
    assert sorted(rows, key=lambda r: r["query_id"]) == [to_jsonable(u) for u in UNIQUE]
    assert pq.read_schema(files[0]).equals(schema)


# --- Parquet: a bad row costs that row; an unreadable row group is counted (issue 13) -------

def _parquet_with_undecodable_row(path, n=10, bad=3):
    """A Parquet file whose string column holds invalid UTF-8 in row ``bad`` (0-based), written
    without validation, as a broken producer would."""
    import numpy as np

    texts = [b"good text %d" % i for i in range(n)]
    texts[bad] = b"bad \xff\xfe row"
    offsets = np.cumsum([0] + [len(t) for t in texts]).astype(np.int32)
    column = pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(texts))])
    pq.write_table(pa.table({"id": [f"id{i}" for i in range(n)], "text": column}), path)
    return str(path)


def _parquet_with_corrupt_row_group(path):
    """Ten rows in two row groups; the second group's data page header overwritten."""
    table = pa.table({"id": [f"id{i}" for i in range(10)], "text": [f"text number {i} " * 5 for i in range(10)]})
    pq.write_table(table, path, row_group_size=5, compression="none")
    offset = pq.ParquetFile(path).metadata.row_group(1).column(1).data_page_offset
    data = bytearray(open(path, "rb").read())
    data[offset:offset + 40] = b"\xab" * 40
    open(path, "wb").write(bytes(data))
    return str(path)


def test_an_undecodable_parquet_row_costs_only_that_row(tmp_path):
    path = _parquet_with_undecodable_row(tmp_path / "bad_row.parquet")
    rows = _rows(path, "parquet")
    assert len(rows) == 10
    errors = [r for r in rows if isinstance(r, RowError)]
    assert [(e.reason, e.locator, e.rows) for e in errors] == [("parquet_bad_row", f"{path}:row 4", 1)]
    assert [r.fields["id"] for r in rows if isinstance(r, Row)] == [f"id{i}" for i in range(10) if i != 3]


def test_an_unreadable_row_group_is_counted_and_the_rest_is_read(tmp_path):
    path = _parquet_with_corrupt_row_group(tmp_path / "bad_group.parquet")
    rows = _rows(path, "parquet")
    assert [r.fields["id"] for r in rows if isinstance(r, Row)] == [f"id{i}" for i in range(5)]
    [error] = [r for r in rows if isinstance(r, RowError)]
    assert (error.reason, error.locator, error.rows) == ("parquet_read_error", f"{path}:row 6", 5)


def test_the_read_stage_counts_lost_parquet_rows_as_input(tmp_path):
    bad_row = _parquet_with_undecodable_row(tmp_path / "a.parquet")
    bad_group = _parquet_with_corrupt_row_group(tmp_path / "b.parquet")
    p = TestPipeline()
    _ = p | ReadQueries([SourceSpec("a", bad_row, "parquet", "text"), SourceSpec("b", bad_group, "parquet", "text")])
    counters = _counters(p.run())
    assert counters["read|in"] == 20 and counters["read|out"] == 14
    assert counters["read|dead|parquet_bad_row"] == 1 and counters["read|dead|parquet_read_error"] == 5


def test_a_sources_tsv_with_a_column_index_reads_without_a_header_row(tmp_path):
    # Issue 13: its first row used to be eaten as a header and every row was missing_field.
    sources = tmp_path / "sources.yaml"
    sources.write_text("- {name: ms, path: q.tsv, format: tsv, text_field: \"1\"}\n"
                       "- {name: named, path: n.tsv, format: tsv, text_field: query}\n")
    ms, named = load_sources(str(sources))
    assert (ms.header, named.header) == (False, True)
    path = _write(tmp_path / "q.tsv", b"1\tfirst query\n2\tsecond query\n")
    assert [r.fields["1"] for r in _rows(path, "tsv", text_field="1", header=ms.header)] == ["first query", "second query"]
