"""Throughput of the templates-mining job, per stage, on the real query sources; then ScaNN.

Part 1 runs the whole job (DirectRunner) over the five sources in ../shared/data/queries
and prints, per stage, records in and records per busy second (time spent inside the
stage's DoFns, from the run report), plus the end-to-end queries/s.
Part 2 runs benchmarks/scann_benchmark.py: ScaNN QPS and recall@10 against exact search
on random unit vectors, measured side by side in one run.

    .venv/bin/python benchmarks/mining_throughput.py [--queries_dir DIR] [--skip_scann]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SOURCES = """\
- {{name: nq_open, path: {q}/nq_open_dev.jsonl, format: jsonl, text_field: question}}
- {{name: msmarco, path: {q}/msmarco_passage_dev_queries.tsv, format: tsv, header: false, text_field: "1"}}
- {{name: webquestions, path: {q}/webquestions_test.jsonl, format: jsonl, text_field: question}}
- {{name: arena_hard, path: {q}/arena_hard_v2_prompts.jsonl, format: jsonl, text_field: prompt}}
- {{name: self_instruct, path: {q}/self_instruct_seed_tasks.jsonl, format: jsonl, text_field: instruction}}
"""


def stage_throughput(queries_dir: Path, extra_args: list[str]) -> None:
    from templates_mining.job import run

    with tempfile.TemporaryDirectory() as tmp:
        sources = Path(tmp) / "sources.yaml"
        sources.write_text(SOURCES.format(q=queries_dir))
        start = time.perf_counter()
        report = run(["--sources", str(sources), "--output", str(Path(tmp) / "library"), *extra_args])
        wall = time.perf_counter() - start
    read_in = next(s["in"] for s in report["stages"] if s["stage"] == "read")
    print(f"\n{'stage':<24}{'in':>9}{'busy s':>9}{'records/busy s':>16}")
    for s in report["stages"]:
        if s["in"]:
            rate = f"{s['records_per_busy_s']:.0f}" if s["records_per_busy_s"] else "-"
            print(f"{s['stage']:<24}{s['in']:>9}{s['busy_s']:>9.1f}{rate:>16}")
    print(f"end to end: {read_in} queries in {wall:.1f} s wall = {read_in / wall:.0f} queries/s "
          f"(conservation {'OK' if report['conservation_ok'] else 'FAILED'})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries_dir", default=str(Path(__file__).resolve().parents[2] / "shared/data/queries"))
    parser.add_argument("--skip_scann", action="store_true", help="Only the per-stage part.")
    parser.add_argument("--scann_n", type=int, default=100_000, help="Vectors for the ScaNN part.")
    args, rest = parser.parse_known_args(argv)
    stage_throughput(Path(args.queries_dir), rest)
    if not args.skip_scann:
        import scann_benchmark

        print("\nScaNN vs exact search")
        scann_benchmark.main(["--n", str(args.scann_n)])
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
