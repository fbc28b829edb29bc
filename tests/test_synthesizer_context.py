"""The synthesizer's context budget: splitting over-long texts, dropping the oldest examples first."""
import pytest

from pipeline.synthesizer_context import fit_examples, part_budget, prompt_budget, split_text
from pipeline.synthesizer_format import Example, QAPair, build_prompt, context_block


def words(text: str) -> int:
    """A token counter for exact edges: whitespace-separated words."""
    return len(text.split())


OVERHEAD = words(context_block(""))  # "<s> <CON> </CON>" = 3


def test_budget_is_the_context_less_the_generation():
    assert prompt_budget(4096, 400) == 3696
    with pytest.raises(ValueError, match="no room"):
        prompt_budget(400, 400)
    assert part_budget(4096, 400, 2) == 1648 and part_budget(4096, 400, 1) == 3696


def test_a_text_that_exactly_fits_is_not_split():
    text = "one two three four five."
    assert split_text(text, words, OVERHEAD + 5) == [text]


def test_one_token_over_splits_at_a_sentence_end():
    text = "One two three. Four five six."
    parts = split_text(text, words, OVERHEAD + 5)
    assert parts == ["One two three. ", "Four five six."]
    assert "".join(parts) == text


def test_parts_fit_and_join_back_to_the_text():
    sentences = [f"Sentence {i} has exactly five words." for i in range(40)]
    text = " ".join(sentences) + "\n\nA last paragraph!"
    for budget in (OVERHEAD + 6, OVERHEAD + 11, OVERHEAD + 50):
        parts = split_text(text, words, budget)
        assert "".join(parts) == text
        assert all(words(context_block(p)) <= budget for p in parts)
        assert all(p.endswith((". ", ".", "!", "\n\n")) for p in parts)


def test_a_single_over_long_sentence_is_cut_at_spaces_and_a_giant_word_in_halves():
    text = " ".join(f"w{i}" for i in range(25)) + " " + "x" * 40
    count = lambda s: len(s.split()) + sum(len(w) // 10 for w in s.split())  # noqa: E731 - long words cost more
    parts = split_text(text, count, OVERHEAD + 4)
    assert "".join(parts) == text
    assert all(count(context_block(p)) <= OVERHEAD + 4 for p in parts)


def test_a_budget_too_small_for_the_markers_is_an_error():
    with pytest.raises(ValueError, match="cannot hold"):
        split_text("text", words, OVERHEAD)


def test_examples_are_dropped_oldest_first():
    old = Example("old text here", (QAPair("q", "a"),))
    new = Example("new text", (QAPair("q", "a"),))
    text = "current"
    full = words(build_prompt([old, new], text))
    assert fit_examples([old, new], text, words, full) == ([old, new], 0)
    assert fit_examples([old, new], text, words, full - 1) == ([new], 1)
    assert fit_examples([old, new], text, words, words(context_block(text))) == ([], 2)


def test_real_tokenizer_counts_one_bos_and_parts_fit(tmp_path, shared_data):
    from tests.tiny_models import build_mistral_tokenizer
    from pipeline.instruction_pretrain import token_counter

    tok = build_mistral_tokenizer(str(tmp_path / "tok"))
    count = token_counter(tok)
    ids = tok(context_block("Hello."), add_special_tokens=False)["input_ids"]
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id
    assert count(context_block("Hello.")) == len(ids)
    import json
    line = (shared_data / "documents" / "wikipedia" / "wiki_00.jsonl").read_text("utf-8").splitlines()[0]
    text = json.loads(line)["text"]
    parts = split_text(text, count, 1648)
    assert len(parts) > 1 and "".join(parts) == text
    assert all(count(context_block(p)) <= 1648 for p in parts)
    assert max(count(context_block(p)) for p in parts) > 1200  # packed, not cut sentence by sentence
