"""Per-document token budget (METHOD.md §1.4): keep a random subset of a document's pairs.

The paper keeps, per document, a random subset of its judged pairs whose total tokens do
not exceed the document's own token count (~3 of 6 pairs on average), so the synthetic
corpus stays about as large as the source corpus and long answers cannot crowd out the
rest. The subset must be the same on every rerun, so the shuffle is seeded from a stable
hash of a caller-given key (e.g. the document id), never from Python's per-process
``hash()`` or the clock.

The paper also rolls unused budget over to later documents; :class:`BudgetRollover` does
that, but it is off by default in the job (see its docstring for why).
"""
from __future__ import annotations

import hashlib
import random
from typing import List, Optional, Sequence


def seed_from_key(seed_key: str) -> int:
    """A 64-bit RNG seed from ``seed_key`` (SHA-256, identical across processes and runs)."""
    return int.from_bytes(hashlib.sha256(seed_key.encode("utf-8")).digest()[:8], "big")


def select_within_budget(pairs_tokens: Sequence[int], budget: int, seed_key: str) -> List[int]:
    """Indices (ascending) of a seeded random subset of pairs whose tokens sum to <= ``budget``.

    The indices ``0..n-1`` are shuffled by a :class:`random.Random` seeded with
    :func:`seed_from_key` (``seed_key``), then taken greedily in that order: a pair is kept
    when it still fits in what is left of the budget, otherwise skipped (a later, smaller
    pair may still fit). A pair larger than the whole budget is therefore never kept, and a
    zero budget keeps only zero-token pairs. Raises ``ValueError`` on a negative budget or
    a negative token count.
    """
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    if any(t < 0 for t in pairs_tokens):
        raise ValueError(f"token counts must be >= 0, got {list(pairs_tokens)}")
    order = list(range(len(pairs_tokens)))
    random.Random(seed_from_key(seed_key)).shuffle(order)
    left = budget
    kept = []
    for i in order:
        if pairs_tokens[i] <= left:
            kept.append(i)
            left -= pairs_tokens[i]
    return sorted(kept)


class BudgetRollover:
    """Optional rollover of unused budget from one document to the next (METHOD.md §1.4).

    Protocol per document: ``granted = r.grant(doc_tokens)`` (the document's tokens plus
    what is carried), select with ``granted`` as the budget, then ``r.spend(used, granted)``:
    the unused ``granted - used`` becomes the new carry (it replaces the old one, which was
    part of ``granted``), capped at ``max_carry`` when given.

    Why it is off by default in the job: in a parallel runner (Beam/Dataflow) the carry
    lives in one DoFn instance, so it only moves between documents processed by the same
    worker in the same bundle. Which documents those are, and in which order, depends on
    sharding and scheduling, so the totals are order-dependent and a rerun is not
    guaranteed to keep the same pairs when rollover is on. Without it every document's
    selection depends only on its own pairs and seed key.
    """

    def __init__(self, max_carry: Optional[int] = None):
        if max_carry is not None and max_carry < 0:
            raise ValueError(f"max_carry must be >= 0 or None, got {max_carry}")
        self.max_carry = max_carry
        self.carried = 0

    def grant(self, doc_tokens: int) -> int:
        """The budget for the next document: its own tokens plus the carried remainder."""
        if doc_tokens < 0:
            raise ValueError(f"doc_tokens must be >= 0, got {doc_tokens}")
        return doc_tokens + self.carried

    def spend(self, used: int, granted: int) -> None:
        """Record that ``used`` of ``granted`` was spent; carry the rest (capped) forward."""
        if used < 0 or used > granted:
            raise ValueError(f"used must be in 0..granted ({granted}), got {used}")
        remainder = granted - used
        self.carried = remainder if self.max_carry is None else min(remainder, self.max_carry)

    def reset(self) -> None:
        """Drop the carry (e.g. at the start of a bundle)."""
        self.carried = 0
