"""What a compatible document must say, written from the request's meaning.

A template's compatible-document description is what documents are matched against, and what a
reader checks a template by. Assembling it from slot types ("an article about a specific
country, including details on the north and south") says nothing about the request; this
module turns the request itself into the content a document must hold: a question becomes an
embedded question ("when did korea separate into north and south" -> "says when the country
separated into north and south"), a yes/no question a "whether" clause, a short instruction
"the material needed to ...". The parse is spaCy's (the same reading that typed the slots);
verbs are re-inflected with ``lemminflect`` when "did"/"does" goes ("did X sing" -> "X sang").
Requests it cannot rephrase safely get ``None`` and keep the rules' assembled description.
"""
from __future__ import annotations

import re
from typing import List, Optional, Sequence, Tuple

from lemminflect import getInflection

from transforms.slot_types import base_description

#: Questions longer than this (in words) are not rephrased.
MAX_WORDS = 25
_WH = frozenset({"what", "which", "who", "whom", "whose", "when", "where", "why", "how"})
_DO = {"do": "VBP", "does": "VBZ", "did": "VBD"}
_BE = frozenset({"is", "are", "was", "were", "am"})
_MODAL = frozenset({"will", "would", "can", "could", "should", "shall", "may", "might", "must",
                    "has", "have", "had"})
_DETERMINERS = frozenset({"a", "an", "the", "this", "that", "these", "those", "his", "her", "its", "their", "my",
                          "your", "our"})
#: First words of the questions this rephrases (a question word or an auxiliary).
_QUESTION_OPENERS = _WH | _BE | _MODAL | frozenset(_DO)
#: "how" followed by one of these asks for a figure ("says how old"), otherwise for a way ("explains how").
_HOW_FIGURE = frozenset({"many", "much", "old", "long", "far", "big", "tall", "high", "often", "fast", "large",
                         "deep", "heavy", "wide", "hot", "cold", "early", "late", "soon"})
_SUBJECT_DEPS = frozenset({"nsubj", "nsubjpass", "csubj", "expl"})
_LEAD_RE = re.compile(r"^(?:(?:please|hey|hi)\b\W*)?(?:(?:can|could|would) you (?:please )?(?:tell|show) me\b\W*|"
                      r"do you know\b\W*|i (?:want|need|would like) to know\b\W*)?", re.I)
_ORDINALS = {"1": "first", "2": "second", "3": "third", "4": "fourth", "5": "fifth"}
_NUMBERED_RE = re.compile(r"^(.*?) #(\d+)$")
_ARTICLE_RE = re.compile(r"^(?:a|an|the) ", re.I)
#: What a slot reads as while the request is parsed: a capitalised name the tagger takes as one.
_STAND_IN = "Alpha"


class _Unit:
    """One token of the request, or one whole slot (several tokens, rendered by its type)."""
    __slots__ = ("first", "last", "text", "slot", "pos", "low", "span")

    def __init__(self, first, last, text: str, slot: Optional[str], pos: str):
        self.first, self.last, self.text, self.slot, self.pos = first, last, text, slot, pos
        self.span = None
        self.low = text.lower()


def _with_stand_ins(text: str, slots: Sequence[Tuple[int, int, str]]) -> Tuple[str, List[Tuple[int, int, str]]]:
    """The request with each slot replaced by one proper noun, so the parse sees the frame, not
    lowercase names it cannot read ("who did dwight howard play" parses "dwight" as the verb)."""
    parts: List[str] = []
    spans: List[Tuple[int, int, str]] = []
    pos = length = 0
    for s, e, d in sorted(slots):
        if s < pos:
            continue
        parts.append(text[pos:s])
        length += s - pos
        parts.append(_STAND_IN)
        spans.append((length, length + len(_STAND_IN), d))
        length += len(_STAND_IN)
        pos = e
    parts.append(text[pos:])
    return "".join(parts), spans


def _units(doc, slots: Sequence[Tuple[int, int, str]]) -> Optional[List[_Unit]]:
    out: List[_Unit] = []
    for t in doc:
        slot = next((s for s in slots if s[0] <= t.idx < s[1]), None)
        if slot is not None:
            if out and out[-1].slot is not None and out[-1].span == slot:
                out[-1].last = t
                continue
            unit = _Unit(t, t, t.text, slot[2], "SLOT")
            unit.span = slot
            out.append(unit)
        elif not t.is_space:
            out.append(_Unit(t, t, t.text, None, t.pos_))
    while out and out[-1].slot is None and out[-1].pos == "PUNCT":
        out.pop()
    return out or None


def slot_phrase(description: str, after_determiner: bool) -> str:
    """How a slot reads inside the description: "the country", or "country" after "the"."""
    m = _NUMBERED_RE.match(description)
    number = _ORDINALS.get(m.group(2)) if m else None
    base = _ARTICLE_RE.sub("", base_description(m.group(1) if m else description), count=1)
    if number:
        base = f"{number} {base}"
    return base if after_determiner else f"the {base}"


def _article(description: str) -> str:
    """The indefinite article the description itself uses ("an occupation", "a US state")."""
    first = description.split(" ", 1)[0].lower()
    return first if first in ("a", "an") else "a"


def _modifies_noun(unit: _Unit) -> bool:
    """A slot that modifies a later noun ("the <kentucky> state bird") reads as a possessive."""
    t = unit.last
    return t.dep_ in ("compound", "nmod", "poss", "amod") and t.head.i > t.i


_REGIONS = frozenset({"a US state", "a country"})


def _render(units: Sequence[_Unit]) -> str:
    words: List[str] = []
    for k, u in enumerate(units):
        if u.slot is None:
            words.append(u.text)
            continue
        prev = words[-1].lower() if words else ""
        if k and units[k - 1].slot is not None and base_description(u.slot) in _REGIONS:
            words.append("in")      # "<a city> <a US state>" -> "the city in the US state"
            prev = "in"
        phrase = slot_phrase(u.slot, prev in _DETERMINERS or prev in ("$", "#"))
        if u.first.dep_ == "appos" and k and units[k - 1].pos == "NOUN":
            phrase = f"({base_description(u.slot)})"     # "the element <magnesium>" -> "the element (a chemical)"
        if prev in ("a", "an"):
            words[-1] = _article(u.slot)
        nxt = units[k + 1] if k + 1 < len(units) else None
        if nxt is not None and nxt.slot is None and not nxt.text.startswith("'") and prev not in ("a", "an") \
                and _modifies_noun(u):
            phrase += "'s"      # "the <US state> state bird" -> "the US state's state bird"
        words.append(phrase)
    text = " ".join(words)
    text = re.sub(r" (?=[,.;:!?%)]|'s\b|n't\b|'re\b|'ve\b|'ll\b|'d\b|'m\b)", "", text)
    return re.sub(r"([($]) ", r"\1", text)


def _inflect(verb: str, tag: str) -> Optional[str]:
    if tag == "VBP":
        return verb
    forms = getInflection(verb.lower(), tag=tag)
    return forms[0] if forms else None


def _subject_end(units: List[_Unit], start: int, aux) -> Optional[int]:
    """Index of the last unit of the subject that follows a copula at ``units[start - 1]``."""
    if start >= len(units):
        return None

    def last_unit_before(limit: int) -> Optional[int]:
        ends = [k for k, u in enumerate(units) if u.first.i < limit]
        return ends[-1] if ends and ends[-1] >= start else None

    for child in aux.children:
        if child.dep_ in _SUBJECT_DEPS and child.i > aux.i and child.left_edge.i == units[start].first.i:
            return last_unit_before(_phrase_end(child) + 1)
    for chunk in aux.doc.noun_chunks:
        if chunk.start == units[start].first.i:
            return last_unit_before(max(chunk.end - 1, _phrase_end(chunk.root)) + 1)
    return start if units[start].slot is not None else None


def _phrase_end(head) -> int:
    """Last token of a noun phrase with its "of"-phrases ("the current president of <X>"), not
    what the parse hangs after it (an appositive, a predicate: "is <X> the capital of <Y>")."""
    end = head.i
    for child in head.rights:
        if child.dep_ not in ("prep", "compound", "nmod", "nummod", "case") or child.i != end + 1:
            break
        end = child.right_edge.i
    return end


def _agree(aux_unit: _Unit, subject: Sequence[_Unit]) -> _Unit:
    """"what is <X> symptoms" -> "what the X's symptoms are": the copula follows a plural subject."""
    span = {u.first.i for u in subject} | {u.last.i for u in subject}
    heads = [u.last for u in subject if u.slot is None and not (u.last.head.i in span and u.last.head.i != u.last.i)]
    plural = bool(heads) and heads[-1].tag_ in ("NNS", "NNPS")
    swap = {"is": "are", "was": "were"} if plural else {}
    text = swap.get(aux_unit.low)
    return aux_unit if text is None else _Unit(aux_unit.first, aux_unit.last, text, None, aux_unit.pos)


def _invert(units: List[_Unit], wh: List[_Unit], k: int) -> Optional[List[_Unit]]:
    """``wh`` + aux ``units[k]`` + subject + rest -> ``wh`` + subject + (aux) + rest."""
    aux_unit = units[k]
    if aux_unit.slot is not None:
        return None
    aux_unit = _Unit(aux_unit.first, aux_unit.last, aux_unit.low, None, aux_unit.pos)   # "Is X ..." -> "X is"
    aux = aux_unit.first
    head = aux.head
    verb_k = next((j for j in range(k + 1, len(units)) if units[j].first.i == head.i and units[j].slot is None), None)
    if aux_unit.low in _DO:
        # do-support: the first bare verb after the subject ("did X get drafted": "get")
        bare = next((j for j in range(k + 2, len(units)) if units[j].slot is None and units[j].first.tag_ == "VB"
                     and (verb_k is None or j <= verb_k)), None)
        verb_k = bare if bare is not None else verb_k
    if verb_k is not None and (aux.dep_ in ("aux", "auxpass") or aux_unit.low in _DO):
        subject_end = verb_k - 1
        while subject_end > k and units[subject_end].pos in ("ADV", "AUX", "PART"):
            subject_end -= 1        # "has X (really) been playing": "been" goes with the verb
        if subject_end <= k:
            return None
        subject, adverbs, rest = units[k + 1:subject_end + 1], units[subject_end + 1:verb_k], units[verb_k + 1:]
        verb = units[verb_k]
        if aux_unit.low in _DO:
            base = verb.text if verb.first.tag_ == "VB" else verb.first.lemma_
            inflected = _inflect(base, _DO[aux_unit.low])
            if inflected is None:
                return None
            return wh + subject + adverbs + [_Unit(verb.first, verb.last, inflected, None, "VERB")] + rest
        if aux_unit.low in _MODAL or aux_unit.low in _BE:
            return wh + subject + [aux_unit] + adverbs + [verb] + rest
        return None
    if aux_unit.low in _BE:
        end = _subject_end(units, k + 1, aux)
        if end is None:
            return None
        subject = units[k + 1:end + 1]
        return wh + subject + [_agree(aux_unit, subject)] + units[end + 1:]
    return None


#: Longest keyword search (in words and slots) read as the facts it looks for.
MAX_SEARCH_UNITS = 8


def _search_content(units: List[_Unit]) -> Optional[str]:
    """A keyword search ("<X> population", "weather in <X>"): the facts it looks for ("gives the
    population of the city"), when it is nouns, adjectives and prepositions around its slots."""
    literal = [u for u in units if u.slot is None]
    if len(units) > MAX_SEARCH_UNITS or not literal or not any(u.slot is not None for u in units) \
            or any(u.pos in ("VERB", "AUX", "PRON", "SCONJ", "PUNCT", "DET", "CCONJ") for u in literal) \
            or not any(u.pos in ("NOUN", "PROPN") for u in literal) \
            or not (units[-1].slot is not None or units[-1].pos in ("NOUN", "PROPN", "ADJ", "NUM")):
        return None
    if units[0].slot is None:
        return f"gives the {_render(units)}"
    k = next(j for j, u in enumerate(units) if u.slot is None)
    if any(u.slot is not None for u in units[k:]) or units[k].pos not in ("NOUN", "PROPN", "ADJ"):
        return None
    subjects = " in ".join(slot_phrase(u.slot, False) for u in units[:k])   # "<city> <US state>": the city in the state
    return f"gives the {_render(units[k:])} of {subjects}"


#: Renderings that an ungrammatical query garbles: a kind owning itself ("the country's country
#: is"; "the US state's state bird" is fine),
#: or two noun phrases run together ("the acute the condition").
_GARBLED_RE = re.compile(r"\b(\w+)'s \1\b(?!\s+(?!is\b|are\b|was\b|were\b|consists?\b)\w)|\bthe \w+ the\b", re.I)


def request_content(text: str, slots: Sequence[Tuple[int, int, str]], nlp) -> Optional[str]:
    """What a document must do to answer the request, as a verb phrase ("says when the country
    separated into north and south"), or ``None`` for requests this does not rephrase (or whose
    rephrasing reads garbled).

    ``slots`` are ``(start, end, description)`` character spans of ``text``.
    """
    content = _request_content(text, slots, nlp)
    return None if content is None or _GARBLED_RE.search(content) else content


def _request_content(text: str, slots: Sequence[Tuple[int, int, str]], nlp) -> Optional[str]:
    lead = _LEAD_RE.match(text)
    offset = lead.end() if lead else 0
    body = text[offset:].strip()
    if not body or len(body.split()) > MAX_WORDS or "\n" in body:
        return None
    shift = offset + len(text[offset:]) - len(text[offset:].lstrip())
    parsed, spans = _with_stand_ins(body, [(s - shift, e - shift, d) for s, e, d in slots if s >= shift])
    doc = nlp(parsed)
    if len(list(doc.sents)) > 1:
        return None
    units = _units(doc, spans)
    if not units:
        return None
    if units[0].slot is not None or units[0].low not in _QUESTION_OPENERS:
        return _search_content(units)
    first = units[0].low
    if first in _WH:
        j = 1
        while j < len(units) and j <= 4 and units[j].pos not in ("AUX", "VERB") and units[j].low not in _DO:
            j += 1      # "what team", "how old", "where in <fi>a city</fi>"
        if j >= len(units):
            return None
        wh, k = units[:j], j
        if first == "how" and len(wh) == 1 or first == "why":
            verb = "explains"
        else:
            verb = "says"
        asks_subject = any(u.first.dep_ in _SUBJECT_DEPS for u in wh)
        if units[k].pos != "AUX" and units[k].low not in _DO:
            clause = units          # "who plays X in Y": the question word is the subject
        else:
            # "which of the following is ...": the question phrase is the subject; do-support never is
            subject_asked = asks_subject and units[k].low not in _DO and units[k].first.dep_ not in ("aux", "auxpass")
            clause = units if subject_asked and first in ("which", "who") and len(wh) > 1 else _invert(units, wh, k)
            if clause is None and subject_asked:
                clause = units
            if clause is None:
                return None
            if first == "what" and len(wh) == 1 and units[k].low in _BE and len(clause) == 3 \
                    and clause[1].slot is not None:
                return f"defines {slot_phrase(clause[1].slot, False)} and explains what it is"
    elif first in _DO or first in _BE or first in _MODAL:
        clause = _invert(units, [_Unit(units[0].first, units[0].first, "whether", None, "SCONJ")], 0)
        if clause is None:
            return None
        verb = "says"
    else:
        return None
    while clause and clause[-1].slot is None and clause[-1].pos == "CCONJ":
        clause = clause[:-1]
    if not any(u.slot is not None for u in clause):
        return None
    rendered = _render(clause)
    rendered = rendered[0].lower() + rendered[1:]
    return f"{verb} {rendered}"


def instruction_content(text: str, slots: Sequence[Tuple[int, int, str]]) -> Optional[str]:
    """For a short instruction ("Recommend a movie to watch during <a date or period>"): the
    material needed to carry it out, with its slots read as their types."""
    body = text.strip()
    sentence = re.split(r"(?<=[.!?])\s+", body, maxsplit=1)[0]
    if not sentence or len(sentence.split()) > MAX_WORDS or "\n" in sentence:
        return None
    end = len(sentence)
    parts: List[str] = []
    pos = 0
    for s, e, d in sorted(slots):
        if s >= end:
            break
        before = body[pos:s]
        prev = before.split()[-1].lower() if before.split() else ""
        phrase = slot_phrase(d, prev in _DETERMINERS)
        if prev in ("a", "an"):
            before = re.sub(r"\b(?:a|an)(\s+)$", _article(d) + r"\1", before)
        parts += [before, phrase]
        pos = e
    parts.append(body[pos:end])
    rendered = re.sub(r"\s+", " ", "".join(parts)).strip().rstrip(".!?")
    if not rendered:
        return None
    return f"has the material needed to {rendered[0].lower()}{rendered[1:]}"
