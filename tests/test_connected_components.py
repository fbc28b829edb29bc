"""ConnectedComponents: exact labels on known shapes, union-find agreement, convergence counter."""
import random

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms.accounting import NAMESPACE
from transforms.connected_components import ConnectedComponents


def union_find_labels(edges):
    """Reference: node -> smallest node id of its component."""
    parent = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {node: find(node) for node in parent}


def check(edges):
    expected = sorted(union_find_labels(edges).items())
    with BeamTestPipeline() as p:
        out = p | beam.Create(edges) | ConnectedComponents()
        assert_that(out, equal_to(expected))


def test_long_chain_converges_with_default_rounds():
    nodes = [f"n{i:04d}" for i in range(200)]
    check([(nodes[i], nodes[i + 1]) for i in range(199)])


def test_reversed_and_shuffled_chains():
    nodes = [f"n{i:04d}" for i in range(200)]
    rev = [(nodes[i + 1], nodes[i]) for i in range(199)][::-1]
    shuffled = nodes[:]
    random.Random(7).shuffle(shuffled)
    other = [("x" + shuffled[i], "x" + shuffled[i + 1]) for i in range(199)]
    check(rev + other)


def test_stars_components_duplicates_and_self_loops():
    edges = [
        ("hub", "a"), ("hub", "b"), ("c", "hub"), ("hub", "d"),  # star, centre not smallest
        ("z1", "z2"), ("z2", "z1"), ("z1", "z2"),  # duplicates, both directions
        ("lonely", "lonely"),  # self-loop only
        ("m", "m"), ("m", "n"),  # self-loop on a node with a real edge
    ]
    expected = {"hub": "a", "a": "a", "b": "a", "c": "a", "d": "a",
                "z1": "z1", "z2": "z1", "lonely": "lonely", "m": "m", "n": "m"}
    assert union_find_labels(edges) == expected
    check(edges)


def test_random_graphs_match_union_find():
    rng = random.Random(1234)
    edges = []
    for g in range(5):
        n = rng.randint(5, 60)
        names = [f"g{g}-{rng.getrandbits(32):08x}" for _ in range(n)]
        for _ in range(rng.randint(n // 2, 2 * n)):
            edges.append((rng.choice(names), rng.choice(names)))
    check(edges)


def unconverged(edges, max_rounds):
    pipeline = beam.Pipeline()
    _ = pipeline | beam.Create(edges) | ConnectedComponents(max_rounds, stage="cctest")
    result = pipeline.run()
    result.wait_until_finish()
    counters = result.metrics().query(
        MetricsFilter().with_namespace(NAMESPACE).with_name("cctest|unconverged_nodes"))["counters"]
    return sum(c.committed for c in counters)


def test_unconverged_nodes_are_counted_not_fatal():
    nodes = [f"n{i:04d}" for i in range(64)]
    chain = [(nodes[i], nodes[i + 1]) for i in range(63)]
    assert unconverged(chain, max_rounds=1) > 0
    assert unconverged(chain, max_rounds=20) == 0


def test_rejects_zero_rounds():
    with pytest.raises(ValueError):
        ConnectedComponents(max_rounds=0)
