"""Gaussian pooling (METHOD.md §1.2): K+1 retrieval vectors per whole document.

A document is embedded without a description: its token embeddings ``h_1..h_T`` give a
global mean ``h̄`` and K local vectors, each a Gaussian-weighted mean around centre
``c_k = T·k/(K+1)`` with width ``σT``, mixed with the global one by ``α``. The local
vector that retrieves a template says where in the document the answer lies.

Documents are usually longer than the model's input (256 tokens for MiniLM), so the token
ids of the whole document (up to ``max_document_tokens``) are cut into windows that each
fit the model; every window is encoded with its own special tokens, and the token
embeddings of all windows are concatenated back into one sequence of document positions
before pooling. Nothing inside ``max_document_tokens`` is truncated away.
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence

import numpy as np

from pipeline.late_chunking import TokenVectors, pack_token_vectors

DEFAULT_K = 5
DEFAULT_SIGMA = 0.05
DEFAULT_ALPHA = 1.0
DEFAULT_MAX_DOCUMENT_TOKENS = 4096
"""Covers the median shared Wikipedia article (~2k tokens) whole and most of the long tail,
while keeping the 1,534-article run inside its time budget on 2 cores (docs/benchmarks.md)."""


def chunk_centres(num_tokens: int, k: int) -> np.ndarray:
    """``c_k = T·k/(K+1)`` for k = 1..K (token positions, 0-based)."""
    return num_tokens * np.arange(1, k + 1, dtype=np.float64) / (k + 1)


def gaussian_weights(num_tokens: int, k: int, sigma: float, mask: Optional[np.ndarray] = None) -> np.ndarray:
    """``[K, T]`` weights ``w_kt ∝ m_t exp(-½((t - c_k)/(σT))²)``, each row summing to 1."""
    if num_tokens < 1:
        raise ValueError("need at least one token")
    t = np.arange(num_tokens, dtype=np.float64)
    centres = chunk_centres(num_tokens, k)[:, None]
    w = np.exp(-0.5 * ((t[None, :] - centres) / (sigma * num_tokens)) ** 2)
    if mask is not None:
        w = w * np.asarray(mask, dtype=np.float64)[None, :]
    total = w.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError("a chunk has zero total weight (empty mask?)")
    return w / total


def gaussian_pool(token_embeddings: np.ndarray, mask: Optional[np.ndarray] = None, k: int = DEFAULT_K,
                  sigma: float = DEFAULT_SIGMA, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """``float32 [K+1, d]`` unit vectors ``[h̄, h*_1 .. h*_K]`` from ``[T, d]`` token embeddings."""
    h = np.asarray(token_embeddings, dtype=np.float64)
    if h.ndim != 2 or h.shape[0] == 0:
        raise ValueError(f"need [T, d] token embeddings with T >= 1, got shape {h.shape}")
    m = np.ones(h.shape[0]) if mask is None else np.asarray(mask, dtype=np.float64)
    if m.sum() <= 0:
        raise ValueError("mask selects no tokens")
    global_vec = (m[:, None] * h).sum(axis=0) / m.sum()
    local = gaussian_weights(h.shape[0], k, sigma, m) @ h
    mixed = (1.0 - alpha) * global_vec[None, :] + alpha * local
    out = np.vstack([global_vec[None, :], mixed])
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return (out / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def chunk_char_centres(token_offsets: Sequence[int], k: int) -> List[int]:
    """Character offset of each retrieval vector's centre: 0 = global (document middle), 1..K local.

    ``token_offsets[t]`` is the character where token ``t`` starts.
    """
    n = len(token_offsets)
    if n == 0:
        return [0] * (k + 1)
    centres = [int(token_offsets[min(n - 1, int(c))]) for c in chunk_centres(n, k)]
    return [int(token_offsets[n // 2])] + centres


class WindowedTokens(NamedTuple):
    """A document's token ids cut into model-sized windows, with character offsets."""
    windows: List[List[int]]
    offsets: List[int]       # start character of every kept token
    num_tokens: int          # tokens in the whole document (before max_document_tokens)
    ends: List[int] = []     # end character of every kept token


def window_document(tokenizer, text: str, window_tokens: int, max_document_tokens: int) -> WindowedTokens:
    """Tokenizes the whole ``text`` (no truncation) and cuts the first ``max_document_tokens``
    token ids into consecutive windows of ``window_tokens``."""
    if window_tokens < 1:
        raise ValueError("window_tokens must be >= 1")
    enc = tokenizer(text, add_special_tokens=False, truncation=False, return_offsets_mapping=True,
                    verbose=False)
    ids = list(enc["input_ids"])
    kept = ids[:max_document_tokens]
    spans = enc["offset_mapping"][:len(kept)]
    windows = [kept[i:i + window_tokens] for i in range(0, len(kept), window_tokens)]
    return WindowedTokens(windows, [int(s) for s, _ in spans], len(ids), [int(e) for _, e in spans])


def special_token_frame(tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a sequence (e.g. ``[CLS]`` and ``[SEP]``)."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    framed = tokenizer("a", add_special_tokens=True)["input_ids"]
    for i in range(len(framed) - len(bare) + 1):
        if framed[i:i + len(bare)] == bare:
            return list(framed[:i]), list(framed[i + len(bare):])
    raise ValueError("cannot locate the content between the tokenizer's special tokens")


class DocumentEmbedder:
    """Token embeddings of whole documents with a sentence-transformers model, then pooling.

    Works for any sentence-transformers model whose first module is a ``Transformer``: its
    tokenizer and underlying Hugging Face model give the token embeddings the model's own
    pooling would have averaged. A document's windows are batched together (and only with
    each other) so a document's vectors never depend on which documents share its bundle.
    """

    def __init__(self, model, k: int = DEFAULT_K, sigma: float = DEFAULT_SIGMA, alpha: float = DEFAULT_ALPHA,
                 max_document_tokens: int = DEFAULT_MAX_DOCUMENT_TOKENS, batch_size: int = 16):
        first = model[0]
        if not hasattr(first, "auto_model") or not hasattr(first, "tokenizer"):
            raise ValueError(f"{type(first).__name__} is not a Transformer module: cannot get token embeddings")
        if max_document_tokens < 1:
            raise ValueError("max_document_tokens must be >= 1")
        self.model = model
        self.tokenizer = first.tokenizer
        self.encoder = first.auto_model
        self.k, self.sigma, self.alpha = k, sigma, alpha
        self.max_document_tokens = max_document_tokens
        self.batch_size = batch_size
        self.prefix, self.suffix = special_token_frame(self.tokenizer)
        self.window_tokens = int(model.max_seq_length) - len(self.prefix) - len(self.suffix)

    def token_embeddings(self, windowed: WindowedTokens) -> np.ndarray:
        """``float32 [T, d]``: every window's token embeddings (special tokens dropped), in order."""
        import torch

        device = next(self.encoder.parameters()).device
        parts: List[np.ndarray] = []
        for start in range(0, len(windowed.windows), self.batch_size):
            batch = [self.prefix + w + self.suffix for w in windowed.windows[start:start + self.batch_size]]
            width = max(len(ids) for ids in batch)
            pad = self.tokenizer.pad_token_id or 0
            input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in batch], device=device)
            attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in batch], device=device)
            with torch.inference_mode():
                hidden = self.encoder(input_ids=input_ids, attention_mask=attention).last_hidden_state
            hidden = hidden.float().cpu().numpy()
            first = len(self.prefix)
            for row, window in zip(hidden, windowed.windows[start:start + self.batch_size]):
                parts.append(row[first:first + len(window)])
        return np.concatenate(parts).astype(np.float32)

    def embed(self, text: str, keep_token_vectors: bool = False) -> "PooledDocument":
        """Pooled vectors; with ``keep_token_vectors`` also the token embeddings themselves, for
        late chunking downstream (pipeline/late_chunking.py)."""
        windowed = window_document(self.tokenizer, text, self.window_tokens, self.max_document_tokens)
        if not windowed.windows:
            raise ValueError("document has no tokens")
        tokens = self.token_embeddings(windowed)
        vectors = gaussian_pool(tokens, None, self.k, self.sigma, self.alpha)
        packed = (pack_token_vectors(tokens, list(zip(windowed.offsets, windowed.ends)))
                  if keep_token_vectors else None)
        return PooledDocument(vectors, windowed.num_tokens, len(windowed.offsets),
                              chunk_char_centres(windowed.offsets, self.k), packed)


class PooledDocument(NamedTuple):
    vectors: np.ndarray        # float32 [K+1, d], unit norm
    num_tokens: int            # whole document
    pooled_tokens: int         # min(num_tokens, max_document_tokens)
    chunk_centres: List[int]   # character centre per retrieval vector
    token_vectors: Optional[TokenVectors] = None
