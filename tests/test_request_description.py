"""The compatible-document description written from the request's meaning."""
import pytest

from templates_mining.request_description import instruction_content, request_content, slot_phrase
from transforms.nlp import load_nlp


def _content(query: str, *slots):
    """``slots``: (surface text, description) pairs located in ``query``."""
    spans = []
    for surface, description in slots:
        start = query.index(surface)
        spans.append((start, start + len(surface), description))
    return request_content(query, spans, load_nlp())


@pytest.mark.parametrize("query, slots, expected", [
    # do-support goes and the verb takes its tense ("did ... sing" -> "sang")
    ("when did korea separate into north and south", [("korea", "a country")],
     "says when the country separated into north and south"),
    ("did mark wahlberg really sing in rock star", [("mark wahlberg", "a person")],
     "says whether the person really sang in rock star"),
    ("who did dwight howard play for last year", [("dwight howard", "a person")],
     "says who the person played for last year"),
    # a modal or copula moves after the subject
    ("what team will michael vick play for in 2011?", [("michael vick", "a person"), ("2011", "a year")],
     "says what team the person will play for in the year"),
    ("what is the kentucky state bird?", [("kentucky", "a US state")], "says what the US state's state bird is"),
    ("who is the current president of the senate?", [("senate", "a legislature")],
     "says who the current president of the legislature is"),
    ("is paris the capital of france", [("paris", "a city"), ("france", "a country")],
     "says whether the city is the capital of the country"),
    ("what is anaphylaxis symptoms", [("anaphylaxis", "a medical condition")],
     "says what the medical condition's symptoms are"),
    # why and how (not "how many") explain; an article before the slot takes the slot's own article
    ("why is the branch of astronomy important", [("astronomy", "an academic subject")],
     "explains why the branch of the academic subject is important"),
    ("what degree do you need to become a nurse", [("nurse", "an occupation")],
     "says what degree you need to become an occupation"),
    # the question word is the subject: nothing moves
    ("who plays the voice of sulley in monsters inc", [("sulley", "a fictional character"),
                                                       ("monsters inc", "a film")],
     "says who plays the voice of the fictional character in the film"),
    # "what is X" alone is a definition
    ("what is melanoma", [("melanoma", "a medical condition")],
     "defines the medical condition and explains what it is"),
    # a second auxiliary stays with the verb; a capitalised auxiliary is lowercased where it moves
    ("how long has tom brady been playing football", [("tom brady", "a person")],
     "says how long the person has been playing football"),
    ("Is paris the capital of france", [("paris", "a city"), ("france", "a country")],
     "says whether the city is the capital of the country"),
    # several slots of one kind are told apart
    ("how long is the flight from chicago to cairo", [("chicago", "a city #1"), ("cairo", "a city #2")],
     "says how long the flight from the first city to the second city is"),
])
def test_questions_become_what_the_document_says(query, slots, expected):
    assert _content(query, *slots) == expected


@pytest.mark.parametrize("query, slots", [
    ("migraine pain causes of", [("migraine", "a condition")]),            # keywords ending in a preposition
    ("paris", [("paris", "a city")]),                                       # the slot is all there is
    ("what is the weather like", []),                                        # nothing specific
    ("Write a poem. Make it about Paris.", [("Paris", "a city")]),          # not a question
    ("what does the atkins diet consist of", [("atkins", "a diet")]),      # garbled: "the diet's diet"
    ("where is burundi country?", [("burundi", "a country")]),             # garbled: "the country's country"
])
def test_requests_it_does_not_rephrase_get_none(query, slots):
    assert _content(query, *slots) is None


def test_a_town_and_its_state_read_as_the_town_in_the_state():
    assert _content("where is denver co", ("denver", "a city"), ("co", "a US state")) == \
        "says where the city in the US state is"


def test_keyword_search_becomes_the_facts_it_looks_for():
    assert _content("anderson county sc population", ("anderson county", "a county"), ("sc", "a US state")) == (
        "gives the population of the county in the US state")
    assert _content("weather in cabo in december", ("cabo", "a city"), ("december", "a month")) == (
        "gives the weather in the city in the month")
    assert _content("causes of migraine", ("migraine", "a condition")) == "gives the causes of the condition"


def test_instruction_content_reads_slots_as_their_types():
    query = "Recommend a movie for me to watch during the weekend and explain the reason."
    start = query.index("weekend")
    assert instruction_content(query, [(start, start + 7, "a date or period")]) == (
        "has the material needed to recommend a movie for me to watch during the date or period and explain "
        "the reason")
    query = "Explain how a nurse becomes a doctor. Then list the steps."
    start = query.index("nurse")
    assert instruction_content(query, [(start, start + 5, "an occupation")]) == (
        "has the material needed to explain how an occupation becomes a doctor")


def test_slot_phrase():
    assert slot_phrase("a US state", False) == "the US state"
    assert slot_phrase("an occupation", True) == "occupation"
    assert slot_phrase("a person #2", False) == "the second person"
