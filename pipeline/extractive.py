"""The ``extractive`` instantiator: fills a template's ``<fi>`` slots and answers from one sentence.

Deterministic and CPU-only, so the whole system runs with no generative model. It does what
the released instantiator is trained to do, with reading instead of generation, and declines
(the released model's ``null``) whenever it cannot do it well:

* it reads what the template asks (:mod:`pipeline.request_kind`): requests to write or
  transform text have no extractive answer and are declined; a question fixes the words the
  answer must say (its frame: "formed" in "when did <fi>a band</fi> form") and, from its
  question word, the kind of thing the answer must name ("when" -> a date);
* it looks for the *answering sentence* first: a prose sentence near the chunk that retrieved
  the template, that holds the frame words, most similar to the request. Headings and lines
  without a full stop are never answers; a sentence opening with "it", "he", "however", ... is
  taken with the sentence before it (same paragraph) or not at all;
* it fills every slot from that sentence (or the one before it): a whole named entity whose
  label fits the slot's type (:mod:`transforms.slot_types`: "a US state" -> a GPE on the list
  of US states), or, for kinds with no entity label ("a medical condition"), a whole noun
  phrase whose meaning is close to the description. spaCy's English pipeline finds both. Slots
  are disambiguated by the template's own words around them ("played <fi>a character</fi>"
  takes the name after "played"); no two slots name the same thing;
* the answer is the sentence(s), whole, in the compact excerpt format
  ``<excerpt>first words<...>last words</excerpt>`` that the expansion stage resolves; it must
  hold the answer's kind (a date for "when") besides the fills, define the fill for "what is",
  and be similar enough to the filled request.

So the request's premise comes from the same sentence as its answer: fills cannot contradict
it. ``encode(texts) -> float32 [n, d] unit vectors`` is passed in, so the logic is pure and
testable with any embedding function.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from pipeline.excerpts import escape_markup
from pipeline.late_chunking import LateChunker
from pipeline.request_kind import Request, content_stems, read_request, stem
from transforms.slot_types import SlotType, base_description, fits, on_closed_list, slot_type
from transforms.template_format import TAG_RE
from transforms.words import STOPWORDS

Encode = Callable[[Sequence[str]], np.ndarray]

_SENTENCE_END_RE = re.compile(
    r"(?<![ .][A-Z]\.)(?<!\b(?:Mr|Ms|Dr|St|Jr|Sr|vs|No)\.)(?<!\bMrs\.)(?<!\b(?:e\.g|i\.e)\.)"
    r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n+")
_WORD_RE = re.compile(r"[^\W_](?:[\w'’-]*[^\W_])?", re.UNICODE)
_PROSE_END_RE = re.compile(r"[.!?][\"'”’)\]]*$")
#: Openings that lean on the sentence before: the answer then starts one sentence earlier.
DEPENDENT_OPENINGS = frozenset("""it its this these they their them he his she her that those such both
however also thus therefore instead moreover furthermore nevertheless meanwhile additionally hence still
then later afterwards there here another other""".split())
_COPULA_RE = re.compile(r"^\s*(?:\([^)]*\)\s*,?\s*)?(?:,[^,]{0,80},\s*)?(?:(?:is|are|was|were)\s+(?:also\s+)?"
                        r"(?:a|an|the|one|any)\b|refers\s+to\b|means\b)", re.I)
_CAUSE_RE = re.compile(r"\b(?:because|due to|as a result|in order to|since|so that|caused|led to|owing to|"
                       r"thanks to|result of)\b", re.I)
_ARTICLE_RE = re.compile(r"^(?:the|a|an)\s+", re.I)
_DEMONSTRATIVES = frozenset({"this", "these", "that", "those"})
_POSSESSIVE_RE = re.compile(r"\s*['’]s?$")
#: Words that make a noun phrase an amount, not a thing ("few species", "many countries").
QUANTIFIERS = frozenset("""few many several some most all other others various such each every certain numerous
both more less much any no own same different main possible common general particular typical similar new
first last following""".split())
REGION_BONUS = 0.1
"""Added to the similarity of sentences in the retrieving chunk's region (METHOD.md §1.2: the
chunk that found a template predicts where the answer lies)."""
MIN_PROSE_WORDS = 6
LEAD_SENTENCES = 3   # where a document introduces what it is about
MAX_FILL_TOKENS = 6
ALIGN_WINDOW = 4
EXCERPT_EDGE_WORDS = 6


class ExtractiveConfig(NamedTuple):
    min_tag_similarity: float = 0.35     # noun-phrase slots: fill vs description cosine
    min_answer_similarity: float = 0.3   # answer vs filled request cosine
    min_open_answer_similarity: float = 0.5   # ...when the question fixes no kind of answer
    max_dependency_distance: int = 2     # fills and answer: edges from a frame word in the parse
    max_sentence_chars: int = 400        # a longer sentence says too many things to answer one
    max_answer_chars: int = 800
    region_fraction: float = 0.1   # half-width of a local chunk's region (2σ of the pooling)
    min_region_chars: int = 1500
    sentences_tried: int = 4       # answering-sentence candidates tried per template, best first


class Instantiation(NamedTuple):
    instruction: str
    answer: str                   # with <excerpt> markers
    tag_fills: Tuple[str, ...]
    relatedness: float            # cosine of the instruction and the answer passage


class NoFit(NamedTuple):
    """The released model's ``null``, with why (counted in the filtered record's detail)."""
    reason: str


class Span(NamedTuple):
    """A possible slot fill: a named entity (``label``) or a noun phrase (``label == ""``)."""
    start: int
    end: int
    text: str
    label: str


def sentence_spans(text: str) -> List[Tuple[int, int]]:
    """``(start, end)`` of each sentence or line of ``text``, whitespace trimmed."""
    spans, start = [], 0
    for m in _SENTENCE_END_RE.finditer(text):
        cut = m.start() + len(m.group(0)) - len(m.group(0).lstrip("\"')]"))  # keep closing quotes
        spans.append((start, cut))
        start = m.end()
    spans.append((start, len(text)))
    out = []
    for s, e in spans:
        seg = text[s:e]
        lead = len(seg) - len(seg.lstrip())
        trail = len(seg) - len(seg.rstrip())
        if e - trail > s + lead:
            out.append((s + lead, e - trail))
    return sorted(out)


def region(text_len: int, focus: int, chunk: int, cfg: ExtractiveConfig) -> Tuple[int, int]:
    """The character window a chunk points at: the whole text for the global vector (0)."""
    if chunk == 0:
        return 0, text_len
    half = max(cfg.min_region_chars // 2, int(cfg.region_fraction * text_len))
    return max(0, focus - half), min(text_len, focus + half)


def excerpt_marker(passage: str) -> str:
    """The compact ``<excerpt>`` form of a verbatim passage (verbatim when it is short); marker-like
    text of the passage is escaped (pipeline/excerpts.py), so expansion reads it as text."""
    passage = escape_markup(passage)
    words = passage.split()
    if len(words) <= 2 * EXCERPT_EDGE_WORDS + 2:
        return f"<excerpt>{passage}</excerpt>"
    return (f"<excerpt>{' '.join(words[:EXCERPT_EDGE_WORDS])}<...>"
            f"{' '.join(words[-EXCERPT_EDGE_WORDS:])}</excerpt>")


def first_word(text: str) -> str:
    m = _WORD_RE.search(text)
    return m.group(0).casefold() if m else ""


class DocumentView:
    """One document's sentences, their vectors and their parses, computed on demand and cached.

    With a :class:`LateChunker` (the job's path) sentence vectors are late-chunked from the
    document's token embeddings, and only the embedded part of the document (``covered``
    characters) is used. Without one they are encoded with ``encode``. Sentences are parsed
    (entities, noun phrases) only when a template asks about them, with ``nlp`` (spaCy).
    """

    def __init__(self, text: str, encode: Encode, chunker: Optional[LateChunker] = None, nlp=None):
        self.text = text
        self._encode = encode
        self._chunker = chunker
        self._nlp = nlp
        self.covered = min(len(text), chunker.covered) if chunker is not None else len(text)
        self.sentences = [(s, e) for s, e in sentence_spans(text) if e <= self.covered]
        self._vecs: Dict[int, np.ndarray] = {}
        self._stems: Dict[int, frozenset] = {}
        self._spans: Dict[int, List[Span]] = {}
        self._docs: Dict[int, object] = {}
        self._postings: Optional[Dict[str, List[int]]] = None
        self._lead: Optional[Dict[str, str]] = None
        self._names: Dict[str, Optional[str]] = {}

    def sentence_text(self, i: int) -> str:
        s, e = self.sentences[i]
        return self.text[s:e]

    def sentence_vectors(self, idx: Sequence[int]) -> np.ndarray:
        if self._chunker is not None:
            return self._chunker.vectors([self.sentences[i] for i in idx])
        missing = [i for i in idx if i not in self._vecs]
        if missing:
            for i, v in zip(missing, self._encode([self.sentence_text(i) for i in missing])):
                self._vecs[i] = v
        return np.stack([self._vecs[i] for i in idx])

    def range_vector(self, start: int, end: int) -> np.ndarray:
        """The vector of any ``[start, end)`` of the text (not cached)."""
        if self._chunker is not None:
            return self._chunker.vectors([(start, end)])[0]
        return self._encode([self.text[start:end]])[0]

    def stems(self, i: int) -> frozenset:
        if i not in self._stems:
            self._stems[i] = content_stems(self.sentence_text(i))
        return self._stems[i]

    def sentences_with(self, words: Sequence[str], need: int) -> List[int]:
        """Sentences holding at least ``need`` of the stems ``words`` (an index built once)."""
        if self._postings is None:
            self._postings = {}
            for i in range(len(self.sentences)):
                for w in self.stems(i):
                    self._postings.setdefault(w, []).append(i)
        if need <= 0:
            return list(range(len(self.sentences)))
        counts: Dict[int, int] = {}
        for w in set(words):
            for i in self._postings.get(w, ()):
                counts[i] = counts.get(i, 0) + 1
        return sorted(i for i, n in counts.items() if n >= need)

    def is_prose(self, i: int) -> bool:
        """A full sentence: ends like one, has enough words, starts with a capital, digit or quote."""
        t = self.sentence_text(i)
        return bool(_PROSE_END_RE.search(t)) and len(t.split()) >= MIN_PROSE_WORDS and (
            t[:1].isupper() or t[:1].isdigit() or t[:1] in "\"'“(")

    def leans_back(self, i: int) -> bool:
        """Opens with a pronoun or connective that needs the sentence before."""
        return first_word(self.sentence_text(i)) in DEPENDENT_OPENINGS

    def same_paragraph(self, i: int, j: int) -> bool:
        return "\n" not in self.text[self.sentences[i][1]:self.sentences[j][0]]

    def spans(self, idx: Sequence[int]) -> List[Span]:
        """Named entities and noun phrases of the given sentences (parsed once, in one batch).

        An entity's label is the one it has where the document introduces it (its first
        sentences): the small model labels a bare surname inconsistently ("Bell" an
        organization mid-article, a person in "Alexander Graham Bell" at the start)."""
        if self._lead is None:
            self._lead = {}
            lead = list(range(min(LEAD_SENTENCES, len(self.sentences))))
            self._parse(lead)
            for i in lead:
                for ent in self._docs[i].ents:
                    self._lead.setdefault(ent.text, ent.label_)
                    if ent.label_ == "PERSON":
                        for t in ent:
                            if t.text[:1].isupper():
                                self._lead.setdefault(t.text, "PERSON")
        self._parse(idx)
        return [sp._replace(label=self._lead.get(sp.text, sp.label)) if sp.label else sp
                for i in idx for sp in self._spans[i]]

    def full_name(self, word: str) -> Optional[str]:
        """The one longer name the document gives a person it also calls ``word`` ("Smith" ->
        "Adam Smith"), or ``None`` when it gives none or several ("Alfonso": Alfonso XII and
        Alfonso XIII). A request naming a bare surname is ambiguous out of its document."""
        if word not in self._names:
            pattern = re.compile(rf"\b{re.escape(word)}\b")
            idx = [i for i, (s, e) in enumerate(self.sentences) if pattern.search(self.text, s, e)]
            self._parse(idx)
            forms = {_POSSESSIVE_RE.sub("", ent.text) for i in idx for ent in self._docs[i].ents
                     if ent.label_ == "PERSON" and word in (t.text for t in ent)
                     and len(ent) <= MAX_FILL_TOKENS and balanced(ent.text)}
            forms = {f for f in forms if len(f.split()) > 1}
            forms = {f for f in forms if not any(f != g and f in g for g in forms)}
            self._names[word] = forms.pop() if len(forms) == 1 else None
        return self._names[word]

    def _parse(self, idx: Sequence[int]) -> None:
        missing = [i for i in idx if i not in self._spans]
        if missing:
            if self._nlp is None:
                from transforms.nlp import load_nlp

                self._nlp = load_nlp()
            for i, doc in zip(missing, self._nlp.pipe([self.sentence_text(i) for i in missing])):
                self._spans[i] = fill_spans(doc, self.sentences[i][0])
                self._docs[i] = doc

    def parse(self, text: str):
        """A parse of any short text (the filled request), with the document's pipeline."""
        if self._nlp is None:
            from transforms.nlp import load_nlp

            self._nlp = load_nlp()
        return self._nlp(text)

    def tokens(self, i: int, start: int, end: int) -> list:
        """The parsed tokens of sentence ``i`` (parsed by :meth:`spans`) inside ``[start, end)``."""
        offset = self.sentences[i][0]
        return [t for t in self._docs[i] if start <= offset + t.idx < end]

    def opening_pronoun(self, i: int) -> list:
        """The pronoun that opens sentence ``i`` ("He was born ..."), standing for the sentence before."""
        first = self.tokens(i, self.sentences[i][0], self.sentences[i][1])[:1]
        return [t for t in first if t.pos_ == "PRON"]

    def demonstrative_subject(self, i: int) -> bool:
        """Sentence ``i`` (parsed) has a subject pointed at with "this", "these", "that" or "those"
        ("After four centuries, this abrupt change caused ..."): it leans on what came before
        although its first word does not."""
        return any(t.lower_ in _DEMONSTRATIVES and t.dep_ == "det" and t.head.dep_ in ("nsubj", "nsubjpass")
                   for t in self._docs[i])

    def first_in_paragraph(self, i: int) -> bool:
        return i == 0 or not self.same_paragraph(i - 1, i)

    def frame_tokens(self, i: int, frame: Sequence[str]) -> list:
        """Tokens of sentence ``i`` whose stem is one of the frame's."""
        wanted = set(frame)
        return [t for t in self._docs[i] if stem(t.text) in wanted]


def balanced(text: str) -> bool:
    """No quote or bracket left open ("Money for Nothing" cut at its closing quote)."""
    return text.count('"') % 2 == 0 and text.count("(") == text.count(")") and text.count("[") == text.count("]") \
        and text.count("“") == text.count("”")


def fill_spans(doc, offset: int) -> List[Span]:
    """A parsed sentence's possible fills: its named entities (but ordinals) and its noun phrases
    without leading determiners or possessives, headed by a noun, at most ``MAX_FILL_TOKENS``;
    never one with a quote or bracket left open."""
    out: List[Span] = []
    seen = set()
    for ent in doc.ents:
        if ent.label_ == "ORDINAL" or len(ent) > MAX_FILL_TOKENS or not ent.text.strip() or not balanced(ent.text):
            continue
        out.append(Span(offset + ent.start_char, offset + ent.end_char, ent.text, ent.label_))
        seen.add((ent.start_char, ent.end_char))
    for chunk in doc.noun_chunks:
        toks = list(chunk)
        while toks and (toks[0].pos_ in ("DET", "PRON", "PART") or toks[0].tag_ in ("PRP$", "WDT", "WP", "POS")):
            toks.pop(0)
        if not toks or len(toks) > MAX_FILL_TOKENS or toks[-1].pos_ not in ("NOUN", "PROPN"):
            continue
        start, end = toks[0].idx, toks[-1].idx + len(toks[-1])
        text = doc.text[start:end]
        if (start, end) in seen or all(t.is_stop or not t.is_alpha for t in toks) or toks[0].lower_ in QUANTIFIERS \
                or not balanced(text):
            continue
        label = next((e.label_ for e in doc.ents if e.start_char == start and e.end_char == end), "")
        out.append(Span(offset + start, offset + end, text, label))
    return out


def _overlaps(a: Span, b: Span) -> bool:
    return a.start < b.end and b.start < a.end


def _same_thing(a: Span, b: Span) -> bool:
    """Two fills that name the same thing: overlapping, or sharing a content word."""
    return _overlaps(a, b) or bool(content_stems(a.text) & content_stems(b.text))


def _slot_contexts(template: str) -> Dict[str, Tuple[frozenset, frozenset]]:
    """Per slot description: stems of the two literal content words before and after its first use."""
    out: Dict[str, Tuple[frozenset, frozenset]] = {}
    for m in TAG_RE.finditer(template):
        desc = m.group(1).strip()
        if desc in out:
            continue
        before = [w for w in _WORD_RE.findall(TAG_RE.sub(" ", template[:m.start()])) if w.casefold() not in STOPWORDS]
        after = [w for w in _WORD_RE.findall(TAG_RE.sub(" ", template[m.end():])) if w.casefold() not in STOPWORDS]
        out[desc] = (frozenset(stem(w) for w in before[-2:]), frozenset(stem(w) for w in after[:2]))
    return out


_CLAUSE_EDGE_RE = re.compile(r"[.!?;\n]")


def _alignment(view: DocumentView, sp: Span, context: Tuple[frozenset, frozenset]) -> float:
    """How many of the slot's neighbouring template words stand next to ``sp`` in its own
    sentence, plus a half for a span that opens its sentence (what the sentence is about)."""
    before_text = _CLAUSE_EDGE_RE.split(view.text[max(0, sp.start - 60):sp.start])[-1]
    after_text = _CLAUSE_EDGE_RE.split(view.text[sp.end:sp.end + 60])[0]
    before = [stem(w) for w in _WORD_RE.findall(before_text)][-ALIGN_WINDOW:]
    after = [stem(w) for w in _WORD_RE.findall(after_text)][:ALIGN_WINDOW]
    opens = not _ARTICLE_RE.sub("", before_text.strip())
    return len(context[0] & set(before)) + len(context[1] & set(after)) + (0.5 if opens else 0.0)


def assign_fills(template: str, descs: Sequence[str], types: Sequence[SlotType], spans: Sequence[Span],
                 view: DocumentView, describe: Encode, encode: Encode,
                 cfg: ExtractiveConfig) -> Optional[Dict[str, Span]]:
    """One distinct span per slot description, or ``None`` when a slot has no fitting span."""
    contexts = _slot_contexts(template)
    fills: Dict[str, Span] = {}
    for desc, st in zip(descs, types):
        desc_stems = content_stems(base_description(desc))
        pool = [sp for sp in spans if fits(st, sp.text, sp.label)
                and not (content_stems(sp.text) & desc_stems)          # names the kind, not an instance
                and (sp.label != "DATE" or _ABSOLUTE_DATE_RE.search(sp.text))   # a date, not "every year"
                and not any(_same_thing(sp, u) for u in fills.values())]
        if not pool:
            return None
        sims = np.zeros(len(pool))
        if st.noun_phrase:
            sims = encode([sp.text for sp in pool]) @ describe([base_description(desc)])[0]
            keep = [k for k in range(len(pool)) if pool[k].label or sims[k] >= cfg.min_tag_similarity]
            pool, sims = [pool[k] for k in keep], sims[keep]
            if not pool:
                return None
        scores = [(_alignment(view, sp, contexts[desc]) + float(sims[k]), -sp.start) for k, sp in enumerate(pool)]
        fills[desc] = pool[max(range(len(pool)), key=lambda k: scores[k])]
    return fills


def reads_well(template: str, fills: Dict[str, str]) -> bool:
    """The filled request repeats no word across a slot's edge ("the <X Islands> islands") or
    side by side ("who was was", two slots with no word between), and a "did"/"does"/"do"
    question still has its verb after the fill ("what empires did <X>")."""
    for m in TAG_RE.finditer(template):
        fill = fills[m.group(1).strip()].split()
        before = _WORD_RE.findall(TAG_RE.sub(" ", template[:m.start()]))
        after = _WORD_RE.findall(TAG_RE.sub(" ", template[m.end():]))
        if fill and ((after and stem(after[0]) == stem(fill[-1])) or (before and stem(before[-1]) == stem(fill[0]))):
            return False
    words = [w.casefold() for w in _WORD_RE.findall(TAG_RE.sub(" SLOT ", template))]
    if any(a == b for a, b in zip(words, words[1:])):
        return False    # "who was was ...", two slots side by side
    aux = next((k for k, w in enumerate(words) if w in ("did", "does", "do")), None)
    return aux is None or any(w not in ("slot", "the", "a", "an") for w in words[aux + 1:])


def drop_article_before_names(template: str, fills: Dict[str, "Span"]) -> str:
    """The template without a literal "the"/"a" right before a slot filled with a name or a title
    that brings its own article ("who is the <John Galt>", "who wrote the <A Doll's House>")."""
    def drop(m):
        sp = fills.get(m.group(2).strip())
        named = sp is not None and (sp.label in ("PERSON", "GPE", "ORG", "WORK_OF_ART", "FAC", "LOC", "EVENT")
                                    or _ARTICLE_RE.match(sp.text))
        return m.group(0)[len(m.group(1)):] if named else m.group(0)
    return re.sub(r"(\b(?:[Tt]he|[Aa]n?)\s+)<fi>(.*?)</fi>", drop, template)


def fix_articles(instruction: str) -> str:
    """"a" before a vowel sound and "an" before a consonant, as the fills made them."""
    return re.sub(r"\b([Aa])(n?) (?=(\w))",
                  lambda m: m.group(1) + ("n" if m.group(3).lower() in "aeiou" else "") + " ", instruction)


def defining_copula(view: DocumentView, i: int, fill: Span) -> Optional[str]:
    """The copula ("is", "was", ...) when sentence ``i`` opens with the fill (an article aside)
    and goes on to say what it is ("X is a ...", "X (1884-1942) was a ..."); else ``None``."""
    s, _ = view.sentences[i]
    if _ARTICLE_RE.sub("", view.text[s:fill.start]).strip():
        return None
    m = _COPULA_RE.match(view.text[fill.end:fill.end + 160])
    if not m:
        return None
    verb = re.search(r"\b(is|are|was|were)\b", m.group(0), re.I)
    return verb.group(1).lower() if verb else "is"


def render(template: str, fills: Dict[str, str]) -> str:
    """The template with every slot replaced by its fill."""
    return TAG_RE.sub(lambda m: fills[m.group(1).strip()], template)


def with_descriptions(template: str) -> str:
    """The template read aloud: each slot replaced by its description (what it asks, in words)."""
    return TAG_RE.sub(lambda m: base_description(m.group(1)), template)


@lru_cache(maxsize=200_000)
def template_fit(template: str) -> Optional[str]:
    """Why this instantiator declines a template whatever the document (``None``: it may fit).

    A property of the template alone, so the match stage skips such templates before they
    become drafts: no slot (``no_slots``), a slot of no kind (``untyped_slot``), a request to
    produce text or a keyword search (``generative_request``, ``keywords_request``), or a
    question with no kind of answer or no frame word to check a sentence against
    (``open_question``: "what structures are in <fi>X</fi>", "who is <fi>X</fi> and what did he
    do"), which could not tell an answer from a sentence on the same topic, or two questions in
    one (``compound_question``: "where was <fi>X</fi> born and when").
    """
    descs = list(dict.fromkeys(m.group(1).strip() for m in TAG_RE.finditer(template)))
    if not descs:
        return "no_slots"
    if any(slot_type(base_description(d)) is None for d in descs):
        return "untyped_slot"
    request = read_request(template)
    if request.kind in ("generative", "keywords"):
        return f"{request.kind}_request"
    if _COMPOUND_QUESTION_RE.search(TAG_RE.sub(" ", template)):
        return "compound_question"      # "where was X born and when": one sentence rarely answers both
    if request.kind == "definition":
        return None
    if (not request.frame and not request.where) or (not request.answer_labels and not request.why):
        return "open_question"
    return None


def usable_template(template: str) -> bool:
    """For the match stage: whether :func:`template_fit` lets this template through."""
    return template_fit(template) is None


def frame_needed(frame: Sequence[str]) -> int:
    """How many of a frame's words a sentence must hold: all of up to three ("who won the league
    cup" is not answered by a sentence on the UEFA Cup), one fewer per four."""
    return len(frame) - len(frame) // 4


def frame_in_document(template: str, document_stems: frozenset) -> bool:
    """For the match stage: whether the document holds enough of the template's frame words
    for any of its sentences to (a cheap superset of the instantiator's own check)."""
    frame = read_request(template).frame
    return len(document_stems.intersection(frame)) >= frame_needed(frame)


def instantiate(template: str, view: DocumentView, focus: int, chunk: int, encode: Encode,
                cfg: ExtractiveConfig = ExtractiveConfig(),
                describe: Optional[Encode] = None) -> Union[Instantiation, NoFit]:
    """Fill and answer ``template`` from the document in ``view``, or say why it does not fit.
    ``describe`` encodes descriptions and templates (default ``encode``): callers may cache it."""
    describe = describe or encode
    declined = template_fit(template)
    if declined is not None:
        return NoFit(declined)
    descs = list(dict.fromkeys(m.group(1).strip() for m in TAG_RE.finditer(template)))
    types = [slot_type(base_description(d)) for d in descs]
    request = read_request(template)
    # The retrieving chunk's region is preferred, the whole embedded document searched.
    lo, hi = region(view.covered, min(focus, view.covered), chunk, cfg)
    idx = [i for i in view.sentences_with(request.frame, frame_needed(request.frame)) if view.is_prose(i)]
    if not idx:
        return NoFit("frame_not_in_document")
    sims = view.sentence_vectors(idx) @ describe([with_descriptions(template)])[0]
    sims = sims + np.array([REGION_BONUS if lo <= view.sentences[i][0] < hi else 0.0 for i in idx])
    tried = [idx[k] for k in sorted(range(len(idx)), key=lambda k: (-sims[k], idx[k]))[:cfg.sentences_tried]]
    view.spans(sorted({j for i in tried for j in (i - 1, i) if j >= 0}))    # parse them in one batch
    for i in tried:
        found = _answer_from(template, descs, types, request, view, i, encode, describe, cfg)
        if found is not None:
            return found
    return NoFit("no_answering_sentence")


def tree_distance(a, b) -> int:
    """Edges between two tokens of one dependency parse (a large number across sentences)."""
    up = {t.i: k for k, t in enumerate([a] + list(a.ancestors))}
    for k, t in enumerate([b] + list(b.ancestors)):
        if t.i in up and t.doc is a.doc:
            return k + up[t.i]
    return 99


def _near(view: DocumentView, i: int, sp: Span, anchors: Sequence, limit: int) -> bool:
    """Whether span ``sp`` is within ``limit`` dependency edges of one of the ``anchors`` tokens of
    sentence ``i``; a span in the sentence before stands for the pronoun that opens sentence ``i``."""
    toks = view.tokens(i, sp.start, sp.end) or view.opening_pronoun(i)
    return any(tree_distance(t, a) <= limit for t in toks for a in anchors)


def span_root(tokens: Sequence):
    """The token of a span whose head lies outside it (its syntactic head)."""
    inside = {t.i for t in tokens}
    return next((t for t in tokens if t.head.i not in inside or t.head.i == t.i), tokens[0])


def path_to_frame(tokens: Sequence, frame: Sequence[str], limit: int) -> Optional[Tuple[str, ...]]:
    """Dependency labels from a span's head up to the nearest ancestor that is a frame word,
    prepositions named, ending with that word's part of speech and voice ("X was born":
    ``("nsubjpass", "VERB:passive")``; "born to X": ``("pobj", "prep:to", "VERB:passive")``),
    or ``None``."""
    if not tokens:
        return None
    t, labels = span_root(tokens), []
    wanted = set(frame)
    for _ in range(limit):
        if t.head.i == t.i:
            return None
        labels.append(f"{t.dep_}:{t.lower_}" if t.dep_ in ("prep", "agent") else t.dep_)
        t = t.head
        if stem(t.text) in wanted:
            pos = "VERB" if t.pos_ == "AUX" else t.pos_
            if pos == "VERB" and any(c.dep_ in ("auxpass", "nsubjpass") for c in t.children):
                pos = "VERB:passive"
            return tuple(labels) + (pos,)
    return None


def wh_phrase(doc) -> list:
    """The tokens of the request's nominal question word ("who", "what teams", "which city"),
    or none for adverbial ones ("when", "where", "how many")."""
    for t in doc:
        if t.tag_ in ("WP", "WP$", "WDT") and t.lower_ in ("who", "whom", "what", "which"):
            return [t, t.head] if t.dep_ == "det" else [t]
        if t.tag_ == "WRB":
            return []
    return []


def object_of_do_support(request_doc, path: Optional[Tuple[str, ...]]) -> Optional[Tuple[str, ...]]:
    """The path of a question phrase that the parse hung on "did"/"does" ("what university did X
    attend": spaCy reads "university" as the subject of "did"): in do-support the question phrase
    is the verb's object, or the object of a preposition left at the end ("... graduate from")."""
    if not path or "aux" not in path:
        return path
    words = [t for t in request_doc if not t.is_punct]
    if words and words[-1].pos_ == "ADP":
        return ("pobj", f"prep:{words[-1].lower_}", path[-1])
    return ("dobj", path[-1])


def fix_agreement(doc) -> str:
    """The request with the verb agreement real queries often get wrong and a slot fill can
    break: "when did X died" -> "when did X die", "where do X die" -> "where does X die" (X singular)."""
    out = [t.text_with_ws for t in doc]
    for t in doc:
        if t.lower_ in ("did", "does", "do") and t.dep_ == "aux" and t.head.i > t.i:
            verb = t.head
            helped = any(c.dep_ in ("aux", "auxpass") and c.i > t.i for c in verb.children)   # "did X get paid"
            if verb.tag_ in ("VBD", "VBZ", "VBN") and verb.lemma_ and not helped:
                out[verb.i] = verb.lemma_ + verb.whitespace_
            subjects = [c for c in verb.children if c.dep_ in ("nsubj", "nsubjpass")]
            if t.lower_ == "do" and subjects and subjects[0].tag_ in ("NNP", "NN"):
                out[t.i] = ("Does" if t.text[0].isupper() else "does") + t.whitespace_
    return "".join(out)


def well_formed(doc) -> bool:
    """A filled request that parses as one sentence around a verb, with no unattached word."""
    roots = [t for t in doc if t.dep_ == "ROOT"]
    return len(roots) == 1 and roots[0].pos_ in ("VERB", "AUX") and not any(t.dep_ == "dep" for t in doc)


def same_roles(request_doc, fills: Dict[str, "Span"], frame: Sequence[str], view: DocumentView, i: int,
               limit: int) -> bool:
    """Each fill stands to the frame word in the document sentence as it does in the request:
    "when was <X> born" (X the subject of "born") is answered by "X was born ...", not by
    "... was born to X"; "who founded <X>" by "... founded X", not by "X founded ..."."""
    text = request_doc.text
    for sp in fills.values():
        at = text.find(sp.text)
        asked = [t for t in request_doc if at <= t.idx < at + len(sp.text)] if at >= 0 else []
        want = path_to_frame(asked, frame, limit)
        if want is None or path_to_frame(view.tokens(i, sp.start, sp.end) or view.opening_pronoun(i), frame,
                                         limit) != want:
            return False
    return True


_ABSOLUTE_DATE_RE = re.compile(r"\b(?:1\d{3}|20\d\d|\d{1,4}\s*(?:BC|BCE|AD|CE))\b|\b\d{1,4}0s\b|\b(?:january|february|"
                                r"march|april|may|june|july|august|september|october|november|december|century|"
                                r"centuries|millennium)\b", re.I)
_AGE_RE = re.compile(r"\b(?:age|aged|old|seasons?|years?|months?|weeks?|days?)\b(?!\s+(?:of|in)\s|\s+\d)", re.I)
_LOCATIVE = frozenset({"in", "at", "near", "on", "from", "within", "outside", "across", "throughout", "into"})


def _locates(view: DocumentView, i: int, fills: Sequence[Span], place: Sequence) -> bool:
    """The (first) fill is the subject of the clause that the place's preposition hangs on
    ("X is located in Y", "X lies in Y")."""
    toks = view.tokens(i, fills[0].start, fills[0].end) or view.opening_pronoun(i)
    if not toks or not place:
        return False
    subject = span_root(toks)
    verb = span_root(place).head.head        # place -> "in" -> the verb (or noun) it hangs on
    # "X is (located) in Y", "X lies in Y": not "the Faculty in Aswan has six departments", where
    # the place only tells which X
    return subject.dep_ in ("nsubj", "nsubjpass") and verb.pos_ in ("VERB", "AUX") and \
        (subject.head.i == verb.i or verb.head.i == subject.head.i)


def _after_locative(view: DocumentView, i: int, sp: Span) -> bool:
    """A place named after "in", "at", "near", ... (where something is), not just mentioned."""
    toks = view.tokens(i, sp.start, sp.end)
    return bool(toks) and span_root(toks).head.lower_ in _LOCATIVE


_COMPOUND_QUESTION_RE = re.compile(r"\b(?:and|or)\s+(?:when|where|why|who|how|what|which)\b", re.I)
_LEFTOVER_MARKUP_RE = re.compile(r"\(\s*[\];,]|\[\s*[\];,]*\s*\]|\]\s*;|[.!?]:\d+\b|\(\s*\)|\{\{|\}\}")


def asks_present(request_doc) -> bool:
    """A request in the present tense ("where does X live", "who is ruling X")."""
    finite = [t for t in request_doc if t.dep_ in ("ROOT", "aux", "auxpass") and t.tag_ in ("VBZ", "VBP", "VBD", "MD")]
    return bool(finite) and all(t.tag_ in ("VBZ", "VBP") for t in finite)


def _governing_verb(t):
    """The verb a noun hangs on ("the album was issued": "issued"), or ``None``."""
    for a in t.ancestors:
        if a.pos_ in ("VERB", "AUX"):
            return a
    return None


def told_in_past(anchors: Sequence) -> bool:
    """The frame words of the answering sentence are told in the past ("X lived in ...", "X was
    the capital"), so the sentence says what was, not what is."""
    verbs = [a for a in anchors if a.pos_ in ("VERB", "AUX")] or \
        [v for v in (_governing_verb(a) for a in anchors) if v is not None]
    if not verbs:
        return False

    def past(v) -> bool:
        helpers = [c for c in v.children if c.dep_ in ("aux", "auxpass")]
        return v.tag_ == "VBD" or any(c.tag_ == "VBD" for c in helpers) or \
            (v.tag_ == "VBN" and any(c.lower_ in ("had",) for c in helpers))
    return all(past(v) for v in verbs)


def _copular(t) -> bool:
    """A token that is an argument (subject or attribute) of a form of "be"."""
    return t.dep_ in ("nsubj", "attr") and t.head.lemma_ == "be"


def _copular_pair(answer, anchor) -> bool:
    """``answer`` and ``anchor`` name the same thing: the two sides of one "be", or apposed."""
    if _copular(answer) and _copular(anchor) and answer.head.i == anchor.head.i and answer.i != anchor.i:
        return True
    return (answer.dep_ == "appos" and answer.head.i == anchor.i) or (anchor.dep_ == "appos" and anchor.head.i == answer.i)


def _answer_from(template: str, descs: Sequence[str], types: Sequence[SlotType], request: Request,
                 view: DocumentView, i: int, encode: Encode, describe: Encode,
                 cfg: ExtractiveConfig) -> Optional[Instantiation]:
    """The instantiation whose answer is sentence ``i`` (with the one before when it leans back)."""
    ctx = [i]
    if view.leans_back(i):
        if i == 0 or not view.same_paragraph(i - 1, i) or not view.is_prose(i - 1) or view.leans_back(i - 1):
            return None
        if view.opening_pronoun(i) and len({sp.text for sp in view.spans([i - 1]) if sp.label == "PERSON"}) > 1:
            return None     # "She died ..." after a sentence naming several people: whom "she" means is a guess
        ctx = [i - 1, i]
    start, end = view.sentences[ctx[0]][0], view.sentences[i][1]
    if end - start > cfg.max_answer_chars or view.sentences[i][1] - view.sentences[i][0] > cfg.max_sentence_chars:
        return None
    if request.why and not _CAUSE_RE.search(view.text[start:end]):
        return None
    if _LEFTOVER_MARKUP_RE.search(view.text[start:end]):
        return None     # "(]; ];", ".:1 Her": what a markup stripper left behind
    if request.asked and request.asked not in view.stems(i):
        return None     # "what university did X attend": the sentence names a university
    spans = view.spans(ctx)
    if len(ctx) == 1 and view.demonstrative_subject(i):
        return None     # "..., this abrupt climatic change caused ...": which change the sentence before says
    fills = assign_fills(template, descs, types, spans, view, describe, encode, cfg)
    if fills is None:
        return None
    named: Dict[str, str] = {}     # a one-word person's full name, put in once the request is checked
    for sp in fills.values():
        if sp.label == "PERSON" and len(sp.text.split()) == 1:
            name = view.full_name(sp.text)
            if name is None:
                return None     # "where did Smith die": which Smith only the document says
            named[sp.text] = name
    used = list(fills.values())
    # Fills and answer must be about the frame, not just in its sentence: each within a few
    # dependency edges of a frame word ("Wilkerson presided" does not answer "when was
    # Wilkerson convicted" though "convicted" is in the sentence).
    anchors = view.frame_tokens(i, request.frame)
    if request.frame:
        # one frame word that every fill hangs on (its subject, object, modifier)
        anchors = [a for a in anchors if all(_near(view, i, sp, [a], cfg.max_dependency_distance) for sp in used)]
        if not anchors:
            return None
    texts = {d: sp.text for d, sp in fills.items()}
    if not reads_well(template, texts):
        return None
    instruction = fix_articles(render(drop_article_before_names(template, fills), texts))
    parsed = view.parse(instruction)
    if not well_formed(parsed):
        return None
    instruction = fix_agreement(parsed)
    if request.frame and not same_roles(parsed, fills, request.frame, view, i, cfg.max_dependency_distance + 1):
        return None
    if request.kind != "definition" and asks_present(parsed) and told_in_past(anchors):
        return None     # "where does X live" is not answered by "X lived in Chelsea"
    if request.answer_labels:
        asked = content_stems(instruction)     # the answer is something the request does not already say
        near = anchors or [t for u in used for t in view.tokens(i, u.start, u.end)]
        # "who founded X": the answer stands where "who" stands (the subject of "founded")
        wh = wh_phrase(parsed)
        wh_path = object_of_do_support(parsed, path_to_frame(wh, request.frame, cfg.max_dependency_distance + 1))
        copular = bool(wh) and wh_path is None and _copular(span_root(wh))
        if wh and wh_path is None and not (copular and anchors):
            return None     # the question word does not hang on a frame word: no place to look for the answer

        def answers(sp: Span) -> bool:
            if sp.label not in request.answer_labels or any(_same_thing(sp, u) for u in used) \
                    or content_stems(sp.text) <= asked or not _near(view, i, sp, near, cfg.max_dependency_distance):
                return False
            if request.closed and not on_closed_list(request.closed, _ARTICLE_RE.sub("", sp.text)):
                return False        # "what country": a country, not any place
            toks = view.tokens(i, sp.start, sp.end)
            if request.where and not _after_locative(view, i, sp):
                return False
            if request.where and not request.frame and not _locates(view, i, used, toks):
                return False        # "where is X": X is what the sentence locates, not a place named in it
            if request.counted and not (toks and span_root(toks).dep_ in ("nummod", "quantmod")
                                        and stem(span_root(toks).head.text) == request.counted):
                return False        # "how many games": a number of games ("1,000 NHL games")
            if request.when and sp.label == "DATE" and (not _ABSOLUTE_DATE_RE.search(sp.text)
                                                         or _AGE_RE.search(sp.text)):
                return False        # "a month after", "at the age of 72": not when
            if request.when and request.frame and \
                    path_to_frame(toks, request.frame, cfg.max_dependency_distance + 1) is None:
                return False        # the date tells when the frame happened ("died in 1892"), not
                                    # something else in the sentence ("In 1937, X moved ... to live")
            if copular:     # "what is the capital of X": "Lisbon is the capital ...", "the capital, Lisbon"
                return bool(toks) and any(_copular_pair(span_root(toks), a) for a in anchors)
            return not wh or path_to_frame(toks, request.frame, cfg.max_dependency_distance + 1) == wh_path

        if not any(answers(sp) for sp in spans):
            return None
    if request.kind == "definition":
        # the document's opening sentence introduces its subject: "X are the only Dutch club with
        # ..." deep in an article is a fact about X, not what X is; a section's opening sentence
        # defines a term of the article's subject ("The auction is ..." in contract bridge), which
        # read alone ("what is auction") asks about something else
        copula = defining_copula(view, ctx[0], used[0]) if ctx[0] == 0 else None
        if copula is None or (used[0].label == "PERSON") != request.about_person:
            return None
        if request.about_person and len(used[0].text.split()) < 2:
            return None     # a person is introduced by full name; one word labelled a person is often not one
        # the request's tense and number follow the document's ("who were X" -> "who was X")
        instruction = re.sub(r"\b(is|are|was|were)\b", copula, instruction, count=1)
    for word, name in named.items():
        # the checks above read the request as the sentence names the person; it asks by full name
        instruction = re.sub(rf"\b{re.escape(word)}\b", lambda _: name, instruction, count=1)
    q = encode([instruction])[0]
    relatedness = float(np.clip(view.range_vector(start, end) @ q, -1.0, 1.0))
    open_question = not request.answer_labels and request.kind != "definition"
    if relatedness < (cfg.min_open_answer_similarity if open_question else cfg.min_answer_similarity):
        return None
    return Instantiation(instruction, excerpt_marker(view.text[start:end]), tuple(named.get(sp.text, sp.text)
                                                                                 for sp in used), relatedness)
