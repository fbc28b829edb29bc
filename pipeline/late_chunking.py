"""Late chunking: a vector for any character range of a document from the contextual token
embeddings the embed stage already computed, instead of encoding the range again.

The vector of a range is the unit-normalised mean of the embeddings of the tokens that start
inside it: the same mean pooling the sentence-transformers model applies, over tokens that
were encoded in the context of their whole window (Günther et al., 2024, "Late Chunking").
The extractive instantiator needs vectors for hundreds of sentences and candidate spans per
document; re-encoding them costs several times the embedding of the document itself, while
this costs one prefix sum per document and O(d) per range.

Only the first ``max_document_tokens`` tokens were embedded; ranges past them have no vector.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence, Tuple

import numpy as np


class TokenVectors(NamedTuple):
    """A document's contextual token embeddings, compact enough to travel with the record."""
    vectors: bytes     # float16 [T, d]
    spans: bytes       # int32 [T, 2]: [start, end) character offsets of each token
    dim: int


def pack_token_vectors(token_embeddings: np.ndarray, spans: Sequence[Tuple[int, int]]) -> TokenVectors:
    emb = np.asarray(token_embeddings, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != len(spans):
        raise ValueError(f"need [T, d] embeddings for {len(spans)} token spans, got shape {emb.shape}")
    return TokenVectors(emb.astype(np.float16).tobytes(), np.asarray(spans, dtype=np.int32).reshape(-1, 2).tobytes(),
                        int(emb.shape[1]))


class LateChunker:
    """Unit vectors of character ranges of one document (see the module docstring)."""

    def __init__(self, packed: TokenVectors):
        emb = np.frombuffer(packed.vectors, dtype=np.float16).reshape(-1, packed.dim).astype(np.float64)
        spans = np.frombuffer(packed.spans, dtype=np.int32).reshape(-1, 2)
        self.starts = spans[:, 0]
        self.covered = int(spans[-1, 1]) if len(spans) else 0
        """Characters before this offset were embedded; ranges reaching past it are cut there."""
        self._prefix = np.vstack([np.zeros((1, packed.dim)), np.cumsum(emb, axis=0)])

    def vectors(self, ranges: Sequence[Tuple[int, int]]) -> np.ndarray:
        """``float32 [n, d]`` unit vectors; a zero row for a range with no embedded token."""
        if not len(ranges):
            return np.zeros((0, self._prefix.shape[1]), dtype=np.float32)
        r = np.asarray(ranges, dtype=np.int64).reshape(-1, 2)
        first = np.searchsorted(self.starts, r[:, 0], side="left")
        last = np.searchsorted(self.starts, r[:, 1], side="left")
        sums = self._prefix[last] - self._prefix[first]
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        return (sums / np.where(norms > 0, norms, 1.0)).astype(np.float32)
