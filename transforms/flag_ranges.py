"""Range checks of the jobs' numeric flags, run before any work.

A value out of range (``--embedding_batch_size 0``, ``--max_answer_chars -1``,
``--semantic_query_weight 3``) would otherwise be accepted and fail per record, or with a
traceback after the job starts. Each job lists its flags' ranges; :func:`check_ranges` names
every bad one at once.
"""
from __future__ import annotations

import argparse
import math
from typing import Dict, NamedTuple, Optional


class Range(NamedTuple):
    lo: Optional[float] = None
    hi: Optional[float] = None
    lo_open: bool = False    # lo itself not allowed
    hi_open: bool = False

    def contains(self, value: float) -> bool:
        if isinstance(value, float) and math.isnan(value):
            return False
        if self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo)):
            return False
        return not (self.hi is not None and (value > self.hi or (self.hi_open and value == self.hi)))

    def __str__(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        return f"{'<' if self.hi_open else '<='} {self.hi:g}"


AT_LEAST_0, AT_LEAST_1, POSITIVE = Range(0), Range(1), Range(0, lo_open=True)
SHARE, COSINE = Range(0, 1), Range(-1, 1)

SHARED = {
    "num_shards": AT_LEAST_0, "embedding_batch_size": AT_LEAST_1,
    "generation_batch_size": AT_LEAST_1, "temperature": AT_LEAST_0, "top_p": SHARE,
    "openai_max_concurrency": AT_LEAST_1, "openai_timeout_s": POSITIVE, "openai_max_retries": AT_LEAST_0,
    "max_dead_fraction": SHARE,
}


def check_ranges(opts: argparse.Namespace, ranges: Dict[str, Range]) -> None:
    """Raises ValueError naming every flag of ``ranges`` (and :data:`SHARED`) whose value is out of range."""
    bad = []
    for name, allowed in {**SHARED, **ranges}.items():
        value = getattr(opts, name, None)
        if value is not None and not isinstance(value, bool) and not allowed.contains(value):
            bad.append(f"--{name} must be {allowed} (got {value:g})")
    if bad:
        raise ValueError("; ".join(bad))
