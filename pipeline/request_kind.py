"""What a template asks for, read from its literal words: the contract an extractive answer must meet.

A document sentence answers "when did <fi>a band</fi> form" only if it names the band, says
"formed", and holds a date. :func:`read_request` turns a template into that contract:

* ``kind``: ``question`` (a wh- or yes/no question, or "tell me about"/"explain"), ``definition``
  ("what is <fi>X</fi>", "who was <fi>X</fi>", "define <fi>X</fi>": the answer is a sentence that
  defines the fill), ``generative`` ("write a poem about ...", "translate ...": no sentence of
  a document answers it) or ``keywords`` (a search like "<fi>X</fi> mountains": no request a
  person would write out); the extractive instantiator declines the last two;
* ``answer_labels``: the entity labels the answer must contain besides the fills ("when" -> a
  date, "how many" -> a number, "what county" -> a place); empty when the question does not fix it;
* ``frame``: the stems of the frame's content words ("form"), which the answer must contain.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import FrozenSet, NamedTuple, Tuple

from transforms import nlp
from transforms.slot_types import slot_type
from transforms.template_format import TAG_RE
from transforms.words import STOPWORDS

_WORD_RE = re.compile(r"[^\W_](?:[\w'’-]*[^\W_])?", re.UNICODE)

#: Request words that say how to answer, not what about: never required in the answer.
REQUEST_WORDS = frozenset("""
tell explain describe give list name know find show please example examples information info can could
would should need want like help way ways get use mean means meaning called call many much long old far
big tall high large what which who whom whose when where why how is are was were does did do done the
me us you your i my about main difference differences different definition define some any kind type
types sort happen happened make makes made go goes went come comes came one""".split())

#: First words of requests that ask to produce text, not to find it in a document.
GENERATIVE = frozenset("""
write rewrite compose generate create draft make translate summarize summarise paraphrase code implement
design develop build plan suggest recommend brainstorm invent imagine pretend act roleplay convert
correct fix edit improve proofread classify sort rank rate respond reply answer solve calculate compute
format outline""".split())

#: First words of a request a document sentence can answer: questions and asks for facts.
QUESTION_OPENERS = frozenset("""
what what's whats who who's whom whose when where which why how is are was were do does did can could
should will would has have tell explain describe define name""".split())

_DEFINITION_RE = re.compile(
    r"^(?:(?:what|who)\s+(?:is|are|was|were)(?:\s+(?:a|an|the))?|define|definition\s+of|"
    r"what\s+does|what\s+do|meaning\s+of|tell\s+me\s+about|explain|describe|what\s+is\s+meant\s+by)\s*$", re.I)

_MEASURE = frozenset({"QUANTITY"})

# Question openings -> entity labels the answer must hold.
_WH_LABELS: Tuple[Tuple[str, FrozenSet[str]], ...] = (
    ("how many", nlp.COUNT),
    ("how much", nlp.AMOUNT),
    ("how long", nlp.WHEN | nlp.CLOCK | frozenset({"QUANTITY"})),
    ("how old", nlp.WHEN | nlp.COUNT),
    # a height or a distance is a measure ("230 feet"), not a count ("13 stories")
    ("how far", _MEASURE),
    ("how tall", _MEASURE), ("how high", _MEASURE), ("how big", nlp.COUNT), ("how large", nlp.COUNT),
    ("how deep", _MEASURE), ("how fast", _MEASURE),
    ("when", nlp.WHEN | nlp.CLOCK),
    ("where", nlp.PLACE),
    ("who", nlp.PERSON | nlp.ORGANIZATION | nlp.GROUP),
    ("whom", nlp.PERSON | nlp.ORGANIZATION | nlp.GROUP),
)


#: Attributes whose value is a thing of a known kind: "what is the capital of <X>" is answered
#: by a place, "who is the founder of <X>" by a person. The noun stays a frame word.
ATTRIBUTE_LABELS = {
    "capital": nlp.PLACE, "birthplace": nlp.PLACE, "headquarters": nlp.PLACE, "location": nlp.PLACE,
    "population": nlp.COUNT, "height": nlp.COUNT, "length": nlp.COUNT, "area": nlp.COUNT, "depth": nlp.COUNT,
    "founder": nlp.PERSON, "inventor": nlp.PERSON, "author": nlp.PERSON, "president": nlp.PERSON,
    "leader": nlp.PERSON, "director": nlp.PERSON, "creator": nlp.PERSON, "designer": nlp.PERSON,
    "architect": nlp.PERSON, "owner": nlp.PERSON | nlp.ORGANIZATION, "mayor": nlp.PERSON,
    "king": nlp.PERSON, "queen": nlp.PERSON, "emperor": nlp.PERSON, "ceo": nlp.PERSON,
    "currency": frozenset({"MONEY"}) | nlp.PRODUCT, "birthday": nlp.WHEN,
}

#: Kinds of things that an entity label (with the closed lists) identifies: "what year", "which
#: country" need no such word in the answer; "what university", "what team" do.
LABELLED_KINDS = frozenset("""year years date day month century decade time person people country countries
state states city cities town place nationality language religion continent number amount organization
organisation""".split())

_SKIP_AFTER_WH = frozenset({"is", "are", "was", "were", "the", "a", "an", "does", "did", "do", "kind", "type", "of"})


class Request(NamedTuple):
    kind: str                        # question | definition | generative | keywords
    answer_labels: FrozenSet[str]    # entity labels the answer must contain (besides the fills)
    frame: Tuple[str, ...]           # stems of the frame's content words, in order
    why: bool = False                # a "why" question: the answer must give a cause
    about_person: bool = False       # "who is/was ...": the definition is of a person
    where: bool = False              # a "where" question: the answer names a place after "in", "at", ...
    counted: str = ""                # "how many <games>": the stem of what the answer's number counts
    when: bool = False               # "when" / "what year": the answer is a date on the calendar
    asked: str = ""                  # "what university ...": the stem of a kind of thing an entity label
                                     # does not tell apart; the answering sentence must name it
    closed: str = ""                 # "what country ...": the closed list the answer must be on


def stem(word: str) -> str:
    """A crude English stem, enough to match "formed"/"forms"/"form" and "cities"/"city"."""
    w = word.casefold().replace("’", "'").replace(".", "")
    if w.endswith("'s"):
        w = w[:-2]
    if len(w) > 4 and w.endswith(("ies", "ied")):
        w = w[:-3] + "y"
    elif len(w) > 5 and w.endswith("ing"):
        w = w[:-3]
    elif len(w) > 3 and w.endswith("ed"):
        w = w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        w = w[:-1]
    if len(w) > 2 and w.endswith("e"):
        w = w[:-1]
    return w


def content_stems(text: str) -> FrozenSet[str]:
    """Stems of a text's content words; a hyphenated word also gives its parts ("co-founded")."""
    words = [w for w in _WORD_RE.findall(text) if w.casefold() not in STOPWORDS]
    return frozenset(stem(p) for w in words for p in ([w] + w.split("-") if "-" in w else [w]))


@lru_cache(maxsize=200_000)
def read_request(template: str) -> Request:
    literal = TAG_RE.sub(" \x00 ", template)
    words = [w.casefold() for w in _WORD_RE.findall(literal.replace("\x00", " SLOT "))]
    lead = words[1:] if words[:1] == ["please"] else words
    if len(lead) > 1 and lead[0] in ("can", "could", "would", "will") and lead[1] == "you":
        lead = lead[2:]
    first = lead[0] if lead else ""
    head = " ".join(w for w in words[:3] if w != "slot")
    # The literal text before the first slot, for "what is <fi>X</fi>"-style definitions.
    before_first = literal.split("\x00", 1)[0].strip(" ?.!,:;\"'").casefold()
    after_last = literal.rsplit("\x00", 1)[-1].strip(" ?.!,:;\"'") if "\x00" in literal else "x"
    frame = tuple(dict.fromkeys(stem(w) for w in words
                                if w != "slot" and w not in STOPWORDS and w not in REQUEST_WORDS
                                and not w.isdigit()))
    if first in GENERATIVE:
        return Request("generative", frozenset(), frame)
    if first not in QUESTION_OPENERS:
        return Request("keywords", frozenset(), frame)
    if literal.count("\x00") == 1 and not after_last and _DEFINITION_RE.match(before_first):
        return Request("definition", frozenset(), frame, about_person=first in ("who", "who's"))
    labels: FrozenSet[str] = frozenset()
    asked = closed = ""
    for opening, wh_labels in _WH_LABELS:
        if head.startswith(opening):
            labels = wh_labels
            break
    else:
        if first in {"what", "which", "who"}:
            rest = [w for w in words[words.index(first) + 1:] if w not in _SKIP_AFTER_WH]
            noun = rest[0] if rest and rest[0] != "slot" else ""
            st = (slot_type(" ".join(rest[:2])) or slot_type(noun)) if noun and first != "who" else None
            if noun in ATTRIBUTE_LABELS:         # "what is the capital of <X>": a place
                labels = ATTRIBUTE_LABELS[noun]
            elif st is not None and st.labels:
                labels = st.labels
                frame = tuple(f for f in frame if f != stem(noun))  # "what year": the year is the answer
                if noun not in LABELLED_KINDS:
                    asked = stem(noun)      # "what university": an organisation, and one called a university
                closed = st.closed          # "what country": Paris is a place, not a country
    counted = ""
    if head.startswith("how many") and len(words) > 2 and words[2] != "slot":
        counted = stem(words[2])
    when = first == "when" or (first in ("what", "which") and labels == nlp.WHEN)
    return Request("question", labels, frame, why=first == "why", where=first == "where", counted=counted,
                   when=when, asked=asked, closed=closed)
