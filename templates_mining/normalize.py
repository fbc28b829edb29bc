"""Normalize stage: Unicode NFKC, control characters, whitespace.

NFKC runs through ``tensorflow_text.normalize_utf8`` on whole batches: one vectorized op
per batch (ICU underneath), which is the right tool at Beam scale. The rest (control
characters, whitespace) is plain regex in :func:`clean_text`.
"""
from __future__ import annotations

import re
import time
import unicodedata
from typing import Iterable, List

import apache_beam as beam

from transforms.accounting import DEAD, StageCounters
from transforms.record_io import is_encodable
from transforms.records import DeadLetter, Query

STAGE = "normalize"

# Control and format characters except newline and tab (kept for multi-line prompts).
_CONTROL = "".join(
    chr(c) for c in range(0x110000)
    if unicodedata.category(chr(c)) in ("Cc", "Cf") and chr(c) not in "\n\t"
)
_CONTROL_RE = re.compile(f"[{re.escape(_CONTROL)}]")
_SPACES_RE = re.compile(r"[ \t\u00a0]+")
_SPACE_AROUND_NL_RE = re.compile(r" *\n *")
_MANY_NL_RE = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    """Removes control/format characters and collapses whitespace (keeps paragraph breaks)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL_RE.sub("", text)
    text = _SPACES_RE.sub(" ", text)
    text = _SPACE_AROUND_NL_RE.sub("\n", text)
    text = _MANY_NL_RE.sub("\n\n", text)
    return text.strip()


def nfkc_batch(texts: List[str]) -> List[str]:
    """NFKC-normalizes a batch with one tensorflow-text op call."""
    if not texts:
        return []
    import tensorflow_text as tf_text  # heavy import: only where used

    out = tf_text.normalize_utf8(texts, "NFKC").numpy()
    return [b.decode("utf-8") for b in out]


def normalize_batch(texts: List[str]) -> List[str]:
    """NFKC + :func:`clean_text` for texts that are all UTF-8 encodable."""
    return [clean_text(t) for t in nfkc_batch(texts)]


class _NormalizeBatch(beam.DoFn):
    def setup(self):
        self._counters = StageCounters(STAGE)

    def process(self, batch: List[Query]) -> Iterable:
        c = self._counters
        c.inc_in(len(batch))
        start = time.perf_counter()
        good = []
        for q in batch:
            if is_encodable(q.text):
                good.append(q)
            else:
                c.dead("invalid_unicode")
                raw = q.text.encode("utf-8", "backslashreplace").decode("utf-8")
                yield beam.pvalue.TaggedOutput(DEAD, DeadLetter(
                    STAGE, "invalid_unicode", "text holds lone surrogate code points", raw, q.source))
        for q, text in zip(good, normalize_batch([q.text for q in good])):
            c.inc_out()
            yield Query(text, q.source)
        c.busy(time.perf_counter() - start)


class NormalizeQueries(beam.PTransform):
    """Query -> Query with normalized text; un-encodable text -> dead letters."""

    def __init__(self, max_batch_size: int = 1024):
        super().__init__()
        self._max_batch_size = max_batch_size

    def expand(self, queries):
        return (
            queries
            | "Batch" >> beam.BatchElements(min_batch_size=64, max_batch_size=self._max_batch_size)
            | "NFKC" >> beam.ParDo(_NormalizeBatch()).with_outputs(DEAD, main="out"))
