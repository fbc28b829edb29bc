"""The llm judge's Flow-Judge-style prompt and its strict score parser."""
import pytest

from pipeline.judge_prompt import (
    EVALUATION_CRITERIA, JUDGE_PROMPT_TEMPLATE, MODEL_NAME, RUBRIC, build_judge_messages,
    build_judge_prompt, parse_judge_output)
from transforms.accounting import InvalidRecord

INSTRUCTION = "What effects does lupus have on the kidneys?"
ANSWER = "Lupus nephritis is an inflammation of the kidneys that can lead to kidney failure."


def test_messages_hold_instruction_answer_and_rubric_in_their_blocks():
    msgs = build_judge_messages(INSTRUCTION, ANSWER)
    assert [m["role"] for m in msgs] == ["user"]
    text = msgs[0]["content"]
    assert text == build_judge_prompt(INSTRUCTION, ANSWER)
    assert f"<inputs>\n<user_instruction>\n{INSTRUCTION}\n</user_instruction>\n</inputs>" in text
    assert f"<output>\n{ANSWER}\n</output>" in text
    assert f"<evaluation_criteria>\n{EVALUATION_CRITERIA}\n</evaluation_criteria>" in text
    assert f"<scoring_rubric>\n{RUBRIC}\n</scoring_rubric>" in text
    assert "<feedback>" in text and "<score>" in text
    assert text.index("<inputs>") < text.index("<output>") < text.index("<evaluation_criteria>") \
        < text.index("<scoring_rubric>")
    assert MODEL_NAME == "flowaicom/Flow-Judge-v0.1"


def test_rubric_has_five_levels_with_the_paper_anchors():
    assert [line[:9] for line in RUBRIC.splitlines()] == [f"- Score {i}" for i in range(1, 6)]
    assert "irrelevant or off-topic" in RUBRIC.splitlines()[0]
    assert "without extraneous, vague or repetitive content" in RUBRIC.splitlines()[4]


def test_placeholder_lookalikes_in_the_pair_survive():
    text = build_judge_prompt("explain {answer} and {rubric}", "use {instruction} {x}")
    assert "<user_instruction>\nexplain {answer} and {rubric}\n</user_instruction>" in text
    assert "<output>\nuse {instruction} {x}\n</output>" in text
    assert "{criteria}" in JUDGE_PROMPT_TEMPLATE and "{criteria}" not in text


@pytest.mark.parametrize("text, score", [
    ("<feedback>The response answers directly, with one aside.</feedback>\n<score>4</score>", 4),
    ("<feedback>Good.</feedback><score> 5 \n</score>", 5),
    ("<feedback>Off-topic.</feedback>\n<SCORE>1</SCORE>\n", 1),
    ("<score>3</score>", 3),
])
def test_parser_accepts_one_integer_score(text, score):
    assert parse_judge_output(text) == score


@pytest.mark.parametrize("text, reason", [
    ("<feedback>Fine.</feedback>", "missing_score"),
    ("", "missing_score"),
    (None, "missing_score"),
    ("Score: 4", "missing_score"),
    ("<feedback>x</feedback><score>4</score><score>5</score>", "multiple_scores"),
    ("<score>4</score> <score>4</score>", "multiple_scores"),
    ("<score>4<score>5</score>", "multiple_scores"),
    ("<score>0</score>", "score_out_of_range"),
    ("<score>6</score>", "score_out_of_range"),
    ("<score>-1</score>", "score_out_of_range"),
    ("<score>4.5</score>", "unparseable_score"),
    ("<score>four</score>", "unparseable_score"),
    ("<score>4/5</score>", "unparseable_score"),
    ("<score></score>", "unparseable_score"),
    ("<feedback>x</feedback><score>4", "unparseable_score"),
])
def test_parser_rejects_malformed_output_with_a_reason(text, reason):
    with pytest.raises(InvalidRecord) as e:
        parse_judge_output(text)
    assert e.value.reason == reason
