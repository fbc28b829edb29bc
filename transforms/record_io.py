"""The I/O edge of both jobs: source lists, row readers and record writers.

Reading never fails on a bad row. Each physical row becomes a record or a dead letter
carrying a reason code, the raw input and a ``path:line`` locator, so the read stage
accounts exactly (``in = out + dead``). Files are streamed line by line (or batch by
batch for Parquet) through Beam's ``FileSystems``, so globs, ``gs://`` and compressed
files (``.gz``, ``.bz2``, ...) work and no file is held in memory.

Blank lines (empty or whitespace only) are not rows in any line-based format: they are
skipped without a record and not counted. A CSV/TSV header is not a row either.
"""
from __future__ import annotations

import base64
import codecs
import csv
import hashlib
import json
import os
import re
from typing import Any, BinaryIO, Iterable, Iterator, NamedTuple, Optional, Union

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from transforms.accounting import DEAD, NAMESPACE, SEP, StageCounters
from transforms.records import DeadLetter, Query

FORMATS = ("jsonl", "parquet", "csv", "tsv", "text")
SHARD_TEMPLATE = "-SSSSS-of-NNNNN"

_EXTENSION_FORMATS = {
    ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet",
    ".csv": "csv", ".tsv": "tsv", ".txt": "text",
}
_SOURCE_KEYS = ("name", "path", "format", "text_field", "header")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# TSV (MS MARCO style) has no quoting: a '"' is an ordinary character there.
_CSV_DIALECTS = {"csv": {"delimiter": ","}, "tsv": {"delimiter": "\t", "quoting": csv.QUOTE_NONE}}
_PARQUET_BATCH_ROWS = 1024


class SourceSpec(NamedTuple):
    """One input source: where its files are, how to parse them, which field is the text.

    ``path`` is a local path, glob or ``gs://`` path/glob. With ``header=False``
    (csv/tsv only) columns are named by 0-based index, so ``text_field`` is e.g. ``"1"``.
    """
    name: str
    path: str
    format: str
    text_field: str
    header: bool = True


class Row(NamedTuple):
    """A parsed input row: its fields, its raw text (for dead letters) and its locator."""
    fields: dict
    raw: str
    locator: str


class RowError(NamedTuple):
    """An input row that could not be parsed: reason code, message, raw input, locator; ``rows``
    is how many input rows it stands for (more than one only for the unreadable rest of a file)."""
    reason: str
    error: str
    raw: str
    locator: str
    rows: int = 1


def infer_format(path: str) -> str:
    """The format implied by ``path``'s extension, looking past a compression suffix."""
    base = path
    if CompressionTypes.detect_compression_type(base) != CompressionTypes.UNCOMPRESSED:
        base = os.path.splitext(base)[0]
    ext = os.path.splitext(base)[1].lower()
    if ext not in _EXTENSION_FORMATS:
        raise ValueError(
            f"cannot infer the format of {path!r} from its extension; "
            f"set format to one of {', '.join(FORMATS)}")
    return _EXTENSION_FORMATS[ext]


def load_sources(path: str) -> list[SourceSpec]:
    """Reads and validates a YAML or JSON list of sources (``path`` may be ``gs://``).

    Each entry has ``name``, ``path``, ``text_field`` (optional for ``text``, default
    ``"text"``), ``format`` (inferred from the extension when omitted) and ``header``
    (csv/tsv, default true). Relative paths resolve against the sources file's directory.
    """
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        content = f.read().decode("utf-8-sig")
    is_json = path.lower().endswith(".json")
    try:
        entries = json.loads(content) if is_json else yaml.safe_load(content)
    except (ValueError, yaml.YAMLError) as e:
        raise ValueError(f"{path}: not valid {'JSON' if is_json else 'YAML'}: {e}") from e
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected a non-empty list of sources")
    base_dir = FileSystems.split(path)[0]
    specs: list[SourceSpec] = []
    for i, entry in enumerate(entries, 1):
        spec = _parse_source(entry, f"{path}: source #{i}", base_dir)
        if any(s.name == spec.name for s in specs):
            raise ValueError(f"{path}: source #{i}: duplicate name {spec.name!r}")
        specs.append(spec)
    return specs


def _parse_source(entry: Any, where: str, base_dir: str) -> SourceSpec:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(entry).__name__}")
    if isinstance(entry.get("name"), str):
        where = f"{where} ({entry['name']!r})"
    unknown = sorted(str(k) for k in entry if k not in _SOURCE_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; allowed: {list(_SOURCE_KEYS)}")
    missing = [k for k in ("name", "path") if k not in entry]
    if missing:
        raise ValueError(f"{where}: missing required keys {missing}")
    for key in ("name", "path", "format"):
        if key in entry and (not isinstance(entry[key], str) or not entry[key].strip()):
            raise ValueError(f"{where}: {key} must be a non-empty string")
    name, path = entry["name"], entry["path"]
    if not _NAME_RE.match(name):
        raise ValueError(f"{where}: name may use only letters, digits, '_', '.', '-'")
    try:
        fmt = entry.get("format") or infer_format(path)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from e
    if fmt not in FORMATS:
        raise ValueError(f"{where}: unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    header = entry.get("header", True)
    if "header" in entry and fmt not in ("csv", "tsv"):
        raise ValueError(f"{where}: header applies only to csv and tsv sources")
    if not isinstance(header, bool):
        raise ValueError(f"{where}: header must be true or false")
    text_field = entry.get("text_field", "text" if fmt == "text" else None)
    if text_field is None:
        raise ValueError(f"{where}: missing required key 'text_field'")
    if isinstance(text_field, int) and not isinstance(text_field, bool):
        text_field = str(text_field)
    if not isinstance(text_field, str) or not text_field:
        raise ValueError(f"{where}: text_field must be a non-empty string")
    if not header and not text_field.isdigit():
        raise ValueError(
            f"{where}: with header: false, text_field must be a 0-based column index such as \"1\"")
    if "header" not in entry and fmt in ("csv", "tsv") and text_field.isdigit():
        header = False  # a column index means a file without a header row, as --queries reads it
    if not (_SCHEME_RE.match(path) or os.path.isabs(path)):
        path = FileSystems.join(base_dir, path)
        if not _SCHEME_RE.match(path):
            path = os.path.normpath(path)
    return SourceSpec(name, path, fmt, text_field, header)


def iter_rows(file: Union[fileio.ReadableFile, str], spec: SourceSpec) -> Iterator[Union[Row, RowError]]:
    """Streams one file's rows as :class:`Row` or :class:`RowError`, never raising on bad input.

    Locators are ``path:line`` (1-based line where the row starts) or ``path:row N``
    (1-based) for Parquet. Line terminators (LF or CRLF) and a UTF-8 BOM are removed;
    other leading/trailing whitespace is kept. A Parquet file that cannot be read yields
    one ``parquet_read_error`` for the rest of the file.
    """
    path = file.metadata.path if isinstance(file, fileio.ReadableFile) else file
    if spec.format == "parquet":
        yield from _parquet_rows(path)
        return
    f = FileSystems.open(path, compression_type=CompressionTypes.AUTO)
    try:
        lines = _numbered_lines(f)
        if spec.format in _CSV_DIALECTS:
            yield from _csv_rows(lines, path, spec)
        else:
            yield from _line_rows(lines, path, spec)
    finally:
        f.close()


def _numbered_lines(f: BinaryIO) -> Iterator[tuple[int, bytes]]:
    for n, line in enumerate(iter(f.readline, b""), 1):
        if n == 1 and line.startswith(codecs.BOM_UTF8):
            line = line[len(codecs.BOM_UTF8):]
        yield n, line


def _strip_eol(s: str) -> str:
    if s.endswith("\r\n"):
        return s[:-2]
    return s[:-1] if s.endswith("\n") else s


def _line_rows(lines: Iterable[tuple[int, bytes]], path: str, spec: SourceSpec) -> Iterator[Union[Row, RowError]]:
    for n, line in lines:
        locator = f"{path}:{n}"
        try:
            text = _strip_eol(line.decode("utf-8"))
        except UnicodeDecodeError as e:
            yield RowError("invalid_utf8", str(e), _strip_eol(line.decode("utf-8", "backslashreplace")), locator)
            continue
        if not text.strip():
            continue
        if spec.format == "text":
            yield Row({spec.text_field: text}, text, locator)
            continue
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError) as e:
            yield RowError("invalid_json", str(e), text, locator)
            continue
        if not isinstance(obj, dict):
            yield RowError("not_an_object", f"expected a JSON object, got {type(obj).__name__}", text, locator)
            continue
        yield Row(obj, text, locator)


def _csv_rows(lines: Iterable[tuple[int, bytes]], path: str, spec: SourceSpec) -> Iterator[Union[Row, RowError]]:
    # The csv module pulls exactly the physical lines of one record (quoted fields may
    # span lines); ``pending`` keeps them so each row has its raw bytes and first line.
    pending: list[tuple[int, bytes]] = []

    def feed() -> Iterator[str]:
        for n, line in lines:
            pending.append((n, line))
            yield line.decode("utf-8", "surrogateescape")

    reader = csv.reader(feed(), **_CSV_DIALECTS[spec.format])
    header: Optional[list[str]] = None
    while True:
        try:
            values: Optional[list[str]] = next(reader)
            problem = ""
        except StopIteration:
            return
        except csv.Error as e:
            values, problem = None, str(e)
        raw_bytes = b"".join(line for _, line in pending)
        locator = f"{path}:{pending[0][0]}" if pending else path
        pending.clear()
        try:
            raw = _strip_eol(raw_bytes.decode("utf-8"))
        except UnicodeDecodeError as e:
            yield RowError("invalid_utf8", str(e), _strip_eol(raw_bytes.decode("utf-8", "backslashreplace")), locator)
            continue
        if values is None:
            yield RowError("bad_csv_row", problem, raw, locator)
            continue
        if not raw.strip():
            continue
        if spec.header and header is None:
            header = values
            continue
        if header is None:
            yield Row({str(i): v for i, v in enumerate(values)}, raw, locator)
        elif len(values) != len(header):
            yield RowError("bad_csv_row", f"expected {len(header)} columns, got {len(values)}", raw, locator)
        else:
            yield Row(dict(zip(header, values)), raw, locator)


_ROW_ERRORS = (pa.ArrowException, ValueError, UnicodeDecodeError)


def _batch_rows(batch: pa.RecordBatch, path: str, first: int) -> Iterator[Union[Row, RowError]]:
    """One record batch's rows; when the batch cannot be converted as a whole (e.g. one row's
    string is not UTF-8), row by row, so the bad row alone is a ``parquet_bad_row``."""
    try:
        rows = batch.to_pylist()
    except _ROW_ERRORS:
        rows = None
    for i in range(batch.num_rows):
        locator = f"{path}:row {first + i}"
        try:
            fields = rows[i] if rows is not None else batch.slice(i, 1).to_pylist()[0]
        except _ROW_ERRORS as e:
            yield RowError("parquet_bad_row", f"{type(e).__name__}: {e}"[:500], "", locator)
            continue
        yield Row(fields, json.dumps(fields, ensure_ascii=False, sort_keys=True, default=str), locator)


def _parquet_rows(path: str) -> Iterator[Union[Row, RowError]]:
    """A Parquet file's rows, row group by row group: a row that cannot be decoded is its own
    error, and a row group (or file) that cannot be read is one error standing for every row it
    holds (from the footer's row counts), so conservation counts the lost rows; the next row
    group is still read. An unreadable footer is one error for a file of unknown size."""
    try:
        f = FileSystems.open(path, mime_type="application/octet-stream",
                             compression_type=CompressionTypes.UNCOMPRESSED)
    except (OSError, ValueError) as e:
        yield RowError("parquet_read_error", f"{type(e).__name__}: {e}"[:1000], "", f"{path}:row 1")
        return
    with f:
        try:
            parquet = pq.ParquetFile(f)
            groups = [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)]
        except (pa.ArrowException, OSError, ValueError) as e:
            yield RowError("parquet_read_error", f"{type(e).__name__}: {e} (the footer: row count unknown)"[:1000],
                           "", f"{path}:row 1")
            return
        first = 1
        for g, size in enumerate(groups):
            done = 0
            try:
                for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS, row_groups=[g]):
                    yield from _batch_rows(batch, path, first + done)
                    done += batch.num_rows
            except (pa.ArrowException, OSError, ValueError) as e:
                lost = max(1, size - done)
                yield RowError("parquet_read_error",
                               f"{type(e).__name__}: {e} (row group {g}: {lost} rows from row {first + done} not read)"[:1000],
                               "", f"{path}:row {first + done}", lost)
            first += size


def text_problem(fields: dict, text_field: str) -> Optional[tuple[str, str]]:
    """Why a row's ``text_field`` cannot be a query text (a null counts as missing)."""
    value = fields.get(text_field)
    if value is None:
        shown = ", ".join(map(str, list(fields)[:20]))
        return "missing_field", f"no value for field {text_field!r} (fields: {shown})"
    if not isinstance(value, str):
        return "wrong_type", f"field {text_field!r} is {type(value).__name__}, not a string"
    if not value.strip():
        return "empty_text", f"field {text_field!r} is empty or whitespace only"
    return None


class _ReadQueriesFn(beam.DoFn):
    """Turns the rows of one file into queries (text kept as read) or dead letters."""

    def __init__(self, spec: SourceSpec, stage: str):
        self._spec = spec
        self._stage = stage

    def setup(self):
        self._counters = StageCounters(self._stage)
        self._source_rows = Metrics.counter(NAMESPACE, f"{self._stage}{SEP}source{SEP}{self._spec.name}")
        self._source_dead = Metrics.counter(NAMESPACE, f"{self._stage}{SEP}source_dead{SEP}{self._spec.name}")

    def process(self, readable_file: fileio.ReadableFile):
        spec, c = self._spec, self._counters
        for item in iter_rows(readable_file, spec):
            rows = item.rows if isinstance(item, RowError) else 1
            c.inc_in(rows)
            self._source_rows.inc(rows)
            if isinstance(item, RowError):
                reason, error, raw = item.reason, item.error, item.raw
            else:
                problem = text_problem(item.fields, spec.text_field)
                if problem is None:
                    c.inc_out()
                    yield Query(item.fields[spec.text_field], spec.name)
                    continue
                (reason, error), raw = problem, item.raw
            c.dead(reason, rows)
            self._source_dead.inc(rows)
            yield beam.pvalue.TaggedOutput(
                DEAD, DeadLetter(self._stage, reason, error, raw[:10000], spec.name, item.locator))


class _ReadSource(beam.PTransform):
    def __init__(self, spec: SourceSpec, stage: str):
        super().__init__()
        self._spec = spec
        self._stage = stage

    def expand(self, pbegin):
        # Reshuffle spreads the files of a glob over workers instead of one fused bundle.
        return (pbegin
                | "Match" >> fileio.MatchFiles(
                    self._spec.path, empty_match_treatment=fileio.EmptyMatchTreatment.DISALLOW)
                | "Open" >> fileio.ReadMatches()
                | "Reshuffle" >> beam.Reshuffle()
                | "Rows" >> beam.ParDo(_ReadQueriesFn(self._spec, self._stage)).with_outputs(DEAD, main="out"))


class ReadQueries(beam.PTransform):
    """Reads all sources into ``{"out": Query, DEAD: DeadLetter}`` PCollections.

    Each source is a ``Read[<name>]`` step (stable labels for Dataflow updates and the
    UI). Every physical row counts as ``<stage>|in`` and ``<stage>|source|<name>``; a
    source whose path matches no file fails the pipeline in its ``Read[<name>]/Match`` step.
    """

    def __init__(self, specs: list[SourceSpec], stage: str = "read"):
        super().__init__()
        if not specs:
            raise ValueError("ReadQueries needs at least one source")
        self._specs = list(specs)
        self._stage = stage

    def expand(self, pbegin):
        results = [pbegin | f"Read[{spec.name}]" >> _ReadSource(spec, self._stage) for spec in self._specs]
        return {
            "out": [r["out"] for r in results] | "FlattenOut" >> beam.Flatten(),
            DEAD: [r[DEAD] for r in results] | "FlattenDead" >> beam.Flatten(),
        }


def to_jsonable(obj: Any, keep_bytes: bool = False) -> Any:
    """Plain dicts/lists/scalars from records (nested NamedTuples, lists, numpy values).

    ``bytes`` become base64 text for JSON, or stay bytes with ``keep_bytes`` (Parquet
    binary columns).
    """
    if isinstance(obj, tuple) and hasattr(obj, "_asdict"):
        return {k: to_jsonable(v, keep_bytes) for k, v in obj._asdict().items()}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v, keep_bytes) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, keep_bytes) for v in obj]
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj) if keep_bytes else base64.b64encode(obj).decode("ascii")
    if hasattr(obj, "tolist"):
        return to_jsonable(obj.tolist(), keep_bytes)
    return obj


def is_encodable(text: str) -> bool:
    """False for strings holding lone surrogates (e.g. from JSON ``\\ud800`` escapes): no UTF-8 exists for them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _to_json_line(record: Any) -> str:
    """One JSON line; a record holding a lone surrogate (from bad input) is written with
    JSON's ASCII escapes (``\\ud800``), since no UTF-8 exists for it, instead of crashing the writer."""
    obj = to_jsonable(record)
    line = json.dumps(obj, ensure_ascii=False, sort_keys=True)
    return line if is_encodable(line) else json.dumps(obj, ensure_ascii=True, sort_keys=True)


class WriteJsonl(beam.PTransform):
    """Writes records as sorted-key JSON lines to ``<prefix>-SSSSS-of-NNNNN.jsonl``.

    Fixed shard names make a rerun with the same shard count overwrite its files.
    """

    def __init__(self, path_prefix: str, num_shards: int = 0):
        super().__init__()
        self._path_prefix = path_prefix
        self._num_shards = num_shards

    def expand(self, pcoll):
        return (pcoll
                | "ToJson" >> beam.Map(_to_json_line)
                | "Write" >> beam.io.WriteToText(
                    self._path_prefix, file_name_suffix=".jsonl", num_shards=self._num_shards,
                    shard_name_template=SHARD_TEMPLATE))


class WriteParquet(beam.PTransform):
    """Writes records as rows of ``schema`` to ``<prefix>-SSSSS-of-NNNNN.parquet``."""

    def __init__(self, path_prefix: str, schema: pa.Schema, num_shards: int = 0):
        super().__init__()
        self._path_prefix = path_prefix
        self._schema = schema
        self._num_shards = num_shards

    def expand(self, pcoll):
        return (pcoll
                | "ToRow" >> beam.Map(to_jsonable, keep_bytes=True)
                | "Write" >> beam.io.WriteToParquet(
                    self._path_prefix, self._schema, codec="snappy", file_name_suffix=".parquet",
                    num_shards=self._num_shards, shard_name_template=SHARD_TEMPLATE))


def shard_name(prefix: str, shard: int, num_shards: int, suffix: str) -> str:
    return f"{prefix}-{shard:05d}-of-{num_shards:05d}{suffix}"


def write_atomically(path: str, data: bytes) -> str:
    """Writes ``data`` to a temporary name beside ``path``, then renames it: a crash mid-write
    leaves no truncated file under the final name (on GCS a rename is a copy, then a delete)."""
    tmp = f"{path}.tmp-{hashlib.sha256(data).hexdigest()[:12]}"
    with FileSystems.create(tmp) as f:
        f.write(data)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])
    return path


class _WriteShardFn(beam.DoFn):
    def __init__(self, prefix: str, schema: pa.Schema, key_field: str, formats: tuple):
        self._prefix, self._schema, self._key, self._formats = prefix, schema, key_field, formats

    def process(self, shard_rows, num_shards):
        shard, rows = shard_rows
        rows = sorted(rows, key=lambda r: (r[self._key], _to_json_line(r)))  # total order
        if "parquet" in self._formats:
            sink = pa.BufferOutputStream()
            pq.write_table(pa.Table.from_pylist(rows, schema=self._schema), sink, compression="snappy")
            yield write_atomically(shard_name(self._prefix, shard, num_shards, ".parquet"), sink.getvalue().to_pybytes())
        if "jsonl" in self._formats:
            yield write_atomically(shard_name(self._prefix, shard, num_shards, ".jsonl"),
                                   "".join(_to_json_line(r) + "\n" for r in rows).encode("utf-8"))


def first_jsonl_rows(pattern: str, n: int) -> list[dict]:
    """The first ``n`` rows of the JSONL files matching ``pattern``, in file-name order (reads no
    more than that): what a job prints as examples of its output."""
    rows: list[dict] = []
    for path in sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list):
        with FileSystems.open(path) as f:
            for line in f:
                if len(rows) == n:
                    return rows
                if line.strip():
                    rows.append(json.loads(line))
    return rows


class WriteSortedShards(beam.PTransform):
    """Dict records -> ``<prefix>-SSSSS-of-NNNNN.parquet`` and ``.jsonl``, byte-identical on rerun.

    A record's shard is a stable hash of its ``key_field`` and rows are sorted by it within a
    shard, so file contents do not depend on bundling or worker count (``WriteToText`` and
    ``WriteToParquet`` write in arrival order). ``num_shards=0`` picks one shard per
    ``rows_per_shard`` records. Returns the written paths.
    """

    def __init__(self, path_prefix: str, schema: pa.Schema, key_field: str, num_shards: int = 0,
                 rows_per_shard: int = 200_000, formats: tuple = ("parquet", "jsonl")):
        super().__init__()
        if num_shards < 0 or rows_per_shard < 1:
            raise ValueError("num_shards must be >= 0 and rows_per_shard >= 1")
        self._prefix, self._schema, self._key = path_prefix, schema, key_field
        self._num_shards, self._rows_per_shard, self._formats = num_shards, rows_per_shard, tuple(formats)

    def expand(self, records):
        fixed, per = self._num_shards, self._rows_per_shard
        shards = (records
                  | "Count" >> beam.combiners.Count.Globally()
                  | "NumShards" >> beam.Map(lambda n: fixed or max(1, -(-n // per))))
        key = self._key

        def assign(record, n):
            digest = hashlib.blake2b(str(record[key]).encode("utf-8"), digest_size=8).digest()
            return int.from_bytes(digest, "little") % n, record

        return (records
                | "AssignShard" >> beam.Map(assign, n=beam.pvalue.AsSingleton(shards))
                | "GroupShards" >> beam.GroupByKey()
                | "WriteShard" >> beam.ParDo(_WriteShardFn(self._prefix, self._schema, key, self._formats),
                                             num_shards=beam.pvalue.AsSingleton(shards)))
