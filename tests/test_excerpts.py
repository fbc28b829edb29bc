"""Excerpt-marker expansion: exact, tolerant and focus-guided resolution; every failure has a reason."""
import pytest

from pipeline.excerpts import ExpandedAnswer, check_excerpt_share, expand_excerpts
from transforms.accounting import Rejected

DOC = ("Einstein wrote in 1905. It is known that the speed of light is the same for all observers, "
       "which is the principle of relativity. Later work extended it.")


def test_exact_start_end_marker():
    out = expand_excerpts("<excerpt>It is known that<...>the principle of relativity.</excerpt>", DOC)
    expected = ("It is known that the speed of light is the same for all observers, "
                "which is the principle of relativity.")
    start = DOC.index("It is known")
    assert out.text == expected
    assert out.spans == ((start, start + len(expected)),)
    assert DOC[out.spans[0][0]:out.spans[0][1]] == expected
    assert out.excerpt_chars == len(expected) == out.total_chars
    assert out.excerpt_share == 1.0


def test_verbatim_marker_and_boundary_whitespace_is_ignored():
    out = expand_excerpts("<excerpt> Later work extended it. </excerpt>", DOC)
    start = DOC.index("Later")
    assert out.text == "Later work extended it."
    assert out.spans == ((start, start + 23),)
    out2 = expand_excerpts("<excerpt>It is known that <...> the principle of relativity.</excerpt>", DOC)
    assert out2.text == DOC[DOC.index("It is"):DOC.index("Later") - 1]


def test_tolerant_whitespace_and_case_maps_back_to_verbatim_text():
    doc = "Intro.\n\nThe  Speed of\nLight   is constant in vacuum.\tEnd."
    out = expand_excerpts("<excerpt>the speed of light<...>IN VACUUM.</excerpt>", doc)
    verbatim = "The  Speed of\nLight   is constant in vacuum."
    start = doc.index("The  Speed")
    assert out.text == verbatim
    assert out.spans == ((start, start + len(verbatim)),)
    assert doc[out.spans[0][0]:out.spans[0][1]] == verbatim
    assert out.excerpt_chars == len(verbatim)


def test_tolerant_verbatim_marker_with_casefold_expansion():
    doc = "Er wohnt in der Hauptstraße 5 in Berlin."
    out = expand_excerpts("<excerpt>HAUPTSTRASSE 5</excerpt>", doc)
    assert out.text == "Hauptstraße 5"
    assert out.spans == ((16, 29),)
    assert doc[16:29] == "Hauptstraße 5"


def test_exact_match_is_preferred_over_tolerant():
    doc = "the CAT sat. The cat sat."
    out = expand_excerpts("<excerpt>The cat sat.</excerpt>", doc)
    assert out.spans == ((13, 25),)
    out_ci = expand_excerpts("<excerpt>THE CAT SAT.</excerpt>", doc)
    assert out_ci.spans == ((0, 12),)
    assert out_ci.text == "the CAT sat."


def test_ambiguous_start_is_resolved_towards_focus():
    doc = "Alpha begins here and ends now. Middle text. Alpha begins here and ends later."
    marker = "<excerpt>Alpha begins<...>and ends</excerpt>"
    second = doc.index("Alpha", 1)
    assert expand_excerpts(marker, doc).spans == ((0, 26),)
    assert expand_excerpts(marker, doc, focus=5).spans == ((0, 26),)
    assert expand_excerpts(marker, doc, focus=len(doc) - 1).spans == ((second, second + 26),)
    assert expand_excerpts(marker, doc, focus=second + 3).text == "Alpha begins here and ends"


def test_ambiguous_verbatim_marker_is_resolved_towards_focus():
    doc = "x=1. Results were good. y=2. Results were good. z=3."
    second = doc.index("Results", 10)
    out = expand_excerpts("<excerpt>Results were good.</excerpt>", doc, focus=len(doc))
    assert out.spans == ((second, second + 18),)
    assert expand_excerpts("<excerpt>Results were good.</excerpt>", doc).spans == ((5, 23),)


def test_end_is_the_nearest_occurrence_after_the_start():
    doc = "Start here. One end. Two end. Three end."
    out = expand_excerpts("<excerpt>Start here<...>end.</excerpt>", doc)
    assert out.text == "Start here. One end."
    assert out.spans == ((0, 20),)


def test_start_and_end_may_overlap_in_a_short_span():
    doc = "Foo. The quick brown fox. Bar."
    out = expand_excerpts("<excerpt>The quick brown<...>brown fox.</excerpt>", doc)
    assert out.text == "The quick brown fox."
    assert out.spans == ((5, 25),)


def test_missing_start_is_rejected():
    with pytest.raises(Rejected) as err:
        expand_excerpts("<excerpt>Newton proved<...>the principle of relativity.</excerpt>", DOC)
    assert err.value.reason == "excerpt_not_found"
    assert "start" in err.value.detail


def test_missing_end_is_rejected():
    with pytest.raises(Rejected) as err:
        expand_excerpts("<excerpt>It is known that<...>the theory of gravity.</excerpt>", DOC)
    assert err.value.reason == "excerpt_not_found"
    assert "end" in err.value.detail


def test_end_before_start_is_not_found():
    with pytest.raises(Rejected) as err:
        expand_excerpts("<excerpt>Later work<...>in 1905.</excerpt>", DOC)
    assert err.value.reason == "excerpt_not_found"


def test_end_beyond_max_span_is_not_found():
    doc = "Begin. " + "filler " * 20 + "Finish."
    marker = "<excerpt>Begin.<...>Finish.</excerpt>"
    assert expand_excerpts(marker, doc, max_span_chars=len(doc)).spans == ((0, len(doc)),)
    with pytest.raises(Rejected) as err:
        expand_excerpts(marker, doc, max_span_chars=len(doc) - 1)
    assert err.value.reason == "excerpt_not_found"


def test_verbatim_marker_not_in_document_is_rejected():
    with pytest.raises(Rejected) as err:
        expand_excerpts("<excerpt>light is slow</excerpt>", DOC)
    assert err.value.reason == "excerpt_not_found"


@pytest.mark.parametrize("answer, detail_word", [
    ("<excerpt>It is <excerpt>known</excerpt> that</excerpt>", "nested"),
    ("Intro. <excerpt>It is known that", "unclosed"),
    ("Later work extended it.</excerpt>", "stray"),
    ("<excerpt>Later work extended it.</excerpt></excerpt>", "stray"),
    ("<excerpt></excerpt>", "empty"),
    ("<excerpt>   </excerpt>", "empty"),
    ("<excerpt><...></excerpt>", "empty"),
    ("<excerpt>It is known that<...></excerpt>", "empty"),
    ("<excerpt><...>principle of relativity.</excerpt>", "empty"),
    ("<excerpt>It is<...>speed<...>relativity.</excerpt>", "more than one"),
])
def test_malformed_markers(answer, detail_word):
    with pytest.raises(Rejected) as err:
        expand_excerpts(answer, DOC)
    assert err.value.reason == "malformed_excerpt"
    assert detail_word in err.value.detail


def test_multiple_markers_with_lead_in_text():
    answer = ("According to the text, <excerpt>It is known that<...>observers,</excerpt> and "
              "<excerpt>later work extended it.</excerpt>")
    out = expand_excerpts(answer, DOC)
    first = "It is known that the speed of light is the same for all observers,"
    second = "Later work extended it."
    assert out.text == f"According to the text, {first} and {second}"
    s1, s2 = DOC.index(first), DOC.index(second)
    assert out.spans == ((s1, s1 + len(first)), (s2, s2 + len(second)))
    assert [DOC[s:e] for s, e in out.spans] == [first, second]
    assert out.excerpt_chars == len(first) + len(second) == 89
    assert out.total_chars == len(out.text) == 117
    assert out.excerpt_share == pytest.approx(89 / 117)
    (a, b), (c, d) = out.spans
    assert out.text == "According to the text, " + DOC[a:b] + " and " + DOC[c:d]


def test_answer_without_excerpts_has_zero_share_and_is_kept_verbatim():
    out = expand_excerpts("  The speed of light is constant.\n", DOC)
    assert out == ExpandedAnswer("The speed of light is constant.", 0, 31, ())
    assert out.excerpt_share == 0.0
    assert expand_excerpts("", DOC) == ExpandedAnswer("", 0, 0, ())
    assert expand_excerpts("", DOC).excerpt_share == 0.0


def test_fi_tags_and_stray_ellipsis_outside_markers_are_leftover_markers():
    # Issue 13: these used to pass into the answer; they are markup nothing resolved.
    for answer in ("<fi>x</fi> <excerpt>Later work extended it.</excerpt>",
                   "<...> <excerpt>Later work extended it.</excerpt>",
                   "<excerpt>Later work extended it.</excerpt> then <fi>y</fi>"):
        with pytest.raises(Rejected) as err:
            expand_excerpts(answer, DOC)
        assert err.value.reason == "leftover_marker", answer


def test_check_excerpt_share():
    high = ExpandedAnswer("x" * 10, 8, 10, ((0, 8),))
    assert check_excerpt_share(high) is high
    with pytest.raises(Rejected) as err:
        check_excerpt_share(ExpandedAnswer("x" * 10, 7, 10, ((0, 7),)))
    assert err.value.reason == "low_excerpt_share"
    assert "7/10" in err.value.detail
    assert check_excerpt_share(ExpandedAnswer("x" * 10, 5, 10, ((0, 5),)), min_ratio=0.5).excerpt_chars == 5
    with pytest.raises(Rejected) as err:
        check_excerpt_share(ExpandedAnswer("", 0, 0, ()))
    assert err.value.reason == "low_excerpt_share"


def test_share_check_on_an_expanded_answer_with_a_long_lead_in():
    answer = "Here is a fairly long lead-in sentence before the quote: <excerpt>Later work extended it.</excerpt>"
    out = expand_excerpts(answer, DOC)
    assert out.excerpt_chars == 23
    assert out.total_chars == 80
    with pytest.raises(Rejected) as err:
        check_excerpt_share(out)
    assert err.value.reason == "low_excerpt_share"


# --- document text that looks like markup (issue 13) -----------------------------------------

from pipeline.excerpts import escape_markup, unescape_markup  # noqa: E402
from pipeline.extractive import excerpt_marker  # noqa: E402

INJECTED = ("Templates use <fi>slots</fi>. An answer marks <excerpt>quotes</excerpt> and elides with <...> "
            "in between. This sentence has no markup at all and is long enough to be cut by the marker.")


def test_escaped_markup_round_trips_through_expansion():
    escaped = escape_markup(INJECTED)
    assert "<excerpt>" not in escaped and "<...>" not in escaped and "<fi>" not in escaped
    assert unescape_markup(escaped) == INJECTED
    for sentence in ("An answer marks <excerpt>quotes</excerpt> and elides with <...> in between.",
                     "Templates use <fi>slots</fi>.", INJECTED):
        answer = excerpt_marker(sentence)
        expanded = expand_excerpts(answer, INJECTED)
        assert expanded.text == sentence and expanded.excerpt_share == 1.0


def test_a_model_copying_escaped_text_resolves_to_the_verbatim_document():
    escaped = escape_markup(INJECTED)
    start = escaped.index("An answer")
    quote = escaped[start:escaped.index("between.") + len("between.")]
    answer = f"From the text: <excerpt>{quote}</excerpt>"
    expanded = expand_excerpts(answer, INJECTED)
    assert expanded.text.endswith("elides with <...> in between.")
    assert INJECTED[expanded.spans[0][0]:expanded.spans[0][1]] in INJECTED
