"""Late chunking: range vectors from token embeddings, against a direct mean, and the
extractive view built on them."""
import numpy as np
import pytest

from pipeline.extractive import DocumentView, ExtractiveConfig, instantiate
from pipeline.gaussian_pooling import DocumentEmbedder, window_document
from pipeline.late_chunking import LateChunker, pack_token_vectors
from transforms.embedding import embed_texts, load_embedding_model


def direct(h, spans, lo, hi):
    """Unit mean of the rows of the tokens starting in [lo, hi), written out plainly."""
    rows = [h[t] for t, (s, _) in enumerate(spans) if lo <= s < hi]
    if not rows:
        return np.zeros(h.shape[1])
    v = np.mean(rows, axis=0)
    return v / np.linalg.norm(v)


def test_range_vectors_equal_the_mean_of_their_tokens():
    rng = np.random.default_rng(0)
    spans = [(i * 5, i * 5 + 4) for i in range(40)]          # 40 tokens of 4 characters
    h = rng.standard_normal((40, 8))
    chunker = LateChunker(pack_token_vectors(h, spans))
    ranges = [(0, 4), (0, 200), (12, 37), (5, 9), (6, 9), (190, 400), (300, 310)]
    got = chunker.vectors(ranges)
    assert got.shape == (7, 8) and got.dtype == np.float32
    h16 = h.astype(np.float16).astype(np.float64)             # what the record carries
    for row, (lo, hi) in zip(got, ranges):
        np.testing.assert_allclose(row, direct(h16, spans, lo, hi), atol=1e-5)
    assert not got[4].any() and not got[6].any()              # no token starts inside
    assert chunker.covered == 199
    assert chunker.vectors([]).shape == (0, 8)


def test_pack_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="token spans"):
        pack_token_vectors(np.zeros((3, 4)), [(0, 1), (1, 2)])


@pytest.fixture(scope="module")
def model():
    return load_embedding_model()


def test_embedder_keeps_the_token_embeddings_it_pooled(model):
    text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(120))
    embedder = DocumentEmbedder(model, max_document_tokens=900)
    plain = embedder.embed(text)
    kept = embedder.embed(text, keep_token_vectors=True)
    assert plain.token_vectors is None
    np.testing.assert_array_equal(plain.vectors, kept.vectors)
    windowed = window_document(embedder.tokenizer, text, embedder.window_tokens, 900)
    h = embedder.token_embeddings(windowed)
    chunker = LateChunker(kept.token_vectors)
    assert chunker.covered == windowed.ends[-1] < len(text)  # only the embedded part
    np.testing.assert_allclose(chunker.vectors([(0, len(text))])[0], direct(h, list(zip(windowed.offsets, windowed.ends)),
                                                                             0, len(text)), atol=2e-3)


def test_late_chunked_sentences_rank_like_encoded_ones(model):
    """Searched with a standalone query (as the instantiator searches with the instruction),
    the in-context vectors put each sentence's own encoding first."""
    sentences = ["The harbour of Lisbon handles container ships.", "Photosynthesis turns light into sugar.",
                 "The violin has four strings tuned in fifths.", "Glaciers carve U-shaped valleys.",
                 "Interest rates rose sharply in the spring."]
    text = " ".join(sentences)
    embedder = DocumentEmbedder(model)
    chunker = LateChunker(embedder.embed(text, keep_token_vectors=True).token_vectors)
    starts = [text.index(s) for s in sentences]
    late = chunker.vectors([(s, s + len(t)) for s, t in zip(starts, sentences)])
    encoded = embed_texts(model, sentences)
    assert (np.argmax(late @ encoded.T, axis=0) == np.arange(len(sentences))).all()


def test_view_with_chunker_uses_only_the_embedded_part(model):
    text = ("Portugal joined the European Union in 1986. " * 3) + ("Spain joined NATO in 1982. " * 200)
    embedder = DocumentEmbedder(model, max_document_tokens=64)
    chunker = LateChunker(embedder.embed(text, keep_token_vectors=True).token_vectors)
    encode = lambda texts: embed_texts(model, texts)  # noqa: E731
    view = DocumentView(text, encode, chunker)
    assert view.covered == chunker.covered < len(text)
    assert all(e <= view.covered for _, e in view.sentences)
    result = instantiate("When did <fi>a country</fi> join the European Union?", view, 0, 0, encode,
                         ExtractiveConfig())
    assert result.tag_fills == ("Portugal",) and result.instruction == "When did Portugal join the European Union?"
