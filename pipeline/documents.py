"""Reading corpus documents: rows -> Documents or dead letters, length filter, exact dedupe.

FineWeb-like inputs carry ``id``, ``text`` and ``url``; the field names are options. A
document's id is the input's id when it has one, else a content hash, so every pair can be
traced back to its document.
"""
from __future__ import annotations

import hashlib
import re
from typing import Iterable, NamedTuple, Optional, Tuple

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.metrics import Metrics

from pipeline.records import Document
from transforms.accounting import DEAD, FILTERED, NAMESPACE, SEP, Rejected, StageCounters
from transforms.record_io import RowError, SourceSpec, is_encodable, iter_rows, text_problem
from transforms.records import DeadLetter, Filtered


class DocumentFields(NamedTuple):
    """Which input fields hold the id, text and URL."""
    id_field: str = "id"
    text_field: str = "text"
    url_field: str = "url"


# C0 controls but tab, newline and carriage return; DEL; C1 controls; zero-width space, word
# joiner and a BOM inside the text. Zero-width (non-)joiners stay: they carry meaning in Persian,
# Indic scripts and emoji sequences.
_INVISIBLE_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u2060\ufeff]")


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def clean_text(text: str) -> str:
    """``text`` without control and invisible characters (NUL, ESC, zero-width space, ...), which
    would otherwise reach answers verbatim."""
    return _INVISIBLE_RE.sub("", text)


def document_from_fields(fields: dict, names: DocumentFields, source: str) -> Document:
    """A Document from one parsed row (text cleaned by :func:`clean_text`); raises
    ``_RowProblem(reason, error)`` for a bad row."""
    problem = text_problem(fields, names.text_field)
    if problem:
        raise _RowProblem(*problem)
    raw_text = fields[names.text_field]
    if not is_encodable(raw_text):
        raise _RowProblem("invalid_unicode", f"field {names.text_field!r} holds a lone UTF-16 surrogate")
    text = clean_text(raw_text)
    if not text.strip():
        raise _RowProblem("empty_text", f"field {names.text_field!r} holds only control characters")
    digest = content_hash(text)
    raw_id = fields.get(names.id_field)
    if raw_id is None or raw_id == "":
        doc_id = f"sha256:{digest}"
    elif isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool):
        doc_id = str(raw_id)
        if not is_encodable(doc_id):
            raise _RowProblem("invalid_unicode", f"field {names.id_field!r} holds a lone UTF-16 surrogate")
    else:
        raise _RowProblem("wrong_type", f"field {names.id_field!r} is {type(raw_id).__name__}, not a string or int")
    url = fields.get(names.url_field)
    url = url if isinstance(url, str) and is_encodable(url) else ""
    return Document(doc_id, text, url, source, digest)


class _RowProblem(Exception):
    def __init__(self, reason: str, error: str):
        super().__init__(error)
        self.reason = reason


class _ReadDocumentsFn(beam.DoFn):
    def __init__(self, spec: SourceSpec, names: DocumentFields, stage: str):
        self._spec, self._names, self._stage = spec, names, stage

    def setup(self):
        self._counters = StageCounters(self._stage)
        self._cleaned = Metrics.counter(NAMESPACE, f"{self._stage}{SEP}cleaned_control_characters")

    def process(self, readable_file: fileio.ReadableFile):
        c = self._counters
        for item in iter_rows(readable_file, self._spec):
            rows = item.rows if isinstance(item, RowError) else 1
            c.inc_in(rows)
            if isinstance(item, RowError):
                reason, error, raw, locator = item.reason, item.error, item.raw, item.locator
            else:
                try:
                    doc = document_from_fields(item.fields, self._names, item.locator.rsplit(":", 1)[0])
                except _RowProblem as p:
                    reason, error, raw, locator = p.reason, str(p), item.raw, item.locator
                else:
                    if doc.text != item.fields[self._names.text_field]:
                        self._cleaned.inc()
                    c.inc_out()
                    yield doc
                    continue
            c.dead(reason, rows)
            yield beam.pvalue.TaggedOutput(DEAD, DeadLetter(self._stage, reason, error, raw[:10000],
                                                            self._spec.name, locator))


class ReadDocuments(beam.PTransform):
    """Document files matching a glob -> ``{"out": Document, DEAD: DeadLetter}``.

    A glob that matches no file fails the pipeline (a typo must not yield an empty run).
    """

    def __init__(self, pattern: str, fmt: str, names: DocumentFields = DocumentFields(), stage: str = "read"):
        super().__init__()
        if fmt not in ("jsonl", "parquet"):
            raise ValueError(f"documents must be jsonl or parquet, got {fmt!r}")
        self._spec = SourceSpec("documents", pattern, fmt, names.text_field)
        self._names, self._stage = names, stage

    def expand(self, pbegin):
        return (pbegin
                | "Match" >> fileio.MatchFiles(self._spec.path,
                                               empty_match_treatment=fileio.EmptyMatchTreatment.DISALLOW)
                | "Open" >> fileio.ReadMatches()
                | "Reshuffle" >> beam.Reshuffle()
                | "Rows" >> beam.ParDo(_ReadDocumentsFn(self._spec, self._names, self._stage))
                .with_outputs(DEAD, main="out"))


def length_filter(min_chars: int, max_chars: int):
    """``fn(Document) -> Document`` rejecting ``too_short`` / ``too_long`` documents."""
    if min_chars < 0 or max_chars < min_chars:
        raise ValueError(f"need 0 <= min_document_chars <= max_document_chars, got {min_chars}, {max_chars}")

    def check(doc: Document) -> Document:
        n = len(doc.text.strip())
        if n < min_chars:
            raise Rejected("too_short", f"{n} < {min_chars} characters")
        if n > max_chars:
            raise Rejected("too_long", f"{n} > {max_chars} characters")
        return doc

    return check


def keep_first(docs: Iterable[Document]) -> Tuple[Document, list]:
    """The document with the smallest id among exact duplicates, and the rest (any order in)."""
    ordered = sorted(docs, key=lambda d: (d.doc_id, d.url, d.source))
    return ordered[0], ordered[1:]


class _DedupeFn(beam.DoFn):
    def __init__(self, stage: str):
        self._stage = stage

    def setup(self):
        self._counters = StageCounters(self._stage)

    def process(self, keyed):
        _, docs = keyed
        kept, dropped = keep_first(docs)
        c = self._counters
        c.inc_in(1 + len(dropped))
        c.inc_out()
        yield kept
        for doc in dropped:
            c.filtered("duplicate_document")
            yield beam.pvalue.TaggedOutput(FILTERED, Filtered(
                self._stage, "duplicate_document", f"{doc.doc_id} duplicates {kept.doc_id}", doc.source))


class DedupeDocuments(beam.PTransform):
    """Drops exact duplicate documents (same content hash), keeping the smallest doc_id."""

    def __init__(self, stage: str = "dedupe_documents"):
        super().__init__()
        self._stage = stage

    def expand(self, docs):
        return (docs
                | "KeyByHash" >> beam.Map(lambda d: (d.content_hash, d))
                | "Group" >> beam.GroupByKey()
                | "KeepFirst" >> beam.ParDo(_DedupeFn(self._stage)).with_outputs(FILTERED, main="out"))


def document_format(pattern: str, fmt: Optional[str]) -> str:
    """``fmt`` or the format implied by the glob's extension (jsonl or parquet only)."""
    from transforms.record_io import infer_format

    fmt = fmt or infer_format(pattern)
    if fmt not in ("jsonl", "parquet"):
        raise ValueError(f"--documents must be JSONL or Parquet (got format {fmt!r}); set --document_format")
    return fmt
