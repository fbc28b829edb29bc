"""The <fi> template format: every validation reason, dedupe normalization, rendering."""
import pytest

from transforms.template_format import (
    TAG_RE, count_tags, normalize_template, render_with_descriptions, validate_template)
from transforms.accounting import InvalidRecord

DESC = "A health article about a condition."


def test_valid_template_returns_tag_count():
    assert validate_template("from <fi>format #1</fi> to <fi>format #2</fi>", DESC) == 2
    assert count_tags("what effects does <fi>a condition</fi> have?") == 1
    assert count_tags("no tags") == 0
    assert count_tags("<fi>a</fi><fi>b</fi>\n<fi>c\nd</fi>") == 3


@pytest.mark.parametrize("template, description, reason", [
    ("", DESC, "empty_template"),
    ("   ", DESC, "empty_template"),
    ("what is <fi>x</fi>", "", "empty_description"),
    ("what is <fi>x</fi>", "  \n", "empty_description"),
    ("what is <fi>a <fi>b</fi></fi>", DESC, "nested_tags"),
    ("what is x</fi>", DESC, "unbalanced_tags"),
    ("what is <fi>x", DESC, "unbalanced_tags"),
    ("what is <fi>x</fi></fi>", DESC, "unbalanced_tags"),
    ("what is the capital of france", DESC, "no_tags"),
    ("what is <fi>  </fi>", DESC, "empty_tag"),
    ("what is <fi></fi> and <fi>y</fi>", DESC, "empty_tag"),
])
def test_each_validation_reason(template, description, reason):
    with pytest.raises(InvalidRecord) as err:
        validate_template(template, description)
    assert err.value.reason == reason


def test_non_string_inputs_are_invalid_not_crashes():
    with pytest.raises(InvalidRecord):
        validate_template(None, DESC)
    with pytest.raises(InvalidRecord):
        validate_template("a <fi>b</fi>", None)


@pytest.mark.parametrize("a, b", [
    ("What is <fi>Name of a city</fi>?", "what is <fi> name of a city </fi>"),
    ("convert <fi>format # 1</fi>  to <fi>format #2</fi>", "convert <fi>format #1</fi> to <fi>format #2</fi>."),
    ("what\u2019s <fi>a person\u2019s name</fi>", "what's <fi>a person's name</fi>"),
    ("why  is <fi>x</fi>\n!!", "why is <fi>x</fi>"),
    ("cost of <fi>A Medical Procedure.</fi>", "COST OF <fi>a medical procedure</fi>?"),
])
def test_normalize_equivalences(a, b):
    assert normalize_template(a) == normalize_template(b)


def test_normalize_keeps_different_templates_apart():
    assert normalize_template("what is <fi>a city</fi>") != normalize_template("what is <fi>a country</fi>")
    assert normalize_template("<fi>a</fi> to <fi>b</fi>") != normalize_template("<fi>b</fi> to <fi>a</fi>")


def test_render_with_descriptions():
    assert render_with_descriptions("what effects does <fi> a medical\ncondition </fi> have?") == \
        "what effects does a medical condition have?"
    assert render_with_descriptions("no tags here") == "no tags here"
    assert TAG_RE.findall("<fi>a</fi> b <fi>c</fi>") == ["a", "c"]
