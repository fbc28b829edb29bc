"""Matching documents to templates through the library's ScaNN index (METHOD.md §1.2).

Each of a document's K+1 retrieval vectors retrieves its top-k templates; those above the
cosine threshold are candidates (a template found by several vectors keeps its best score
and that vector as its chunk). A seeded weighted sample without replacement then picks
``templates_per_document`` of them, each weighted ``target(b) / count(b)`` for its tag-count
bucket ``b``, so the tag counts of the sample follow the target distribution as closely as
the candidates allow instead of the retriever's bias towards short templates, and weighted by
its match score (``exp((score - best) / temperature)``), so the draw stays among the
document's best matches instead of anything above the threshold.
"""
from __future__ import annotations

import hashlib
import threading
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from transforms.accounting import Rejected


class Candidate(NamedTuple):
    row: int
    chunk: int
    score: float


def candidates(rows: np.ndarray, scores: np.ndarray, threshold: float) -> List[Candidate]:
    """Distinct templates with cosine > ``threshold`` from ``[K+1, k]`` search results,
    best score (and its chunk) per template, in (row) order."""
    best: Dict[int, Candidate] = {}
    for chunk in range(rows.shape[0]):
        for row, score in zip(rows[chunk], scores[chunk]):
            row, score = int(row), float(score)
            if row < 0 or score <= threshold:
                continue
            if row not in best or score > best[row].score:
                best[row] = Candidate(row, chunk, score)
    return [best[r] for r in sorted(best)]


def parse_tag_distribution(spec: str) -> Dict[int, float]:
    """``'1:0.4,2:0.3,3:0.3'`` -> ``{1: 0.4, 2: 0.3, 3: 0.3}`` normalised to sum 1."""
    dist: Dict[int, float] = {}
    try:
        for part in spec.split(","):
            key, value = part.split(":")
            dist[int(key)] = float(value)
    except ValueError as e:
        raise ValueError(f"--tag_distribution: expected 'library' or 'tags:share,...', got {spec!r}") from e
    if not dist or min(dist) < 1 or any(v < 0 for v in dist.values()) or sum(dist.values()) <= 0:
        raise ValueError(f"--tag_distribution: tag counts must be >= 1, shares >= 0 and not all 0: {spec!r}")
    total = sum(dist.values())
    return {k: v / total for k, v in sorted(dist.items())}


def library_tag_distribution(num_tags: Sequence[int], weights: Sequence[int]) -> Dict[int, float]:
    """Tag counts of the library's templates weighted by source queries: the real queries' own
    distribution, which is what the paper matches (theirs: WildChat, LMSys, OAsst1, ShareLM)."""
    dist: Dict[int, float] = {}
    for n, w in zip(num_tags, weights):
        dist[int(n)] = dist.get(int(n), 0.0) + float(max(w, 1))
    total = sum(dist.values())
    return {k: v / total for k, v in sorted(dist.items())}


def bucket(num_tags: int, dist: Dict[int, float]) -> int:
    """The distribution's key for a tag count: the largest key takes every larger count."""
    top = max(dist)
    return min(num_tags, top) if num_tags >= min(dist) else min(dist)


def seeded_rng(seed: int, key: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}\x00{key}".encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def sample_templates(cands: Sequence[Candidate], num_tags: Sequence[int], dist: Dict[int, float],
                     n: int, rng: np.random.Generator, temperature: float = 0.0) -> List[Candidate]:
    """Weighted sample of ``n`` candidates without replacement (Efraimidis–Spirakis keys
    ``u^(1/w)``), ``w = target(bucket) / candidates in bucket``, times
    ``exp((score - best score) / temperature)`` when ``temperature > 0``, so a better match
    is likelier to be drawn (a candidate ``temperature`` below the best is e times less
    likely); zero-weight candidates are never drawn. Returned by descending key (draw order)."""
    if n < 1 or not cands:
        return []
    buckets = [bucket(num_tags[i], dist) for i in range(len(cands))]
    counts: Dict[int, int] = {}
    for b in buckets:
        counts[b] = counts.get(b, 0) + 1
    weights = np.array([dist.get(b, 0.0) / counts[b] for b in buckets])
    if temperature > 0:
        scores = np.array([c.score for c in cands])
        weights = weights * np.exp((scores - scores.max()) / temperature)
    u = rng.random(len(cands))
    keys = np.full(len(cands), -np.inf)
    positive = weights > 0
    keys[positive] = np.log(u[positive]) / weights[positive]
    order = [i for i in np.argsort(-keys, kind="stable") if positive[i]]
    return [cands[i] for i in order[:n]]


class LibraryRef(NamedTuple):
    """What the match step receives as its side input: where the library is, and its manifest."""
    path: str
    manifest: dict


class LoadedLibrary(NamedTuple):
    library: object                 # transforms.template_library.TemplateLibrary
    template_ids: List[str]
    templates: List[str]
    descriptions: List[str]
    num_tags: List[int]
    weights: List[int]


_LOCK = threading.Lock()
_LIBRARIES: Dict[Tuple[str, str], LoadedLibrary] = {}


def loaded_library(ref: LibraryRef) -> LoadedLibrary:
    """The searcher and template table for ``ref``, loaded once per process (gs:// copied first)."""
    from transforms.template_library import load_library

    key = (ref.path, ref.manifest.get("created_at", ""))
    with _LOCK:
        if key not in _LIBRARIES:
            lib = load_library(ref.path)
            table = {r["template_id"]: r for r in lib.template_table().to_pylist()}
            ids = [lib.template_id(i) for i in range(len(lib))]
            missing = [t for t in ids[:5] if t not in table]
            if missing:
                raise ValueError(f"library {ref.path}: index rows without template records, e.g. {missing}")
            rows = [table[t] for t in ids]
            _LIBRARIES[key] = LoadedLibrary(lib, ids, [r["template"] for r in rows],
                                            [r["description"] for r in rows],
                                            [int(r["num_tags"]) for r in rows], [int(r["weight"]) for r in rows])
        return _LIBRARIES[key]


def check_library_matches(manifest: dict, model_name: str, info: Optional[dict] = None) -> None:
    """Raises ValueError unless the library was built with this embedding model (and, given the
    loaded model's ``model_info``, the same dimension and pooling)."""
    emb = manifest.get("embedding", {})
    problems = []
    if emb.get("name") != model_name:
        problems.append(f"embedding model {emb.get('name')!r} != --embedding_model {model_name!r}")
    if info is not None:
        for key in ("dimension", "pooling"):
            if emb.get(key) != info.get(key):
                problems.append(f"{key} {emb.get(key)!r} != the model's {info.get(key)!r}")
    if problems:
        raise ValueError("template library does not match this job's embedding: " + "; ".join(problems)
                         + ". Mine the library with the same model, or pass its --embedding_model.")


def match_document(vectors: np.ndarray, doc_key: str, lib: LoadedLibrary, dist: Dict[int, float],
                   top_k: int, threshold: float, n: int, seed: int, temperature: float = 0.0,
                   usable: Optional[Sequence[bool]] = None,
                   fits: Optional[Callable[[int], bool]] = None) -> List[Candidate]:
    """The sampled candidates for one document; ``Rejected('no_candidate_templates')`` when none.
    ``usable[row]``: whether the instantiator can use that template at all; ``fits(row)``:
    whether it may fit this document (both default to yes)."""
    rows, scores = lib.library.search(vectors, k=top_k)
    cands = candidates(rows, scores, threshold)
    if usable is not None:
        cands = [c for c in cands if usable[c.row]]
    if fits is not None:
        cands = [c for c in cands if fits(c.row)]
    if not cands:
        best = float(np.max(scores)) if scores.size else float("nan")
        raise Rejected("no_candidate_templates", f"best cosine {best:.3f} <= threshold {threshold}, "
                                                 "or no template above it the instantiator can use")
    picked = sample_templates(cands, [lib.num_tags[c.row] for c in cands], dist, n, seeded_rng(seed, doc_key),
                              temperature)
    if not picked:
        raise Rejected("no_candidate_templates", "no candidate has a tag count the target distribution allows")
    return picked
