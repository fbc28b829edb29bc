"""The llm backend's prompt and its strict output parser (every malformed case has a reason)."""
import json

import pytest

from templates_mining.templatizer_prompt import (
    TEMPLATIZER_SYSTEM_PROMPT, TEMPLATIZER_USER_TEMPLATE, build_templatizer_messages, parse_templatizer_output)
from transforms.accounting import InvalidRecord

GOOD = {"template": "what effects does <fi>a medical or psychological condition</fi> have?",
        "compatible_document_description": "A health article describing a condition and its effects."}


def test_messages_carry_system_prompt_and_query():
    msgs = build_templatizer_messages("what effects does lupus have?")
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[0]["content"] == TEMPLATIZER_SYSTEM_PROMPT
    assert msgs[1]["content"] == "what effects does lupus have?"
    assert "<fi>format #1</fi>" in TEMPLATIZER_SYSTEM_PROMPT
    assert "compatible_document_description" in TEMPLATIZER_SYSTEM_PROMPT


def test_user_text_is_the_module_constant_and_the_system_message_can_be_dropped():
    assert TEMPLATIZER_USER_TEMPLATE.replace("{query}", "q {x} }") == "q {x} }"
    bare = build_templatizer_messages("how do {braces} survive?", system_prompt=None)
    assert bare == [{"role": "user", "content": "how do {braces} survive?"}]


@pytest.mark.parametrize("text", [
    json.dumps(GOOD),
    "  \n" + json.dumps(GOOD, indent=2) + "\n\n",
    "```json\n" + json.dumps(GOOD) + "\n```",
    "```\n" + json.dumps(GOOD) + "\n```",
    json.dumps({**GOOD, "extra": 1}),
])
def test_well_formed_outputs(text):
    assert parse_templatizer_output(text) == (GOOD["template"], GOOD["compatible_document_description"])


def test_values_are_trimmed():
    out = parse_templatizer_output(json.dumps({"template": " a <fi>b</fi> ", "compatible_document_description": " d\n"}))
    assert out == ("a <fi>b</fi>", "d")


@pytest.mark.parametrize("text, reason", [
    ("", "unparseable_output"),
    ("Sure! Here is the template.", "unparseable_output"),
    (json.dumps(GOOD)[:-5], "unparseable_output"),
    ("```json\n{\"template\": \"a <fi>b</fi>\"", "unparseable_output"),
    ("[1, 2]", "not_an_object"),
    ("\"just a string\"", "not_an_object"),
    (json.dumps({"template": GOOD["template"]}), "missing_key"),
    (json.dumps({"compatible_document_description": "d"}), "missing_key"),
    (json.dumps({**GOOD, "template": 3}), "wrong_type"),
    (json.dumps({**GOOD, "compatible_document_description": None}), "wrong_type"),
    (json.dumps({**GOOD, "template": ["a"]}), "wrong_type"),
    ("Here is the template: " + json.dumps(GOOD), "unparseable_output"),
    ("```json\n" + json.dumps(GOOD), "unparseable_output"),
    ("```json\n" + json.dumps(GOOD) + "\n```\nThe tags mark the condition.", "trailing_text"),
    ('{"template": "a <fi>b</fi>", "template": "c <fi>d</fi>", "compatible_document_description": "d"}',
     "duplicate_key"),
    (json.dumps(GOOD) + " Hope this helps!", "trailing_text"),
    (json.dumps(GOOD) + "\n" + json.dumps(GOOD), "trailing_text"),
    (json.dumps({**GOOD, "template": "  "}), "empty_value"),
    (json.dumps({**GOOD, "compatible_document_description": ""}), "empty_value"),
    (json.dumps({**GOOD, "template": "what effects does lupus have?"}), "no_tags"),
    (json.dumps({**GOOD, "template": "a <fi>b <fi>c</fi></fi>"}), "nested_tags"),
    (json.dumps({**GOOD, "template": "a <fi>b"}), "unbalanced_tags"),
    (json.dumps({**GOOD, "template": "a <fi> </fi>"}), "empty_tag"),
])
def test_malformed_outputs(text, reason):
    with pytest.raises(InvalidRecord) as err:
        parse_templatizer_output(text)
    assert err.value.reason == reason


def test_non_text_output_is_unparseable():
    with pytest.raises(InvalidRecord) as err:
        parse_templatizer_output(None)
    assert err.value.reason == "unparseable_output"
