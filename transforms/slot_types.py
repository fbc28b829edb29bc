"""What may fill a ``<fi>`` slot, read from its description: part of the contract between the jobs.

Mining writes a slot's description ("a US state", "a film or TV show"); the pipeline must fill
it with a thing of that kind. :func:`slot_type` turns a description into a :class:`SlotType`:
the named-entity labels a fill may carry (spaCy's OntoNotes labels), or that the fill is a
common noun phrase (a condition, a food), plus an optional closed list for kinds that the
labels cannot tell apart (a country vs a city: ``pycountry`` holds the countries and the US
states). A description that says nothing about the kind ("a specific topic") has no type:
mining drops such templates (``untyped_slot``) rather than guess.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import FrozenSet, NamedTuple, Optional, Tuple

from transforms import nlp

#: Descriptions that say nothing about what fills the slot.
UNTYPED = frozenset({"a specific topic", "specific details", "a specific entity", "a topic", "something",
                     "a thing", "details", "a specific detail"})

#: Descriptions of things an encyclopedic or web document cannot supply verbatim as a slot fill
#: (pasted material): an extractive instantiator leaves these templates alone.
NOT_EXTRACTIVE = frozenset({"a piece of code", "a code element", "a mathematical expression", "a file name",
                            "a URL", "a website", "an email address", "a table of data", "a quoted passage",
                            "a passage of text", "a specific identifier"})


class SlotType(NamedTuple):
    labels: FrozenSet[str]          # entity labels a fill may have; empty: a common noun phrase
    noun_phrase: bool               # a noun phrase without an entity label fits too
    closed: str = ""                # "country" | "us_state" | "continent": the fill must be on that list
    year_only: bool = False         # a year: four digits


_NUMBER_SUFFIX_RE = re.compile(r"\s*#\s*\d+$")

# (words in the description, labels, noun phrase allowed, closed list). First match wins; the
# words are matched as whole words of the lowercased description.
_RULES: Tuple[Tuple[Tuple[str, ...], FrozenSet[str], bool, str], ...] = (
    (("us state",), nlp.PLACE, False, "us_state"),
    (("country", "nation"), nlp.PLACE, False, "country"),
    (("year",), nlp.WHEN, False, ""),
    (("decade", "date", "month", "day of the week", "century", "age"), nlp.WHEN | nlp.COUNT, False, ""),
    (("time",), nlp.CLOCK, False, ""),
    (("amount of money", "price", "cost"), frozenset({"MONEY"}), False, ""),
    (("percentage",), frozenset({"PERCENT"}), False, ""),
    (("quantity", "number", "measurement", "distance", "weight"), nlp.COUNT, False, ""),
    (("fictional character", "character"), nlp.PERSON, False, ""),
    (("person or organization",), nlp.PERSON | nlp.ORGANIZATION, False, ""),
    (("musician or band", "band"), nlp.PERSON | nlp.ORGANIZATION, False, ""),
    (("person", "actor", "actress", "singer", "author", "writer", "politician", "president", "athlete",
      "player", "artist", "scientist", "leader", "king", "queen"), nlp.PERSON, False, ""),
    (("sports team", "team", "league", "company", "brand", "organization", "organisation", "university",
      "school", "college", "party", "agency", "club", "band"), nlp.ORGANIZATION | nlp.PRODUCT, False, ""),
    (("film", "movie", "tv show", "television", "song", "album", "book", "written work", "novel",
      "poem", "painting", "game", "quoted title"), nlp.WORK, False, ""),
    (("historical event", "event", "war", "battle"), nlp.EVENT, False, ""),
    (("language",), nlp.LANGUAGE | nlp.GROUP, False, ""),
    (("nationality", "ethnic group", "religion"), nlp.GROUP, False, ""),
    (("continent",), nlp.PLACE, False, "continent"),
    (("city", "town", "place", "location", "region", "state", "province", "river",
      "mountain", "island", "lake", "building", "landmark", "county"), nlp.PLACE, False, ""),
    (("law", "treaty", "act"), nlp.LAW | nlp.EVENT, False, ""),
    (("product", "software", "device", "vehicle"), nlp.PRODUCT | nlp.ORGANIZATION, True, ""),
    # Kinds of things with no entity label: a common noun phrase of the kind (checked by meaning).
    (("condition", "disease", "illness", "medication", "drug", "food", "dish", "animal", "plant", "species",
      "chemical", "substance", "subject", "field", "occupation", "job", "word", "term", "concept", "theory",
      "material", "technology", "tool", "sport", "activity", "process", "style", "genre", "art form",
      "instrument", "ingredient", "body part", "organ", "profession", "philosophy", "idea", "method",
      "technique", "phenomenon", "object", "kind of writing", "type of", "kind of"), frozenset(), True, ""),
)


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


@lru_cache(maxsize=100_000)
def slot_type(description: str) -> Optional[SlotType]:
    """The kind of fill a slot's description asks for; ``None`` when it names no kind."""
    d = _NUMBER_SUFFIX_RE.sub("", description.strip().lower())
    if not d or d in UNTYPED or d in {x.lower() for x in NOT_EXTRACTIVE}:
        return None
    plain = re.sub(r"[^a-z0-9 ]+", " ", d).split()
    padded = f" {' '.join(plain)} "
    singular = f" {' '.join(_singular(w) for w in plain)} "
    for words, labels, noun_phrase, closed in _RULES:
        if any(f" {w} " in padded or f" {w} " in singular for w in words):
            return SlotType(labels, noun_phrase, closed, year_only=(words == ("year",)))
    return None


def base_description(description: str) -> str:
    """The description without a ``#2``-style number (repeated kinds in one template)."""
    return _NUMBER_SUFFIX_RE.sub("", description.strip())


@lru_cache(maxsize=1)
def _closed_lists() -> dict:
    import pycountry

    countries = set()
    for c in pycountry.countries:
        for attr in ("name", "common_name", "official_name"):
            if getattr(c, attr, None):
                countries.add(getattr(c, attr).casefold())
    countries |= {"united states", "america", "usa", "u.s.", "united kingdom", "uk", "britain", "great britain",
                  "england", "scotland", "wales", "russia", "south korea", "north korea", "iran", "syria",
                  "vietnam", "laos", "bolivia", "venezuela", "tanzania", "taiwan", "czech republic", "ivory coast",
                  "the netherlands", "the united states", "the united kingdom", "soviet union", "the soviet union"}
    states = {s.name.casefold() for s in pycountry.subdivisions.get(country_code="US") if s.type == "State"}
    continents = {"africa", "asia", "europe", "north america", "south america", "antarctica", "australia", "oceania",
                  "latin america", "central america", "the americas", "eurasia"}
    return {"country": frozenset(countries), "us_state": frozenset(states), "continent": frozenset(continents)}


@lru_cache(maxsize=1)
def us_state_codes() -> frozenset:
    """The US states' two-letter postal codes, lowercase ("wi", "ny"): how queries name a town's state."""
    import pycountry

    return frozenset(s.code.split("-", 1)[1].casefold() for s in pycountry.subdivisions.get(country_code="US")
                     if s.type == "State")


def on_closed_list(kind: str, text: str) -> bool:
    """Whether ``text`` names a member of the closed list ``kind`` (``""``: no list, always true)."""
    if not kind:
        return True
    return text.strip().casefold() in _closed_lists()[kind]


def fits(st: SlotType, text: str, label: str) -> bool:
    """Whether a span with entity ``label`` ("" for none) can fill a slot of type ``st``."""
    if label:
        if label not in st.labels:
            return False
        if label != "GPE" and (on_closed_list("country", text) or on_closed_list("us_state", text)):
            return False        # a country the model labelled an organization is still a country
    elif not st.noun_phrase:
        return False
    if st.year_only and not re.fullmatch(r"(?:1[0-9]|20)\d\d", text.strip()):
        return False
    return on_closed_list(st.closed, text)
