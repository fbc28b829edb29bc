"""Tests for pipeline.extractive: sentences, tag candidates, excerpt markers and instantiation
with a deterministic fake encoder (hashed bag of words plus a tiny synonym map)."""
from __future__ import annotations

import re
import zlib

import numpy as np
import pytest

from pipeline.excerpts import expand_excerpts
from pipeline.extractive import (EXCERPT_EDGE_WORDS, DocumentView, ExtractiveConfig, Instantiation,
                                 candidate_spans, excerpt_marker, fill_tags, instantiate, region, sentence_spans)

# --- a deterministic fake encoder -------------------------------------------------------

DIM = 4096
_WORD_RE = re.compile(r"[a-z0-9]+")
_STOP = frozenset({"a", "an", "the", "of", "in", "is", "was", "what", "which", "and", "to", "for", "on", "at",
                   "by", "it", "its", "how", "does", "do", "about", "many", "who", "live", "has"})
#: Each word also lights up its concept: "Lisbon" is close to "a city".
SYNONYMS = {"lisbon": ["city"], "porto": ["city"], "madrid": ["city"], "portugal": ["country"],
            "spain": ["country"], "population": ["people"], "residents": ["people"]}


def encode(texts):
    """Unit-norm hashed bag of lowercase content words (with synonyms); stable across processes."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for r, text in enumerate(texts):
        for word in _WORD_RE.findall(text.lower()):
            if word in _STOP:
                continue
            for feature in [word] + SYNONYMS.get(word, []):
                out[r, zlib.crc32(feature.encode("utf-8")) % DIM] += 1.0
        norm = np.linalg.norm(out[r])
        if norm:
            out[r] /= norm
    return out


class CountingEncoder:
    def __init__(self):
        self.calls = 0

    def __call__(self, texts):
        self.calls += 1
        return encode(texts)


DOC = ("Lisbon is the capital of Portugal. The city of Lisbon has about 545,000 residents. "
       "Its population grew after 1990. Madrid is far away in Spain.")


def test_fake_encoder_is_what_the_tests_assume():
    v = encode(["a city", "Lisbon", "city", "a famous painting", ""])
    assert v[0] @ v[2] == pytest.approx(1.0)
    assert v[0] @ v[1] == pytest.approx(1 / np.sqrt(2))
    assert v[0] @ v[3] == pytest.approx(0.0)
    assert np.all(v[4] == 0)


# --- sentence_spans ---------------------------------------------------------------------


def _sentences(text):
    return [text[s:e] for s, e in sentence_spans(text)]


def test_sentence_spans_offsets():
    text = "First one. Second one! Third one? Fourth"
    spans = sentence_spans(text)
    assert spans == [(0, 10), (11, 22), (23, 33), (34, 40)]
    assert [text[s:e] for s, e in spans] == ["First one.", "Second one!", "Third one?", "Fourth"]


def test_sentence_spans_newlines_and_trimming():
    text = "Line one\nLine two.\n\n  Indented line  \n"
    assert sentence_spans(text) == [(0, 8), (9, 18), (22, 35)]
    assert _sentences(text) == ["Line one", "Line two.", "Indented line"]


def test_sentence_spans_keep_trailing_quotes_and_brackets():
    text = 'She said "Stop!" Then left. (Quoted.) Next one? "Yes." ok'
    assert _sentences(text) == ['She said "Stop!"', "Then left.", "(Quoted.)", "Next one?", '"Yes." ok']
    assert sentence_spans(text)[0] == (0, 16)


def test_sentence_spans_no_split_before_lowercase_or_inside_numbers():
    text = "The U.S. state of Ohio grew 3.5 percent. it continued. Then 2020 came."
    assert _sentences(text) == ["The U.S. state of Ohio grew 3.5 percent. it continued.", "Then 2020 came."]


def test_sentence_spans_empty():
    assert sentence_spans("") == []
    assert sentence_spans("  \n\n ") == []


def test_sentence_spans_split_before_digit():
    assert _sentences("It ended. 1990 was the year.") == ["It ended.", "1990 was the year."]


# --- candidate_spans --------------------------------------------------------------------


def _cands(text):
    return [text[s:e] for s, e in candidate_spans(text, sentence_spans(text))]


def test_candidate_spans_capitalised_names():
    text = "The Green Bay Packers won the National Football Conference title."
    got = _cands(text)
    assert got[:2] == ["Green Bay Packers", "National Football Conference"]  # "The" is a stopword
    assert "The Green Bay Packers" not in got


def test_candidate_spans_joiners_inside_names():
    got = _cands("The Bank of England raised rates. Real Madrid and Barcelona met.")
    assert "Bank of England" in got
    assert "Real Madrid and Barcelona" in got
    assert "of England" not in got


def test_candidate_spans_numbers_with_commas_and_units():
    text = "Revenue was 663,268 dollars in 2019, up from 600,000."
    got = _cands(text)
    assert got == ["Revenue", "663,268", "663,268 dollars", "dollars", "2019", "600,000"]


def test_candidate_spans_number_plus_unit():
    got = _cands("It reached 1,000,000 users and ran 3.5 km.")
    assert "1,000,000" in got and "1,000,000 users" in got
    assert "3.5" in got and "3.5 km" in got
    assert "1,000" not in got  # a number is never split at its comma


def test_candidate_spans_never_cross_punctuation():
    text = "He visited Paris, France; then Berlin (Germany) and ran 3.5 km. Tickets cost $20, or 1,200 yen."
    got = _cands(text)
    assert {"Paris", "France", "Berlin", "Germany", "1,200 yen"} <= set(got)
    for span in got:
        assert not re.search(r"[;()$]", span), span
        assert not re.search(r",(?!\d{3})", span), span
        assert ". " not in span
    assert "Paris France" not in got and "Paris, France" not in got
    assert "km Tickets" not in got


def test_candidate_spans_never_cross_sentences_and_keep_every_occurrence():
    text = "Lisbon is old. Lisbon is big. Tickets sold."
    spans = candidate_spans(text, sentence_spans(text))
    got = [text[s:e] for s, e in spans]
    assert got.count("Lisbon") == 2  # both occurrences: a region may hold only the second
    assert spans == sorted(set(spans))
    assert not any(g.startswith("old") and "Lisbon" in g for g in got)


def test_candidate_spans_offsets_point_into_text():
    text = "Revenue was 663,268 dollars."
    spans = candidate_spans(text, sentence_spans(text))
    assert spans[:3] == [(0, 7), (12, 19), (12, 27)]


# --- excerpt_marker ---------------------------------------------------------------------


def test_excerpt_marker_short_is_verbatim():
    assert excerpt_marker("A short passage here.") == "<excerpt>A short passage here.</excerpt>"
    words = " ".join(f"w{i}" for i in range(2 * EXCERPT_EDGE_WORDS + 2))  # exactly at the limit
    assert excerpt_marker(words) == f"<excerpt>{words}</excerpt>"


def test_excerpt_marker_long_is_compact():
    passage = " ".join(f"w{i}" for i in range(20))
    assert excerpt_marker(passage) == "<excerpt>w0 w1 w2 w3 w4 w5<...>w14 w15 w16 w17 w18 w19</excerpt>"


def test_excerpt_marker_long_round_trips_through_expansion():
    document = "Intro. " + " ".join(f"word{i}" for i in range(30)) + " Outro."
    passage = " ".join(f"word{i}" for i in range(30))
    expanded = expand_excerpts(excerpt_marker(passage), document)
    assert expanded.text == passage
    assert expanded.excerpt_share == 1.0


# --- region -------------------------------------------------------------------------------


def test_region_global_and_local():
    cfg = ExtractiveConfig(region_fraction=0.2, min_region_chars=100)
    assert region(1000, 500, 0, cfg) == (0, 1000)
    assert region(1000, 500, 3, cfg) == (300, 700)
    assert region(1000, 20, 1, cfg) == (0, 220)
    assert region(200, 150, 1, cfg) == (100, 200)  # min_region_chars // 2 = 50 > 0.2 * 200 = 40


# --- instantiate / fill_tags ------------------------------------------------------------


def test_instantiate_fills_tag_and_answers_verbatim():
    view = DocumentView(DOC, encode)
    result = instantiate("What is the population of <fi>a city</fi>?", view, focus=0, chunk=0, encode=encode)
    answer = "The city of Lisbon has about 545,000 residents."
    assert result == Instantiation("What is the population of Lisbon?", f"<excerpt>{answer}</excerpt>",
                                   ("Lisbon",), pytest.approx(float(encode([result.instruction])[0] @ encode([answer])[0])))
    expanded = expand_excerpts(result.answer, DOC)
    assert expanded.text == "The city of Lisbon has about 545,000 residents."
    assert expanded.excerpt_share == 1.0
    s, e = expanded.spans[0]
    assert DOC[s:e] == expanded.text


def test_instantiate_two_tags_filled_from_document():
    view = DocumentView(DOC, encode)
    result = instantiate("How many people live in <fi>a city</fi> in <fi>a country</fi>?", view, 0, 0, encode)
    assert result.instruction == "How many people live in Lisbon in Portugal?"
    assert result.tag_fills == ("Lisbon", "Portugal")
    for fill in result.tag_fills:
        assert fill in DOC
    expanded = expand_excerpts(result.answer, DOC)
    assert expanded.excerpt_share == 1.0
    assert expanded.text in DOC


def test_fill_never_repeats_description_words():
    # "city" is itself a candidate span and the closest to "a city" (cosine 1.0), but it names the
    # category, not an instance.
    view = DocumentView(DOC, encode)
    span_texts = [DOC[s:e] for s, e in view.spans]
    assert "city" in span_texts
    sims = encode(["a city"]) @ view.span_vectors(range(len(view.spans))).T
    assert span_texts[int(np.argmax(sims))] == "city"
    filled = fill_tags("Describe <fi>a city</fi>.", view, 0, len(DOC), 0, encode, ExtractiveConfig())
    assert filled == ("Describe Lisbon.", ("Lisbon",))
    # The exclusion works on stems: "residents" also excludes "Local residents" (a singular/plural
    # match), however similar, and leaves the synonym "population".
    doc = "Local residents voted. The population voted too."
    v2 = DocumentView(doc, encode)
    assert {"Local residents", "residents", "population"} <= {doc[s:e] for s, e in v2.spans}
    got = fill_tags("What did <fi>residents</fi> do?", v2, 0, len(doc), 0, encode, ExtractiveConfig())
    assert got == ("What did population voted do?", ("population voted",))
    # When only such spans are similar enough, the template does not fit.
    only = DocumentView("Local residents voted.", encode)
    assert fill_tags("What did <fi>a resident</fi> do?", only, 0, 22, 0, encode, ExtractiveConfig()) is None
    assert fill_tags("What did <fi>residents</fi> do?", only, 0, 22, 0, encode, ExtractiveConfig()) is None


def test_repeated_tag_same_fill_distinct_tags_distinct_fills():
    view = DocumentView(DOC, encode)
    same = fill_tags("Is <fi>a city</fi> older than <fi>a city</fi>?", view, 0, len(DOC), 0, encode, ExtractiveConfig())
    assert same == ("Is Lisbon older than Lisbon?", ("Lisbon",))
    distinct = fill_tags("Is <fi>a city</fi> older than <fi>another city</fi>?", view, 0, len(DOC), 0, encode,
                         ExtractiveConfig())
    assert distinct is not None
    first, second = distinct[1]
    assert first == "Lisbon"
    assert second == "Madrid"  # Lisbon is used; Madrid is the only other city in the document
    assert distinct[0] == "Is Lisbon older than Madrid?"


def test_local_chunk_prefers_spans_in_its_region():
    filler = " ".join(["Nothing relevant happens here."] * 20)
    doc = f"Lisbon is in Portugal. {filler} Porto is in Portugal too."
    cfg = ExtractiveConfig(region_fraction=0.05, min_region_chars=60)
    view = DocumentView(doc, encode)
    far = instantiate("Tell me about <fi>a city</fi>.", view, focus=len(doc) - 10, chunk=2, encode=encode, cfg=cfg)
    near = instantiate("Tell me about <fi>a city</fi>.", view, focus=5, chunk=1, encode=encode, cfg=cfg)
    assert far.tag_fills == ("Porto",)
    assert near.tag_fills == ("Lisbon",)
    assert expand_excerpts(far.answer, doc).text == "Porto is in Portugal too."
    assert expand_excerpts(near.answer, doc).text == "Lisbon is in Portugal."


def test_instantiate_none_when_no_span_is_similar_enough():
    view = DocumentView(DOC, encode)
    assert instantiate("Who painted <fi>a famous painting</fi>?", view, 0, 0, encode) is None
    # A fitting template is refused too once the threshold is above every fill's similarity.
    strict = ExtractiveConfig(min_tag_similarity=0.9)
    assert instantiate("What is the population of <fi>a city</fi>?", view, 0, 0, encode, strict) is None


def test_instantiate_none_when_no_passage_is_similar_enough():
    view = DocumentView(DOC, encode)
    cfg = ExtractiveConfig(min_answer_similarity=0.99)
    assert instantiate("What is the population of <fi>a city</fi>?", view, 0, 0, encode, cfg) is None


def test_instantiate_none_without_tags_or_spans():
    view = DocumentView(DOC, encode)
    assert instantiate("What is the population?", view, 0, 0, encode) is None
    empty = DocumentView("the of and.", encode)
    assert empty.spans == []
    assert instantiate("Describe <fi>a city</fi>.", empty, 0, 0, encode) is None


def test_long_answer_is_cut_at_a_word_boundary():
    sentence = "Lisbon " + " ".join(["residents"] * 60) + " wait."
    doc = sentence
    view = DocumentView(doc, encode)
    cfg = ExtractiveConfig(max_answer_chars=100)
    result = instantiate("What about the population of <fi>a city</fi>?", view, 0, 0, encode, cfg)
    assert result is not None
    expanded = expand_excerpts(result.answer, doc)
    assert len(expanded.text) <= 100
    assert doc.startswith(expanded.text)
    assert not expanded.text.endswith(" ")
    assert doc[len(expanded.text)] == " "  # cut at a word boundary


def test_document_view_encodes_lazily_and_once():
    enc = CountingEncoder()
    view = DocumentView(DOC, enc)
    assert enc.calls == 0
    first = view.sentence_vectors([0, 1])
    assert enc.calls == 1
    again = view.sentence_vectors([1, 0, 2])  # only sentence 2 is new
    assert enc.calls == 2 and np.array_equal(again[:2], first[::-1])
    view.sentence_vectors([2, 1])
    assert enc.calls == 2
    assert view.span_vectors(range(len(view.spans))).shape == (len(view.spans), DIM)
    assert enc.calls == 3


def test_instantiate_is_deterministic():
    runs = [instantiate("How many people live in <fi>a city</fi> in <fi>a country</fi>?",
                        DocumentView(DOC, encode), 0, 0, encode) for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]
