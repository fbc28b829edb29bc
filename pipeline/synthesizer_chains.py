"""Chains of texts for multi-round synthesis, and the instruction-augmented documents they become.

Texts (document parts) are grouped into chains of ``rounds`` by stable hashes, never by input
order or worker count: a part's bucket is a hash of its document id, and within a bucket parts
are ordered by that hash, then id and part number, and cut into consecutive chains. A
document's parts thus stay together and in order. In round ``r`` the chain's ``r``-th text is
synthesized with the earlier ones and their pairs as examples; a text with no pairs breaks
the chain: later texts see only the examples after it.
"""
from __future__ import annotations

import hashlib
from typing import Iterable, List, NamedTuple, Optional, Sequence, Tuple

from pipeline.synthesizer_format import Example, QAPair

PARTS_PER_BUCKET = 256
"""Texts per chain-forming group: big enough that few chains are cut short at a bucket's end,
small enough for one worker to sort."""


class TextPart(NamedTuple):
    """One text the synthesizer reads: a document, or one part of a document too long for a prompt."""
    doc_id: str
    part: int           # 0-based, in document order
    num_parts: int
    text: str
    source: str

    @property
    def part_id(self) -> str:
        return f"{self.doc_id}#{self.part}"

    def accounting_text(self) -> str:
        return f"{self.part_id}: {self.text[:300]}"


class Chain(NamedTuple):
    """A chain's texts and, per text, its pairs (``None`` until its round has run)."""
    chain_id: str
    parts: Tuple[TextPart, ...]
    pairs: Tuple[Optional[Tuple[QAPair, ...]], ...]
    examples_used: Tuple[int, ...] = ()    # per synthesized text: earlier examples in its prompt

    @property
    def source(self) -> str:
        return self.parts[0].source if self.parts else ""

    def accounting_text(self) -> str:
        return f"chain {self.chain_id}: " + ", ".join(p.part_id for p in self.parts)


def stable_hash(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\x00{key}".encode("utf-8")).digest()[:8], "little")


def num_buckets(num_parts: int, rounds: int, parts_per_bucket: int = PARTS_PER_BUCKET) -> int:
    """Buckets for ``num_parts`` texts: whole chains of ``rounds`` in ``parts_per_bucket`` each."""
    per = max(rounds, parts_per_bucket - parts_per_bucket % rounds)
    return max(1, -(-num_parts // per))


def bucket_of(doc_id: str, seed: int, buckets: int) -> int:
    return stable_hash(seed, doc_id) % buckets


def form_chains(parts: Iterable[TextPart], rounds: int, seed: int) -> List[Chain]:
    """One bucket's texts cut into chains of ``rounds`` (the last may be shorter), in a fixed order."""
    ordered = sorted(parts, key=lambda p: (stable_hash(seed, p.doc_id), p.doc_id, p.part))
    chains = []
    for i in range(0, len(ordered), rounds):
        members = tuple(ordered[i:i + rounds])
        chain_id = hashlib.sha256("\n".join(p.part_id for p in members).encode("utf-8")).hexdigest()[:16]
        chains.append(Chain(chain_id, members, (None,) * len(members)))
    return chains


def examples_before(chain: Chain, r: int) -> List[Example]:
    """The chain's texts before the ``r``-th with their pairs, oldest first, back to the last text
    that got no pairs (the chain breaks there)."""
    examples: List[Example] = []
    for j in range(r - 1, -1, -1):
        pairs = chain.pairs[j]
        if not pairs:
            break
        examples.insert(0, Example(chain.parts[j].text, pairs))
    return examples


def with_pairs(chain: Chain, r: int, pairs: Sequence[QAPair], examples_used: int) -> Chain:
    """The chain with the ``r``-th text's pairs set (``()``: none)."""
    new = list(chain.pairs)
    new[r] = tuple(pairs)
    return chain._replace(pairs=tuple(new), examples_used=chain.examples_used + (examples_used,))


# --------------------------------------------------------------------------- augmented corpus

LAYOUTS: Tuple[Tuple[str, str], ...] = (
    ("Question: ", "\nAnswer: "),
    ("Q: ", "\nA: "),
    ("Instruction: ", "\nResponse: "),
    ("User: ", "\nAssistant: "),
    ("Exercise: ", "\nSolution: "),
    ("Query: ", "\nReply: "),
)
"""How a text's pairs read in the augmented corpus (one layout per document, a seeded choice):
plain labels, so the pairs read as natural text after the passage, as in Instruction
Pre-Training; varied so a model does not learn one fixed frame."""


def layout_for(key: str, seed: int) -> int:
    return stable_hash(seed, "layout\x00" + key) % len(LAYOUTS)


def augmented_text(texts: Sequence[Tuple[str, Sequence[QAPair]]], layout: int) -> str:
    """Each text verbatim, followed by its pairs in ``LAYOUTS[layout]``; blocks separated by a
    blank line."""
    q_label, a_label = LAYOUTS[layout]
    blocks = []
    for text, pairs in texts:
        blocks.append(text)
        blocks.extend(f"{q_label}{p.question}{a_label}{p.answer}" for p in pairs)
    return "\n\n".join(blocks)
