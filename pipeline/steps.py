"""The per-element steps of the pipeline job: small callables for ``accounted_map``.

Each step holds only its settings (so it pickles to workers); ``setup()`` loads what it
needs (embedding model, library) once per worker process through the per-process caches,
and ``__call__`` maps one element, raising ``Rejected`` (filtered, with a reason) or any
exception (dead letter). The Beam wiring, counters and dead letters live in ``accounted_map``.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Union

import numpy as np
from apache_beam.metrics import Metrics

from pipeline.excerpts import check_excerpt_share, expand_excerpts
from pipeline.extractive import DocumentView, ExtractiveConfig, Instantiation, NoFit, instantiate
from pipeline.gaussian_pooling import DocumentEmbedder
from pipeline.late_chunking import LateChunker, TokenVectors
from pipeline.judge import heuristic_score
from pipeline.match import (LibraryRef, check_library_matches, library_tag_distribution, loaded_library,
                            match_document, parse_tag_distribution)
from pipeline.records import Document, EmbeddedDocument, PairDraft, TemplateMatch
from pipeline.request_kind import content_stems
from transforms.accounting import NAMESPACE, SEP, Rejected
from transforms.embedding import embed_texts, load_embedding_model, model_info
from transforms.nlp import load_nlp
from transforms.template_format import TAG_RE
from transforms.work_cache import WorkCache, work_key


def load_tokenizer(name: Optional[str], embedding_model: str):
    """The budget tokenizer: the embedding model's unless a HF tokenizer name/dir is given (the
    tokenizer only: counting tokens needs no model on any device)."""
    from transformers import AutoTokenizer

    from transforms.embedding import resolve_model
    return AutoTokenizer.from_pretrained(resolve_model(name or embedding_model))


def count_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"])


class EmbedStep:
    """Document -> EmbeddedDocument (K+1 Gaussian-pooled vectors over the whole document).

    With ``cache_dir`` (``--generation_cache``) each document's result is kept under a key of its
    text and every setting that decides it; a rerun reads it back and loads no model unless some
    document is new (counted as ``embed|cache_hits``)."""

    def __init__(self, model: str, k: int, sigma: float, alpha: float, max_document_tokens: int,
                 batch_size: int, budget_tokenizer: Optional[str] = None, keep_token_vectors: bool = False,
                 device: Optional[str] = None, cache_dir: Optional[str] = None):
        if k < 1 or sigma <= 0 or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"need pooling_k >= 1, pooling_sigma > 0, 0 <= pooling_alpha <= 1; "
                             f"got {k}, {sigma}, {alpha}")
        self.model, self.k, self.sigma, self.alpha = model, k, sigma, alpha
        self.max_document_tokens, self.batch_size = max_document_tokens, batch_size
        self.budget_tokenizer = budget_tokenizer
        self.keep_token_vectors, self.device, self.cache_dir = keep_token_vectors, device, cache_dir

    def setup(self):
        self._embedder = None
        self._cache = WorkCache(self.cache_dir, "embed", ".npz") if self.cache_dir else None
        self._hits = Metrics.counter(NAMESPACE, f"embed{SEP}cache_hits")

    def _embed(self, doc: Document) -> EmbeddedDocument:
        if self._embedder is None:      # loaded on the first document not in the cache
            self._embedder = DocumentEmbedder(load_embedding_model(self.model, self.device), self.k, self.sigma,
                                              self.alpha, self.max_document_tokens, self.batch_size)
            self._budget_tok = load_tokenizer(self.budget_tokenizer, self.model) if self.budget_tokenizer else None
        pooled = self._embedder.embed(doc.text, self.keep_token_vectors)
        tokens = count_tokens(self._budget_tok, doc.text) if self._budget_tok else pooled.num_tokens
        return EmbeddedDocument(doc, pooled.vectors.tobytes(), tokens, pooled.chunk_centres, pooled.token_vectors)

    def __call__(self, doc: Document) -> EmbeddedDocument:
        if self._cache is None:
            return self._embed(doc)
        key = work_key("embed", self.model, self.k, self.sigma, self.alpha, self.max_document_tokens,
                       self.budget_tokenizer, self.keep_token_vectors, doc.text)
        cached = unpack_embedded(self._cache.get(key), doc)
        if cached is not None:
            self._hits.inc()
            return cached
        out = self._embed(doc)
        self._cache.put(key, pack_embedded(out))
        return out


def pack_embedded(edoc: EmbeddedDocument) -> bytes:
    """An embed result as .npz bytes (no pickles): the vectors, counts and token embeddings."""
    arrays = {"vectors": np.frombuffer(edoc.vectors, dtype=np.uint8), "num_tokens": np.int64(edoc.num_tokens),
              "chunk_centres": np.asarray(edoc.chunk_centres, dtype=np.int64)}
    if edoc.token_vectors is not None:
        arrays.update(tv_vectors=np.frombuffer(edoc.token_vectors.vectors, dtype=np.uint8),
                      tv_spans=np.frombuffer(edoc.token_vectors.spans, dtype=np.uint8),
                      tv_dim=np.int64(edoc.token_vectors.dim))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def unpack_embedded(data: Optional[bytes], doc: Document) -> Optional[EmbeddedDocument]:
    """:func:`pack_embedded`'s bytes back as ``doc``'s result; ``None`` when missing or unreadable."""
    if data is None:
        return None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            tokens = (TokenVectors(z["tv_vectors"].tobytes(), z["tv_spans"].tobytes(), int(z["tv_dim"]))
                      if "tv_vectors" in z.files else None)
            return EmbeddedDocument(doc, z["vectors"].tobytes(), int(z["num_tokens"]),
                                    [int(c) for c in z["chunk_centres"]], tokens)
    except (ValueError, KeyError, OSError, zipfile.BadZipFile):
        return None


class MatchStep:
    """(EmbeddedDocument, LibraryRef) -> (EmbeddedDocument, [TemplateMatch]) sampled templates."""

    def __init__(self, model: str, top_k: int, threshold: float, templates_per_document: int,
                 tag_distribution: str, seed: int, device: Optional[str] = None, temperature: float = 0.0,
                 usable: Optional[Callable[[str], bool]] = None,
                 fits_document: Optional[Callable[[str, frozenset], bool]] = None):
        if top_k < 1 or templates_per_document < 1:
            raise ValueError("top_k and templates_per_document must be >= 1")
        if temperature < 0:
            raise ValueError("--match_temperature must be >= 0")
        if tag_distribution != "library":
            parse_tag_distribution(tag_distribution)  # fail at construction, not on a worker
        self.model, self.top_k, self.threshold = model, top_k, threshold
        self.n, self.tag_distribution, self.seed = templates_per_document, tag_distribution, seed
        self.device, self.temperature, self.usable, self.fits_document = device, temperature, usable, fits_document

    def setup(self):
        self._info = model_info(load_embedding_model(self.model, self.device))
        self._dist: Dict[str, Dict[int, float]] = {}
        self._usable: Dict[str, Optional[List[bool]]] = {}

    def __call__(self, edoc: EmbeddedDocument, ref: LibraryRef):
        lib = loaded_library(ref)
        if ref.path not in self._dist:
            check_library_matches(ref.manifest, self.model, self._info)
            self._dist[ref.path] = (library_tag_distribution(lib.num_tags, lib.weights)
                                    if self.tag_distribution == "library"
                                    else parse_tag_distribution(self.tag_distribution))
            self._usable[ref.path] = [self.usable(t) for t in lib.templates] if self.usable else None
        vectors = np.frombuffer(edoc.vectors, dtype=np.float32).reshape(len(edoc.chunk_centres), -1)
        picked = match_document(vectors, edoc.document.doc_id, lib, self._dist[ref.path],
                                self.top_k, self.threshold, self.n, self.seed, self.temperature,
                                self._usable[ref.path], self._fits(lib, edoc.document.text))
        return edoc, [TemplateMatch(lib.template_ids[c.row], lib.templates[c.row], lib.descriptions[c.row],
                                    lib.num_tags[c.row], c.chunk, round(c.score, 6)) for c in picked]


    def _fits(self, lib, text: str) -> Optional[Callable[[int], bool]]:
        if self.fits_document is None:
            return None
        stems = content_stems(text)
        return lambda row: self.fits_document(lib.templates[row], stems)


def to_drafts(matched) -> List[PairDraft]:
    """One PairDraft per sampled template of a document."""
    edoc, matches = matched
    doc = edoc.document
    return [PairDraft(doc.doc_id, doc.text, edoc.num_tokens, edoc.chunk_centres[m.chunk], m,
                      token_vectors=edoc.token_vectors) for m in matches]


class ExtractiveInstantiateStep:
    """PairDraft -> PairDraft with instruction and excerpt-marked answer; ``null`` is filtered.

    Sentence and span vectors are late-chunked from the token embeddings the embed stage
    passed along (dropped from the output). Drafts of one document arrive together (they are
    fanned out in the same bundle), so the document's view is cached for the next few drafts;
    tag descriptions recur across documents, so their vectors are cached per process.
    """

    CACHE_DOCUMENTS = 4
    CACHE_DESCRIPTIONS = 50_000

    def __init__(self, model: str, cfg: ExtractiveConfig, device: Optional[str] = None,
                 cache_dir: Optional[str] = None):
        self.model, self.cfg, self.device, self.cache_dir = model, cfg, device, cache_dir

    def setup(self):
        self._encode = None
        self._views: "OrderedDict[str, DocumentView]" = OrderedDict()
        self._descriptions: "OrderedDict[str, np.ndarray]" = OrderedDict()
        self._cache = WorkCache(self.cache_dir, "instantiate") if self.cache_dir else None
        self._hits = Metrics.counter(NAMESPACE, f"instantiate{SEP}cache_hits")

    def _load(self) -> None:
        """The embedding model and spaCy, on the first draft not in the cache."""
        if self._encode is None:
            st = load_embedding_model(self.model, self.device)
            self._encode = lambda texts: embed_texts(st, texts, batch_size=64)
            self._nlp = load_nlp()

    def _describe(self, descriptions) -> np.ndarray:
        """Vectors of tag descriptions, each encoded alone (so a cached vector is bitwise the
        one a fresh encode would give, whatever was encoded before)."""
        out = []
        for text in descriptions:
            vec = self._descriptions.get(text)
            if vec is None:
                vec = self._descriptions[text] = self._encode([text])[0]
                if len(self._descriptions) > self.CACHE_DESCRIPTIONS:
                    self._descriptions.popitem(last=False)
            out.append(vec)
        return np.stack(out)

    def _view(self, draft: PairDraft) -> DocumentView:
        view = self._views.get(draft.doc_id)
        if view is None or view.text != draft.document:
            chunker = LateChunker(draft.token_vectors) if draft.token_vectors is not None else None
            view = DocumentView(draft.document, self._encode, chunker, self._nlp)
            self._views[draft.doc_id] = view
            while len(self._views) > self.CACHE_DOCUMENTS:
                self._views.popitem(last=False)
        self._views.move_to_end(draft.doc_id)
        return view

    def _instantiate(self, draft: PairDraft) -> Union[Instantiation, NoFit]:
        self._load()
        return instantiate(draft.match.template, self._view(draft), draft.focus, draft.match.chunk,
                           self._encode, self.cfg, describe=self._describe)

    def _cached(self, draft: PairDraft) -> Union[Instantiation, NoFit]:
        """The result for ``draft``, from the cache when a run before finished it (keyed by the
        document's text, the template, where it was found and every setting)."""
        key = work_key("instantiate", self.model, list(self.cfg), draft.document, draft.match.template,
                       draft.focus, draft.match.chunk, draft.token_vectors is not None)
        data = self._cache.get(key)
        try:
            kept = json.loads(data.decode("utf-8")) if data is not None else None
            if kept is not None:
                self._hits.inc()
                return NoFit(kept["null"]) if "null" in kept else Instantiation(
                    kept["instruction"], kept["answer"], tuple(kept["tag_fills"]), kept["relatedness"])
        except (ValueError, KeyError, TypeError):
            pass        # unreadable: do it again
        result = self._instantiate(draft)
        kept = {"null": result.reason} if isinstance(result, NoFit) else result._asdict()
        self._cache.put(key, json.dumps(kept).encode("utf-8"))
        return result

    def __call__(self, draft: PairDraft) -> PairDraft:
        result = self._cached(draft) if self._cache is not None else self._instantiate(draft)
        if isinstance(result, NoFit):
            raise Rejected("template_incompatible", f"the document cannot fill the template (null): {result.reason}")
        return draft._replace(instruction=result.instruction, answer=result.answer, token_vectors=None,
                              relatedness=round(result.relatedness, 6))


def expand_step(min_excerpt_ratio: float):
    """PairDraft -> PairDraft with verbatim excerpts; rejects leftover tags and low excerpt share."""
    if not 0.0 <= min_excerpt_ratio <= 1.0:
        raise ValueError(f"--min_excerpt_ratio must be in [0, 1], got {min_excerpt_ratio}")

    def expand(draft: PairDraft) -> PairDraft:
        if TAG_RE.search(draft.instruction) or "<fi>" in draft.instruction or "</fi>" in draft.instruction:
            raise Rejected("leftover_tag", "the instruction still has a <fi> tag")
        expanded = check_excerpt_share(expand_excerpts(draft.answer, draft.document, focus=draft.focus),
                                       min_excerpt_ratio)
        if not expanded.text:
            raise Rejected("empty_answer", "the answer is empty after expansion")
        return draft._replace(answer=expanded.text, excerpt_share=round(expanded.excerpt_share, 6),
                              excerpt_spans=[list(span) for span in expanded.spans], document="")

    return expand


class HeuristicJudgeStep:
    """PairDraft -> PairDraft with a 1-5 score; below ``min_score`` is filtered.

    Instruction/answer relatedness is the one the instantiator measured when it did (the
    extractive one chose the answer by it, from vectors it already had); otherwise both
    texts are embedded here.
    """

    def __init__(self, model: str, min_score: int, device: Optional[str] = None):
        if not 1 <= min_score <= 5:
            raise ValueError(f"--min_score must be 1..5, got {min_score}")
        self.model, self.min_score, self.device = model, min_score, device

    def setup(self):
        self._st = load_embedding_model(self.model, self.device)

    def __call__(self, draft: PairDraft) -> PairDraft:
        relatedness = draft.relatedness
        if relatedness is None:  # not measured by the instantiator (a model backend)
            vectors = embed_texts(self._st, [draft.instruction, draft.answer])
            relatedness = float(np.clip(vectors[0] @ vectors[1], -1.0, 1.0))
        result = heuristic_score(draft.instruction, draft.answer, draft.excerpt_share, relatedness)
        if result.score < self.min_score:
            raise Rejected("low_judge_score", f"score {result.score} < {self.min_score}: {', '.join(result.reasons)}")
        return draft._replace(judge_score=result.score, judge_reasons=list(result.reasons))


def pair_text(instruction: str, answer: str) -> str:
    """The training text (METHOD.md §1.4)."""
    return f"Instruction: {instruction}\n\nAnswer: {answer}"


def pair_id(doc_id: str, template_id: str, text: str) -> str:
    return hashlib.sha256("\x00".join((doc_id, template_id, text)).encode("utf-8")).hexdigest()[:32]


def pair_record(draft: PairDraft, backends: Dict[str, str]) -> dict:
    """The output row of a kept pair."""
    text = pair_text(draft.instruction, draft.answer)
    return {
        "pair_id": pair_id(draft.doc_id, draft.match.template_id, text),
        "doc_id": draft.doc_id,
        "template_id": draft.match.template_id,
        "template": draft.match.template,
        "chunk": draft.match.chunk,
        "match_score": draft.match.score,
        "instruction": draft.instruction,
        "answer": draft.answer,
        "excerpt_share": draft.excerpt_share,
        "excerpt_spans": draft.excerpt_spans,
        "judge_score": draft.judge_score,
        **backends,
        "text": text,
    }

