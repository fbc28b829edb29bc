"""Chains of texts for multi-round synthesis, and the augmented documents they become."""
import random

from pipeline.synthesizer_chains import (LAYOUTS, Chain, TextPart, augmented_text, bucket_of, examples_before,
                                         form_chains, num_buckets, with_pairs)
from pipeline.synthesizer_format import Example, QAPair


def parts_of(doc_id, n):
    return [TextPart(doc_id, i, n, f"{doc_id} part {i}. ", "src") for i in range(n)]


def test_chains_do_not_depend_on_input_order():
    parts = [p for d in range(20) for p in parts_of(f"doc{d}", 1 + d % 3)]
    shuffled = parts[:]
    random.Random(1).shuffle(shuffled)
    assert form_chains(parts, 2, seed=7) == form_chains(shuffled, 2, seed=7)
    assert form_chains(parts, 2, seed=7) != form_chains(parts, 2, seed=8)


def test_chains_hold_rounds_texts_and_keep_a_documents_parts_in_order():
    parts = [p for d in range(10) for p in parts_of(f"doc{d}", 3)]
    chains = form_chains(parts, 3, seed=0)
    assert sorted(p for c in chains for p in c.parts) == sorted(parts)
    assert all(len(c.parts) == 3 for c in chains)
    # Each document's three parts are one chain, in order.
    assert all(len({p.doc_id for p in c.parts}) == 1 and [p.part for p in c.parts] == [0, 1, 2] for c in chains)
    assert all(c.pairs == (None, None, None) for c in chains)


def test_buckets_are_stable_and_sized_for_whole_chains():
    assert num_buckets(1, 2) == 1 and num_buckets(256, 2) == 1 and num_buckets(257, 2) == 2
    assert num_buckets(1000, 3) == 4  # 255 per bucket
    assert bucket_of("doc", 1, 5) == bucket_of("doc", 1, 5)


def test_a_text_without_pairs_breaks_the_chain():
    parts = parts_of("d", 4)
    chain = Chain("c", tuple(parts), (None,) * 4)
    pair = QAPair("q", "a")
    chain = with_pairs(chain, 0, [pair], 0)
    assert examples_before(chain, 1) == [Example(parts[0].text, (pair,))]
    chain = with_pairs(chain, 1, [], 1)
    assert examples_before(chain, 2) == []
    chain = with_pairs(chain, 2, [pair], 0)
    assert examples_before(chain, 3) == [Example(parts[2].text, (pair,))]
    assert chain.examples_used == (0, 1, 0)


def test_augmented_text_keeps_each_text_verbatim_then_its_pairs():
    texts = [("First text,\nverbatim.  ", (QAPair("Q1?", "A1."),)), ("Second.", ())]
    out = augmented_text(texts, 0)
    assert out == "First text,\nverbatim.  \n\nQuestion: Q1?\nAnswer: A1.\n\nSecond."
    q, a = LAYOUTS[1]
    assert augmented_text(texts, 1) == f"First text,\nverbatim.  \n\n{q}Q1?{a}A1.\n\nSecond."
