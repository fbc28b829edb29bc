"""Gaussian pooling against a direct transcription of METHOD.md §1.2, and whole-document windows."""
import math

import numpy as np
import pytest

from pipeline.gaussian_pooling import (DocumentEmbedder, chunk_centres, chunk_char_centres, gaussian_pool,
                                       special_token_frame, window_document)
from transforms.embedding import embed_texts, load_embedding_model


def reference_pool(h, m, K, sigma, alpha):
    """Loop-by-loop transcription of the formula (no vectorisation shared with the code)."""
    T, d = h.shape
    gbar = [sum(m[t] * h[t][j] for t in range(T)) / sum(m) for j in range(d)]
    out = [gbar]
    for k in range(1, K + 1):
        c = T * k / (K + 1)
        w = [m[t] * math.exp(-0.5 * ((t - c) / (sigma * T)) ** 2) for t in range(T)]
        z = sum(w)
        local = [sum(w[t] / z * h[t][j] for t in range(T)) for j in range(d)]
        out.append([(1 - alpha) * gbar[j] + alpha * local[j] for j in range(d)])
    out = np.array(out)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.mark.parametrize("T,K,sigma,alpha", [(1, 5, 0.05, 1.0), (7, 2, 0.3, 0.5), (300, 5, 0.05, 1.0),
                                             (1000, 10, 0.1, 0.0)])
def test_matches_reference_formula(T, K, sigma, alpha):
    rng = np.random.default_rng(T)
    h = rng.standard_normal((T, 6))
    m = (rng.random(T) > 0.2).astype(float)
    m[0] = 1.0
    got = gaussian_pool(h, m, K, sigma, alpha)
    assert got.shape == (K + 1, 6) and got.dtype == np.float32
    np.testing.assert_allclose(got, reference_pool(h, m, K, sigma, alpha), atol=1e-5)


def test_alpha_zero_gives_global_vector_everywhere():
    h = np.random.default_rng(1).standard_normal((50, 4))
    got = gaussian_pool(h, None, 3, 0.05, 0.0)
    for row in got[1:]:
        np.testing.assert_allclose(row, got[0], atol=1e-6)


def test_local_vectors_follow_their_region():
    # First half of the tokens point one way, second half another: chunk 1 sits in the first
    # half, chunk K in the second.
    h = np.vstack([np.tile([1.0, 0.0], (100, 1)), np.tile([0.0, 1.0], (100, 1))])
    got = gaussian_pool(h, None, 3, 0.05, 1.0)
    assert got[1][0] > 0.99 and got[3][1] > 0.99
    assert list(chunk_centres(200, 3)) == [50.0, 100.0, 150.0]


def test_rejects_empty_input():
    with pytest.raises(ValueError):
        gaussian_pool(np.zeros((0, 3)))
    with pytest.raises(ValueError):
        gaussian_pool(np.ones((3, 3)), np.zeros(3))


def test_chunk_char_centres_map_token_positions_to_characters():
    offsets = list(range(0, 100, 10))  # 10 tokens, each 10 characters
    assert chunk_char_centres(offsets, 1) == [50, 50]
    assert chunk_char_centres(offsets, 4) == [50, 20, 40, 60, 80]


@pytest.fixture(scope="module")
def model():
    return load_embedding_model()


def test_windows_cover_the_whole_document(model):
    tok = model.tokenizer
    text = " ".join(f"word{i}" for i in range(700))
    w = window_document(tok, text, 100, 10_000)
    assert sum(len(x) for x in w.windows) == w.num_tokens == len(w.offsets)
    assert all(len(x) == 100 for x in w.windows[:-1])
    assert text[w.offsets[-1]:].startswith(text.split()[-1][-1]) or text[w.offsets[-1]:] in text
    capped = window_document(tok, text, 100, 250)
    assert [len(x) for x in capped.windows] == [100, 100, 50] and capped.num_tokens == w.num_tokens


def test_long_document_is_pooled_over_all_windows(model):
    embedder = DocumentEmbedder(model, k=5, max_document_tokens=5000)
    prefix, suffix = special_token_frame(model.tokenizer)
    assert embedder.window_tokens == model.max_seq_length - len(prefix) - len(suffix)
    first = "Volcanoes erupt molten rock called lava from the mantle. " * 40
    last = "Sourdough bread rises with wild yeast and lactic bacteria. " * 40
    pooled = embedder.embed(first + last)
    assert pooled.num_tokens > 2 * embedder.window_tokens  # several windows
    q = embed_texts(model, ["volcano lava eruption", "baking sourdough bread"])
    # The first local vector sits in the volcano half, the last in the bread half.
    assert pooled.vectors[1] @ q[0] > pooled.vectors[1] @ q[1]
    assert pooled.vectors[5] @ q[1] > pooled.vectors[5] @ q[0]
    assert pooled.chunk_centres[1] < len(first) < pooled.chunk_centres[5]
    np.testing.assert_allclose(np.linalg.norm(pooled.vectors, axis=1), 1.0, atol=1e-5)


def test_short_document_global_vector_matches_model_encode(model):
    text = "The Eiffel Tower was finished in 1889 for the World's Fair in Paris."
    pooled = DocumentEmbedder(model).embed(text)
    # Same token embeddings, mean pooled without [CLS]/[SEP]: nearly the model's own vector.
    assert float(pooled.vectors[0] @ embed_texts(model, [text])[0]) > 0.99
