"""Precision, recall and F1 of the project's dedupe decision on labelled question pairs.

Reads pairs in the format of ../shared/data/duplicates/mqp_a.csv
(``question_1,question_2,label``; label 1 = same meaning) and applies, per pair, exactly the
decisions the templates-mining job makes, in its order:

1. exact dedupe: same ``dedupe_key`` after normalization;
2. near dedupe: estimated MinHash Jaccard of word shingles >= ``--near_threshold``;
3. template exact dedupe: both queries genericize to the same normalized template;
4. semantic dedupe: ``w * cos(queries) + (1 - w) * cos(descriptions) >= --semantic_threshold``
   (the cosine of the job's dedupe vectors, ``w = --semantic_query_weight``).

Prints P/R/F1 at the job's defaults (read from templates_mining.options), then a sweep of the
semantic threshold so its default can be calibrated. Target: F1 >= 0.75 on mqp_a.

    .venv/bin/python benchmarks/dedupe_quality.py --pairs ../shared/data/duplicates/mqp_a.csv
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from templates_mining.exact_dedupe import dedupe_key  # noqa: E402
from templates_mining.genericize_rules import genericize  # noqa: E402
from templates_mining.minhash import (estimated_jaccard, make_permutations, minhash_signatures,  # noqa: E402
                                      tokenize_for_shingles, word_shingles)
from templates_mining.normalize import normalize_batch  # noqa: E402
from templates_mining.options import MiningOptions  # noqa: E402
from transforms.job_options import job_flags  # noqa: E402
from templates_mining.template_dedupe import dedupe_vector  # noqa: E402
from transforms.template_format import normalize_template  # noqa: E402
from transforms.embedding import embed_texts, load_embedding_model  # noqa: E402


def prf(pred: np.ndarray, gold: np.ndarray) -> tuple[float, float, float]:
    tp = int(np.sum(pred & gold))
    precision = tp / max(int(pred.sum()), 1)
    recall = tp / max(int(gold.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def decisions(q1: list[str], q2: list[str], opts):
    """Per-stage boolean decisions and the description cosine for each pair."""
    a, b = normalize_batch(q1), normalize_batch(q2)
    exact = np.array([dedupe_key(x) == dedupe_key(y) for x, y in zip(a, b)])

    perms = make_permutations(opts.num_perm, opts.seed)
    sig_a = minhash_signatures([word_shingles(t, opts.shingle_size) for t in tokenize_for_shingles(a)], perms)
    sig_b = minhash_signatures([word_shingles(t, opts.shingle_size) for t in tokenize_for_shingles(b)], perms)
    near = np.array([estimated_jaccard(x, y) >= opts.near_threshold for x, y in zip(sig_a, sig_b)])

    ta, tb = [genericize(x) for x in a], [genericize(y) for y in b]
    same_template = np.array([normalize_template(x[0]) == normalize_template(y[0]) for x, y in zip(ta, tb)])

    model = load_embedding_model(opts.embedding_model)
    w = opts.semantic_query_weight
    va = [dedupe_vector(q, d, w) for q, d in zip(embed_texts(model, a), embed_texts(model, [t[1] for t in ta]))]
    vb = [dedupe_vector(q, d, w) for q, d in zip(embed_texts(model, b), embed_texts(model, [t[1] for t in tb]))]
    cosine = np.array([x @ y for x, y in zip(va, vb)])
    return exact, near, same_template, cosine


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", default=str(Path(__file__).resolve().parents[2] / "shared/data/duplicates/mqp_a.csv"),
                        help="CSV with question_1, question_2, label columns.")
    args, rest = parser.parse_known_args(argv)
    opts = job_flags(PipelineOptions(rest), MiningOptions)

    with open(args.pairs, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    q1, q2 = [r["question_1"] for r in rows], [r["question_2"] for r in rows]
    gold = np.array([r["label"].strip() == "1" for r in rows])

    start = time.perf_counter()
    exact, near, same_template, cosine = decisions(q1, q2, opts)
    elapsed = time.perf_counter() - start
    print(f"pairs: {len(rows)} ({int(gold.sum())} duplicates) from {args.pairs}; {elapsed:.1f} s")
    print(f"stage hits: exact={int(exact.sum())} near={int(near.sum())} same_template={int(same_template.sum())}")

    lexical = exact | near | same_template
    print(f"\n{'decision':<44}{'precision':>10}{'recall':>8}{'F1':>7}")
    for name, pred in [("exact + near + template (lexical only)", lexical),
                       (f"project default (semantic >= {opts.semantic_threshold})",
                        lexical | (cosine >= opts.semantic_threshold))]:
        p, r, f = prf(pred, gold)
        print(f"{name:<44}{p:>10.3f}{r:>8.3f}{f:>7.3f}")

    print("\nsemantic threshold sweep (with the lexical stages):")
    best = (0.0, 0.0)
    for t in np.round(np.arange(0.50, 0.951, 0.025), 3):
        p, r, f = prf(lexical | (cosine >= t), gold)
        best = max(best, (f, t))
        print(f"  {t:.3f}  P={p:.3f}  R={r:.3f}  F1={f:.3f}")
    print(f"best F1 {best[0]:.3f} at semantic_threshold {best[1]:.3f}")
    _, _, f_default = prf(lexical | (cosine >= opts.semantic_threshold), gold)
    print(f"\nF1 at the default: {f_default:.3f} (target >= 0.75: {'met' if f_default >= 0.75 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
