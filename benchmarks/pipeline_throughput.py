"""Documents/s of the pipeline job end to end (DirectRunner, embedded defaults) and where the
time goes per stage (busy seconds from the run report's counters).

    python benchmarks/pipeline_throughput.py --library output/library            # all 1,534 articles
    python benchmarks/pipeline_throughput.py --library output/library --docs 200
    python benchmarks/pipeline_throughput.py --library output/library --every 10   # 154 articles
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_docs = str(Path(__file__).resolve().parents[2] / "shared/data/documents/wikipedia/wiki_*.jsonl")
    parser.add_argument("--library", required=True, help="template library directory")
    parser.add_argument("--documents", default=default_docs, help="JSONL glob")
    parser.add_argument("--docs", type=int, default=0, help="first N documents only (0 = all)")
    parser.add_argument("--every", type=int, default=1,
                        help="every Nth document only (a length-representative sample; 1 = all)")
    args, rest = parser.parse_known_args(argv)

    from pipeline.grounding import library_template_ids, read_documents, ungrounded
    from pipeline.job import read_pairs, run

    with tempfile.TemporaryDirectory() as tmp:
        pattern = args.documents
        if args.docs or args.every > 1:
            lines = [line for f in sorted(glob.glob(pattern)) for line in open(f, encoding="utf-8")][::args.every]
            lines = lines[:args.docs or None]
            pattern = str(Path(tmp) / "docs.jsonl")
            Path(pattern).write_text("".join(lines), encoding="utf-8")
        out = str(Path(tmp) / "out")
        start = time.perf_counter()
        report = run(["--documents", pattern, "--templates", args.library, "--output", out, *rest])
        wall = time.perf_counter() - start
        pairs = read_pairs(out)
        documents = read_documents(pattern)
    bad = ungrounded(pairs, documents, library_template_ids(args.library))
    stages = {s["stage"]: s for s in report["stages"]}
    docs = stages["read"]["in"]
    busy = sum(s["busy_s"] for s in report["stages"])
    print(f"\n{'stage':<20}{'in':>8}{'busy s':>9}{'share':>8}{'records/busy s':>16}")
    for s in report["stages"]:
        if s["busy_s"]:
            print(f"{s['stage']:<20}{s['in']:>8}{s['busy_s']:>9.1f}{s['busy_s'] / busy:>8.1%}"
                  f"{s['records_per_busy_s'] or 0:>16.1f}")
    print(f"end to end: {docs} documents in {wall:.1f} s wall = {docs / wall:.2f} documents/s; "
          f"{len(pairs)} pairs kept ({len(pairs) / max(docs, 1):.2f} per document); "
          f"conservation {'OK' if report['conservation_ok'] else 'FAILED'}; "
          f"{len(pairs) - len(bad)} of {len(pairs)} pairs pass the grounding checks")
    for pair_id, problems in list(bad.items())[:5]:
        print(f"  not grounded: {pair_id}: {'; '.join(problems)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
