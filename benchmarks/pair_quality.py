"""What the embedded defaults make, ready to be read: both jobs on shared data, the diversity
figures issue 11 keeps, and a blind rating sample drawn with ../shared/rating/sample.py.

Mines the five shared query sources (or takes ``--library``), runs the pipeline job on a fixed,
seeded set of shared Wikipedia articles (``--articles`` of the 1,534, drawn with ``--seed``;
``--articles 0`` = all), checks grounding, prints pairs per article, distinct templates per 100
pairs, the largest template's share, the share with two or more slots and the tag-count mix
against the target, and writes ``OUT/rating_sample.jsonl`` (``--n`` pairs and ``--n``
templates) for a reviewer who did not write the code, with ../shared/rating/README.md.

    python benchmarks/pair_quality.py --out /tmp/quality                      # 160 articles, seed 11
    python benchmarks/pair_quality.py --out /tmp/quality --library /tmp/lib   # reuse a mined library
    python benchmarks/pair_quality.py --out /tmp/full --articles 0            # all 1,534 articles
"""
from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def seeded_articles(pattern: str, n: int, seed: int) -> list:
    """``n`` article lines drawn with ``seed`` from every file of ``pattern`` (all when n == 0),
    in their original order."""
    lines = [line for f in sorted(glob.glob(pattern)) for line in open(f, encoding="utf-8") if line.strip()]
    if n <= 0 or n >= len(lines):
        return lines
    keep = set(random.Random(seed).sample(range(len(lines)), n))
    return [line for i, line in enumerate(lines) if i in keep]


def diversity(pairs: list, library_tags: dict) -> dict:
    """The figures the issue keeps beside the rating."""
    n = len(pairs)
    by_template = collections.Counter(p["template_id"] for p in pairs)
    tags = collections.Counter(library_tags.get(p["template_id"], 0) for p in pairs)
    return {
        "pairs": n,
        "distinct_templates": len(by_template),
        "distinct_templates_per_100_pairs": round(100 * len(by_template) / n, 1) if n else 0.0,
        "largest_template_share": round(max(by_template.values()) / n, 4) if n else 0.0,
        "share_with_2plus_slots": round(sum(v for k, v in tags.items() if k >= 2) / n, 3) if n else 0.0,
        "tag_counts": {str(k): round(v / n, 3) for k, v in sorted(tags.items())},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="working directory (library, articles, pairs, sample)")
    parser.add_argument("--library", help="an existing template library (default: mine the shared queries)")
    parser.add_argument("--articles", type=int, default=160, help="articles drawn from the 1,534 (0 = all)")
    parser.add_argument("--seed", type=int, default=11, help="seed of the article draw")
    parser.add_argument("--n", type=int, default=60, help="pairs and templates in the rating sample")
    parser.add_argument("--sample_seed", type=int, default=1, help="seed of ../shared/rating/sample.py")
    args, rest = parser.parse_known_args(argv)

    from pipeline.grounding import library_template_ids, read_documents, ungrounded
    from pipeline.job import read_pairs, run
    from pipeline.match import library_tag_distribution
    from transforms.template_library import load_library

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    library = args.library
    if not library:
        library = str(out / "library")
        start = time.perf_counter()
        from templates_mining.job import run as mine
        mine(["--sources", str(ROOT / "benchmarks/shared_query_sources.yaml"), "--output", library])
        print(f"mined the shared queries in {time.perf_counter() - start:.0f} s")
    docs = out / "articles.jsonl"
    docs.write_text("".join(seeded_articles(str(SHARED / "data/documents/wikipedia/wiki_*.jsonl"),
                                            args.articles, args.seed)), encoding="utf-8")
    pairs_dir = str(out / "pairs_run")
    start = time.perf_counter()
    report = run(["--documents", str(docs), "--templates", library, "--output", pairs_dir, *rest])
    wall = time.perf_counter() - start
    pairs = read_pairs(pairs_dir)
    documents = read_documents(str(docs))
    bad = ungrounded(pairs, documents, library_template_ids(library))

    table = load_library(library).template_table().to_pylist()
    library_tags = {r["template_id"]: int(r["num_tags"]) for r in table}
    target = library_tag_distribution([r["num_tags"] for r in table], [r["weight"] for r in table])
    figures = diversity(pairs, library_tags)
    figures.update(articles=len(documents), pairs_per_article=round(len(pairs) / max(len(documents), 1), 3),
                   articles_with_pairs=len({p["doc_id"] for p in pairs}), grounded=len(pairs) - len(bad),
                   wall_s=round(wall, 1), library_templates=len(table),
                   target_tag_counts={str(k): round(v, 3) for k, v in target.items()},
                   conservation_ok=report["conservation_ok"])
    (out / "figures.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(figures, indent=2))

    sample = subprocess.run(
        [sys.executable, str(SHARED / "rating/sample.py"), "--pairs", pairs_dir, "--library", library,
         "--documents", str(docs), "--n", str(args.n), "--seed", str(args.sample_seed)],
        check=True, capture_output=True, text=True).stdout
    (out / "rating_sample.jsonl").write_text(sample, encoding="utf-8")
    print(f"rating sample: {out / 'rating_sample.jsonl'} ({sample.count(chr(10))} items); rate it blind with "
          f"{SHARED / 'rating/README.md'}")
    return 0 if report["conservation_ok"] and not bad else 1


if __name__ == "__main__":
    sys.exit(main())
