"""Records that flow through the pipeline job, one NamedTuple per stage boundary."""
from __future__ import annotations

from typing import List, NamedTuple, Optional

from pipeline.late_chunking import TokenVectors


class Document(NamedTuple):
    """A corpus document as read: ``doc_id`` is the input's id, else a content hash."""
    doc_id: str
    text: str
    url: str
    source: str
    content_hash: str

    def accounting_text(self) -> str:
        return f"{self.doc_id}: {self.text[:300]}"


class EmbeddedDocument(NamedTuple):
    """A document with its K+1 Gaussian-pooled retrieval vectors."""
    document: Document
    vectors: bytes              # float32 [K+1, d], unit norm, row 0 = global
    num_tokens: int             # whole document, embedding tokenizer
    chunk_centres: List[int]    # character centre of each retrieval vector
    token_vectors: Optional[TokenVectors] = None   # kept for the extractive instantiator only

    @property
    def source(self) -> str:
        return self.document.source

    def accounting_text(self) -> str:
        return self.document.accounting_text()


class TemplateMatch(NamedTuple):
    """One sampled template for a document, and the retrieval vector (chunk) that found it."""
    template_id: str
    template: str
    description: str
    num_tags: int
    chunk: int                  # 0 = global vector, 1..K = local
    score: float                # cosine of that vector and the template description


class PairDraft(NamedTuple):
    """A (document, template) pair on its way to becoming an instruction/answer pair.

    ``document`` is the document text (kept through excerpt expansion, then dropped).
    """
    doc_id: str
    document: str
    num_tokens: int
    focus: int                  # character centre of the retrieving chunk
    match: TemplateMatch
    instruction: str = ""
    answer: str = ""
    excerpt_share: float = 0.0
    excerpt_spans: List[List[int]] = []   # [start, end) character offsets of each excerpt
    judge_score: int = 0
    judge_reasons: List[str] = []
    token_vectors: Optional[TokenVectors] = None   # the document's, until instantiation
    relatedness: Optional[float] = None   # instruction/answer cosine, when the instantiator measured it

    @property
    def source(self) -> str:
        return self.doc_id

    def accounting_text(self) -> str:
        return f"{self.doc_id} x {self.match.template_id}: {self.instruction or self.match.template}"[:1000]
