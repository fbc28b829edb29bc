"""Embedding stage inside the pipeline vs the model's own ``encode`` in a plain loop.

Both sides embed the same documents, window by window (every token up to
``--max_document_tokens``), with the same model in the same process, timed side by side
(alternating, best of ``--repeats``): the pipeline side is a DirectRunner pipeline of
``Create -> Embed`` (the job's ``EmbedStep`` under ``accounted_map``: windowing, Gaussian
pooling, counters); the plain side calls ``SentenceTransformer.encode`` on each document's
window texts. Ratio = pipeline tokens/s / plain tokens/s (target >= 0.8).

    python benchmarks/embedding_throughput.py --docs 60
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import apache_beam as beam  # noqa: E402

from pipeline.documents import content_hash  # noqa: E402
from pipeline.gaussian_pooling import DEFAULT_MAX_DOCUMENT_TOKENS, DocumentEmbedder, window_document  # noqa: E402
from pipeline.records import Document  # noqa: E402
from pipeline.steps import EmbedStep  # noqa: E402
from transforms.accounting import accounted_map  # noqa: E402
from transforms.embedding import DEFAULT_EMBEDDING_MODEL, load_embedding_model  # noqa: E402


def load_docs(pattern: str, n: int):
    docs = []
    for path in sorted(glob.glob(pattern)):
        for line in open(path, encoding="utf-8"):
            row = json.loads(line)
            docs.append(Document(str(row["id"]), row["text"], row.get("url", ""), "bench", content_hash(row["text"])))
            if len(docs) == n:
                return docs
    return docs


def window_texts(embedder: DocumentEmbedder, text: str):
    w = window_document(embedder.tokenizer, text, embedder.window_tokens, embedder.max_document_tokens)
    ends = w.offsets[1:] + [len(text)]
    out, i = [], 0
    for window in w.windows:
        out.append(text[w.offsets[i]:ends[i + len(window) - 1]])
        i += len(window)
    return out, len(w.offsets)


def plain_loop(model, windows, batch_size: int) -> float:
    start = time.perf_counter()
    for texts in windows:
        model.encode(texts, batch_size=batch_size, output_value="token_embeddings", show_progress_bar=False)
    return time.perf_counter() - start


def in_pipeline(docs, args) -> float:
    step = EmbedStep(DEFAULT_EMBEDDING_MODEL, 5, 0.05, 1.0, args.max_document_tokens, args.batch_size,
                     keep_token_vectors=True)  # as the job with its default (extractive) instantiator
    start = time.perf_counter()
    with beam.Pipeline() as p:
        _ = (p | beam.Create(docs) | "Embed" >> accounted_map("embed", step)).out | beam.Map(lambda e: None)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_docs = str(Path(__file__).resolve().parents[2] / "shared/data/documents/wikipedia/wiki_*.jsonl")
    parser.add_argument("--documents", default=default_docs, help="JSONL glob with id/text")
    parser.add_argument("--docs", type=int, default=60, help="documents to embed")
    parser.add_argument("--max_document_tokens", type=int, default=DEFAULT_MAX_DOCUMENT_TOKENS)
    parser.add_argument("--batch_size", type=int, default=64, help="windows per forward pass (the job's default)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)

    docs = load_docs(args.documents, args.docs)
    model = load_embedding_model()
    embedder = DocumentEmbedder(model, max_document_tokens=args.max_document_tokens, batch_size=args.batch_size)
    windows, tokens = [], 0
    for d in docs:
        texts, n = window_texts(embedder, d.text)
        windows.append(texts)
        tokens += n
    plain_loop(model, windows[:2], args.batch_size)  # warm-up both paths
    in_pipeline(docs[:2], args)
    best_plain = best_pipe = float("inf")
    for _ in range(args.repeats):
        best_plain = min(best_plain, plain_loop(model, windows, args.batch_size))
        best_pipe = min(best_pipe, in_pipeline(docs, args))
    print(f"{len(docs)} documents, {tokens} tokens (max {args.max_document_tokens} per document), "
          f"batch {args.batch_size}, threads {os.cpu_count()}")
    print(f"plain encode loop : {best_plain:7.1f} s  {tokens / best_plain:8.0f} tokens/s")
    print(f"pipeline embed    : {best_pipe:7.1f} s  {tokens / best_pipe:8.0f} tokens/s")
    ratio = best_plain / best_pipe
    print(f"ratio pipeline/plain = {ratio:.2f} (target >= 0.8: {'MET' if ratio >= 0.8 else 'NOT MET'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
