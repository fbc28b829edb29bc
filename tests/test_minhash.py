"""MinHash helpers: shingles, stable hashing, exact permutation arithmetic, estimates, bands."""
import random

import numpy as np
import pytest

from templates_mining import minhash
from templates_mining.minhash import (
    MAX_HASH, MERSENNE_PRIME, band_keys, estimated_jaccard, jaccard,
    make_permutations, minhash_signature, minhash_signatures, shingle_hash, tokenize_for_shingles,
    word_shingles)


def test_word_shingles():
    assert word_shingles(["a", "b", "c"], 2) == {"a b", "b c"}
    assert word_shingles(["a", "b", "c"], 1) == {"a", "b", "c"}
    assert word_shingles(["a", "b"], 3) == {"a b"}
    assert word_shingles(["a", "b", "a", "b"], 2) == {"a b", "b a"}
    assert word_shingles([], 2) == set()
    with pytest.raises(ValueError):
        word_shingles(["a"], 0)


def test_shingle_hash_is_fixed():
    # Fixed values: any change here changes every signature (and every dedupe result).
    assert shingle_hash("what is") == 2614921333
    assert shingle_hash("") == 634351890
    assert all(0 <= shingle_hash(s) <= MAX_HASH for s in ["é", "東京", "a b c"])


def test_permutations_are_fixed_and_in_range():
    perms = make_permutations(128, 42)
    assert perms.a[:2].tolist() == [661669401819724527, 469523382756010233]
    assert perms.b[:2].tolist() == [735171985114270371, 2000294637753479482]
    assert len(perms.a) == len(perms.b) == 128
    assert int(perms.a.min()) >= 1 and int(perms.a.max()) < MERSENNE_PRIME
    assert int(perms.b.max()) < MERSENNE_PRIME
    assert make_permutations(128, 43).a[0] != perms.a[0]
    with pytest.raises(ValueError):
        make_permutations(0, 1)


def test_permutation_arithmetic_is_exact_mod_p():
    perms = make_permutations(32, 7)
    rng = random.Random(0)
    hashes = [0, 1, MAX_HASH] + [rng.getrandbits(32) for _ in range(50)]
    got = minhash._permute(np.array(hashes, dtype=np.uint64), perms)
    expected = [[(int(a) * h + int(b)) % MERSENNE_PRIME for a, b in zip(perms.a, perms.b)] for h in hashes]
    assert got.tolist() == expected


def test_signature_fixed_and_set_order_independent():
    perms = make_permutations(128, 42)
    sig = minhash_signature({"a b", "b c"}, perms)
    assert sig.dtype == np.uint32 and sig.shape == (128,)
    assert sig[:4].tolist() == [1005764064, 278914520, 1008652388, 1767650531]
    assert np.array_equal(sig, minhash_signature(["b c", "a b", "a b"], perms))
    assert (minhash_signature(set(), perms) == MAX_HASH).all()


def test_batched_signatures_equal_single():
    perms = make_permutations(64, 3)
    sets = [{"x"}, set(), {"a b", "b c", "c d"}, {"q"}, set()]
    batch = minhash_signatures(sets, perms)
    for row, s in zip(batch, sets):
        assert np.array_equal(row, minhash_signature(s, perms))


def test_estimated_jaccard_tracks_true_jaccard():
    perms = make_permutations(256, 42)
    rng = random.Random(5)
    for _ in range(30):
        universe = [f"w{i}" for i in range(rng.randint(20, 200))]
        a = set(rng.sample(universe, rng.randint(5, len(universe))))
        b = set(rng.sample(universe, rng.randint(5, len(universe))))
        est = estimated_jaccard(minhash_signature(a, perms), minhash_signature(b, perms))
        # std of the estimate is at most 0.5/sqrt(256) = 0.031; allow ~4 sigma.
        assert abs(est - jaccard(a, b)) < 0.13


def test_jaccard_and_estimate_edges():
    assert jaccard({"a", "b"}, {"b", "c"}) == pytest.approx(1 / 3)
    assert jaccard(set(), set()) == 0.0
    sig = np.arange(8, dtype=np.uint32)
    assert estimated_jaccard(sig, sig) == 1.0
    with pytest.raises(ValueError):
        estimated_jaccard(sig, sig[:4])


def test_band_keys():
    perms = make_permutations(16, 1)
    sig = minhash_signature({"a", "b"}, perms)
    keys = band_keys(sig, 4, 4)
    assert len(keys) == 4 and len(set(keys)) == 4
    assert [k[:4] for k in keys] == ["000:", "001:", "002:", "003:"]
    assert keys == band_keys(sig.copy(), 4, 4)
    # Same band values in different bands still give different keys.
    flat = np.zeros(8, dtype=np.uint32)
    assert len(set(band_keys(flat, 2, 4))) == 2
    # Changing one row changes exactly its band's key.
    changed = sig.copy()
    changed[5] ^= 1
    diff = [i for i, (x, y) in enumerate(zip(keys, band_keys(changed, 4, 4))) if x != y]
    assert diff == [1]
    assert band_keys(sig, 2, 4) == keys[:2]  # bands*rows may be < num_perm
    with pytest.raises(ValueError):
        band_keys(sig, 5, 4)


def test_tokenize_for_shingles():
    texts = ["What's the Capital of FRANCE ?", "", "...!?", "Hello -- World!!", "東京の天気は？"]
    tokens = tokenize_for_shingles(texts)
    assert tokens[0] == ["what", "s", "the", "capital", "of", "france"]
    assert tokens[1] == [] and tokens[2] == []
    assert tokens[3] == ["hello", "world"]
    assert tokens[4] and all("？" not in t and "?" not in t for t in tokens[4])
    assert tokenize_for_shingles([]) == []
