"""Tests for transforms.slot_types (what may fill a slot) and pipeline.request_kind (what a template asks)."""
from __future__ import annotations

import pytest

from pipeline.request_kind import read_request, stem
from transforms import nlp
from transforms.slot_types import base_description, fits, on_closed_list, slot_type


@pytest.mark.parametrize("description, labels, noun_phrase", [
    ("a US state", nlp.PLACE, False),
    ("a country #2", nlp.PLACE, False),
    ("a year", nlp.WHEN, False),
    ("a person", nlp.PERSON, False),
    ("a fictional character", nlp.PERSON, False),
    ("a film or TV show", nlp.WORK, False),
    ("a university or school", nlp.ORGANIZATION | nlp.PRODUCT, False),
    ("a medical or psychological condition", frozenset(), True),
    ("a number", nlp.COUNT, False),
])
def test_slot_type_reads_the_kind(description, labels, noun_phrase):
    st = slot_type(description)
    assert st is not None
    assert st.labels == labels and st.noun_phrase == noun_phrase


@pytest.mark.parametrize("description", ["a specific topic", "specific details", "a specific entity #1",
                                         "a piece of code", "a URL", "something"])
def test_untyped_and_pasted_material_have_no_type(description):
    assert slot_type(description) is None


def test_base_description_drops_the_number():
    assert base_description(" a country #2 ") == "a country"


def test_closed_lists_tell_countries_from_states_and_cities():
    assert on_closed_list("country", "France") and on_closed_list("country", "united states")
    assert not on_closed_list("country", "Paris")
    assert on_closed_list("us_state", "North Dakota") and not on_closed_list("us_state", "North America")
    assert on_closed_list("", "anything")


def test_fits_checks_label_list_and_form():
    state, year, condition = slot_type("a US state"), slot_type("a year"), slot_type("a medical condition")
    assert fits(state, "Ohio", "GPE")
    assert not fits(state, "North America", "LOC")      # the false premise
    assert not fits(state, "Ohio", "")                   # a noun phrase is not a place name
    assert fits(year, "1998", "DATE") and not fits(year, "May 1998", "DATE")
    assert fits(condition, "asthma", "") and not fits(condition, "Asthma UK", "ORG")


def test_stem_matches_inflections():
    assert stem("formed") == stem("forms") == stem("form")
    assert stem("cities") == stem("city")
    assert stem("died") == stem("dies") == stem("die")


@pytest.mark.parametrize("template, kind, labels, frame", [
    ("when did <fi>a band</fi> form", "question", nlp.WHEN | nlp.CLOCK, ("form",)),
    ("what is <fi>a medical condition</fi>?", "definition", frozenset(), ()),
    ("who was <fi>a person</fi>", "definition", frozenset(), ()),
    ("what year did <fi>a person</fi> die", "question", nlp.WHEN, ("di",)),   # "year" is the answer's kind
    ("what county is <fi>a city</fi> in", "question", nlp.PLACE, ()),
    ("what is the capital of <fi>a country</fi>", "question", nlp.PLACE, ("capital",)),   # an attribute's kind
    ("Write a poem about <fi>a person</fi>", "generative", frozenset(), ("writ", "poem")),
    ("how many people live in <fi>a city</fi>", "question", None, ("peopl", "liv")),
])
def test_read_request(template, kind, labels, frame):
    r = read_request(template)
    assert r.kind == kind
    if labels is not None:
        assert r.answer_labels == labels
    assert r.frame == frame


def test_why_questions_are_marked():
    assert read_request("why is <fi>a city</fi> famous").why
    assert not read_request("where is <fi>a city</fi>").why


def test_kind_the_answer_must_name_and_measures():
    assert read_request("what university did <fi>a person</fi> attend?").asked == "university"
    assert read_request("what year did <fi>a person</fi> die?").asked == ""      # a date label says it
    assert read_request("what city is <fi>a university or school</fi> in?").asked == ""
    assert read_request("how tall is <fi>a building</fi>").answer_labels == frozenset({"QUANTITY"})
