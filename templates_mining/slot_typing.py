"""Slots read with spaCy: whole entities, typed by what they are, and frame words kept literal.

The rules genericizer proposes slots from cheap cues (rare words, forms, context words). This
pass reads the query with spaCy's English pipeline and corrects them:

* a named entity is one slot, never split ("shout at the <fi>devil</fi>" -> one slot over
  the whole title) and never left literal when it names something specific;
* a slot's description says what kind of thing the entity is ("a US state", "a university or
  school", "a year"), from its entity label, closed lists (countries and US states, via
  ``pycountry``) and the rules' own cue-based description when that agrees with the label;
* a slot over a verb, adjective or adverb is a frame word: it goes back into the literal text.

Search queries are mostly lowercase, where an English NER model sees no names; so the query is
read once more with the rules' candidate words capitalised (a cheap truecasing: the words the
whole query set rarely uses are the likely names), and entities of either reading are used.
"""
from __future__ import annotations

import re
from typing import List, NamedTuple, Optional, Sequence, Tuple

from transforms import nlp as labels
from transforms.slot_types import on_closed_list, slot_type, us_state_codes

#: Descriptions that name no kind: a slot keeps one only when spaCy finds no type either.
GENERIC = frozenset({"a specific topic", "a specific entity", "specific details", "a person or organization",
                     "a place", "a quoted title or phrase"})
#: What a guessed name slot is described as: generic, so the template is filtered as untyped.
UNTYPED_NAME = "a specific entity"
#: Entity labels that make a slot (ordinal numbers stay literal: "the first").
SLOT_LABELS = frozenset({"PERSON", "NORP", "FAC", "ORG", "GPE", "LOC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW",
                         "LANGUAGE", "DATE", "TIME", "PERCENT", "MONEY", "QUANTITY", "CARDINAL"})
#: Beyond this many words a prompt is a chat request with pasted material: only the rules'
#: slots are typed, no new slot is made from its text.
LONG_PROMPT_WORDS = 40
_ARTICLE_RE = re.compile(r"(?:the|a|an)\s+", re.I)
_YEAR_RE = re.compile(r"^(?:in |the )?(?:1[0-9]|20)\d\d$", re.I)
_DECADE_RE = re.compile(r"^(?:the )?(?:1[0-9]|20)?\d0'?s$", re.I)
_FRAME_POS = frozenset({"VERB", "AUX", "ADJ", "ADV", "ADP", "PART", "SCONJ", "CCONJ", "PRON", "DET", "INTJ"})
_ORG_KINDS = (
    (("university", "college", "school", "institute", "academy"), "a university or school"),
    (("team", "fc", "united", "club", "league", "nfl", "nba", "mlb", "nhl"), "a sports team or league"),
    (("party",), "a political party"),
    (("band", "group"), "a band"),
    (("inc", "corp", "corporation", "company", "ltd", "llc", "bank", "airlines", "motors"), "a company"),
)
_LABEL_DESCRIPTION = {
    "PERSON": "a person", "NORP": "a nationality, religion or political group", "FAC": "a building or landmark",
    "LOC": "a geographic region or natural feature", "PRODUCT": "a product", "EVENT": "an event",
    "WORK_OF_ART": "a creative work such as a film, book or song", "LAW": "a law or treaty",
    "LANGUAGE": "a language", "TIME": "a time", "PERCENT": "a percentage", "MONEY": "an amount of money",
    "QUANTITY": "a quantity", "CARDINAL": "a number", "ORG": "an organization",
}


#: Entity labels that contradict a cue for a kind of common noun phrase (a food, a condition).
_NOT_A_COMMON_NOUN = frozenset({"PERSON", "GPE", "LOC", "FAC", "NORP"})
#: Nouns that end a place's name ("guantanamo bay", "kansas city", "orange county"): in a lowercase
#: query a place slot just before one of them takes it in.
PLACE_HEADS = frozenset("""bay river lake island islands beach valley mountain mountains park falls springs creek
canyon county city town village heights harbor harbour peninsula desert forest sea ocean strait gulf cape""".split())
_PLACE_DESCRIPTIONS = frozenset({"a place", "a city", "a city or region", "a geographic region or natural feature",
                                 "a building or landmark"})
_REGION_AFTER = frozenset({"a US state", "a country"})


class Slot(NamedTuple):
    start: int
    end: int
    description: str


def describe_entity(label: str, text: str, rules_description: Optional[str], context: str) -> str:
    """What kind of thing an entity with ``label`` is, as a slot description."""
    low = text.casefold().strip()
    cued = slot_type(rules_description) if rules_description and rules_description not in GENERIC else None
    if cued is not None:
        if not cued.labels and label in _NOT_A_COMMON_NOUN:
            return UNTYPED_NAME       # "lauren conrad major in": a person is no academic field; which is wrong?
        return rules_description      # a context cue ("the movie <X>") says more than the label
    if label == "GPE":
        if on_closed_list("us_state", low):
            return "a US state"
        if on_closed_list("country", low) or on_closed_list("country", re.sub(r"^the ", "", low)):
            return "a country"
        return "a city or region"
    if label == "DATE":
        if _YEAR_RE.match(low):
            return "a year"
        if _DECADE_RE.match(low):
            return "a decade"
        return "a date or period"
    if label == "ORG":
        words = set(re.findall(r"[a-z]+", low)) | set(re.findall(r"[a-z]+", context.casefold()))
        for cues, description in _ORG_KINDS:
            if words.intersection(cues):
                return description
    return _LABEL_DESCRIPTION[label]


def _probe_text(text: str, doc, spans: Sequence[Slot]) -> str:
    """The query with the first letter of every noun, proper noun or adjective inside a proposed
    slot capitalised (same length, so offsets carry over)."""
    chars = list(text)
    for t in doc:
        if t.pos_ in ("NOUN", "PROPN", "ADJ", "NUM") and any(sp.start <= t.idx < sp.end for sp in spans):
            c = t.text[0].upper()
            if len(c) == 1:
                chars[t.idx] = c
    return "".join(chars)


def _is_lowercase_query(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(c.isupper() for c in letters) <= max(1, len(letters) // 50)


def _trusted_probe_entity(ent, doc) -> bool:
    """An entity read in a lowercase query: a guess, so only names of two words or more that the
    lowercase parse already tags as a proper noun somewhere, or a single word on a closed list
    (a country, a US state); numbers and dates are read by form."""
    if ent.label_ in ("DATE", "TIME", "PERCENT", "MONEY", "QUANTITY", "CARDINAL"):
        return True
    if len([t for t in ent if t.lower_ not in ("the", "a", "an")]) >= 2:
        propn = any(t.pos_ == "PROPN" for t in doc if ent.start_char <= t.idx < ent.end_char)
        return propn and ent.label_ in ("PERSON", "ORG", "GPE", "LOC", "FAC", "WORK_OF_ART", "EVENT", "LAW",
                                        "PRODUCT")
    return ent.label_ == "GPE" and (on_closed_list("country", ent.text.casefold())
                                    or on_closed_list("us_state", ent.text.casefold()))


def _entities(nlp, text: str, doc, spans: Sequence[Slot], lowercase: bool) -> List[Tuple[int, int, str]]:
    readings = [doc, nlp(_probe_text(text, doc, spans))] if lowercase and spans else [doc]
    out: List[Tuple[int, int, str]] = []
    for reading in readings:
        for ent in reading.ents:
            if ent.label_ not in SLOT_LABELS or (lowercase and not _trusted_probe_entity(ent, doc)):
                continue
            s, e = ent.start_char, ent.end_char
            article = _ARTICLE_RE.match(text[s:e])
            if article:
                s += article.end()
            if text[s:e].endswith(("'s", "’s")):
                e -= 2          # "paula deen's brother": the possessive stays literal
            if not any(s < e2 and s2 < e for s2, e2, _ in out):   # the first reading wins overlaps
                out.append((s, e, ent.label_))
    return sorted(out)


def _trim_frame_words(doc, text: str, lo: int, hi: int, s: int, e: int) -> Tuple[int, int]:
    """``[lo, hi)`` grown from the entity ``[s, e)`` only over name words (proper nouns, numbers)
    of the rules' slot: "alexander hamilton buried" and "bell patent" keep their verb or noun."""
    outside = [t for t in doc if lo <= t.idx < hi and not (s <= t.idx < e)]
    keep = lambda t: t.pos_ in ("PROPN", "NUM") or t.is_quote  # noqa: E731  (a quoted title keeps its quotes)
    for t in sorted((t for t in outside if t.idx < s), key=lambda t: -t.idx):
        if not keep(t):
            lo = t.idx + len(t)
            break
    for t in sorted(t for t in outside if t.idx >= e):
        if not keep(t):
            hi = t.idx
            break
    while lo < hi and not text[lo].isalnum() and text[lo] not in "\"'“‘(":
        lo += 1
    while hi > lo and text[hi - 1].isspace():
        hi -= 1
    return lo, hi


#: Kinds of named things. In a lowercase query a rules slot of one of these kinds that spaCy
#: does not read as an entity is a guess from a context word ("drummer", "senate" -> a person;
#: "anatomy" -> a film): it is left untyped, and the template is filtered as ``untyped_slot``.
NAMED_KINDS = frozenset({"a person", "a fictional character", "a film or TV show", "a song or album",
                         "a book or written work", "a company or brand", "a company", "an organization",
                         "a sports team or league", "a musician or band", "a historical event",
                         "a university or school", "a product", "a creative work such as a film, book or song"})

_NAME_PRIORITY = ("a person", "an organization", "a company", "a university or school", "a sports team or league")


def _merge_adjacent(text: str, slots: List[Slot]) -> List[Slot]:
    """Entity slots with only a space between them are one name read in two parts
    ("Johannes" + "Gutenberg"): one slot, described as the person (or organization) if either is;
    not when either is a US state or a country ("kewaunee wi")."""
    out: List[Slot] = []
    for sl in sorted(slots):
        if out and not text[out[-1].end:sl.start].strip() and sl.description not in _REGION_AFTER \
                and out[-1].description not in _REGION_AFTER:      # "<kewaunee> <wi>": a town, then its state
            prev = out.pop()
            ranked = [d for d in _NAME_PRIORITY if d in (prev.description, sl.description)]
            sl = Slot(prev.start, sl.end, ranked[0] if ranked else sl.description)
        out.append(sl)
    return out


def _cut_name(doc, wide: Tuple[int, int], kept: Tuple[int, int]) -> bool:
    """In a lowercase query, whether trimming left a noun or adjective of the rules' span right
    next to the entity: "north salem <ga>", "<yale> university", "flowery <branch>" are one name
    that the lowercase parse cannot delimit, so the slot's boundary (and kind) is a guess."""
    for t in doc:
        if wide[0] <= t.idx < wide[1] and not (kept[0] <= t.idx < kept[1]) and not t.is_stop \
                and t.pos_ in ("NOUN", "PROPN", "ADJ") and (t.idx + len(t) + 1 >= kept[0] > t.idx
                                                            or kept[1] <= t.idx <= kept[1] + 1):
            return True
    return False


def _pos_of(doc, start: int, end: int) -> List[str]:
    return [t.pos_ for t in doc if t.idx >= start and t.idx + len(t) <= end and not t.is_punct]


#: Kinds of slot that may modify the noun after them without being part of a name with it
#: ("<florida> weather", "<1990> census", "<madonna> songs").
_MODIFIER_LABELS = labels.PLACE | labels.WHEN | labels.CLOCK | labels.COUNT | labels.PERSON | labels.GROUP | \
    labels.LANGUAGE


def _content_word(t) -> bool:
    return t.pos_ in ("NOUN", "PROPN", "ADJ") and not t.is_stop and t.is_alpha


def splits_a_name(doc, text: str, slot: Slot, frame_words: frozenset, slots: Sequence[Slot] = ()) -> bool:
    """In a lowercase query, whether a slot stands right beside a literal word that is likely part
    of the same name, so the slot's boundary (and kind) is a guess: a content word just before it
    ("new <england>", "avranches <france>", "bigg boss <tamil>"), or, after a one-word slot of a
    kind that does not modify nouns on its own, the noun it modifies ("<gi> bill", "<hardie>
    board"). ``frame_words`` (context cues such as "movie" or "cast", request words) are never
    part of a name; nor is a word of another of the query's ``slots`` ("<paris> <texas>")."""
    def literal(t) -> bool:
        return _content_word(t) and t.lower_ not in frame_words and not any(o.start <= t.idx < o.end for o in slots)

    before = [t for t in doc if t.idx + len(t) <= slot.start and not text[t.idx + len(t):slot.start].strip()]
    if before and literal(before[-1]) and before[-1].tag_ != "NNS":     # "temperatures <cairo>" frames
        return True
    inside = [t for t in doc if slot.start <= t.idx < slot.end]
    st = slot_type(slot.description)
    dated = st is not None and st.labels & (labels.WHEN | labels.CLOCK) and not any(t.like_num for t in inside)
    if len(inside) != 1 or st is None or (st.labels & _MODIFIER_LABELS and not dated) or st.closed or st.year_only:
        return False        # ("the <jurassic> park movies": a period's name without a number is no date)
    after = [t for t in doc if t.idx >= slot.end and not text[slot.end:t.idx].strip()]
    return bool(after) and after[0].pos_ in ("NOUN", "PROPN") and (literal(after[0]) or dated and _content_word(after[0]))


def _read_as_a_name(description: str) -> bool:
    """A slot typed as a person, organization or place by an open label (no closed list, no year)."""
    st = slot_type(description)
    return st is not None and not st.closed and not st.year_only \
        and bool(st.labels & (labels.PERSON | labels.ORGANIZATION | labels.PLACE))


def _place_names(doc, text: str, slots: List[Slot]) -> List[Slot]:
    """Places a lowercase query names in parts: a place slot followed by a place noun is one name
    ("<guantanamo> bay" -> "<guantanamo bay>", a place); a name just before a US state or a
    country slot is a city or region there ("city of <kewaunee> <wi>", "<penn yan> <ny>"), whatever
    the lowercase reading took it for."""
    split: List[Slot] = []
    for sl in slots:        # "<kewaunee wi>" read as one name: a town, then its state
        words = list(re.finditer(r"\S+", text[sl.start:sl.end]))
        if len(words) >= 2 and sl.description not in _REGION_AFTER and sl.description not in _PLACE_DESCRIPTIONS \
                and (on_closed_list("us_state", words[-1].group(0)) or words[-1].group(0).casefold() in us_state_codes()):
            split.append(Slot(sl.start, sl.start + words[-2].end(), "a city or region"))
            split.append(Slot(sl.start + words[-1].start(), sl.end, "a US state"))
        else:
            split.append(sl)
    slots = split
    out: List[Slot] = []
    for k, sl in enumerate(slots):
        nxt = [t for t in doc if t.idx >= sl.end and not text[sl.end:t.idx].strip()]
        taken = any(o.start <= nxt[0].idx < o.end for o in slots) if nxt else True
        if sl.description in _PLACE_DESCRIPTIONS and not taken and nxt[0].lower_ in PLACE_HEADS:
            sl = Slot(sl.start, nxt[0].idx + len(nxt[0]), sl.description)
        elif k + 1 < len(slots) and slots[k + 1].description in _REGION_AFTER \
                and sl.description not in _REGION_AFTER and sl.description not in _PLACE_DESCRIPTIONS \
                and text[sl.end:slots[k + 1].start].strip() in ("", ",") and _read_as_a_name(sl.description):
            sl = Slot(sl.start, sl.end, "a city or region")
        out.append(sl)
    return out


def type_slots(text: str, spans: Sequence[Slot], nlp, form_descriptions: frozenset,
               frame_words: frozenset = frozenset()) -> List[Slot]:
    """The slots of ``text`` after the spaCy reading (see the module docstring), in order.

    ``form_descriptions``: descriptions the rules give by form (numbers, code, URLs), kept as
    they are unless an entity extends over them. In a lowercase query a slot that
    :func:`splits_a_name` is left untyped (``frame_words`` as there).
    """
    doc = nlp(text)
    lowercase = _is_lowercase_query(text)
    ents = _entities(nlp, text, doc, spans, lowercase)
    long_prompt = len(text.split()) > LONG_PROMPT_WORDS
    out: List[Slot] = []
    claimed = [False] * len(spans)
    for s, e, label in ents:
        touching = [k for k, sp in enumerate(spans) if sp.start < e and s < sp.end]
        numeric = label in ("CARDINAL", "QUANTITY", "DATE", "TIME", "PERCENT", "MONEY")
        if not touching and (numeric or long_prompt):
            continue        # a number the rules kept literal ("top 10") stays; so does a long prompt's text
        if touching and any((numeric or spans[k].description in form_descriptions
                             and spans[k].description not in GENERIC)
                            and (spans[k].start < s or spans[k].end > e) for k in touching):
            continue        # code, a URL, "iphone 12": the rules' wider slot stands
        # The entity and the rules' slots it touches make one slot (never split a name), less
        # any frame word at either end ("alexander hamilton buried" -> "alexander hamilton").
        lo = min([s] + [spans[k].start for k in touching])
        hi = max([e] + [spans[k].end for k in touching])
        wide = (lo, hi)
        lo, hi = _trim_frame_words(doc, text, lo, hi, s, e)
        whole = [k for k in touching if spans[k].start <= s and spans[k].end >= e]
        rules = spans[whole[0]].description if len(touching) == 1 and whole else None
        for k in touching:
            claimed[k] = True
        context = text[max(0, lo - 40):hi + 40]
        description = describe_entity(label, text[s:e], rules, context)
        if lowercase and not numeric and _cut_name(doc, wide, (lo, hi)):
            description = UNTYPED_NAME
        out.append(Slot(lo, hi, description))
    out = _merge_adjacent(text, out)
    for k, sp in enumerate(spans):
        if claimed[k] or any(sp.start < o.end and o.start < sp.end for o in out):
            continue
        if sp.description in GENERIC or sp.description not in form_descriptions:
            pos = _pos_of(doc, sp.start, sp.end)
            frame_pos = _FRAME_POS if sp.description in GENERIC else _FRAME_POS - {"ADJ", "PROPN", "NOUN"}
            if pos and all(p in frame_pos for p in pos):
                continue    # a verb, adjective or small word: a frame word, not a slot ("greek" people stays)
        if lowercase and sp.description in NAMED_KINDS:
            sp = Slot(sp.start, sp.end, UNTYPED_NAME)
        out.append(sp)
    if lowercase and not long_prompt:
        out = _place_names(doc, text, sorted(out))
        out = [Slot(sl.start, sl.end, UNTYPED_NAME) if sl.description not in form_descriptions
               and splits_a_name(doc, text, sl, frame_words, out) else sl for sl in out]
    return sorted(out)
