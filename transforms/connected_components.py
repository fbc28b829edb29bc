"""Distributed connected components over an undirected edge list.

Algorithm: alternating *large-star* / *small-star* (Kiveris et al., "Connected Components
in MapReduce and Beyond", SoCC 2014), unrolled for a fixed number of rounds because a
Beam graph cannot loop. Each half-round is one ``GroupByKey`` by node, so no worker ever
holds more than one node's adjacency. Both operations preserve connectivity and shrink
every component towards a star centred on its smallest node; chains converge in
O(log n) rounds (a 100k-node chain in ascending id order needs 17 rounds, random ids 13),
so the default of 20 rounds covers far more than near-dedupe graphs need.

After the last round every node takes ``label = min(neighbours + itself)``; the labelling
is exact iff both ends of every remaining edge agree, which a final pair of shuffles
checks. Disagreeing nodes are counted in ``<stage>|unconverged_nodes`` and logged (their
labels are still the best known, never wrong across components).

Every step is a pure function of the current edge *set* (adjacencies are deduplicated per
node), so the output is the same for any bundling or worker count.
"""
from __future__ import annotations

import logging
from typing import Iterable, Iterator, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.accounting import NAMESPACE, SEP

LOG = logging.getLogger(__name__)

Edge = Tuple[str, str]

_SELF = 0  # F1 -> F2 message: the node's own label
_NEIGHBOUR = 1  # F1 -> F2 message: a neighbour's label


def _canonical(edge: Edge) -> Iterator[Edge]:
    """``(a, b)`` -> ``(min, max)``; self-loops become no edge (their node is kept apart)."""
    a, b = edge
    if a != b:
        yield (a, b) if a < b else (b, a)


def _both_directions(edge: Edge) -> Iterator[Edge]:
    a, b = edge
    yield a, b
    yield b, a


def _large_star(node_neighbours: Tuple[str, Iterable[str]]) -> Iterator[Edge]:
    """Connect every strictly larger neighbour of ``u`` to the minimum of ``u``'s closed neighbourhood."""
    u, values = node_neighbours
    neighbours = set(values)
    neighbours.discard(u)
    m = min(neighbours | {u})
    for v in neighbours:
        if v > u:
            yield m, v


def _small_star(node_neighbours: Tuple[str, Iterable[str]]) -> Iterator[Edge]:
    """Connect ``u`` and its smaller neighbours to the smallest of those neighbours."""
    u, values = node_neighbours
    smaller = {v for v in values if v < u}
    if not smaller:
        return
    m = min(smaller)
    for v in smaller:
        if v != m:
            yield m, v
    yield m, u


def _label_and_notify(node_values: Tuple[str, Iterable[str]]) -> Iterator[Tuple[str, Tuple[int, str]]]:
    """Label a node with its closed-neighbourhood minimum and tell its neighbours that label."""
    v, values = node_values
    neighbours = set(values)
    neighbours.discard(v)
    label = min(neighbours | {v})
    yield v, (_SELF, label)
    for u in neighbours:
        yield u, (_NEIGHBOUR, label)


class _CheckConvergence(beam.DoFn):
    """Emits ``(node, label)``; counts nodes whose neighbours still carry another label."""

    def __init__(self, stage: str):
        self._stage = stage

    def setup(self):
        self._unconverged = Metrics.counter(NAMESPACE, f"{self._stage}{SEP}unconverged_nodes")

    def start_bundle(self):
        self._bundle_unconverged = 0

    def process(self, node_messages):
        v, messages = node_messages
        own = None
        others = set()
        for kind, label in messages:
            if kind == _SELF:
                own = label
            else:
                others.add(label)
        others.discard(own)
        if others:
            self._unconverged.inc()
            self._bundle_unconverged += 1
        yield v, own

    def finish_bundle(self):
        if self._bundle_unconverged:
            LOG.warning(
                "%s: %d nodes had not converged after the last connected-components round; "
                "raise max_rounds", self._stage, self._bundle_unconverged)


class ConnectedComponents(beam.PTransform):
    """``PCollection[(a, b)]`` undirected edges -> ``PCollection[(node, label)]``.

    ``label`` is the lexicographically smallest node id of the node's component; every
    node of any edge (self-loops included) appears exactly once. ``max_rounds`` rounds of
    large-star + small-star, 2 shuffles each, plus 2 shuffles for labelling and the
    convergence check.
    """

    def __init__(self, max_rounds: int = 20, stage: str = "cc"):
        super().__init__()
        if max_rounds < 1:
            raise ValueError(f"max_rounds must be >= 1, got {max_rounds}")
        self._max_rounds = max_rounds
        self._stage = stage

    def expand(self, edges):
        loops = (
            edges
            | "SelfLoopNodes" >> beam.FlatMap(lambda e: [(e[0], e[0])] if e[0] == e[1] else []))
        current = edges | "Canonical" >> beam.FlatMap(_canonical)
        for r in range(self._max_rounds):
            current = (
                current
                | f"Round{r}/LargeStar/Directed" >> beam.FlatMap(_both_directions)
                | f"Round{r}/LargeStar/Group" >> beam.GroupByKey()
                | f"Round{r}/LargeStar/Emit" >> beam.FlatMap(_large_star)
                | f"Round{r}/SmallStar/Directed" >> beam.FlatMap(_both_directions)
                | f"Round{r}/SmallStar/Group" >> beam.GroupByKey()
                | f"Round{r}/SmallStar/Emit" >> beam.FlatMap(_small_star))
        directed = current | "Final/Directed" >> beam.FlatMap(_both_directions)
        return (
            (directed, loops)
            | "Final/WithSelfLoopNodes" >> beam.Flatten()
            | "Final/GroupNeighbours" >> beam.GroupByKey()
            | "Final/Label" >> beam.FlatMap(_label_and_notify)
            | "Final/GroupLabels" >> beam.GroupByKey()
            | "Final/Check" >> beam.ParDo(_CheckConvergence(self._stage)))
