"""The ``extractive`` instantiator: fills a template's ``<fi>`` tags and answers from the document.

Deterministic and CPU-only, so the whole system runs with no generative model. It does what
the released instantiator is trained to do, with retrieval instead of generation:

* each tag is filled with a span of the document (a name, a number with its unit, a short
  noun phrase) whose embedding is closest to the tag's description, looking first in the
  region of the document around the chunk that retrieved the template;
* the answer is the passage (consecutive sentences) of that region most similar to the
  filled instruction, written in the compact excerpt format
  ``<excerpt>first words<...>last words</excerpt>`` that the expansion stage resolves;
* ``None`` (the ``null`` of the released model) when a tag or the answer has no
  sufficiently similar span: the template does not fit the document.

``encode(texts) -> float32 [n, d] unit vectors`` is passed in, so the logic is pure and
testable with any embedding function.
"""
from __future__ import annotations

import re
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from pipeline.late_chunking import LateChunker
from templates_mining.query_filter import STOPWORDS
from templates_mining.template_format import TAG_RE

Encode = Callable[[Sequence[str]], np.ndarray]

_SENTENCE_END_RE = re.compile(
    r"(?<![ .][A-Z]\.)(?<!\b(?:Mr|Ms|Dr|St|Jr|Sr|vs|No)\.)(?<!\bMrs\.)(?<!\b(?:e\.g|i\.e)\.)"
    r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n+")
_TOKEN_RE = re.compile(r"[^\W_](?:(?:[\w'’.-]|,(?=\d{3}))*[^\W_])?", re.UNICODE)
_JOINERS = frozenset({"of", "the", "de", "and", "for", "on", "in", "van", "von", "la", "du", "da"})
SPECIFIC_BONUS = 0.05
"""Added to the similarity of names and numbers: a tag asks for an instance, not a category."""
SHORTLIST = 8
MAX_SPAN_TOKENS = 6
MAX_SPANS = 200
MAX_SENTENCES = 60
EXCERPT_EDGE_WORDS = 6


class ExtractiveConfig(NamedTuple):
    min_tag_similarity: float = 0.3
    min_answer_similarity: float = 0.3
    max_answer_chars: int = 800
    region_fraction: float = 0.1   # half-width of a local chunk's region (2σ of the pooling)
    min_region_chars: int = 1500


class Instantiation(NamedTuple):
    instruction: str
    answer: str                   # with <excerpt> markers
    tag_fills: Tuple[str, ...]
    relatedness: float            # cosine of the instruction and the answer passage


def sentence_spans(text: str) -> List[Tuple[int, int]]:
    """``(start, end)`` of each sentence or line of ``text``, whitespace trimmed."""
    spans, start = [], 0
    for m in _SENTENCE_END_RE.finditer(text):
        cut = m.start() + len(m.group(0)) - len(m.group(0).lstrip("\"')]"))  # keep closing quotes
        spans.append((start, cut))
        start = m.end()
    spans.append((start, len(text)))
    out = []
    for s, e in spans:
        seg = text[s:e]
        lead = len(seg) - len(seg.lstrip())
        trail = len(seg) - len(seg.rstrip())
        if e - trail > s + lead:
            out.append((s + lead, e - trail))
    return sorted(out)


def region(text_len: int, focus: int, chunk: int, cfg: ExtractiveConfig) -> Tuple[int, int]:
    """The character window a chunk points at: the whole text for the global vector (0)."""
    if chunk == 0:
        return 0, text_len
    half = max(cfg.min_region_chars // 2, int(cfg.region_fraction * text_len))
    return max(0, focus - half), min(text_len, focus + half)


def candidate_spans(text: str, sentences: Sequence[Tuple[int, int]]) -> List[Tuple[int, int]]:
    """Spans that could fill a tag: capitalised names, numbers with a following word, and
    runs of 1-3 content words (every occurrence, each span once, in document order)."""
    seen, out = set(), []

    def add(s: int, e: int) -> None:
        if (s, e) not in seen:
            seen.add((s, e))
            out.append((s, e))

    for s0, e0 in sentences:
        toks = [(m.start() + s0, m.end() + s0, m.group(0)) for m in _TOKEN_RE.finditer(text[s0:e0])]

        def joined(a: int, b: int) -> bool:  # only spaces between two tokens: one phrase
            return text[toks[a][1]:toks[b][0]].isspace()

        i = 0
        while i < len(toks):  # capitalised runs, joiners allowed inside
            if toks[i][2][0].isupper() and toks[i][2].casefold() not in STOPWORDS:
                j = i
                while j + 1 < len(toks) and j + 1 - i < MAX_SPAN_TOKENS and joined(j, j + 1) and (
                        toks[j + 1][2][0].isupper()
                        or (toks[j + 1][2] in _JOINERS and j + 2 < len(toks) and toks[j + 2][2][0].isupper())):
                    j += 1
                add(toks[i][0], toks[j][1])
                i = j + 1
            else:
                i += 1
        for k, (s, e, w) in enumerate(toks):
            if any(ch.isdigit() for ch in w):
                add(s, e)
                if k + 1 < len(toks) and joined(k, k + 1) and toks[k + 1][2].isalpha() and toks[k + 1][2].casefold() not in STOPWORDS:
                    add(s, toks[k + 1][1])
            elif w.casefold() not in STOPWORDS and len(w) > 2:
                end = k
                while end + 1 < len(toks) and end - k < 2 and joined(end, end + 1) \
                        and toks[end + 1][2].casefold() not in STOPWORDS \
                        and not any(ch.isdigit() for ch in toks[end + 1][2]):
                    end += 1
                    add(s, toks[end][1])
                add(s, e)
    return out


def _stem(word: str) -> str:
    w = word.casefold().replace(".", "")
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    return w[:-1] if len(w) > 3 and w.endswith("s") else w


def _content_stems(text: str) -> set:
    return {_stem(w) for w in _TOKEN_RE.findall(text) if w.casefold() not in STOPWORDS}


def _is_specific(span_text: str) -> bool:
    return span_text[:1].isupper() or any(ch.isdigit() for ch in span_text)


def _inside(spans: Sequence[Tuple[int, int]], lo: int, hi: int) -> List[int]:
    return [i for i, (s, e) in enumerate(spans) if s >= lo and e <= hi]


def excerpt_marker(passage: str) -> str:
    """The compact ``<excerpt>`` form of a verbatim passage (verbatim when it is short)."""
    words = passage.split()
    if len(words) <= 2 * EXCERPT_EDGE_WORDS + 2:
        return f"<excerpt>{passage}</excerpt>"
    return (f"<excerpt>{' '.join(words[:EXCERPT_EDGE_WORDS])}<...>"
            f"{' '.join(words[-EXCERPT_EDGE_WORDS:])}</excerpt>")


class DocumentView:
    """One document's sentences and tag candidates, and their vectors.

    With a :class:`LateChunker` (the job's path) the vectors are late-chunked from the
    document's token embeddings, and only the embedded part of the document (``covered``
    characters) is used. Without one they are encoded on demand with ``encode``, only for
    the regions asked for, and cached for every template matched to the document.
    """

    def __init__(self, text: str, encode: Encode, chunker: Optional[LateChunker] = None):
        self.text = text
        self._encode = encode
        self._chunker = chunker
        self.covered = min(len(text), chunker.covered) if chunker is not None else len(text)
        self.sentences = [(s, e) for s, e in sentence_spans(text) if e <= self.covered]
        self.spans = candidate_spans(text, self.sentences)
        self._vecs: Dict[Tuple[str, int], np.ndarray] = {}

    def _vectors(self, kind: str, items: Sequence[Tuple[int, int]], idx: Sequence[int]) -> np.ndarray:
        if self._chunker is not None:
            return self._chunker.vectors([items[i] for i in idx])
        missing = [i for i in idx if (kind, i) not in self._vecs]
        if missing:
            for i, v in zip(missing, self._encode([self.text[items[i][0]:items[i][1]] for i in missing])):
                self._vecs[(kind, i)] = v
        return np.stack([self._vecs[(kind, i)] for i in idx])

    def sentence_vectors(self, idx: Sequence[int]) -> np.ndarray:
        return self._vectors("sentence", self.sentences, idx)

    def span_vectors(self, idx: Sequence[int]) -> np.ndarray:
        return self._vectors("span", self.spans, idx)

    def range_vector(self, start: int, end: int) -> np.ndarray:
        """The vector of any ``[start, end)`` of the text (not cached)."""
        if self._chunker is not None:
            return self._chunker.vectors([(start, end)])[0]
        return self._encode([self.text[start:end]])[0]


def nearest_inside(items: Sequence[Tuple[int, int]], lo: int, hi: int, focus: int, cap: int) -> List[int]:
    """Indices of the items inside ``[lo, hi)``, at most ``cap`` of those nearest ``focus``, in
    document order: bounds the work per region however long the document is."""
    inside = _inside(items, lo, hi)
    if len(inside) > cap:
        inside = sorted(sorted(inside, key=lambda i: (abs((items[i][0] + items[i][1]) // 2 - focus), i))[:cap])
    return inside


def fill_tags(template: str, view: DocumentView, lo: int, hi: int, focus: int, encode: Encode,
              cfg: ExtractiveConfig, describe: Optional[Encode] = None) -> Optional[Tuple[str, Tuple[str, ...]]]:
    """The template with every tag replaced by a span of the region; ``None`` when a tag has
    no span similar enough to its description. Repeated identical tags get the same fill.

    The view's span vectors (late-chunked, so cheap and in context) shortlist the
    ``SHORTLIST`` spans nearest each description; the shortlisted texts are then encoded on
    their own, as the description is, and that similarity must reach ``min_tag_similarity``.
    Among those, the fill whose in-context vector is closest to the region's content wins
    (score = description similarity + span/region similarity): the fill must both fit the
    tag and be about this passage.
    """
    tags = list(TAG_RE.finditer(template))
    idx = list({view.text[view.spans[i][0]:view.spans[i][1]].casefold(): i
                for i in reversed(nearest_inside(view.spans, lo, hi, focus, MAX_SPANS))}.values())[::-1]
    if not tags or not idx:
        return None
    descriptions = list(dict.fromkeys(m.group(1).strip() for m in tags))
    span_texts = [view.text[view.spans[i][0]:view.spans[i][1]] for i in idx]
    bonus = np.array([SPECIFIC_BONUS if _is_specific(t) else 0.0 for t in span_texts])
    desc_vecs = (describe or encode)(descriptions)
    span_vecs = view.span_vectors(idx)
    coarse = desc_vecs @ span_vecs.T + bonus[None, :]       # [descriptions, region spans]
    fit = span_vecs @ _region_vector(view, lo, hi, focus)   # [region spans]
    # A span that repeats the description's own words names the category, not an instance
    # ("a US state" -> "U.S. state"): never a fill.
    span_stems = [_content_stems(t) for t in span_texts]
    eligible = []
    for d, desc in enumerate(descriptions):
        stems = _content_stems(desc)
        pool = [j for j in range(len(idx)) if not (span_stems[j] & stems)]
        eligible.append(sorted(pool, key=lambda j: (-coarse[d, j], j))[:SHORTLIST])
    short = sorted({j for pool in eligible for j in pool})
    if not short:
        return None
    exact = dict(zip(short, (desc_vecs @ encode([span_texts[j] for j in short]).T).T))  # j -> [descriptions]
    fills: Dict[str, str] = {}
    used = set()
    for d, desc in enumerate(descriptions):
        pool = [j for j in eligible[d] if exact[j][d] + bonus[j] >= cfg.min_tag_similarity
                and span_texts[j].casefold() not in used]
        if not pool:
            return None
        best = max(pool, key=lambda j: (exact[j][d] + bonus[j] + fit[j], -j))
        used.add(span_texts[best].casefold())
        fills[desc] = span_texts[best]
    return _render(template, fills), tuple(fills[d] for d in descriptions)


def _render(template: str, fills: Dict[str, str]) -> str:
    """Tags with a fill replaced by it; the others by their description's words."""
    return TAG_RE.sub(lambda m: fills.get(m.group(1).strip(), m.group(1).strip()), template)


def _region_sentences(view: DocumentView, lo: int, hi: int, focus: int) -> List[int]:
    return nearest_inside(view.sentences, lo, hi, focus, MAX_SENTENCES)


def _region_vector(view: DocumentView, lo: int, hi: int, focus: int) -> np.ndarray:
    idx = _region_sentences(view, lo, hi, focus)
    if not idx:
        return np.zeros(0)
    v = view.sentence_vectors(idx).mean(axis=0)
    return v / (np.linalg.norm(v) or 1.0)


def best_passage(q: np.ndarray, view: DocumentView, lo: int, hi: int, focus: int,
                 cfg: ExtractiveConfig) -> Optional[Tuple[int, int]]:
    """``(start, end)`` of the region's consecutive sentences most similar to the instruction
    vector ``q``."""
    idx = _region_sentences(view, lo, hi, focus)
    if not idx:
        return None
    sims = view.sentence_vectors(idx) @ q
    best = int(np.argmax(sims))
    if sims[best] < cfg.min_answer_similarity:
        return None
    first = last = best
    chars = lambda a, b: view.sentences[idx[b]][1] - view.sentences[idx[a]][0]  # noqa: E731
    threshold = sims[best] - 0.15
    while True:  # grow towards the more similar neighbour while it stays relevant and short
        options = []
        if first > 0 and idx[first - 1] == idx[first] - 1 and sims[first - 1] >= threshold:
            options.append((sims[first - 1], first - 1, last))
        if last + 1 < len(idx) and idx[last + 1] == idx[last] + 1 and sims[last + 1] >= threshold:
            options.append((sims[last + 1], first, last + 1))
        options = [o for o in options if chars(o[1], o[2]) <= cfg.max_answer_chars]
        if not options:
            break
        _, first, last = max(options)
    return view.sentences[idx[first]][0], view.sentences[idx[last]][1]


def instantiate(template: str, view: DocumentView, focus: int, chunk: int, encode: Encode,
                cfg: ExtractiveConfig = ExtractiveConfig(), describe: Optional[Encode] = None) -> Optional[Instantiation]:
    """Fill and answer ``template`` from the document in ``view``; ``None`` when it does not fit.
    ``describe`` encodes tag descriptions (default ``encode``): callers may cache it."""
    lo, hi = region(view.covered, min(focus, view.covered), chunk, cfg)
    filled = fill_tags(template, view, lo, hi, focus, encode, cfg, describe)
    if filled is None:
        return None
    instruction, fills = filled
    q = encode([instruction])[0]
    passage = best_passage(q, view, lo, hi, focus, cfg)
    if passage is None:
        return None
    text = view.text[passage[0]:passage[1]]
    if len(text) > cfg.max_answer_chars:  # one very long sentence: cut at a word boundary
        text = text[:cfg.max_answer_chars].rsplit(" ", 1)[0]
    relatedness = float(np.clip(view.range_vector(passage[0], passage[0] + len(text)) @ q, -1.0, 1.0))
    return Instantiation(instruction, excerpt_marker(text), fills, relatedness)
