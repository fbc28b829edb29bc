"""The llm instantiator's prompt and its strict output parser (every malformed case has a reason)."""
import json

import pytest

from pipeline.instantiator_prompt import (
    INSTANTIATOR_SYSTEM_PROMPT, MODEL_NAME, build_instantiator_messages, build_instantiator_user_message,
    build_paper_style_prompt, parse_instantiator_output)
from transforms.accounting import InvalidRecord

TEMPLATE = "what effects does <fi>a medical or psychological condition</fi> have on {the body}?"
DOCUMENT = "Lupus — an autoimmune disease — affects the joints.\n\n\"Quoted\" {braces} and ünïcode."
GOOD = {"instruction": "what effects does lupus have on the body?",
        "answer": "<excerpt>Lupus<...>the joints.</excerpt>"}


def test_user_message_is_exact_json():
    msgs = build_instantiator_messages(TEMPLATE, DOCUMENT)
    assert MODEL_NAME == "fineinstructions/template_instantiator"
    assert msgs == [{"role": "user", "content": json.dumps(
        {"instruction_template": TEMPLATE, "document": DOCUMENT}, ensure_ascii=False)}]
    assert msgs[0]["content"].startswith('{"instruction_template": "what effects does <fi>')
    assert "ünïcode" in msgs[0]["content"] and "—" in msgs[0]["content"]
    assert json.loads(msgs[0]["content"]) == {"instruction_template": TEMPLATE, "document": DOCUMENT}
    assert build_instantiator_user_message(TEMPLATE, DOCUMENT) == msgs[0]["content"]


def test_system_prompt_is_optional():
    msgs = build_instantiator_messages(TEMPLATE, DOCUMENT, system_prompt=INSTANTIATOR_SYSTEM_PROMPT)
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[0]["content"] == INSTANTIATOR_SYSTEM_PROMPT
    assert msgs[1]["content"] == build_instantiator_user_message(TEMPLATE, DOCUMENT)


def test_system_prompt_has_the_paper_skeleton():
    assert ("1. Task: instantiate the template by filling in the <fi></fi> template variables to create "
            "a realistic instruction that could be asked about the document") in INSTANTIATOR_SYSTEM_PROMPT
    assert "2. Answerability and Template Incompatibility:" in INSTANTIATOR_SYSTEM_PROMPT
    assert "<excerpt>first words<...>last words</excerpt>" in INSTANTIATOR_SYSTEM_PROMPT
    assert INSTANTIATOR_SYSTEM_PROMPT.endswith('{"instruction": "...", "answer": "..."}\n'
                                               "or, when the template is incompatible with the document:\nnull")


def test_paper_style_prompt_blocks_keep_braces_verbatim():
    prompt = build_paper_style_prompt(TEMPLATE, DOCUMENT)
    assert prompt == (INSTANTIATOR_SYSTEM_PROMPT + "\n\n<<<Instruction Template:\n" + TEMPLATE + "\n>>>\n\n"
                      "<<<Compatible Document:\n" + DOCUMENT + "\n>>>")
    tricky = build_paper_style_prompt("t {document}", "d {template}")
    assert tricky.endswith("<<<Instruction Template:\nt {document}\n>>>\n\n<<<Compatible Document:\nd {template}\n>>>")


@pytest.mark.parametrize("text", [
    json.dumps(GOOD),
    json.dumps(GOOD, ensure_ascii=False),
    "  \n" + json.dumps(GOOD, indent=2) + "\n\n",
    "```json\n" + json.dumps(GOOD) + "\n```",
    "```\n" + json.dumps(GOOD) + "\n```",
    json.dumps({**GOOD, "extra": 1}),
])
def test_well_formed_outputs(text):
    assert parse_instantiator_output(text) == (GOOD["instruction"], GOOD["answer"])


def test_round_trip_with_unicode_and_trimming():
    obj = {"instruction": "  ¿Qué efectos tiene el lupus?\n",
           "answer": " <excerpt>Lupus — an autoimmune disease</excerpt> "}
    assert parse_instantiator_output(json.dumps(obj, ensure_ascii=False)) == (
        "¿Qué efectos tiene el lupus?", "<excerpt>Lupus — an autoimmune disease</excerpt>")


@pytest.mark.parametrize("text", ["null", "  null\n", "```json\nnull\n```", "```\nnull\n```"])
def test_null_means_template_does_not_fit(text):
    assert parse_instantiator_output(text) is None


@pytest.mark.parametrize("text, reason", [
    ("", "unparseable_output"),
    ("None", "unparseable_output"),
    ("Sure! Here is the instruction.", "unparseable_output"),
    (json.dumps(GOOD)[:-5], "unparseable_output"),
    ("Here it is: " + json.dumps(GOOD), "unparseable_output"),
    ("```json\n" + json.dumps(GOOD), "unparseable_output"),
    ("```json\nnull", "unparseable_output"),
    ("```json\n" + json.dumps(GOOD) + "\n```\nI used the document's first paragraph.", "trailing_text"),
    (json.dumps(GOOD) + " Hope this helps!", "trailing_text"),
    (json.dumps(GOOD) + "\n" + json.dumps(GOOD), "trailing_text"),
    ("null null", "trailing_text"),
    ("null\nThe template does not fit.", "trailing_text"),
    ('{"instruction": "a", "instruction": "b", "answer": "c"}', "duplicate_key"),
    ("[1, 2]", "not_an_object"),
    ('"just a string"', "not_an_object"),
    ("42", "not_an_object"),
    ("false", "not_an_object"),
    (json.dumps({"instruction": GOOD["instruction"]}), "missing_key"),
    (json.dumps({"answer": GOOD["answer"]}), "missing_key"),
    (json.dumps({}), "missing_key"),
    (json.dumps({**GOOD, "instruction": 3}), "wrong_type"),
    (json.dumps({**GOOD, "answer": None}), "wrong_type"),
    (json.dumps({**GOOD, "answer": ["a"]}), "wrong_type"),
    (json.dumps({**GOOD, "instruction": "  "}), "empty_value"),
    (json.dumps({**GOOD, "answer": ""}), "empty_value"),
])
def test_malformed_outputs(text, reason):
    with pytest.raises(InvalidRecord) as err:
        parse_instantiator_output(text)
    assert err.value.reason == reason


def test_non_text_output_is_unparseable():
    with pytest.raises(InvalidRecord) as err:
        parse_instantiator_output(None)
    assert err.value.reason == "unparseable_output"
