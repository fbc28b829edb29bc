"""ScaNN vs exact search: QPS and recall@10 measured side by side in one run.

Both searchers get the same queries in the same batches (``--batch``); exact search is a
numpy float32 matmul plus top-k selection (multi-threaded BLAS), ScaNN is the searcher
that ``transforms.scann_index.index_params_for`` configures (multi-threaded over each
batch), plus a sweep over leaves searched. Timings are the best of ``--repeats`` passes,
alternating the two, so background load on a small machine hits both alike.

Data: ``random`` = i.i.d. unit vectors (queries too): no structure, the worst case for any
partitioning index. ``clustered`` = unit vectors around 1,000 random centres, queries from
the same mixture: closer to real sentence embeddings, which concentrate on topics.

    python benchmarks/scann_benchmark.py --n 100000 --dim 384 --queries 1000 --data random,clustered
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable, Dict, List, Tuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from transforms.scann_index import build_searcher, index_params_for  # noqa: E402

K = 10


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_data(kind: str, n: int, dim: int, num_queries: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """``(database, queries)`` of unit vectors."""
    rng = np.random.default_rng(seed)
    if kind == "random":
        return (unit(rng.standard_normal((n, dim), dtype=np.float32)),
                unit(rng.standard_normal((num_queries, dim), dtype=np.float32)))
    if kind == "clustered":
        centres = unit(rng.standard_normal((1000, dim), dtype=np.float32))
        assign = rng.integers(0, len(centres), n + num_queries)
        x = unit(centres[assign] + 0.06 * rng.standard_normal((n + num_queries, dim), dtype=np.float32))
        return x[:n], x[n:]
    raise ValueError(f"unknown data kind {kind!r}")


def exact_search(db: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Exact top-K by inner product: matmul, partial selection, sort of the K."""
    def search(q: np.ndarray) -> np.ndarray:
        scores = q @ db.T
        top = np.argpartition(scores, -K, axis=1)[:, -K:]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        return np.take_along_axis(top, order, axis=1)
    return search


def scann_search(searcher, leaves: int | None, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    def search(q: np.ndarray) -> np.ndarray:
        idx, _ = searcher.search_batched_parallel(
            q, final_num_neighbors=K, leaves_to_search=leaves,
            batch_size=max(1, -(-len(q) // threads)))
        return np.asarray(idx)
    return search


def timed_pass(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, batch: int):
    start = time.perf_counter()
    results = [search(queries[i:i + batch]) for i in range(0, len(queries), batch)]
    return time.perf_counter() - start, np.concatenate(results)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[:K]) & set(t)) / K for f, t in zip(found, truth)]))


def run_one(kind: str, args) -> List[Dict]:
    db, queries = make_data(kind, args.n, args.dim, args.queries, args.seed)
    params = index_params_for(args.n, args.dim)
    start = time.perf_counter()
    searcher = build_searcher(db, params, k=K)
    build_s = time.perf_counter() - start
    threads = os.cpu_count() or 1
    methods: Dict[str, Tuple[Callable, Dict]] = {"exact (numpy)": (exact_search(db), {})}
    default_leaves = params.get("num_leaves_to_search")
    methods[f"scann default {_describe(params)}"] = (scann_search(searcher, None, threads), params)
    if params["type"] == "tree_ah":
        for frac in args.sweep:
            leaves = max(1, int(round(params["num_leaves"] * frac)))
            if leaves != default_leaves:
                methods[f"scann leaves_to_search={leaves}"] = (scann_search(searcher, leaves, threads), params)
    for search, _ in methods.values():  # warm-up
        search(queries[:args.batch])
    best = {name: float("inf") for name in methods}
    found = {}
    for _ in range(args.repeats):
        for name, (search, _) in methods.items():
            seconds, found[name] = timed_pass(search, queries, args.batch)
            best[name] = min(best[name], seconds)
    truth = found["exact (numpy)"]
    exact_qps = args.queries / best["exact (numpy)"]
    rows = []
    for name in methods:
        qps = args.queries / best[name]
        rows.append({"data": kind, "method": name, "recall@10": recall_at_k(found[name], truth),
                     "qps": qps, "x_exact": qps / exact_qps})
    print(f"\n[{kind}] n={args.n} dim={args.dim} queries={args.queries} batch={args.batch} "
          f"threads={threads} build={build_s:.1f}s params={params}")
    print(f"{'method':<48} {'recall@10':>9} {'QPS':>9} {'x exact':>8}")
    for r in rows:
        print(f"{r['method']:<48} {r['recall@10']:>9.3f} {r['qps']:>9.0f} {r['x_exact']:>8.1f}")
    default = rows[1]
    met = default["recall@10"] >= 0.95 and default["x_exact"] >= 10
    print(f"target (recall@10 >= 0.95 at >= 10x exact QPS) with index_params_for: "
          f"{'MET' if met else 'NOT MET'} (recall {default['recall@10']:.3f}, {default['x_exact']:.1f}x)")
    return rows


def _describe(params: Dict) -> str:
    if params["type"] == "brute_force":
        return "(brute force)"
    return (f"(leaves {params['num_leaves_to_search']}/{params['num_leaves']}, "
            f"reorder {params['reorder']})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="database vectors")
    parser.add_argument("--dim", type=int, default=384, help="vector dimension")
    parser.add_argument("--queries", type=int, default=1000, help="query vectors")
    parser.add_argument("--batch", type=int, default=100, help="queries per search call (both methods)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes; the best counts")
    parser.add_argument("--data", default="random", help="comma list of: random, clustered")
    parser.add_argument("--sweep", type=lambda s: [float(x) for x in s.split(",") if x],
                        default=[0.05, 0.2, 0.5, 1.0], help="fractions of leaves to search, extra rows")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for kind in args.data.split(","):
        run_one(kind.strip(), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
