"""Both jobs over thousands of generated bad records (issue 13): no crash, exact conservation,
and the valid records mixed in still come out.

A seeded generator writes every input format the jobs read: JSONL lines that are truncated,
not objects, missing or mistyped fields, invalid UTF-8, lone surrogates, control characters,
markup of the excerpt and template formats, huge texts and random bytes; CSV and TSV rows with
the wrong number of columns and invalid UTF-8; text lines of random bytes; Parquet files with an
undecodable row and a corrupt one. Most die at read, so the run stays within a minute.
"""
import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import REPO

pytestmark = pytest.mark.e2e

VALID_QUERIES = [
    "how do I boil an egg so the yolk stays soft", "what is the capital of australia",
    "why is the sky blue during the day", "who invented the telephone first",
    "how long does it take to fly from london to tokyo", "what causes the northern lights to appear",
    "how to fix a flat bicycle tire at home", "when was the eiffel tower built",
]
BAD_KINDS = 14


def bad_json_line(rng: random.Random, i: int, field: str) -> bytes:
    """One bad (or hostile) JSONL line of kind ``i % BAD_KINDS``; never blank."""
    kind = i % BAD_KINDS
    text = f"bad record {i} " + "".join(rng.choice("abcdefgh xyz") for _ in range(rng.randint(1, 40)))
    if kind == 0:
        return json.dumps({field: text})[: rng.randint(1, 10)].encode() + b"{"          # truncated
    if kind == 1:
        return json.dumps([field, text]).encode()                                      # not an object
    if kind == 2:
        return json.dumps({"other": text}).encode()                                    # missing field
    if kind == 3:
        return json.dumps({field: rng.choice([None, 7, 3.5, True, [text], {"t": text}])}).encode()
    if kind == 4:
        return json.dumps({field: rng.choice(["", "   ", "\t\n"])}).encode()            # empty
    if kind == 5:
        return b'{"' + field.encode() + b'": "' + text.encode() + b' \xff\xfe"}'       # invalid UTF-8
    if kind == 6:
        return ('{"' + field + '": "' + text + ' \\ud800 lone", "id": "s\\udc00' + str(i) + '"}').encode()
    if kind == 7:
        return json.dumps({field: "\x00\x1b\u200b" * rng.randint(1, 5)}).encode()      # only invisible
    if kind == 8:
        return bytes(rng.randrange(1, 256) for _ in range(rng.randint(1, 60))).replace(b"\n", b"!").replace(
            b"\r", b"?") + b"x"                                                         # random bytes
    if kind == 9:
        return json.dumps({field: "x" * rng.randint(5_000_000 // 50, 5_000_000 // 10) if i % 97 == 9 else "a"},
                          ).encode()                                                    # huge or tiny
    if kind == 10:
        return json.dumps({field: text, "id": {"nested": i}}).encode()                 # id of a wrong type
    if kind == 11:
        return b"[" * 5000 + b"]" * 5000                                                # deep nesting
    if kind == 12:
        return json.dumps(rng.choice([1, "s", None, True])).encode()
    return b"\xef\xbb\xbf" + json.dumps({field: None}).encode()                          # BOM, null


def write_bad_inputs(folder, field: str, n: int, valid_texts, seed: int = 13):
    """JSONL (n bad lines, valid ones interleaved), TSV, CSV, text and Parquet files; the rows written."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = [bad_json_line(rng, i, field) for i in range(n)]
    for k, text in enumerate(valid_texts):
        lines.insert(rng.randrange(len(lines)), json.dumps({field: text, "id": f"valid-{k}"}).encode())
    (folder / "fuzz.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    tsv = [b"id\t" + field.encode()] + [
        rng.choice([b"1\t2\t3", b"only-one-column", b"x\t\xff\xfe bad utf8", f"{i}\tq{i}\textra".encode()])
        for i in range(n // 20)]
    (folder / "fuzz.tsv").write_bytes(b"\n".join(tsv) + b"\n")
    csv = [f"id,{field}".encode()] + [rng.choice([b"1,2,3", b"lonely", b'7,"ok \xff"']) for _ in range(n // 20)]
    (folder / "fuzz.csv").write_bytes(b"\n".join(csv) + b"\n")
    (folder / "fuzz.txt").write_bytes(b"\n".join(b"\xff" + bytes(rng.randrange(128, 256) for _ in range(8))
                                                  for _ in range(n // 20)) + b"\n")
    texts = [b"good parquet text %d" % i for i in range(20)]
    texts[5] = b"undecodable \xff\xfe"
    offsets = pa.py_buffer(b"".join(int(sum(len(t) for t in texts[:j])).to_bytes(4, "little") for j in range(21)))
    column = pa.Array.from_buffers(pa.string(), 20, [None, offsets, pa.py_buffer(b"".join(texts))])
    pq.write_table(pa.table({"id": [f"pq{i}" for i in range(20)], field: column}), folder / "fuzz.parquet")
    (folder / "corrupt.parquet").write_bytes(b"PAR1" + bytes(rng.randrange(256) for _ in range(500)) + b"PAR1")
    return lines


def stages(report):
    return {s["stage"]: s for s in report["stages"]}


def test_mining_survives_10000_bad_query_records(tmp_path):
    from templates_mining.job import run

    folder = tmp_path / "in"
    lines = write_bad_inputs(folder, "text", 10_000, VALID_QUERIES)
    sources = tmp_path / "sources.yaml"
    sources.write_text("\n".join([
        f"- {{name: jsonl, path: {folder / 'fuzz.jsonl'}, format: jsonl, text_field: text}}",
        f"- {{name: tsv, path: {folder / 'fuzz.tsv'}, format: tsv, text_field: text}}",
        f"- {{name: csv, path: {folder / 'fuzz.csv'}, format: csv, text_field: text}}",
        f"- {{name: txt, path: {folder / 'fuzz.txt'}, format: text}}",
        f"- {{name: pq, path: {folder / 'fuzz.parquet'}, format: parquet, text_field: text}}",
        f"- {{name: pq_corrupt, path: {folder / 'corrupt.parquet'}, format: parquet, text_field: text}}",
    ]) + "\n")
    report = run(["--sources", str(sources), "--output", str(tmp_path / "lib")])
    assert report["conservation_ok"] and all(c["ok"] for c in report["chain"]), report
    read = stages(report)["read"]
    assert read["other"]["source|jsonl"] == len(lines) >= 10_000
    assert read["dead_letters"] >= 10_000 * 0.6
    # The valid queries (and the parquet file's good rows) got through to the library.
    assert stages(report)["genericize"]["in"] >= len(VALID_QUERIES)
    assert stages(report)["write_library"]["out"] > 0
    # The whole-file failure is a failed source, and says so; the job did not crash.
    assert any("source pq_corrupt" in f for f in report["failures"])


def test_the_pipeline_survives_10000_bad_document_records(sample_library, tmp_path):
    from pipeline.job import read_pairs, run

    library, _ = sample_library
    valid = [json.loads(line)["text"] for line in
             (REPO / "sample_data" / "documents" / "web_docs.jsonl").read_text("utf-8").splitlines()
             if line.strip() and isinstance(json.loads(line).get("text"), str)][:4]
    folder = tmp_path / "in"
    lines = write_bad_inputs(folder, "text", 10_000, valid)
    out = tmp_path / "out"
    report = run(["--documents", str(folder / "fuzz.jsonl"), "--templates", str(library), "--output", str(out)])
    assert report["conservation_ok"] and all(c["ok"] for c in report["chain"]), report
    s = stages(report)
    assert s["read"]["in"] == len(lines) and s["read"]["dead_letters"] >= 10_000 * 0.6
    assert s["dedupe_documents"]["out"] >= len(valid)
    assert {p["doc_id"] for p in read_pairs(str(out))} <= {f"valid-{k}" for k in range(len(valid))}
    report = run(["--documents", str(folder / "*.parquet"), "--templates", str(library), "--output",
                  str(tmp_path / "out_pq"), "--document_format", "parquet"])
    assert report["conservation_ok"]
    read = stages(report)["read"]
    assert read["dead_letters_by_reason"]["parquet_bad_row"] == 1 and read["out"] == 19
