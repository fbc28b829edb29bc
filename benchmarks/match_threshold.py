"""How the default ``--match_threshold`` is chosen for an embedding model.

Embeds documents with the job's Gaussian pooling, searches the library for each of their K+1
vectors, and prints the distribution of each document's best template cosine, plus the share
of documents that reach at least one candidate at a range of thresholds. The paper's 0.865 is
specific to its fine-tuned BGE-M3; for another model, pick a threshold where most documents
reach a candidate but the bottom tail (documents nothing in the library fits) is cut.

    python benchmarks/match_threshold.py --library output/library --docs 100
"""
from __future__ import annotations

import argparse
import glob
import itertools
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pipeline.gaussian_pooling import DocumentEmbedder  # noqa: E402
from transforms.embedding import DEFAULT_EMBEDDING_MODEL, load_embedding_model  # noqa: E402
from transforms.template_library import load_library  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_docs = str(Path(__file__).resolve().parents[2] / "shared/data/documents/wikipedia/wiki_*.jsonl")
    parser.add_argument("--library", required=True, help="template library directory")
    parser.add_argument("--documents", default=default_docs, help="JSONL glob with a text field")
    parser.add_argument("--docs", type=int, default=100, help="documents, taken evenly from the files")
    parser.add_argument("--model", default=DEFAULT_EMBEDDING_MODEL)
    parser.add_argument("--top_k", type=int, default=20)
    args = parser.parse_args(argv)

    files = sorted(glob.glob(args.documents))
    per_file = max(1, -(-args.docs // len(files)))
    texts = [json.loads(line)["text"] for f in files for line in itertools.islice(open(f, encoding="utf-8"), per_file)]
    texts = texts[:args.docs]
    embedder = DocumentEmbedder(load_embedding_model(args.model))
    lib = load_library(args.library)
    best = np.array([float(lib.search(embedder.embed(t).vectors, k=args.top_k)[1].max()) for t in texts])
    pct = [5, 10, 15, 25, 50, 75, 90]
    print(f"{len(texts)} documents vs {len(lib)} templates ({args.model})")
    print("best cosine percentiles: " + ", ".join(f"p{p}={v:.3f}" for p, v in zip(pct, np.percentile(best, pct))))
    for t in (0.25, 0.275, 0.3, 0.325, 0.35, 0.4, 0.45):
        print(f"threshold {t:.3f}: {np.mean(best > t):6.1%} of documents have a candidate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
