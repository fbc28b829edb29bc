"""Stage accounting: every record leaves a stage as output, filtered, or dead letter.

Counters are Beam metrics in namespace ``fineinstructions`` named
``<stage>|in``, ``<stage>|out``, ``<stage>|filtered|<reason>``, ``<stage>|dead|<reason>``
so the Dataflow UI shows them and ``run_report`` can prove, per stage,
``in = out + filtered + dead``.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.records import DeadLetter, Filtered

NAMESPACE = "fineinstructions"
FILTERED = "filtered"
DEAD = "dead_letters"
SEP = "|"

LOG = logging.getLogger(__name__)


class Rejected(Exception):
    """Raised by a pure stage function to filter a record on purpose (a reason code)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail


class InvalidRecord(Exception):
    """Raised by a pure stage function when a record is malformed (becomes a dead letter)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail


class StageCounters:
    """The counters of one stage, plus periodic progress logging for long local runs."""

    def __init__(self, stage: str, progress_every_s: float = 30.0):
        self.stage = stage
        self._in = Metrics.counter(NAMESPACE, f"{stage}{SEP}in")
        self._out = Metrics.counter(NAMESPACE, f"{stage}{SEP}out")
        self._seconds = Metrics.counter(NAMESPACE, f"{stage}{SEP}busy_ms")
        self._by_reason: dict = {}
        self._progress_every_s = progress_every_s
        self._seen = 0
        self._last_log = time.monotonic()

    def inc_in(self, n: int = 1) -> None:
        self._in.inc(n)
        self._seen += n
        now = time.monotonic()
        if now - self._last_log >= self._progress_every_s:
            LOG.info("stage %s: %d records in (this worker)", self.stage, self._seen)
            self._last_log = now

    def inc_out(self, n: int = 1) -> None:
        self._out.inc(n)

    def _reason_counter(self, kind: str, reason: str):
        key = (kind, reason)
        if key not in self._by_reason:
            self._by_reason[key] = Metrics.counter(NAMESPACE, f"{self.stage}{SEP}{kind}{SEP}{reason}")
        return self._by_reason[key]

    def filtered(self, reason: str, n: int = 1) -> None:
        self._reason_counter("filtered", reason).inc(n)

    def filtered_output(self, reason: str, text: str, source: str):
        """Counts one record filtered with ``reason`` and returns it for the ``filtered`` output."""
        self.filtered(reason)
        return beam.pvalue.TaggedOutput(FILTERED, Filtered(self.stage, reason, text, source))

    def dead(self, reason: str, n: int = 1) -> None:
        self._reason_counter("dead", reason).inc(n)

    def busy(self, seconds: float) -> None:
        self._seconds.inc(int(seconds * 1000))


def text_and_source(element: Any) -> tuple[str, str]:
    """What a filtered or dead record shows of its input: its text and source."""
    if hasattr(element, "accounting_text"):
        return element.accounting_text(), getattr(element, "source", "")
    text = getattr(element, "text", None)
    if text is None and hasattr(element, "representative"):
        text = element.representative.text
    if text is None and hasattr(element, "template"):
        text = element.template if isinstance(element.template, str) else element.template.template
    source = getattr(element, "source", "")
    if not source and hasattr(element, "sources"):
        source = ",".join(element.sources)
    return (text if isinstance(text, str) else repr(element)), source


class AccountedMap(beam.DoFn):
    """Applies a pure function to each element with full accounting.

    ``fn(element, *side_inputs)`` returns the output element, raises :class:`Rejected` (filtered with
    a reason) or :class:`InvalidRecord`/any other exception (dead letter with the input).
    Use via :func:`accounted_map`. When ``fn`` has a ``setup()`` method (e.g. it loads a
    model, cached per process), it runs in the DoFn's ``setup``, once per DoFn instance.
    """

    def __init__(self, stage: str, fn: Callable[[Any], Any]):
        self._stage = stage
        self._fn = fn

    def setup(self):
        self._counters = StageCounters(self._stage)
        if hasattr(self._fn, "setup"):
            self._fn.setup()

    def process(self, element, *side_inputs):
        c = self._counters
        c.inc_in()
        start = time.perf_counter()
        try:
            result = self._fn(element, *side_inputs)
        except Rejected as r:
            c.filtered(r.reason)
            text, source = text_and_source(element)
            yield beam.pvalue.TaggedOutput(FILTERED, Filtered(self._stage, r.reason, text, source))
            return
        except Exception as e:  # noqa: BLE001 - every failure becomes a dead letter
            reason = e.reason if isinstance(e, InvalidRecord) else f"error_{type(e).__name__}"
            c.dead(reason)
            text, source = text_and_source(element)
            yield beam.pvalue.TaggedOutput(
                DEAD, DeadLetter(self._stage, reason, str(e)[:2000], text, source))
            return
        finally:
            c.busy(time.perf_counter() - start)
        c.inc_out()
        yield result


def accounted_map(stage: str, fn: Callable[..., Any], *side_inputs) -> beam.ParDo:
    """``beam.ParDo`` of :class:`AccountedMap` with outputs ``out``, ``filtered``, ``dead_letters``.

    ``side_inputs`` (e.g. ``beam.pvalue.AsSingleton(pc)``) are passed to ``fn`` after the element.
    """
    return beam.ParDo(AccountedMap(stage, fn), *side_inputs).with_outputs(FILTERED, DEAD, main="out")


def count_stage(stage: str, kind: str) -> Callable[[Any], Any]:
    """A ``beam.Map`` body that counts elements passing a point (``in`` or ``out``)."""
    counter = Metrics.counter(NAMESPACE, f"{stage}{SEP}{kind}")

    def _count(element):
        counter.inc()
        return element

    return _count
