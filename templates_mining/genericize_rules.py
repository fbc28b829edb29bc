"""Deterministic CPU genericizer: a real query -> (``<fi>`` template, compatible document description).

The embedded default behind the model seam (no model download). It reads the query the way
the FineInstructions query genericizer is asked to: spans that name something specific
(entities, numbers, dates, quoted items, proper nouns, pasted code or text, URLs, rare
content words) become ``<fi>short description</fi>`` tags; the words that frame the request
("what is", "how to", "symptoms of", "write a ... function") stay literal. Descriptions are
as specific as cheap cues allow (form, a small gazetteer, context cue words), and the
compatible document description is assembled from the request kind, the tag descriptions
and the frame words so different templates get distinguishable descriptions.

Word lists live in ``templates_mining/resources/genericize_*.txt``. Pure Python and regex.
"""
from __future__ import annotations

import bisect
import re
from functools import lru_cache
from pathlib import Path
from typing import Dict, FrozenSet, List, NamedTuple, Optional, Sequence, Tuple

from templates_mining.request_description import instruction_content, request_content
from templates_mining.slot_typing import Slot, type_slots
from transforms.nlp import load_nlp
from transforms.template_format import CLOSE, OPEN, render_with_descriptions

#: At most this many tags per template; the closest tags are merged beyond it.
MAX_TAGS = 10
#: Prompts longer than this (in words) are read paragraph by paragraph for pasted material.
LONG_PROMPT_WORDS = 150
#: Tag descriptions named in the document description (the rest are summarised).
MAX_SUBJECTS = 4
#: Words of the rendered template quoted in the document description.
MAX_QUOTED_WORDS = 30

_RESOURCES = Path(__file__).resolve().parent / "resources"

TOPIC = "a specific topic"
ENTITY = "a specific entity"
MERGED = "specific details"
PLACE = "a place"
POSSESSOR = "a person or organization"
CODE = "a piece of code"
MATH = "a mathematical expression"
NUMBER = "a number"
IDENTIFIER = "a specific identifier"
PROGRAMMING_LANGUAGE = "a programming language"
PASSAGE = "a passage of text"
QUOTED = "a quoted title or phrase"


# --------------------------------------------------------------------------- resources

def _lines(name: str) -> List[str]:
    with open(_RESOURCES / name, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]


def _words(name: str) -> List[str]:
    return [w.lower() for line in _lines(name) for w in line.split()]


def _section_words(name: str, header: str) -> List[str]:
    """The words under comment lines starting ``# {header}`` (each up to the next comment line)."""
    out, inside = [], False
    with open(_RESOURCES / name, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#"):
                inside = line[1:].strip().startswith(header)
            elif inside:
                out += line.lower().split()
    return out


def _phrases(field: str) -> Tuple[Tuple[str, ...], ...]:
    return tuple(tuple(p.split()) for p in (x.strip().lower() for x in field.split(",")) if p)


class _Category(NamedTuple):
    description: str
    doc_kind: str
    before: Tuple[Tuple[str, ...], ...]
    after: Tuple[Tuple[str, ...], ...]


def _load_categories() -> List[_Category]:
    out = []
    for line in _lines("genericize_categories.txt"):
        desc, kind, before, after = (part.strip() for part in line.split("|"))
        out.append(_Category(desc, kind, _phrases(before), _phrases(after)))
    return out


def _load_request_kinds() -> Dict[str, str]:
    out: Dict[str, str] = {}
    for line in _lines("genericize_request_verbs.txt"):
        kind, verbs = line.split(":", 1)
        for verb in verbs.split():
            out.setdefault(verb.lower(), kind.strip())
    return out


def _load_gazetteer() -> Tuple[Dict[Tuple[str, ...], Tuple[str, bool]], Dict[str, str]]:
    """Word names (token tuple -> description, capital-only) and names with symbols ("c++")."""
    words: Dict[Tuple[str, ...], Tuple[str, bool]] = {}
    symbols: Dict[str, str] = {}
    for line in _lines("genericize_gazetteer.txt"):
        desc, names = line.split(":", 1)
        for name in (n.strip().lower() for n in names.split(",")):
            cap_only, name = name.startswith("="), name.lstrip("=")
            if re.fullmatch(r"[a-z][a-z' -]*", name):
                words.setdefault(tuple(name.split()), (desc.strip(), cap_only))
            elif name:
                symbols.setdefault(name, desc.strip())
    return words, symbols


def _load_passage_kinds() -> List[Tuple[str, FrozenSet[str]]]:
    out = []
    for line in _lines("genericize_passage_kinds.txt"):
        desc, cues = line.split(":", 1)
        out.append((desc.strip(), frozenset(cues.lower().split())))
    return out


_CueIndex = Dict[str, List[Tuple[Tuple[str, ...], int]]]


def _index_cues(categories: Sequence[_Category]) -> Tuple[_CueIndex, _CueIndex, Dict[str, int]]:
    """Before-cues by their last word, after-cues by their first word (values: phrase, category
    order), and the one-word after-cues as span heads ("french <revolution>")."""
    before: _CueIndex = {}
    after: _CueIndex = {}
    heads: Dict[str, int] = {}
    for i, cat in enumerate(categories):
        for phrase in cat.before:
            before.setdefault(phrase[-1], []).append((phrase, i))
        for phrase in cat.after:
            after.setdefault(phrase[0], []).append((phrase, i))
            if len(phrase) == 1:
                heads.setdefault(phrase[0], i)
    return before, after, heads


_CATEGORIES = _load_categories()
_DOC_KIND: Dict[str, str] = {c.description: c.doc_kind for c in _CATEGORIES}
_BEFORE_CUES, _AFTER_CUES, _HEAD_CUES = _index_cues(_CATEGORIES)
# Cue nouns that name their own category when tagged alone ("recommend a <movie>").
_SELF_NAMING = frozenset(p[0] for c in _CATEGORIES for p in c.after if len(p) == 1 and p in c.before)
_REQUEST_KIND = _load_request_kinds()

_FUNCTION = frozenset(_words("genericize_function_words.txt"))
_QUERY = frozenset(_words("genericize_query_words.txt")) | frozenset(_REQUEST_KIND)
_CUE_WORDS = frozenset(w for c in _CATEGORIES for p in c.before + c.after for w in p)
_COMMON = (frozenset(_words("genericize_common_words.txt")) | _CUE_WORDS) - _FUNCTION - _QUERY
_VERBS = frozenset(_section_words("genericize_common_words.txt", "verbs")) | \
    frozenset(_section_words("genericize_query_words.txt", "verbs")) | frozenset(_REQUEST_KIND)
# Frame words that may be listed as the details a query asks about (nouns, not verbs/adjectives).
_PURE_VERBS = frozenset(_section_words("genericize_common_words.txt", "verbs")) | \
    frozenset(_section_words("genericize_query_words.txt", "verbs"))
_ADJECTIVES = frozenset(_section_words("genericize_common_words.txt", "adjectives")) | \
    frozenset(_section_words("genericize_query_words.txt", "adjectives"))
_DETAIL_NOUNS = frozenset(_section_words("genericize_common_words.txt", "nouns")) | (
    (frozenset(p[0] for c in _CATEGORIES for p in c.after if len(p) == 1) |
     frozenset(_words("genericize_query_words.txt"))) - _PURE_VERBS - _ADJECTIVES)
_UNITS = sorted(set(_words("genericize_units.txt")), key=len, reverse=True)
_GAZETTEER, _SYMBOL_NAMES = _load_gazetteer()
# Words that frame a name rather than belong to it ("the movie <X>", "<X> cast", "define <X>").
_NAME_FREE_WORDS = _CUE_WORDS | _QUERY
_GAZ_MAX = max(len(k) for k in _GAZETTEER)
_PASSAGE_KINDS = _load_passage_kinds()


# --------------------------------------------------------------------------- form patterns

_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
          r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_ORD = r"\d{1,2}(?:st|nd|rd|th)?"
_NUM = r"\d[\d,]*(?:[./]\d+)?"
_UNIT_ALT = "|".join(re.escape(u) for u in _UNITS)
_OPERAND = r"[(\[]*[-−]?(?:\d[\d.,]*[a-zA-Z]?|[a-zA-Z](?![a-zA-Z]))(?:\^[\w.]+)?[)\]]*"
_SYMBOL_ALT = "|".join(re.escape(s) for s in sorted(_SYMBOL_NAMES, key=len, reverse=True))

# (pattern, description) in priority order; earlier matches win overlaps.
_FORM_PATTERNS: List[Tuple[re.Pattern, str]] = [
    (re.compile(r"\b(?:https?://|www\.)[^\s<>\"')\]]+[^\s<>\"')\].,;:!?]", re.I), "a URL"),
    (re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), "an email address"),
    (re.compile(r"`[^`\n]+`"), "a code element"),
    (re.compile(rf"\b(?:{_MONTH}\s+{_ORD}(?:,?\s+\d{{4}})?|{_ORD}\s+(?:of\s+)?{_MONTH}(?:,?\s+\d{{4}})?|"
                rf"{_MONTH},?\s+\d{{4}}|\d{{1,4}}[/-]\d{{1,2}}[/-]\d{{1,4}})(?![\w/])", re.I), "a date"),
    (re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?(?:\s?(?:[ap]\.?m\.?))?(?!\w)|\b\d{1,2}\s?[ap]\.?m\.?(?!\w)", re.I),
     "a time"),
    (re.compile(rf"(?:[$€£¥₹]\s?{_NUM}(?:\s?(?:k|m|bn|thousand|million|billion|trillion)\b)?|"
                rf"\b{_NUM}\s?(?:dollars?|euros?|usd|eur|gbp|cents?|bucks|rupees?|yen|yuan)\b)", re.I),
     "an amount of money"),
    (re.compile(rf"\b{_NUM}\s?(?:%|percent\b|per cent\b)", re.I), "a percentage"),
    (re.compile(r"\b\d{1,3}\s?(?:-\s?)?(?:years?|yrs?)\s?(?:-\s?)?old\b", re.I), "an age"),
    (re.compile(rf"\b{_NUM}(?:\s?(?:-|–|to)\s?{_NUM})?[\s-]?(?:{_UNIT_ALT})(?![\w])", re.I), "a quantity"),
    (re.compile(rf"(?<![\w.]){_OPERAND}(?:\s*[-+*/^=<>×÷−]\s*{_OPERAND})+(?![\w])"), MATH),
    (re.compile(rf"(?<![\w+#.])(?:{_SYMBOL_ALT})(?![\w+#])", re.I), PROGRAMMING_LANGUAGE),
    (re.compile(r"\b[\w-]+\.(?:txt|csv|json|py|js|ts|html?|css|xml|ya?ml|md|pdf|docx?|xlsx?|pptx?|png|"
                r"jpe?g|gif|svg|mp3|mp4|wav|zip|tar|gz|exe|sh|c|cpp|h|java|rs|go|rb|php|sql|log|ini|"
                r"cfg|toml|ipynb)\b", re.I), "a file name"),
    (re.compile(r"\b[a-z0-9-]+\.(?:com|org|net|edu|gov|io|co|uk|de|ai|app|dev)\b", re.I), "a website"),
    (re.compile(r"(?<![\w'])(?:1[5-9]|20)\d0s\b|(?<!\w)'\d0s\b"), "a decade"),
    (re.compile(r"(?<![\w.,])(?:1[5-9]\d\d|20\d\d)(?![\w.,]\d)(?!\w)"), "a year"),
    (re.compile(r"\b\d+(?:st|nd|rd|th)\b", re.I), NUMBER),
    (re.compile(r"\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[A-Za-z0-9_]+(?:[-.][A-Za-z0-9_]+)*\b"), IDENTIFIER),
    (re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?:\s?(?:-|–)\s?\d[\d,]*(?:\.\d+)?)?(?![\w])"), NUMBER),
]

_FENCE_RE = re.compile(r"(```|~~~)[^\n]*\n.*?(?:\1|\Z)|```[^`\n]+```", re.S)
_LATEX_RE = re.compile(r"\$\$.+?\$\$|\\\[.+?\\\]|\\\(.+?\\\)|\$(?=[^$\n]*[\\^_{}=])[^$\n]+?\$", re.S)
_LATEX_CMD_RE = re.compile(r"\\[a-zA-Z]+")
_LATEX_RUN_RE = re.compile(r"\S*\\[a-zA-Z]+\S*(?:\s+\S*[\\{}^_=+*/]\S*)*")
_DOUBLE_QUOTE_RE = re.compile(r"\"([^\"\n]{1,300})\"|“([^”\n]{1,300})”")
_SINGLE_QUOTE_RE = re.compile(r"(?<![\w'’])['‘]([^'‘’\n]{2,120}?)['’](?![\w])")
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
# Words; a run of CJK characters is one token apart from Latin words inside it ("用matlab求").
_WORD_RE = re.compile(rf"[{_CJK}]+|[^\W\d_{_CJK}]+(?:[-'’][^\W\d_{_CJK}]+)*")
_LETTER_RE = re.compile(r"[^\W\d_]")
_NON_LATIN_LETTER_RE = re.compile(r"[^\W\d_\u0000-\u024f]")
_LINE_RE = re.compile(r"[^\n]*\n?")
_PARA_BREAK_RE = re.compile(r"\n[ \t]*\n")
_SENTENCE_BREAK_RE = re.compile(r"[.!?;:\n。？！；：]")
_SPACES_RE = re.compile(r"[ \t]+")
_SPACE_AROUND_NL_RE = re.compile(r" *\n *")
_NUMBERING_RE = re.compile(r" #\d+\b")
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?。？！])\s+|\s*\n\s*")
_ASSIGNMENT_RE = re.compile(r"^[\w.\[\]'\"]+\s*(?:[-+*/%|&]?=|:=)\s*\S")
_CALL_RE = re.compile(r"^[\w.]+\(.*\)\s*[;,]?$")
_IMPORT_RE = re.compile(r"^(?:import\s+[\w.]+(?:\s+as\s+\w+)?(?:\s*,\s*[\w.]+)*|from\s+[\w.]+\s+import\s+.+|"
                        r"#include\s*[<\"].+[>\"]|using\s+[\w.]+;|require\(.+\);?)$")
_CODE_START_RE = re.compile(
    r"^\s*(?:#include|#define|#import|import\s+\w|from\s+[\w.]+\s+import|def\s+\w+\s*\(|class\s+\w+|"
    r"function\s*\w*\s*\(|const\s+\w|let\s+\w|var\s+\w|public\s|private\s|protected\s|static\s|"
    r"package\s+[\w.]+;|using\s+[\w.]+;|return\b|if\s*\(|for\s*\(|while\s*\(|}\s*else|<\?php|"
    r"<[a-zA-Z][\w-]*(?:\s[^>]*)?>|//|/\*|\*/|@\w+|SELECT\s|INSERT\s|UPDATE\s|CREATE\s|\$\s|>>>)")
_REQUEST_PHRASE_RE = re.compile(
    r"\b(?:i want|i need|i'd like|i would like|please|can you|could you|would you|help me|"
    r"your task|you are|you will|make sure|give me|tell me|show me|let me know|how (?:do|can|to|would|should)|"
    r"what (?:is|are|would|should)|i'm looking|i am looking)\b", re.I)
_REQUEST_OPENERS = frozenset(_REQUEST_KIND) | frozenset({"i", "we", "my", "our", "i'm", "im", "let's"})
_ABBREVIATIONS = frozenset({"st", "dr", "mr", "mrs", "ms", "jr", "sr", "vs", "mt", "ft", "inc", "ltd", "prof",
                            "gen", "lt", "col", "sgt", "capt", "gov", "sen", "rep", "ave", "blvd"})
_POINTERS = frozenset({"this", "these", "following", "below", "above", "attached", "my", "given"})
_GREETINGS = frozenset({"hi", "hello", "hey", "please", "dear", "ok", "okay", "so", "now"})
_FRAME_NOISE = frozenset({"thing", "things", "stuff", "someone", "something", "person", "people",
                          "use", "using", "like", "get", "got", "make", "made", "way", "kind",
                          "type", "following", "given", "below", "above", "help"})
_NAME_CONNECTORS = frozenset({"of", "the", "and", "de", "del", "la", "le", "van", "von", "da", "di", "du", "y"})
_PLACE_PREPOSITIONS = frozenset({"in", "at", "from", "near"})
_LANGUAGE_HEADS = frozenset({"language", "languages", "translation", "translator", "word", "words", "text",
                             "speaker", "speakers", "version", "dictionary", "grammar", "alphabet", "lesson",
                             "lessons", "class", "course", "sentence", "sentences", "phrase", "phrases"})
# Words a context cue may look across ("symptoms of the <span>", "<span> get married").
_CUE_TRANSPARENT = frozenset({"the", "a", "an", "of", "for", "to", "with", "about", "on", "my", "your", "his", "her",
                              "their", "its", "our", "this", "that", "these", "those", "some", "any", "is", "are",
                              "was", "were", "be", "been", "being", "does", "do", "did", "get", "gets", "got",
                              "getting", "become", "became"})
_MEASURE_WORDS = frozenset({"long", "old", "far", "big", "tall", "high", "often", "fast", "deep", "heavy",
                            "thick", "thin", "strong", "warm", "wide", "low", "hard", "quickly", "close",
                            "large", "early", "late", "soon", "hot", "cold", "small"})
_CODE_HINTS = frozenset({"code", "function", "program", "script", "class", "method", "algorithm", "api",
                         "bug", "compile", "debug", "implement", "implementation", "library", "regex",
                         "query", "sql", "app", "website", "server", "database"})
# Descriptions given by form (patterns, pasted material): spaCy's reading keeps them.
_FORM_DESCRIPTIONS = frozenset(d for _, d in _FORM_PATTERNS) | {CODE, PASSAGE, MATH, QUOTED, "a quoted passage",
                                                                 "a table of data"}
_GENERIC_DESCRIPTIONS = frozenset({TOPIC, ENTITY, MERGED, NUMBER, IDENTIFIER, "a quantity", PASSAGE,
                                   QUOTED, "a quoted passage"})

_KIND_SENTENCE = {
    "definition": "It defines the term and explains what it is and how it is used.",
    "what": "It states the relevant facts directly and explains them.",
    "who": "It names the people involved and describes their roles.",
    "when": "It gives the relevant dates, timeline or historical context.",
    "where": "It gives locations and geographic details.",
    "why": "It explains the causes and reasons behind it.",
    "which": "It compares the possibilities and identifies the right one.",
    "howto": "It gives step-by-step instructions or practical advice.",
    "how": "It explains how it works or happens.",
    "quantity": "It gives the relevant figures, amounts or statistics.",
    "measure": "It gives measurements such as durations, ages, sizes or distances.",
    "yesno": "It says clearly whether it is true, possible or advisable, and why.",
    "compare": "It compares them and explains the differences.",
    "write": "It provides facts, material and examples that a piece of writing on it can draw on.",
    "explain": "It explains the subject in depth with clear examples.",
    "list": "It lists and describes relevant examples, options or recommendations.",
    "transform": "It contains text of the kind the request rewrites, summarizes or translates.",
    "code": "It explains the programming technique involved and includes working code examples.",
    "math": "It works through the mathematics step by step with explanations.",
    "analyze": "It analyzes and evaluates the material with reasoning and evidence.",
    "answer": "It contains the information needed to respond to the request.",
    "question": "It answers the question with relevant facts.",
    "keyword": "It gives general information and practical details on the subject.",
}
_KIND_DOC = {
    "howto": "a how-to guide or tutorial",
    "definition": "a dictionary, glossary or encyclopedia entry",
    "code": "a technical document, tutorial or code example",
    "math": "a mathematics text or worked solution",
    "write": "a reference text or example of writing",
    "transform": "a document or passage of text",
    "analyze": "an analytical report or reference document",
    "explain": "an explanatory article",
    "list": "a guide, listing or review article",
    "compare": "a comparison article or review",
}

# Word classes.
_FUNC, _QRY, _COM, _RARE = 0, 1, 2, 3


# --------------------------------------------------------------------------- tokens and spans

class _Token:
    """One word outside the form spans, with what the rules need to know about it."""
    __slots__ = ("start", "end", "low", "cls", "cap", "allcaps", "sent_start", "poss", "gaz", "gaz_len",
                 "brk_after", "adj_next")

    def __init__(self, start: int, end: int, text: str):
        self.start, self.end = start, end
        low = text.lower().replace("’", "'")
        self.poss = False
        if low.endswith("'s") and len(low) > 2 and low not in _FUNCTION:
            self.poss, low = True, low[:-2]
            self.end = end - 2
        self.low = low
        self.cap = text[0].isupper()
        self.allcaps = len(text) > 1 and text.isupper()
        self.cls = _word_class(low)
        self.sent_start = False
        self.gaz: Optional[str] = None
        self.gaz_len = 0
        self.brk_after = True  # a sentence break (or the end) follows
        self.adj_next = False  # the next token follows after plain spaces only


class _Span(NamedTuple):
    """A character range of the query that becomes one tag."""
    start: int
    end: int
    description: str
    source: str  # "form", "words", "pasted", "fallback"


@lru_cache(maxsize=200_000)
def _word_class(low: str) -> int:
    """Function, query-frame, common or rare; a hyphenated word is as rare as its rarest part."""
    if low in _FUNCTION:
        return _FUNC
    parts = low.split("-") if "-" in low else [low]
    classes = [_single_class(p) for p in parts if p]
    return max(classes) if classes else _FUNC


def _single_class(w: str) -> int:
    if w in _FUNCTION:
        return _FUNC
    forms = _base_forms(w)
    if any(f in _QUERY for f in forms):
        return _QRY
    if any(f in _COMMON for f in forms):
        return _COM
    return _RARE


def _base_forms(w: str) -> List[str]:
    """The word and its plausible base forms (plural, past, -ing, -ly, comparative)."""
    forms = [w]
    if len(w) <= 3:
        return forms
    if w.endswith("ies"):
        forms.append(w[:-3] + "y")
    if w.endswith("es"):
        forms.append(w[:-2])
    if w.endswith("s") and not w.endswith("ss"):
        forms.append(w[:-1])
    if w.endswith("ed"):
        forms += [w[:-2], w[:-1]]
        if len(w) > 5 and w[-3] == w[-4]:
            forms.append(w[:-3])
        if w.endswith("ied"):
            forms.append(w[:-3] + "y")
    if w.endswith("ing") and len(w) > 5:
        forms += [w[:-3], w[:-3] + "e"]
        if w[-4] == w[-5]:
            forms.append(w[:-4])
    if w.endswith("ly"):
        forms.append(w[:-2])
    if w.endswith("er"):
        forms += [w[:-2], w[:-1]]
    if w.endswith("est"):
        forms += [w[:-3], w[:-2]]
    return forms


def _occupied(occ: bytearray, s: int, e: int) -> bool:
    return occ.find(1, s, e) != -1


def _claim(occ: bytearray, spans: List[_Span], s: int, e: int, desc: str, source: str = "form") -> None:
    """Adds the span unless it overlaps one claimed earlier (earlier patterns win)."""
    if e > s and not _occupied(occ, s, e):
        occ[s:e] = b"\x01" * (e - s)
        spans.append(_Span(s, e, desc, source))


def _looks_like_code(line: str) -> bool:
    """A line that reads as source code (keywords, assignments, calls, symbol density)."""
    stripped = line.strip()
    if not stripped:
        return False
    symbols = sum(stripped.count(c) for c in "{}[]();=<>_*/\\|&$#@:")
    words = len(_WORD_RE.findall(stripped))
    if _CODE_START_RE.match(stripped) and (symbols or words <= 3):
        return True
    if _ASSIGNMENT_RE.match(stripped) or _CALL_RE.match(stripped) or _IMPORT_RE.match(stripped):
        return True
    if stripped[-1] in ";{}" and symbols >= 2:
        return True
    if re.match(r"^(?:if|elif|else|for|while|try|except|with|def|class)\b.*:$", stripped):
        return True
    return len(stripped) >= 8 and symbols / len(stripped) > 0.12 and symbols >= words


def _continues_code(line: str) -> bool:
    """Inside a code run: indented lines, comments, closing brackets and short lines stay code."""
    stripped = line.strip()
    return (line[:1] in (" ", "\t") or len(stripped) <= 3 or
            stripped.startswith(("#", "//", "/*", "*", "--", "}", ")", "]", "\"", "'", "@", "<")))


def _strong_code_line(line: str) -> bool:
    """A single line that is code on its own (a lone run needs this to become a tag)."""
    return bool(_CODE_START_RE.match(line.strip())) and sum(line.count(c) for c in "(){};=<>") >= 2


def _line_spans(text: str) -> List[Tuple[int, int, str]]:
    """Runs of code-like lines, table lines and LaTeX lines, as (start, end, description)."""
    out: List[Tuple[int, int, str]] = []
    run_kind: Optional[str] = None
    run_start = run_end = run_lines = 0

    def flush():
        if run_kind is not None and (run_lines >= 2 or run_kind != CODE or
                                     _strong_code_line(text[run_start:run_end])):
            out.append((run_start, run_end, run_kind))

    for m in _LINE_RE.finditer(text):
        body = m.group(0).rstrip("\n")
        if not body.strip():  # blank lines do not end a run
            continue
        if body.count("|") >= 2 and body.lstrip().startswith("|"):
            kind = "a table of data"
        elif _LATEX_CMD_RE.search(body) and len(_WORD_RE.findall(_LATEX_CMD_RE.sub("", body))) * 6 < len(body):
            kind = MATH
        elif _looks_like_code(body) or (run_kind == CODE and _continues_code(body)):
            kind = CODE
        else:
            kind = None
        end = m.start() + len(body.rstrip())
        if kind is not None and kind == run_kind:
            run_end, run_lines = end, run_lines + 1
            continue
        flush()
        run_kind, run_lines = kind, 1
        run_start, run_end = m.start() + len(body) - len(body.lstrip()), end
    flush()
    return out


def _form_spans(text: str, occ: bytearray) -> List[_Span]:
    """Spans recognised by their form: code, pasted blocks, math, URLs, quotes, dates, numbers."""
    spans: List[_Span] = []
    for m in _FENCE_RE.finditer(text):
        inner = m.group(0).strip("`~")
        code_lines = sum(1 for ln in inner.splitlines() if _looks_like_code(ln))
        desc = CODE if code_lines * 4 >= max(1, len([ln for ln in inner.splitlines() if ln.strip()])) else None
        _claim(occ, spans, m.start(), m.end(), desc or _passage_description(text))
    for m in _LATEX_RE.finditer(text):
        _claim(occ, spans, m.start(), m.end(), MATH)
    for s, e, desc in _line_spans(text):
        _claim(occ, spans, s, e, desc)
    for m in _LATEX_RUN_RE.finditer(text):
        _claim(occ, spans, m.start(), m.end(), MATH)
    for pattern, desc in _FORM_PATTERNS[:3]:
        for m in pattern.finditer(text):
            _claim(occ, spans, m.start(), m.end(), desc)
    for m in _DOUBLE_QUOTE_RE.finditer(text):
        _claim(occ, spans, m.start(), m.end(), _quote_description(m.group(1) or m.group(2)), "quote")
    for m in _SINGLE_QUOTE_RE.finditer(text):
        _claim(occ, spans, m.start(), m.end(), _quote_description(m.group(1)), "quote")
    for pattern, desc in _FORM_PATTERNS[3:]:
        if desc == MATH:
            for m in pattern.finditer(text):
                expr = m.group(0)
                ops = re.findall(r"[-+*/^=<>×÷−]", expr)
                if re.search(r"\d", expr) and (len(ops) >= 2 or any(o != "-" for o in ops)):
                    _claim(occ, spans, m.start(), m.end(), MATH)
            continue
        for m in pattern.finditer(text):
            _claim(occ, spans, m.start(), m.end(), desc)
    return spans


def _quote_description(inner: str) -> str:
    return QUOTED if len(inner.split()) <= 12 else "a quoted passage"


def _passage_description(request_text: str) -> str:
    """What the request calls the pasted material: the noun it points at ("this text", "the
    following problem") first, else any cue word in the request."""
    words = [w.lower() for w in _WORD_RE.findall(request_text[:2000])]
    pointed = [w for k, w in enumerate(words) if k and (words[k - 1] in _POINTERS or
                                                         k > 1 and words[k - 2] in _POINTERS)]
    for candidates in (pointed, words):
        for word in candidates:
            for desc, cues in _PASSAGE_KINDS:
                if word in cues:
                    return desc
    return PASSAGE


def _is_request_paragraph(para: str, n_words: int) -> bool:
    """A paragraph that asks for something (a request verb, a question, "I need ...")."""
    if n_words < 25 or "?" in para or _REQUEST_PHRASE_RE.search(para):
        return True
    for sentence in re.split(r"(?<=[.!?:])\s+|\n", para):
        m = _WORD_RE.search(sentence)
        if m and m.start() < 4 and m.group(0).lower() in _REQUEST_OPENERS:
            return True
    return False


def _blocks(text: str, occ: bytearray) -> List[Tuple[int, int]]:
    """Paragraphs, also split after a line ending with a colon (it may introduce pasted material)."""
    cuts = [(m.start(), m.end()) for m in _PARA_BREAK_RE.finditer(text) if not _occupied(occ, m.start(), m.end())]
    for m in re.finditer(r"[:：][ \t]*\n", text):
        if not _occupied(occ, m.start(), m.end()):
            cuts.append((m.end() - 1, m.end()))
    bounds, pos = [], 0
    for s, e in sorted(cuts):
        if s >= pos:
            bounds.append((pos, s))
            pos = e
    bounds.append((pos, len(text)))
    return [(s, e) for s, e in bounds if text[s:e].strip()]


def _pasted_spans(text: str, occ: bytearray, spans: List[_Span]) -> List[_Span]:
    """Pasted material becomes one tag per block: what follows a line introducing it ("Turn this
    text into a poem:"), and in long prompts every paragraph that does not read as the request."""
    bounds = _blocks(text, occ)
    if len(bounds) < 2:
        return spans
    paras = []
    for s, e in bounds:
        free = "".join(" " if occ[s + i] else ch for i, ch in enumerate(text[s:e]))
        paras.append((s, e, free, len(_WORD_RE.findall(free))))
    # True: the request; False: pasted material; None: (almost) nothing but form spans.
    flags: List[Optional[bool]] = [None if n < 3 else _is_request_paragraph(free, n) for _, _, free, n in paras]
    for i, (_, _, free, _) in enumerate(paras[:-1]):
        if flags[i] and free.rstrip().endswith((":", "：")):
            tail = range(i + 1, len(paras))
            if sum(paras[j][3] for j in tail) >= 30:
                for j in tail:
                    flags[j] = False if flags[j] is not None else None
                for j in reversed(tail):  # a closing request after the pasted text stays
                    if paras[j][3] < 40 and _is_closing_request(paras[j][2]):
                        flags[j] = True
                    elif flags[j] is not None:
                        break
            break
    else:
        if sum(p[3] for p in paras) <= LONG_PROMPT_WORDS:
            return spans
    if True not in flags or False not in flags:
        return spans
    blocks: List[List[int]] = []
    open_block = False
    for (s, e, _, _), flag in zip(paras, flags):
        if flag is False:
            if open_block:
                blocks[-1][1] = e
            else:
                blocks.append([s, e])
            open_block = True
        elif flag is True:
            open_block = False
    first_pasted = flags.index(False)
    before = [free for (_, _, free, _), f in zip(paras[:first_pasted], flags) if f]
    desc = _passage_description(" ".join(before or [free for (_, _, free, _), f in zip(paras, flags) if f]))
    kept = [sp for sp in spans if not any(bs <= sp.start and sp.end <= be for bs, be in blocks)]
    for bs, be in blocks:
        block = text[bs:be]
        s = bs + len(block) - len(block.lstrip())
        e = bs + len(block.rstrip())
        if any(sp.start < e and s < sp.end for sp in kept):
            continue
        occ[s:e] = b"\x01" * (e - s)
        kept.append(_Span(s, e, desc, "pasted"))
    return kept


def _is_closing_request(para: str) -> bool:
    """A short paragraph after pasted material that asks something about it."""
    m = _WORD_RE.search(para)
    first = m.group(0).lower() if m else ""
    return "?" in para or first in _REQUEST_KIND or first in ("what", "how", "why", "which", "who", "is", "can")


def _tokens(text: str, occ: bytearray, common_words: FrozenSet[str]) -> Tuple[List[_Token], str]:
    """The words outside form spans, classified in context; and how the text is foreign
    ("" English, "latin" another Latin-script language, "script" mostly another script)."""
    toks = [_Token(m.start(), m.end(), m.group(0)) for m in _WORD_RE.finditer(text)
            if not _occupied(occ, m.start(), m.end())]
    if not toks:
        return toks, ""
    newlines = [m.start() for m in re.finditer("\n", text)]
    prev_end = 0
    for i, t in enumerate(toks):
        gap = text[prev_end:t.start]
        if _occupied(occ, prev_end, t.start):
            free = "".join(ch for k, ch in enumerate(gap) if not occ[prev_end + k])
            adjacent = False
        else:
            free = gap
            adjacent = i > 0 and gap.strip(" \t") == "" and gap != ""
        if i and gap in (". ", ".") and toks[i - 1].low in _ABBREVIATIONS:  # "st. lucy"
            free, adjacent = " ", True
        brk = i == 0 or bool(_SENTENCE_BREAK_RE.search(free))
        t.sent_start = brk
        if i:
            toks[i - 1].brk_after, toks[i - 1].adj_next = brk, adjacent and not brk
        prev_end = t.end
    tail = text[prev_end:]
    if _occupied(occ, prev_end, len(text)):
        tail = "".join(ch for k, ch in enumerate(tail) if not occ[prev_end + k])
    toks[-1].brk_after = bool(_SENTENCE_BREAK_RE.search(tail))
    title_lines = _title_case_lines(toks, newlines)
    foreign = _foreignness(text, toks)
    for t in toks:
        # In foreign text rarity says nothing; names (and, in another script, Latin-script
        # words such as "matlab" or "Cmakelists") are what stays specific.
        if t.cls == _RARE and (t.low in common_words or
                               foreign == "latin" and not (t.cap and not t.sent_start) or
                               foreign == "script" and not t.low.isascii()):
            t.cls = _COM
        if bisect.bisect_left(newlines, t.start) in title_lines:
            t.cap = False
        elif t.cap and not t.sent_start and t.cls == _COM and not t.allcaps:
            t.cls = _RARE
    if foreign != "latin":
        _mark_gazetteer(toks)
    return toks, foreign


def _foreignness(text: str, toks: Sequence[_Token]) -> str:
    """"script" when most letters are outside the Latin alphabets, "latin" when most words are
    outside the English word lists, else ""."""
    letters = len(_LETTER_RE.findall(text))
    if letters and len(_NON_LATIN_LETTER_RE.findall(text)) * 2 > letters:
        return "script"
    known = sum(1 for t in toks if t.cls != _RARE)
    return "latin" if len(toks) >= 4 and known * 10 < len(toks) * 3 else ""


def _title_case_lines(toks: Sequence[_Token], newlines: List[int]) -> FrozenSet[int]:
    """Lines written in Title Case (ordinary words capitalised), where capitals say nothing about names."""
    per_line: Dict[int, List[int]] = {}
    for t in toks:
        if t.end - t.start >= 3 and not t.sent_start and t.cls in (_COM, _QRY):
            counts = per_line.setdefault(bisect.bisect_left(newlines, t.start), [0, 0])
            counts[0] += 1
            counts[1] += t.cap and not t.allcaps
    return frozenset(line for line, (n, caps) in per_line.items() if n >= 3 and caps > 0.6 * n)


def _mark_gazetteer(toks: List[_Token]) -> None:
    """Marks known names (longest match first) so lowercase queries still find places, languages, ..."""
    i = 0
    while i < len(toks):
        matched = 0
        for n in range(min(_GAZ_MAX, len(toks) - i), 0, -1):
            window = toks[i:i + n]
            if any(not w.adj_next or w.poss for w in window[:-1]):
                continue
            hit = _GAZETTEER.get(tuple(w.low for w in window))
            if hit is None:
                continue
            desc, cap_only = hit
            if cap_only and not (window[0].cap and not window[0].sent_start):
                continue
            window[0].gaz, window[0].gaz_len = desc, n
            for w in window:
                w.cls = _RARE
            matched = n
            break
        i += matched or 1


def _is_content(t: _Token) -> bool:
    """A word that belongs in a tag (rare, a name, or a gazetteer entry)."""
    return t.cls == _RARE


def _word_runs(toks: List[_Token]) -> List[Tuple[int, int]]:
    """Maximal runs of content tokens (inclusive index pairs), bridging 'of' and name connectors.

    Two gazetteer names side by side ("spanish english") stay two tags.
    """
    runs: List[Tuple[int, int]] = []
    i, n = 0, len(toks)
    while i < n:
        if not _is_content(toks[i]):
            i += 1
            continue
        start = i
        end = i + toks[i].gaz_len - 1 if toks[i].gaz else i
        while not toks[end].poss and toks[end].adj_next and end + 1 < n:
            nxt = end + 1
            if _is_content(toks[nxt]):
                if toks[nxt].gaz and toks[start].gaz and start + toks[start].gaz_len - 1 == end:
                    break
                end = nxt + (toks[nxt].gaz_len - 1 if toks[nxt].gaz else 0)
                continue
            bridged = _bridge(toks, end)
            if bridged is None:
                break
            end = bridged
        runs.append((start, end))
        i = end + 1
    return runs


def _bridge(toks: List[_Token], end: int) -> Optional[int]:
    """Index of the next content token when connectors ("of", "de la") join two name parts."""
    left = toks[end]
    j = end + 1
    while j < len(toks) and j - end <= 2 and toks[j].low in _NAME_CONNECTORS and not toks[j].poss:
        if not toks[j].adj_next:
            return None
        j += 1
    if j == end + 1 or j >= len(toks) or not _is_content(toks[j]):
        return None
    right = toks[j]
    named = left.cap and right.cap and not right.sent_start
    lower_of = j == end + 2 and toks[end + 1].low == "of" and left.gaz is None and right.gaz is None \
        and not left.cap and not right.cap
    if not (named or lower_of):
        return None
    return j + (right.gaz_len - 1 if right.gaz else 0)


def _cue_category(toks: List[_Token], a: int, b: int) -> Optional[str]:
    """The category named by the nearest cue around tokens a..b (function words may intervene)."""
    best: Optional[Tuple[int, int]] = None
    head = toks[b].low if b >= 0 else ""
    if head in _HEAD_CUES and (a < b or head in _SELF_NAMING):
        best = (0, _HEAD_CUES[head])
    k, j = 0, a - 1
    while j >= 0 and k <= 3 and not toks[j].brk_after and not toks[j].poss and toks[j].cls != _RARE:
        for phrase, cat in _BEFORE_CUES.get(toks[j].low, ()):
            L = len(phrase)
            if j - L + 1 >= 0 and tuple(t.low for t in toks[j - L + 1:j + 1]) == phrase:
                cand = (k, cat)
                if best is None or cand < best:
                    best = cand
        if toks[j].low not in _CUE_TRANSPARENT:
            break
        k, j = k + 1, j - 1
    k, j = 0, b + 1
    while j < len(toks) and k <= 3 and (j == 0 or not toks[j - 1].brk_after) and toks[j].cls != _RARE:
        for phrase, cat in _AFTER_CUES.get(toks[j].low, ()):
            L = len(phrase)
            if tuple(t.low for t in toks[j:j + L]) == phrase:
                cand = (k, cat)
                if best is None or cand < best:
                    best = cand
        if toks[j].low not in _CUE_TRANSPARENT:
            break
        k, j = k + 1, j + 1
    return _CATEGORIES[best[1]].description if best else None


def _describe_run(toks: List[_Token], a: int, b: int) -> str:
    """The tag description of a word run: gazetteer, possessive, context cue, place, else generic."""
    first, last = toks[a], toks[b]
    whole_gazetteer = first.gaz is not None and a + first.gaz_len - 1 == b
    if whole_gazetteer and first.gaz in ("a country", "a city", "a US state", "a continent"):
        return first.gaz
    if last.poss:
        return POSSESSOR
    if whole_gazetteer:
        nxt = toks[b + 1] if b + 1 < len(toks) and last.adj_next else None
        if first.gaz == "a language" and nxt is not None and nxt.cls in (_COM, _QRY) \
                and nxt.low not in _LANGUAGE_HEADS:
            return "a nationality or ethnic group"  # used as an adjective: "greek authorities"
        return first.gaz
    cue = _cue_category(toks, a, b)
    if cue:
        return cue
    named = any((t.cap and not t.sent_start) or t.allcaps for t in toks[a:b + 1])
    p = a - 1 if a > 0 and toks[a - 1].low != "the" else a - 2
    if named and p >= 0 and not toks[p].brk_after and toks[p].low in _PLACE_PREPOSITIONS \
            and (b > a or toks[p].low in ("from", "near")):
        return PLACE
    return ENTITY if named else TOPIC


def _fallback_run(toks: List[_Token], foreign: str) -> Optional[Tuple[int, int]]:
    """The main content phrase of a query with no rare word: the longest run of ordinary words,
    nouns that are not cue words first (in foreign text, the last word of that run)."""

    def eligible(t: _Token, wanted: Tuple[Tuple[int, ...], bool, bool]) -> bool:
        classes, strict, requests_too = wanted
        return t.cls in classes and t.low not in _FRAME_NOISE and \
            (t.low not in _REQUEST_KIND or requests_too and not t.sent_start) and \
            not (strict and (_is_verb_form(t.low) or t.low in _CUE_WORDS))

    for wanted in (((_COM,), True, False), ((_QRY,), True, False), ((_COM,), False, False),
                   ((_QRY,), False, False), ((_COM, _QRY), False, True)):
        best: Optional[Tuple[int, int]] = None
        i = 0
        while i < len(toks):
            if not eligible(toks[i], wanted):
                i += 1
                continue
            j = i
            while not toks[j].poss and toks[j].adj_next and j + 1 < len(toks) and eligible(toks[j + 1], wanted):
                j += 1
            if best is None or (j - i) >= (best[1] - best[0]):
                best = (i, j)
            i = j + 1
        if best is not None:
            a, b = best
            if foreign:
                return b, b
            for _ in range(2):  # trailing cue nouns stay literal and name the tag ("<x> film cast")
                if b > a and toks[b].low in _HEAD_CUES:
                    b -= 1
            return a, b
    return None


def _merge_numbers_into_runs(spans: List[_Span], text: str) -> List[_Span]:
    """A number right next to a word span is part of its name ("iphone 12", "route 66")."""
    out: List[_Span] = []
    for sp in sorted(spans):
        if out:
            prev = out[-1]
            gap = text[prev.end:sp.start]
            joinable = gap in (" ", "-") and (
                (prev.source == "words" and sp.description in (NUMBER, IDENTIFIER)) or
                (sp.source == "words" and prev.description in (NUMBER, IDENTIFIER)))
            if joinable:
                words = prev if prev.source == "words" else sp
                out[-1] = _Span(prev.start, sp.end, words.description, "words")
                continue
        out.append(sp)
    return out


def _cap_tags(spans: List[_Span], toks: List[_Token], text: str) -> List[_Span]:
    """Keeps at most MAX_TAGS tags by merging across the smallest gaps (single linkage)."""
    if len(spans) <= MAX_TAGS:
        return spans
    starts = [t.start for t in toks]
    gaps = []
    for i in range(len(spans) - 1):
        s, e = spans[i].end, spans[i + 1].start
        words = bisect.bisect_left(starts, e) - bisect.bisect_left(starts, s)
        gaps.append((words + (2 if "\n" in text[s:e] else 0), i))
    cuts = sorted(i for _, i in sorted(gaps, key=lambda g: (-g[0], g[1]))[:MAX_TAGS - 1])
    out, begin = [], 0
    for cut in cuts + [len(spans) - 1]:
        group = spans[begin:cut + 1]
        desc = _dominant_description(group)
        out.append(_Span(group[0].start, group[-1].end, desc, "merged" if len(group) > 1 else group[0].source))
        begin = cut + 1
    return out


def _dominant_description(group: List[_Span]) -> str:
    """A merged tag keeps the description covering most of its text, else "specific details"."""
    cover: Dict[str, int] = {}
    for sp in group:
        cover[sp.description] = cover.get(sp.description, 0) + sp.end - sp.start
    best = max(cover, key=lambda d: (cover[d], d))
    total = group[-1].end - group[0].start
    return best if len(cover) == 1 or cover[best] * 3 >= total * 2 else MERGED


def _numbered(spans: List[_Span]) -> List[str]:
    """Descriptions with "#1", "#2" where the same one appears more than once (the paper's format)."""
    counts: Dict[str, int] = {}
    for sp in spans:
        counts[sp.description] = counts.get(sp.description, 0) + 1
    seen: Dict[str, int] = {}
    out = []
    for sp in spans:
        if counts[sp.description] > 1:
            seen[sp.description] = seen.get(sp.description, 0) + 1
            out.append(f"{sp.description} #{seen[sp.description]}")
        else:
            out.append(sp.description)
    return out


def _neutralize(segment: str) -> str:
    """Literal tag markers in the query must not read as tags of the template."""
    return segment.replace(OPEN, "<fi >").replace(CLOSE, "</fi >")


def _build_template(text: str, spans: List[_Span], descs: List[str]) -> str:
    parts, pos = [], 0
    for sp, desc in zip(spans, descs):
        parts.append(_neutralize(text[pos:sp.start]))
        parts.append(f"{OPEN}{desc}{CLOSE}")
        pos = sp.end
    parts.append(_neutralize(text[pos:]))
    out = _SPACES_RE.sub(" ", "".join(parts))
    return _SPACE_AROUND_NL_RE.sub("\n", out).strip()


# --------------------------------------------------------------------------- description

def _request_kind(toks: List[_Token], descs: Sequence[str], text: str) -> str:
    """What the query asks for: a question type, an imperative kind, code, math or keywords."""
    lows = [t.low for t in toks]
    i = 0
    while i < len(lows):
        if lows[i] in _GREETINGS:
            i += 1
        elif lows[i] in ("can", "could", "would") and i + 1 < len(lows) and lows[i + 1] == "you":
            i += 2
        else:
            break
    kind = "keyword"
    first = lows[i] if i < len(lows) else ""
    nxt = lows[i + 1] if i + 1 < len(lows) else ""
    rest = set(lows)
    if first in ("what", "whats", "what's"):
        frame = [t for t in toks[i + 1:] if t.cls in (_COM, _QRY) and t.low not in _FRAME_NOISE]
        kind = "definition" if not frame or rest & {"meaning", "mean", "means", "definition"} else "what"
    elif first in ("who", "whom", "whose"):
        kind = "who"
    elif first in ("when", "where", "why", "which"):
        kind = first
    elif first == "how":
        if nxt in ("many", "much"):
            kind = "quantity"
        elif nxt in _MEASURE_WORDS:
            kind = "measure"
        elif nxt in ("to", "do", "can", "should", "would", "could") or "to" in lows[i + 1:i + 3]:
            kind = "howto"
        else:
            kind = "how"
    elif first in ("is", "are", "was", "were", "can", "could", "does", "do", "did", "should", "will",
                   "would", "has", "have", "may", "might", "must"):
        kind = "yesno"
    elif first in _REQUEST_KIND:
        kind = _REQUEST_KIND[first]
    else:
        verbs = [lw for k, (lw, t) in enumerate(zip(lows, toks)) if lw in _REQUEST_KIND and
                 (t.sent_start or k and (lows[k - 1] in ("you", "please", "me", "to") or
                                         "," in text[toks[k - 1].end:t.start]))]
        if verbs:
            kind = _REQUEST_KIND[verbs[0]]
        elif rest & {"meaning", "definition", "define", "mean"}:
            kind = "definition"
        elif rest & {"vs", "versus", "difference", "compare"}:
            kind = "compare"
        elif rest & {"best", "top", "list", "ideas", "examples"}:
            kind = "list"
        elif rest & {"cost", "price", "salary", "much", "many"}:
            kind = "quantity"
        elif "to" in lows[:1] or "how" in rest or rest & {"recipe", "steps"}:
            kind = "howto"
        elif text.rstrip().endswith("?"):
            kind = "question"
    if MATH in descs or kind == "math":
        return "math"
    if CODE in descs or PROGRAMMING_LANGUAGE in descs or "a code element" in descs or \
            (kind in ("write", "code", "transform", "explain", "analyze") and rest & _CODE_HINTS):
        return "code"
    return kind


def _with_specific(desc: str) -> str:
    """"a city" -> "a specific city" for the description's list of subjects."""
    if "specific" in desc:
        return desc
    for article in ("a ", "an "):
        if desc.startswith(article):
            return "a specific " + desc[len(article):]
    return desc


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


@lru_cache(maxsize=50_000)
def _is_verb_form(low: str) -> bool:
    """A verb or a verb's -ing/-ed form (not named as a detail, not preferred as a fallback tag)."""
    return low in _VERBS or low.endswith(("ing", "ed")) and any(f in _VERBS for f in _base_forms(low))


@lru_cache(maxsize=50_000)
def _is_detail_noun(low: str) -> bool:
    """A noun that can name what is asked ("brother", "rate", "side effects"), not a verb form."""
    if low.endswith(("ing", "ed")) and any(f in _VERBS for f in _base_forms(low)):
        return False
    return low in _DETAIL_NOUNS or low not in _PURE_VERBS and any(f in _DETAIL_NOUNS for f in _base_forms(low))


def _focus_phrases(toks: List[_Token], spans: List[_Span]) -> List[str]:
    """Noun phrases of frame words (outside tags) that say what about the subject is asked
    ("prime rate", "side effects"): adjacent frame words ending in a noun, at most four."""
    phrases: List[str] = []
    current: List[Tuple[str, bool]] = []
    for t in toks:
        frame = (t.cls in (_COM, _QRY) and t.low not in _FRAME_NOISE and
                 not (t.sent_start and t.low in _REQUEST_KIND) and
                 not any(sp.start <= t.start < sp.end for sp in spans))
        noun = frame and _is_detail_noun(t.low)
        if noun or frame and not _is_verb_form(t.low):
            current.append((t.low, noun))
        elif current:
            current.append(("", False))  # this word ends the phrase
        if current and (not current[-1][0] or not t.adj_next or t.poss):
            while current and not current[-1][1]:
                current.pop()
            phrase = " ".join(w for w, _ in current[-4:])
            if phrase and phrase not in phrases:
                phrases.append(phrase)
            current = []
        if len(phrases) >= 4:
            break
    return phrases


def _request_sentence(template: str) -> str:
    """The sentence of the rendered template that asks (a question or a request verb), shortened."""
    rendered = _NUMBERING_RE.sub("", render_with_descriptions(template)).replace('"', "'")
    sentences = [x.strip() for x in _SENTENCE_SPLIT_RE.split(rendered) if _WORD_RE.search(x)] or [rendered]
    chosen = sentences[0]
    for sentence in sentences:
        first = _WORD_RE.search(sentence)
        if sentence.endswith("?") or first and first.group(0).lower() in _REQUEST_KIND:
            chosen = sentence
            break
    words = chosen.split()
    quoted = " ".join(words[:MAX_QUOTED_WORDS]) + (" ..." if len(words) > MAX_QUOTED_WORDS else "")
    return quoted.rstrip(" ?.!:;,")


_INSTRUCTION_KINDS = frozenset({"write", "explain", "list", "transform", "analyze", "answer", "compare", "howto"})
_NUMERIC_DESCRIPTIONS = frozenset({NUMBER, "a quantity", "a year", "a decade", "a date or period", "a time",
                                   "a percentage", "an amount of money"})


def _document_kind(kind: str, descs: Sequence[str]) -> str:
    specific = [d for d in descs if d not in _GENERIC_DESCRIPTIONS and d in _DOC_KIND]
    # In a long request one incidental tag ("Use UK spelling") does not say what the document is.
    incidental = len(descs) >= 4 and max((specific.count(d) for d in specific), default=0) < 2
    doc_kind = None
    if kind in ("code", "math"):
        doc_kind = _KIND_DOC[kind]
    elif specific and not (incidental and kind in _KIND_DOC):
        doc_kind = _DOC_KIND[max(specific, key=lambda d: (specific.count(d), -specific.index(d)))]
    elif kind in _KIND_DOC:
        doc_kind = _KIND_DOC[kind]
    elif descs:
        doc_kind = _DOC_KIND.get(descs[0])
    return doc_kind or "an informational article or reference document"


#: Document kinds chosen from a slot's type alone that often miss what the request is about (a
#: place slot in a question about a sports title or a law).
_WEAK_KINDS = frozenset({"a geography, travel or encyclopedia article", "an informational article or reference document"})


#: Cue nouns that are attributes of anything rather than a topic ("age", "worth", "net").
_NOT_TOPICS = frozenset({"age", "worth", "net", "height", "birthday", "death", "record", "video", "version",
                         "error", "errors", "feature", "features", "care", "diet", "mass", "solution", "field", "major",
                         "roast"})


#: Categories whose cue nouns do not make a request about their kind of document: place cues are
#: the kind being corrected; a person cue ("president of <X>") would make "a biography about a
#: specific country"; "gas", "element" are as often everyday words as chemistry.
_NO_TOPIC_KINDS = frozenset({PLACE, "a person", "a chemical or substance"})


@lru_cache(maxsize=1)
def _topic_cues() -> Dict[str, FrozenSet[int]]:
    """One-word cue nouns by the categories they belong to, for telling what a request is about
    from its literal words ("won a national championship in football" -> sports). Verbs ("run",
    "signed", "grow") cue too many topics; nouns cued by three categories or more say nothing;
    see ``_NO_TOPIC_KINDS`` for the categories left out."""
    out: Dict[str, set] = {}
    for i, cat in enumerate(_CATEGORIES):
        if cat.description in _NO_TOPIC_KINDS:
            continue
        for phrase in cat.before + cat.after:
            w = phrase[0]
            if len(phrase) == 1 and w not in _NOT_TOPICS and not _is_verb_form(w) and w not in _PURE_VERBS:
                out.setdefault(w, set()).add(i)
    return {w: frozenset(c) for w, c in out.items() if len(c) <= 2}


def _topic_kind(words: Sequence[str]) -> Optional[str]:
    """The document kind the request's literal words point to, when one category's cues win."""
    votes: Dict[int, int] = {}
    for w in words:
        for c in _topic_cues().get(w, ()):
            votes[c] = votes.get(c, 0) + 1
    ranked = sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))
    if not ranked or len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None
    return _CATEGORIES[ranked[0][0]].doc_kind


def _subjects(descs: Sequence[str], limit: int) -> List[str]:
    ordered: List[str] = []
    for d in descs:
        if d not in ordered:
            ordered.append(d)
    subjects = [f"more than one {d.split(' ', 1)[1]}" if descs.count(d) > 1 and d != MERGED else _with_specific(d)
                for d in ordered[:limit]]
    if len(ordered) > limit:
        subjects.append("other specific details")
    return subjects


def _content(kind: str, spans: List[_Span], toks: List[_Token], text: str) -> Optional[str]:
    """What the document must do for this request, from the request's meaning (a verb phrase)."""
    slots = [(sp.start, sp.end, d) for sp, d in zip(spans, _numbered(spans))]
    content = request_content(text, slots, load_nlp())
    if content is None and kind in _INSTRUCTION_KINDS and toks and toks[0].low in _REQUEST_KIND:
        content = instruction_content(text, slots)
    return content


def _description(template: str, spans: List[_Span], toks: List[_Token], text: str, foreign: str = "") -> str:
    """The document kind, its subjects and what it must say to answer the request ("A biography or
    profile about a specific person that says what team the person will play for in the year").
    Requests not rephrased from their meaning (foreign, long or unusual ones) get three assembled
    sentences: kind and subjects, what such a document does, and the request itself."""
    descs = [sp.description for sp in spans]
    kind = _request_kind(toks, descs, text)
    doc_kind = _document_kind(kind, descs)
    if doc_kind in _WEAK_KINDS and len(toks) <= LONG_PROMPT_WORDS:
        literal = [t.low for t in toks if not any(sp.start <= t.start < sp.end for sp in spans)]
        doc_kind = _topic_kind(literal) or doc_kind
    content = None if foreign or kind in ("code", "math") else _content(kind, spans, toks, text)
    if content:
        named = [d for d in descs if d not in _NUMERIC_DESCRIPTIONS] or descs
        return f"{doc_kind[0].upper()}{doc_kind[1:]} about {_join(_subjects(named, 2))} that {content}."
    sentence1 = f"{doc_kind[0].upper()}{doc_kind[1:]} about {_join(_subjects(descs, MAX_SUBJECTS))}"
    focus = _focus_phrases(toks, spans)
    if focus:
        sentence1 += f", including details on the {_join(focus)}"
    return f'{sentence1}. {_KIND_SENTENCE[kind]} It should answer a request like "{_request_sentence(template)}".'


def _quote_cue(toks: List[_Token], sp: _Span) -> str:
    """A quoted title takes the category its context names ("the song 'X'")."""
    if sp.description != QUOTED:
        return sp.description
    before = bisect.bisect_left([t.start for t in toks], sp.start)
    cue = _cue_category(toks, before, before - 1) if toks else None
    return cue if cue in ("a film or TV show", "a song or album", "a book or written work", "a word or term",
                          "a company or brand") else QUOTED


# --------------------------------------------------------------------------- entry point

def genericize(text: str, common_words: Optional[FrozenSet[str]] = None) -> Tuple[str, str]:
    """Returns ``(template, compatible_document_description)`` for one query.

    ``common_words``: extra lowercase words (frequent across the whole query set) that count
    as frame words. Deterministic; a query with no word or number yields a template with no
    tag, which :func:`transforms.template_format.validate_template` rejects.
    """
    text = text.strip()
    common = common_words or frozenset()
    occ = bytearray(len(text))
    spans = _form_spans(text, occ)
    spans = _pasted_spans(text, occ, spans)
    toks, foreign = _tokens(text, occ, common)
    for a, b in _word_runs(toks):
        spans.append(_Span(toks[a].start, toks[b].end, _describe_run(toks, a, b), "words"))
    spans = [sp if sp.source != "quote" else _Span(sp.start, sp.end, _quote_cue(toks, sp), "form")
             for sp in spans]
    spans = _merge_numbers_into_runs(spans, text)
    if not spans and toks:
        run = _fallback_run(toks, foreign)
        if run is not None:
            a, b = run
            spans.append(_Span(toks[a].start, toks[b].end, _cue_category(toks, a, b) or TOPIC, "fallback"))
    spans = _cap_tags(sorted(spans), toks, text)
    if not foreign:     # spaCy's English pipeline reads English only
        spans = [_Span(sl.start, sl.end, sl.description, "typed")
                 for sl in type_slots(text, [Slot(sp.start, sp.end, sp.description) for sp in spans], load_nlp(),
                                      _FORM_DESCRIPTIONS, _NAME_FREE_WORDS)]
        spans = _cap_tags(spans, toks, text)
    template = _build_template(text, spans, _numbered(spans))
    return template, _description(template, spans, toks, text, foreign)

