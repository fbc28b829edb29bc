"""MinHash signatures and LSH band keys for near-duplicate detection (pure functions).

Everything here is deterministic across processes, machines and ``PYTHONHASHSEED``:
shingles are hashed with BLAKE2b, permutation coefficients are derived from BLAKE2b of
``(seed, index)`` (not from a NumPy RNG whose streams may change between versions), and
set iteration order never matters because a signature is a minimum.

The permutations are the universal hash family ``h(x) = (a*x + b) mod p`` with the
Mersenne prime ``p = 2**61 - 1``, as in datasketch, truncated to 32 bits. Unlike
datasketch's uint64 arithmetic (which silently wraps ``a*x``), the product is reduced
exactly mod ``p`` so the family really is universal.
"""
from __future__ import annotations

import functools
import hashlib
from typing import Iterable, List, NamedTuple, Sequence, Set

import numpy as np

MERSENNE_PRIME = (1 << 61) - 1
MAX_HASH = (1 << 32) - 1

_P = np.uint64(MERSENNE_PRIME)
_LOW32 = np.uint64(MAX_HASH)
_LOW29 = np.uint64((1 << 29) - 1)
_U29, _U32, _U61 = np.uint64(29), np.uint64(32), np.uint64(61)

# One or more Unicode punctuation characters and nothing else (RE2 syntax, run inside TF).
_PUNCTUATION_ONLY = r"\p{P}+"


@functools.lru_cache(maxsize=1)
def _tokenizer():
    import tensorflow_text as tf_text

    return tf_text.UnicodeScriptTokenizer()


def tokenize_for_shingles(texts: Sequence[str]) -> List[List[str]]:
    """Case-folded word tokens of each text, punctuation-only tokens dropped.

    The whole batch goes through TensorFlow Text as one ragged tensor (NFKC case fold,
    Unicode-script tokenization, punctuation mask): a handful of vectorized C++ ops per
    batch instead of per-string Python work or per-string TF calls, whose dispatch
    overhead would dominate for short queries. Call it on batches (``beam.BatchElements``).
    """
    if not texts:
        return []
    import tensorflow as tf
    import tensorflow_text as tf_text

    folded = tf_text.case_fold_utf8(tf.constant(list(texts), dtype=tf.string))
    tokens = _tokenizer().tokenize(folded)
    keep = tokens.with_flat_values(
        tf.logical_not(tf.strings.regex_full_match(tokens.flat_values, _PUNCTUATION_ONLY)))
    kept = tf.ragged.boolean_mask(tokens, keep)
    return [[t.decode("utf-8") for t in row] for row in kept.to_list()]


def word_shingles(tokens: Sequence[str], k: int) -> Set[str]:
    """The set of ``k``-token shingles (space-joined); fewer than ``k`` tokens give one shingle."""
    if k < 1:
        raise ValueError(f"shingle size must be >= 1, got {k}")
    if not tokens:
        return set()
    if len(tokens) < k:
        return {" ".join(tokens)}
    return {" ".join(tokens[i:i + k]) for i in range(len(tokens) - k + 1)}


def shingle_hash(shingle: str) -> int:
    """A 32-bit hash of a shingle, stable across processes (BLAKE2b, 4-byte digest)."""
    return int.from_bytes(hashlib.blake2b(shingle.encode("utf-8"), digest_size=4).digest(), "little")


def _coefficient(seed: int, name: str, index: int, modulus: int) -> int:
    digest = hashlib.blake2b(f"{seed}:{name}:{index}".encode("ascii"), digest_size=16).digest()
    return int.from_bytes(digest, "little") % modulus


class Permutations(NamedTuple):
    """Coefficients of the hash permutations: ``a`` in [1, p), ``b`` in [0, p), uint64."""
    a: np.ndarray
    b: np.ndarray


@functools.lru_cache(maxsize=16)
def make_permutations(num_perm: int, seed: int) -> Permutations:
    """``num_perm`` permutations determined only by ``(num_perm, seed)`` (read-only arrays)."""
    if num_perm < 1:
        raise ValueError(f"num_perm must be >= 1, got {num_perm}")
    a = np.array([1 + _coefficient(seed, "a", i, MERSENNE_PRIME - 1) for i in range(num_perm)],
                 dtype=np.uint64)
    b = np.array([_coefficient(seed, "b", i, MERSENNE_PRIME) for i in range(num_perm)], dtype=np.uint64)
    a.setflags(write=False)
    b.setflags(write=False)
    return Permutations(a, b)


def _mod_p(x: np.ndarray) -> np.ndarray:
    """``x mod p`` for any uint64 ``x`` (Mersenne reduction: 2**61 = 1 mod p)."""
    x = (x & _P) + (x >> _U61)
    return np.where(x >= _P, x - _P, x)


def _permute(hashes: np.ndarray, perms: Permutations) -> np.ndarray:
    """``(a*h + b) mod p`` for 32-bit hashes ``(n,)`` x permutations ``(P,)`` -> ``(n, P)`` uint64.

    ``a < 2**61`` and ``h < 2**32`` overflow uint64, so ``a`` is split at bit 32:
    ``a_lo*h < 2**64`` and ``a_hi*h < 2**61``; ``(a_hi*h) * 2**32`` is folded mod p by
    splitting ``a_hi*h`` at bit 29 (``2**61 = 1``).
    """
    h = hashes.astype(np.uint64)[:, None]
    lo = (perms.a & _LOW32)[None, :] * h
    hi = (perms.a >> _U32)[None, :] * h
    hi_folded = (hi >> _U29) + ((hi & _LOW29) << _U32)
    product = _mod_p(_mod_p(lo) + hi_folded)
    return _mod_p(product + perms.b[None, :])


def minhash_signatures(shingle_sets: Sequence[Iterable[str]], perms: Permutations) -> np.ndarray:
    """Signatures of many sets at once, ``(len(shingle_sets), num_perm)`` uint32.

    All shingles of the batch are permuted in one array operation and reduced per set
    with ``np.minimum.reduceat``. An empty set gets all ``MAX_HASH`` (callers should not
    treat two empty sets as similar).
    """
    num_perm = len(perms.a)
    out = np.full((len(shingle_sets), num_perm), MAX_HASH, dtype=np.uint32)
    hashes: List[int] = []
    starts: List[int] = []
    rows: List[int] = []
    for row, shingles in enumerate(shingle_sets):
        values = [shingle_hash(s) for s in shingles]
        if values:
            rows.append(row)
            starts.append(len(hashes))
            hashes.extend(values)
    if hashes:
        permuted = (_permute(np.array(hashes, dtype=np.uint64), perms) & _LOW32).astype(np.uint32)
        out[rows] = np.minimum.reduceat(permuted, np.array(starts), axis=0)
    return out


def minhash_signature(shingles: Iterable[str], perms: Permutations) -> np.ndarray:
    """The MinHash signature of one set, ``(num_perm,)`` uint32."""
    return minhash_signatures([shingles], perms)[0]


def band_keys(signature: np.ndarray, bands: int, rows: int) -> List[str]:
    """One LSH bucket key per band: ``"<band>:<hex digest of the band's rows>"``.

    The band index is part of the key so equal values in different bands never collide;
    the 64-bit digest keeps shuffle keys short (a collision only adds a candidate pair,
    which verification then rejects).
    """
    if bands * rows > len(signature):
        raise ValueError(f"bands*rows = {bands * rows} exceeds the signature length {len(signature)}")
    values = np.asarray(signature, dtype="<u4")
    return [f"{band:03d}:" + hashlib.blake2b(values[band * rows:(band + 1) * rows].tobytes(),
                                             digest_size=8).hexdigest()
            for band in range(bands)]


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """The fraction of equal signature positions, an unbiased estimate of Jaccard similarity."""
    if len(sig_a) != len(sig_b):
        raise ValueError(f"signature lengths differ: {len(sig_a)} vs {len(sig_b)}")
    return float(np.count_nonzero(np.asarray(sig_a) == np.asarray(sig_b))) / len(sig_a)


def jaccard(set_a: Set[str], set_b: Set[str]) -> float:
    """Exact Jaccard similarity; 0.0 when both sets are empty (no evidence of similarity)."""
    union = len(set_a | set_b)
    return len(set_a & set_b) / union if union else 0.0
