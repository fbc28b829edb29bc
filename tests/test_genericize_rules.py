"""The rules genericizer: concrete templates for handwritten queries, and real-data validity."""
import json
import random
import re
import string

import pytest

from templates_mining.genericize_rules import MAX_TAGS, genericize
from transforms.template_format import normalize_template, validate_template
from transforms.accounting import InvalidRecord

CASES = [
    ("what is paula deen's brother", "what is <fi>a person</fi>'s brother"),
    ("what is prime rate in canada", "what is prime rate in <fi>a country</fi>"),
    ("symptoms of lupus", "symptoms of <fi>a medical or psychological condition</fi>"),
    ("who won the world cup in 1998", "who won the world cup in <fi>a year</fi>"),
    ("what happened on July 4, 1776", "what happened on <fi>a date</fi>"),
    ('who sang "Hotel California"', "who sang <fi>a song or album</fi>"),
    ("how tall is Barack Obama", "how tall is <fi>a person</fi>"),
    ("Give me free apps that convert a file from pdf to docx",
     "Give me free apps that convert a file from <fi>a file format #1</fi> to <fi>a file format #2</fi>"),
    ("how many calories in 2 cups of rice", "how many calories in <fi>a quantity</fi> of rice"),
    ("what is the population of tokyo", "what is the population of <fi>a city</fi>"),
    ("summarize https://example.com/article please", "summarize <fi>a URL</fi> please"),
    ("what is 15% of 80", "what is <fi>a percentage</fi> of <fi>a number</fi>"),
    ("what is an iphone 12", "what is an <fi>a specific topic</fi>"),
    ("How is Apple's stock doing?", "How is <fi>an organization</fi>'s stock doing?"),
    ("how to make a cake", "how to make a <fi>a food or dish</fi>"),
    ("what does the word serendipity mean", "what does the word <fi>a word or term</fi> mean"),
    ("what did james k polk do before he was president?",
     "what did <fi>a person</fi> do before he was president?"),
    # a lowercase name spaCy does not read as an entity: the context cue's guess is not trusted
    ("who voices steven universe", "who voices <fi>a specific entity</fi>"),
    ("who voices Steven Universe", "who voices <fi>a fictional character</fi>"),
    ("flights from boston to chicago", "flights from <fi>a city #1</fi> to <fi>a city #2</fi>"),
    ("Write a haiku about autumn", "Write a <fi>a kind of writing</fi> about <fi>a specific topic</fi>"),
    ("Fix this code:\n\n```python\nprint(1/0)\n```", "Fix this code:\n\n<fi>a piece of code</fi>"),
    ("where was st. lucy born?", "where was <fi>a person</fi> born?"),
    ("who wrote the novel 'Pride and Prejudice' in 1813",
     "who wrote the novel <fi>a book or written work</fi> in <fi>a year</fi>"),
    ("what language do greek people speak", "what language do <fi>a nationality or ethnic group</fi> people speak"),
    ("Translate this into Greek: the weather is nice", "Translate this into <fi>a language</fi>: the weather is nice"),
    ("I am planning a 7-day trip to Seattle in April.",
     "I am planning a <fi>a quantity</fi> trip to <fi>a city</fi> in <fi>a month</fi>."),
    ("Write A Python Function That Sorts A List", "Write A <fi>a programming language</fi> Function That Sorts A List"),
    ("When is December 14, 1972 in the Isle of Wight?", "When is <fi>a date</fi> in the <fi>a geographic region or natural feature</fi>?"),
    (" Androgen receptor define", "<fi>a word or term</fi> define"),
]


@pytest.mark.parametrize("query, template", CASES)
def test_handwritten_templates(query, template):
    got, description = genericize(query)
    assert got == template
    assert validate_template(got, description) >= 1


def test_description_says_what_document_fits():
    _, d = genericize("what is paula deen's brother")
    assert d.startswith("A biography or profile about a specific person")
    assert "brother" in d
    assert 1 <= d.count(". ") + 1 <= 3


def test_descriptions_tell_templates_apart():
    queries = ["symptoms of lupus", "what is the population of tokyo", "how to make a cake",
               "who won the world cup in 1998", "flights from boston to chicago"]
    descriptions = {genericize(q)[1] for q in queries}
    assert len(descriptions) == len(queries)


def test_common_words_argument_keeps_words_literal():
    # "secondary" stays literal beside the slot: a split name, so the slot is left untyped
    assert genericize("what is secondary ptsd")[0] == "what is secondary <fi>a specific entity</fi>"
    assert genericize("ptsd and lupus", frozenset({"ptsd"}))[0] == "ptsd and <fi>a specific topic</fi>"
    # nothing rare left: the main content phrase is tagged instead
    assert genericize("what is secondary ptsd", frozenset({"ptsd"}))[0] == "what is <fi>a specific topic</fi>"


def test_all_common_query_still_gets_a_tag():
    t, d = genericize("how do i lose weight")
    assert validate_template(t, d) == 1


def test_long_prompt_caps_tags_and_tags_code_once():
    code = "```python\n" + "\n".join(f"x{i} = compute({i})" for i in range(30)) + "\n```"
    prompt = ("Explain what Zorblax, Quintrelle, Vashmoor, Pellucid, Ostrakon, Brumwell, Feyline, "
              "Garnock, Hesperid, Ilvermorn and Jastrow have in common.\n\n" + code)
    t, d = genericize(prompt)
    assert validate_template(t, d) == MAX_TAGS
    assert t.endswith("<fi>a piece of code</fi>")


def test_pasted_text_after_an_introducing_line_is_one_tag():
    prompt = ("Turn this text into a poem:\n\nA lot of people keep saying their woes. They say that life is "
              "painful and filled with suffering, yet in most cases the people who say these words are "
              "merely ungrateful for what they have been given so far.\n\nMake it rhyme.")
    t, d = genericize(prompt)
    assert t == "Turn this text into a poem:\n\n<fi>a passage of text</fi>\n\nMake it rhyme."
    assert validate_template(t, d) == 1


def test_unfenced_code_lines_are_one_tag():
    prompt = ("How can I make this faster?\nimport numpy as np\ndef total(xs):\n    s = 0\n"
              "    for x in xs:\n        s += x\n    return s")
    t, _ = genericize(prompt)
    assert t == "How can I make this faster?\n<fi>a piece of code</fi>"


def test_foreign_text_keeps_its_words_and_tags_names_and_numbers():
    t, d = genericize("viết cho tôi một lời quảng cáo về tư vấn sự kiện của Truyền thông JIN khoang 30 giây")
    assert t.startswith("viết cho tôi một lời quảng cáo về tư vấn sự kiện của ")
    assert "<fi>a number</fi> giây" in t
    assert validate_template(t, d) >= 2


def test_description_says_what_the_document_must_answer_from_the_request():
    t, d = genericize("how long is the flight from chicago to cairo")
    assert t == "how long is the flight from <fi>a city #1</fi> to <fi>a city #2</fi>"
    assert d == ("A geography, travel or encyclopedia article about more than one city that says how long the "
                 "flight from the first city to the second city is.")


def test_description_of_a_request_not_rephrased_keeps_three_assembled_sentences():
    t, d = genericize("chris cornell she's going to change the world")
    assert "It should answer a request like" in d and d.count(".") >= 3


def test_literal_tags_in_the_query_never_break_the_format():
    for q in ["what is <fi> in html", "close </fi> then <fi>", "<fi>x</fi> means what"]:
        t, d = genericize(q)
        validate_template(t, d)


def test_deterministic():
    q = "when did the dallas cowboys win their last playoff game in 1995?"
    assert len({genericize(q) for _ in range(3)}) == 1


def test_never_raises_on_odd_input():
    rng = random.Random(0)
    alphabet = string.printable + "<>/fi`\"'\u2019\u00e9\u4e2d\U0001F600"
    odd = ["", " ", "\n\n\n", "<fi>", "</fi>x<fi>", "```", "```\n", "'''", '"', "$", "%", "...", "12", "a"]
    odd += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 200))) for _ in range(300)]
    for q in odd:
        t, d = genericize(q)
        assert isinstance(t, str) and isinstance(d, str)
        try:
            validate_template(t, d)
        except InvalidRecord as e:  # only "nothing to tag", never a broken tag structure
            assert e.reason in ("no_tags", "empty_template"), (q, t)


def _load(path, n=2000):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if path.suffix == ".tsv":
                rows.append(line.rstrip("\n").split("\t", 1)[-1])
            else:
                r = json.loads(line)
                rows.append(r.get("question") or r.get("prompt") or r.get("instruction") or "")
            if len(rows) >= n:
                break
    return rows


@pytest.mark.parametrize("name", ["nq_open_dev.jsonl", "msmarco_passage_dev_queries.tsv",
                                  "webquestions_test.jsonl", "arena_hard_v2_prompts.jsonl",
                                  "self_instruct_seed_tasks.jsonl"])
def test_real_queries_validate(shared_data, name):
    path = shared_data / "queries" / name
    if not path.exists():
        pytest.skip(f"{name} absent")
    ok = 0
    queries = _load(path)
    for q in queries:
        t, d = genericize(q)
        try:
            n = validate_template(t, d)
        except InvalidRecord:
            continue
        ok += 1
        assert n <= MAX_TAGS, (q, t)
        assert len(re.findall(r"[.!?](?:\s|$)", d)) <= 3, d
    # A query whose only candidate slots are frame words ("what does contract and expand mean")
    # or that spaCy reads as naming nothing gets no slot (issue 11: frame words stay literal).
    assert ok >= 0.8 * len(queries)


def test_real_descriptions_tell_templates_apart(shared_data):
    path = shared_data / "queries" / "nq_open_dev.jsonl"
    if not path.exists():
        pytest.skip("nq_open_dev.jsonl absent")
    by_description = {}
    for q in _load(path, 1000):
        t, d = genericize(q)
        by_description.setdefault(d, set()).add(normalize_template(t))
    assert sum(len(ts) == 1 for ts in by_description.values()) >= 0.99 * len(by_description)


@pytest.mark.parametrize("query", [
    "what part of the country is new england?",     # "new" literal, "england" a country
    "where is bigg boss tamil house is located",    # a show's name split
    "cost to install hardie board",                 # "hardie" slotted, "board" literal
    "what does executive privilege mean",           # a term split
    "definition of solar wind",
    "when did the jurassic park movies come out",    # a period's name without a number, then a noun
])
def test_a_slot_that_splits_a_name_is_left_untyped(query):
    # the rating's commonest template failure: part of a name literal, part a typed slot
    assert "<fi>a specific entity</fi>" in genericize(query)[0]


@pytest.mark.parametrize("query, template", [
    ("population of paris texas", "population of <fi>a city</fi> <fi>a US state</fi>"),
    ("weather for tennessee in april", "weather for <fi>a US state</fi> in <fi>a month</fi>"),
    ("how is the weather in barcelona spain", "how is the weather in <fi>a city</fi> <fi>a country</fi>"),
    ("where did john mayer go to college?", "where did <fi>a person</fi> go to college?"),
])
def test_slots_beside_other_slots_or_cue_words_are_not_splits(query, template):
    assert genericize(query)[0] == template


@pytest.mark.parametrize("query, kind", [
    ("when was the last time oklahoma won a national championship in football", "A sports article"),
    ("when was the first episode of scooby doo", "An entertainment article"),
    ("who did the united states fight in the war of 1812", "A history article"),
])
def test_document_kind_follows_the_requests_topic_not_only_its_slot_type(query, kind):
    # a place slot does not make a question about a sports title a geography article
    assert genericize(query)[1].startswith(kind)


def test_document_kind_is_not_taken_from_verbs():
    # "running" cues software ("run"), not what the request is about
    assert "software" not in genericize("where can i go running in sacramento?")[1]


@pytest.mark.parametrize("query, template", [
    # a place noun after a place slot ends the place's name
    ("what is guantanamo bay", "what is <fi>a place</fi>"),
    # a town read as one name with its state's postal code: the town, then the state
    ("what county is city of kewaunee wi in?", "what county is city of <fi>a city or region</fi> <fi>a US state</fi> in?"),
    ("where is denver co", "where is <fi>a city or region</fi> <fi>a US state</fi>"),
    # a context cue for a common noun ("major in" -> a field) does not override a person's name
    ("what does lauren conrad major in?", "what does <fi>a specific entity</fi> major in?"),
])
def test_place_names_and_cue_conflicts_in_lowercase_queries(query, template):
    assert genericize(query)[0] == template


def test_season_is_no_cooking_cue():
    # "the new season of chicago pd" is a TV show, not "a food or dish"
    assert "food" not in genericize("when is the new season of chicago pd")[0]
