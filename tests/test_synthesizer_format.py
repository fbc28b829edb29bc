"""The instruction synthesizer's prompt and output format, exactly as released (METHOD.md §2)."""
from pipeline.synthesizer_format import Example, QAPair, build_prompt, context_block, parse_pairs


def test_one_round_prompt_is_the_released_string():
    assert build_prompt([], "Paris is the capital of France.") == \
        "<s> <CON> Paris is the capital of France. </CON>\n\n"
    # The text is not stripped.
    assert context_block("  spaced\n") == "<s> <CON>   spaced\n </CON>\n\n"


def test_multi_round_prompt_holds_earlier_texts_with_their_pairs():
    first = Example("Text one.", (QAPair("Q1?", "A1."), QAPair("Q2?", "A2.")))
    second = Example("Text two.", (QAPair("Q3?", "A3."),))
    assert build_prompt([first, second], "Text three.") == (
        "<s> <CON> Text one. </CON>\n\n<QUE> Q1? <ANS> A1. </END>\n\n<QUE> Q2? <ANS> A2. </END></s>"
        "<s> <CON> Text two. </CON>\n\n<QUE> Q3? <ANS> A3. </END></s>"
        "<s> <CON> Text three. </CON>\n\n")


def test_parse_well_formed_output():
    out = "<QUE> Who? <ANS> Ann. </END>\n\n<QUE> Where? <ANS> Rome. </END>"
    pairs, drops = parse_pairs(out)
    assert pairs == [QAPair("Who?", "Ann."), QAPair("Where?", "Rome.")]
    assert drops == {}


def test_parse_drops_the_unclosed_last_pair():
    pairs, drops = parse_pairs("<QUE> Who? <ANS> Ann. </END>\n\n<QUE> Where? <ANS> Ro")
    assert pairs == [QAPair("Who?", "Ann.")]
    assert drops == {"truncated_pair": 1}


def test_parse_without_any_end_marker_gives_no_pair():
    pairs, drops = parse_pairs("<QUE> Who? <ANS> Ann.")
    assert pairs == [] and drops == {"truncated_pair": 1}


def test_parse_counts_each_malformed_fragment_by_reason():
    out = ("<QUE> No answer marker </END>"
           "<QUE> Two <ANS> answer <ANS> markers </END>"
           "Missing question marker <ANS> x </END>"
           "<QUE> <ANS> empty question </END>"
           "<QUE> Empty answer? <ANS>   </END>"
           "<QUE> Marker inside? <ANS> yes <CON> here </END>"
           "<QUE> Kept? <ANS> Yes. </END>"
           "<QUE> KEPT?  <ANS> Again, a duplicate (case-insensitive). </END>"
           "</END>")
    pairs, drops = parse_pairs(out)
    assert pairs == [QAPair("Kept?", "Yes.")]
    assert drops == {"missing_answer_marker": 1, "extra_answer_marker": 1, "missing_question_marker": 1,
                     "empty_question": 1, "empty_answer": 1, "marker_in_pair": 1, "duplicate_question": 1,
                     "empty_fragment": 1}


def test_parse_ignores_whitespace_and_a_decoded_eos_after_the_last_pair():
    for tail in ("   \n\n", "</s>", " </s>\n"):
        pairs, drops = parse_pairs("<QUE> Who? <ANS> Ann. </END>" + tail)
        assert pairs == [QAPair("Who?", "Ann.")] and drops == {}, tail


def test_answers_keep_their_inner_text():
    pairs, _ = parse_pairs("<QUE> What is 2 < 3? <ANS> True: 2 < 3 and x > y. </END>")
    assert pairs == [QAPair("What is 2 < 3?", "True: 2 < 3 and x > y.")]
