"""Deterministic CPU genericizer: a real query -> (``<fi>`` template, compatible document description).

The embedded default backend of the genericize stage (the paper distils an LLM for this; see
``templatizer_prompt`` for that backend). Pure Python and regex so it runs anywhere at
thousands of queries per second. Spans that name something specific become tags: forms
(numbers, dates, quotes, code, URLs), gazetteer names, proper nouns and rare content words.
Word lists live in ``resources/genericize_*.txt`` (each file's header describes its format).
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

from templates_mining.template_format import CLOSE, OPEN

#: At most this many tags per template; the tags past the limit merge into the last one.
MAX_TAGS = 10

_RESOURCES = Path(__file__).parent / "resources"

TOPIC = "a specific topic"
ENTITY = "a specific entity"
OWNER = "a person or organization"
CODE = "a piece of code"
MERGED = "specific details"

# --- word lists -----------------------------------------------------------------------------


def _lines(name: str) -> List[str]:
    text = (_RESOURCES / name).read_text(encoding="utf-8")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def _words(name: str) -> FrozenSet[str]:
    return frozenset(w.lower() for ln in _lines(name) for w in ln.split())


class _Lexicon:
    """All resource files, parsed once per process."""

    def __init__(self) -> None:
        self.function = _words("genericize_function_words.txt")
        self.query = _words("genericize_query_words.txt")
        self.common = _words("genericize_common_words.txt")
        self.units = _words("genericize_units.txt")
        self.request_kind: Dict[str, str] = {}
        for ln in _lines("genericize_request_verbs.txt"):
            kind, _, verbs = ln.partition(":")
            for v in verbs.split():
                self.request_kind.setdefault(v.lower(), kind.strip())
        self.passage_kinds: List[Tuple[str, FrozenSet[str]]] = []
        for ln in _lines("genericize_passage_kinds.txt"):
            desc, _, cues = ln.partition(":")
            self.passage_kinds.append((desc.strip(), frozenset(cues.split())))
        # gazetteer: token tuple -> (description, needs capital letter)
        self.gazetteer: Dict[Tuple[str, ...], Tuple[str, bool]] = {}
        for ln in _lines("genericize_gazetteer.txt"):
            desc, _, names = ln.partition(":")
            for name in names.split(","):
                name = name.strip().lower()
                if not name:
                    continue
                cap = name.startswith("=")
                key = tuple(_tokens_lower(name.lstrip("=")))
                if key and key not in self.gazetteer:
                    self.gazetteer[key] = (desc.strip(), cap)
        self.gaz_max = max((len(k) for k in self.gazetteer), default=1)
        # categories: description -> document kind; cue token tuples indexed by edge token
        self.doc_kind: Dict[str, str] = {}
        self.cues_before: Dict[str, List[Tuple[Tuple[str, ...], int, str]]] = {}
        self.cues_after: Dict[str, List[Tuple[Tuple[str, ...], int, str]]] = {}
        for rank, ln in enumerate(_lines("genericize_categories.txt")):
            parts = [p.strip() for p in ln.split("|")] + ["", "", ""]
            desc, kind, before, after = parts[:4]
            self.doc_kind.setdefault(desc, kind)
            for cue in before.split(","):
                toks = tuple(_tokens_lower(cue))
                if toks:
                    self.cues_before.setdefault(toks[-1], []).append((toks, rank, desc))
            for cue in after.split(","):
                toks = tuple(_tokens_lower(cue))
                if toks:
                    self.cues_after.setdefault(toks[0], []).append((toks, rank, desc))
        self.literal = self.function | self.query | frozenset(self.request_kind)
        self.pasted = frozenset(d for d, _ in self.passage_kinds) | {CODE, "a table of data"}


@lru_cache(maxsize=1)
def _lex() -> _Lexicon:
    return _Lexicon()


_LOWER_TOKEN_RE = re.compile(r"[^\W_]+(?:[-'.+#][^\W_]+)*[+#]*", re.UNICODE)


def _tokens_lower(text: str) -> List[str]:
    return [m.group(0) for m in _LOWER_TOKEN_RE.finditer(text.lower())]


def _stems(word: str) -> Tuple[str, ...]:
    """The word and its candidate base forms (simple plural and verb endings stripped)."""
    out = [word]
    n = len(word)
    if n > 3 and word.endswith("ies"):
        out.append(word[:-3] + "y")
    if n > 3 and word.endswith("es"):
        out.append(word[:-2])
    if n > 2 and word.endswith("s") and not word.endswith("ss"):
        out.append(word[:-1])
    for suf in ("ing", "ed"):
        if n > len(suf) + 2 and word.endswith(suf):
            base = word[: -len(suf)]
            out += [base, base + "e"]
            if len(base) > 2 and base[-1] == base[-2]:
                out.append(base[:-1])
            if suf == "ed" and base.endswith("i"):
                out.append(base[:-1] + "y")
    if n > 4 and word.endswith("ly"):
        out.append(word[:-2])
    return tuple(out)


def _in(word: str, vocab: FrozenSet[str]) -> bool:
    return any(s in vocab for s in _stems(word))


# --- long prompts: code blocks and pasted paragraphs ---------------------------------------

_FENCE_RE = re.compile(r"```[^\n]*\n.*?(?:```|\Z)|```.*?```", re.DOTALL)
_CODE_LINE_RE = re.compile(
    r"^\s*(?:def |class |import |from \S+ import|#include|function\b|public |private |"
    r"const |let |var |return\b|if\s*\(|for\s*\(|while\s*\(|SELECT |CREATE |<\w+[ >]|"
    r"\w+\s*=\s*\S|[}{\])];?\s*$|//|/\*|\$ )|[;{]\s*$")
_PARA_SPLIT_RE = re.compile(r"\n\s*\n")
_LONG_PARA = 400


def _is_code(block: str) -> bool:
    lines = [ln for ln in block.splitlines() if ln.strip()]
    if not lines:
        return False
    hits = sum(1 for ln in lines if _CODE_LINE_RE.search(ln))
    return hits >= max(2, (len(lines) + 1) // 2)


def _is_table(block: str) -> bool:
    lines = [ln for ln in block.splitlines() if ln.strip()]
    return len(lines) >= 3 and sum(1 for ln in lines if ln.count("|") >= 2 or ln.count("\t") >= 2) >= len(lines) * 0.6


def _looks_like_request(block: str) -> bool:
    """A paragraph that asks for something (rather than pasted material)."""
    if len(block) > _LONG_PARA or _is_code(block) or _is_table(block):
        return False
    lex = _lex()
    if "?" in block:
        return True
    toks = _tokens_lower(block)
    return any(t in lex.request_kind or t in ("i", "me", "my", "you", "please") for t in toks[:12])


def _passage_kind(request_text: str) -> str:
    toks = set(_tokens_lower(request_text))
    for desc, cues in _lex().passage_kinds:
        if toks & cues:
            return desc
    return "a passage of text"


# --- tokenisation of one request paragraph -------------------------------------------------

_MONTHS = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
           r"sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_NUM = r"\d+(?:[.,]\d+)*"
_SPAN_PATTERNS: Sequence[Tuple[str, str]] = (
    ("url", r"(?:https?://|www\.)[^\s<>\"')\]]+"),
    ("email", r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    ("icode", r"`[^`\n]{1,200}`"),
    ("dquote", r"\"[^\"\n]{1,300}\"|\u201c[^\u201d\n]{1,300}\u201d"),
    ("squote", r"(?<![\w'])'[^'\n]{2,120}'(?![\w])|\u2018[^\u2019\n]{2,120}\u2019(?![\w])"),
    ("date", rf"\b(?:{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTHS},?\s+\d{{4}}"
             rf"|\d{{4}}-\d{{1,2}}-\d{{1,2}}|\d{{1,2}}[/.]\d{{1,2}}[/.]\d{{2,4}}|{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?\b(?!\s*(?:{_MONTHS}|[:%])))"),
    ("monthyear", rf"\b{_MONTHS}\s+\d{{4}}\b"),
    ("time", r"\b\d{1,2}(?::\d{2})+\s*(?:[ap]\.?m\.?)?\b|\b\d{1,2}\s*[ap]\.?m\.?(?![\w])"),
    ("website", r"\b[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|edu|gov|io|co|uk|de|ai|info)\b(?:/\S*)?"),
    ("file", r"\b[\w-]+\.(?:py|js|ts|java|cpp|c|h|rs|go|rb|php|html|css|json|csv|txt|xml|yaml|yml|"
             r"md|pdf|docx?|xlsx?|pptx?|png|jpe?g|gif|svg|mp3|mp4|zip|exe|sh|sql|ipynb)\b"),
    ("money", rf"[$€£¥]\s?{_NUM}(?:\s?(?:k|m|bn|million|billion|thousand|hundred)\b)?"
              rf"|\b{_NUM}\s?(?:dollars?|usd|euros?|eur|pounds sterling|cents?|rupees?|yen|bucks)\b"),
    ("percent", rf"\b{_NUM}\s?(?:%|percent\b|per cent\b)"),
    ("math", r"(?:\b\w{1,3}\s*[-+*/^=<>]\s*)+(?:\b\w{1,3})(?:\s*[-+*/^=<>]\s*\w{1,3})*"
             r"|\b[a-z]?\d*[a-z]?\s*\^\s*\d+\b"),
    ("decade", r"\b(?:1[5-9]|20)\d0'?s\b|'\d0s\b"),
    ("year", r"\b(?:1[0-9]|20)\d\d\b(?![-.,]?\d)"),
    ("ident", r"\b(?=[\w-]*\d)(?=[\w-]*[^\W\d_])[\w]+(?:-[\w]+)*\b"),
    ("number", rf"\b{_NUM}(?:st|nd|rd|th)?\b"),
    ("word", r"[^\W\d_]+(?:[-'\u2019.&][^\W\d_]+)*(?:\+\+|#)?"),
    ("punct", r"\S"),
)
_TOKEN_RE = re.compile("|".join(f"(?P<{k}>{p})" for k, p in _SPAN_PATTERNS), re.IGNORECASE | re.UNICODE)
_FORM_DESC = {
    "url": "a URL", "email": "an email address", "icode": "a code element", "date": "a date",
    "monthyear": "a date", "time": "a time", "website": "a website", "file": "a file name",
    "money": "an amount of money", "percent": "a percentage", "math": "a mathematical expression",
    "decade": "a decade", "year": "a year", "ident": "a specific identifier", "number": "a number",
}
_FORM_ONLY = frozenset(_FORM_DESC.values()) - {"a date", "a year", "a mathematical expression", "a URL"}
_SENTENCE_END = frozenset(".!?:;\n")


class _Tok:
    """One token of a request paragraph: literal text or the start of a tag."""

    __slots__ = ("text", "low", "kind", "start", "end", "initial", "tag", "desc", "cap")

    def __init__(self, text: str, kind: str, start: int, end: int, initial: bool):
        self.text, self.kind, self.start, self.end, self.initial = text, kind, start, end, initial
        self.low = text.lower()
        self.tag = False
        self.desc = ""
        self.cap = kind == "word" and text[:1].isupper()


def _tokenize(text: str) -> List[_Tok]:
    toks: List[_Tok] = []
    initial = True
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup or "punct"
        s = m.group(0)
        if kind == "math" and not re.search(r"\d", s) or kind == "math" and re.fullmatch(r"[\w\s-]+", s):
            # "covid-19", "x-ray": hyphenated words, not arithmetic
            for sub in _TOKEN_RE.finditer(s):
                subkind = sub.lastgroup if sub.lastgroup != "math" else "word"
                toks.append(_Tok(sub.group(0), subkind, m.start() + sub.start(), m.start() + sub.end(), initial))
                initial = False
            continue
        if kind == "word" and re.search(r"['\u2019]s$", s, re.IGNORECASE) and s.lower() not in _lex().function:
            toks.append(_Tok(s[:-2], kind, m.start(), m.end() - 2, initial))
            toks.append(_Tok(s[-2:], "poss", m.end() - 2, m.end(), False))
            initial = False
            continue
        if toks and "\n" in text[toks[-1].end:m.start()]:
            initial = True
        toks.append(_Tok(s, kind, m.start(), m.end(), initial))
        initial = kind == "punct" and (s in _SENTENCE_END or initial and s in "\"'(-*#>[")
    return toks


# --- span selection -------------------------------------------------------------------------

def _mark_gazetteer(toks: List[_Tok]) -> None:
    lex = _lex()
    i = 0
    while i < len(toks):
        if toks[i].kind != "word":
            i += 1
            continue
        hit = 0
        for n in range(min(lex.gaz_max, len(toks) - i), 0, -1):
            window = toks[i:i + n]
            if any(t.kind != "word" for t in window):
                continue
            entry = lex.gazetteer.get(tuple(t.low for t in window))
            if entry is None:
                continue
            desc, needs_cap = entry
            if needs_cap and not (toks[i].cap and not toks[i].initial):
                continue
            toks[i].tag, toks[i].desc, toks[i].kind = True, desc, "gaz"
            for t in window[1:]:
                t.kind, t.tag, t.desc = "cont", True, ""
            hit = n
            break
        i += hit or 1


def _is_literal(tok: _Tok, common: FrozenSet[str], extra: FrozenSet[str]) -> bool:
    lex = _lex()
    low = tok.low.replace("\u2019", "'")
    if len(low) <= 1 or low in lex.literal or low in lex.units or low in extra:
        return True
    return _in(low, lex.literal) or _in(low, common) or _in(low, extra)


def _select(toks: List[_Tok], extra: FrozenSet[str]) -> None:
    """Marks tag starts (``tag`` + ``desc``) and continuations (kind ``cont``)."""
    lex = _lex()
    words = [t for t in toks if t.kind == "word"]
    title_case = len(words) >= 4 and sum(t.cap for t in words) >= 0.6 * len(words)
    for t in toks:
        if t.kind in _FORM_DESC:
            t.tag, t.desc = True, _FORM_DESC[t.kind]
        elif t.kind in ("dquote", "squote"):
            inner = t.text[1:-1].strip()
            if inner and not all(w in lex.function for w in _tokens_lower(inner)):
                t.tag = True
                t.desc = "a quoted passage" if len(inner.split()) > 8 else "a quoted title or phrase"
        elif t.kind == "word":
            low = t.low
            proper = t.cap and not t.initial and not title_case and low not in lex.function and len(low) > 1
            if proper or not _is_literal(t, lex.common, extra):
                t.tag = True
                t.desc = ENTITY if proper or t.cap else TOPIC
                t.kind = "content"
    # number + unit -> one quantity tag; "N years old" -> an age
    for i, t in enumerate(toks):
        if t.kind == "number" and i + 1 < len(toks) and toks[i + 1].kind in ("word", "content") \
                and toks[i + 1].low in lex.units:
            if i + 2 < len(toks) and toks[i + 2].low == "old":
                t.desc = "an age"
            else:
                t.desc = "a quantity"
                toks[i + 1].kind, toks[i + 1].tag, toks[i + 1].desc = "cont", True, ""
    _merge_content(toks)


_NAME_JOINERS = frozenset({"of", "the", "de", "and", "&", "la", "von", "van", "del", "da", "di"})


def _merge_content(toks: List[_Tok]) -> None:
    """Adjacent content words (and proper-name runs like ``Bank of America``) form one tag."""
    prev: Optional[_Tok] = None
    for i, t in enumerate(toks):
        if t.kind == "content":
            if prev is not None:
                t.kind, t.desc = "cont", ""
                if t.cap or prev.desc == ENTITY and t.desc != TOPIC:
                    prev.desc = ENTITY if prev.desc in (TOPIC, ENTITY) else prev.desc
            else:
                prev = t
            continue
        if prev is not None and t.kind in ("number", "ident"):
            t.kind, t.desc = "cont", ""  # "iphone 12", "tesla model3": a model name
            continue
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        joinable = prev is not None and t.kind == "word" and nxt is not None and nxt.kind == "content" and (
            t.low in _NAME_JOINERS and prev.cap and nxt.cap or len(t.low) == 1 and t.low not in ("a", "i"))
        if joinable:
            t.kind, t.tag = "cont", True
            continue
        if t.kind != "cont":
            prev = None


def _cue_desc(toks: List[_Tok], i: int, j: int) -> Optional[str]:
    """The category whose context cue stands nearest a span toks[i:j] (only function words between)."""
    lex = _lex()
    best: Optional[Tuple[int, int, str]] = None
    # before: skip k function words to the left, then a cue must end there
    k = i - 1
    skipped = 0
    while k >= 0 and toks[k].kind == "word":
        for cue, rank, desc in lex.cues_before.get(toks[k].low, ()):
            n = len(cue)
            if k - n + 1 >= 0 and tuple(t.low for t in toks[k - n + 1:k + 1]) == cue:
                cand = (skipped, rank, desc)
                if best is None or cand < best:
                    best = cand
        if toks[k].low not in lex.function:
            break
        skipped += 1
        k -= 1
    k = j
    skipped = 0
    while k < len(toks) and toks[k].kind in ("word", "poss"):
        for cue, rank, desc in lex.cues_after.get(toks[k].low, ()):
            n = len(cue)
            if tuple(t.low for t in toks[k:k + n]) == cue:
                cand = (skipped, rank, desc)
                if best is None or cand < best:
                    best = cand
        if toks[k].low not in lex.function and toks[k].kind != "poss":
            break
        skipped += 1
        k += 1
    return best[2] if best else None


_CUEABLE = frozenset({TOPIC, ENTITY, "a quoted title or phrase"})


def _refine(toks: List[_Tok]) -> None:
    """Context cues and possessives make generic tag descriptions more specific."""
    for i, t in enumerate(toks):
        if not t.tag or t.kind == "cont":
            continue
        j = i + 1
        while j < len(toks) and toks[j].kind == "cont":
            j += 1
        if t.desc in _CUEABLE:
            if j < len(toks) and toks[j].kind == "poss" and t.desc != "a quoted title or phrase":
                t.desc = OWNER
                continue
            cue = _cue_desc(toks, i, j)
            if cue:
                t.desc = cue


def _fallback(toks: List[_Tok]) -> None:
    """No tag: tag the main content phrase (the last run of non-frame words, preferring nouns)."""
    lex = _lex()
    runs: List[Tuple[int, int, int]] = []  # (score, start, end)
    i = 0
    while i < len(toks):
        if toks[i].kind == "word" and toks[i].low not in lex.function and len(toks[i].low) > 1:
            j = i
            while j < len(toks) and toks[j].kind == "word" and toks[j].low not in lex.function:
                j += 1
            frame = all(t.low in lex.query or t.low in lex.request_kind for t in toks[i:j])
            noun_ctx = i > 0 and toks[i - 1].low in ("a", "an", "the", "of", "my", "your", "for", "about",
                                                     "in", "on", "to", "with", "his", "her", "their", "our")
            score = (0 if frame else 2) + (1 if noun_ctx else 0)
            runs.append((score, i, j))
            i = j
        else:
            i += 1
    if not runs:
        return
    _, i, j = max(runs, key=lambda r: (r[0], r[1]))
    # keep a leading frame word (e.g. a request verb) literal when the run has more
    while j - i > 1 and (toks[i].low in lex.query or toks[i].low in lex.request_kind):
        i += 1
    toks[i].tag, toks[i].kind, toks[i].desc = True, "content", TOPIC
    for t in toks[i + 1:j]:
        t.tag, t.kind, t.desc = True, "cont", ""
    cue = _cue_desc(toks, i, j)
    if cue:
        toks[i].desc = cue


# --- assembly -------------------------------------------------------------------------------

class _Piece:
    """A template piece: literal text, or a tag with its description."""

    __slots__ = ("text", "desc")

    def __init__(self, text: str, desc: Optional[str]):
        self.text, self.desc = text, desc


def _pieces(text: str, toks: List[_Tok]) -> List[_Piece]:
    out: List[_Piece] = []
    pos = 0
    i = 0
    while i < len(toks):
        t = toks[i]
        if not t.tag or t.kind == "cont":
            i += 1
            continue
        j = i + 1
        while j < len(toks) and toks[j].kind == "cont":
            j += 1
        if t.start > pos:
            out.append(_Piece(text[pos:t.start], None))
        out.append(_Piece(text[t.start:toks[j - 1].end], t.desc))
        pos = toks[j - 1].end
        i = j
    if pos < len(text):
        out.append(_Piece(text[pos:], None))
    return out


def _genericize_request(text: str, extra: FrozenSet[str], fallback: bool) -> List[_Piece]:
    toks = _tokenize(text)
    _mark_gazetteer(toks)
    _select(toks, extra)
    if fallback and not any(t.tag for t in toks):
        _fallback(toks)
    _refine(toks)
    return _pieces(text, toks)


def _split_blocks(text: str) -> List[Tuple[str, bool]]:
    """(block, is_request) in order: fenced code and pasted paragraphs are not requests."""
    blocks: List[Tuple[str, bool]] = []
    pos = 0
    for m in _FENCE_RE.finditer(text):
        blocks += _paragraphs(text[pos:m.start()])
        blocks.append((m.group(0), False))
        pos = m.end()
    blocks += _paragraphs(text[pos:])
    if blocks and not any(req for _, req in blocks):
        # nothing reads as a request: the shortest prose paragraph is the request
        prose = [i for i, (b, _) in enumerate(blocks) if not b.startswith("```") and not _is_code(b)]
        if prose:
            k = min(prose, key=lambda i: (len(blocks[i][0]), i))
            blocks[k] = (blocks[k][0], True)
    return blocks


def _paragraphs(text: str) -> List[Tuple[str, bool]]:
    out: List[Tuple[str, bool]] = []
    pos = 0
    for m in list(_PARA_SPLIT_RE.finditer(text)) + [None]:
        end = m.start() if m else len(text)
        para = text[pos:end]
        if para.strip():
            out.append((para, _looks_like_request(para)))
        if m:
            out.append((m.group(0), True))
            pos = m.end()
    return out


def _merge_pasted(pieces: List[_Piece]) -> List[_Piece]:
    """Consecutive pasted blocks of one kind (split only by blank lines) become one tag."""
    out: List[_Piece] = []
    for p in pieces:
        if (p.desc is not None and len(out) >= 2 and out[-1].desc is None and not out[-1].text.strip()
                and out[-2].desc == p.desc and "\n" in out[-1].text and p.desc in _lex().pasted):
            gap = out.pop()
            out[-1] = _Piece(out[-1].text + gap.text + p.text, p.desc)
        else:
            out.append(p)
    return out


def _cap_tags(pieces: List[_Piece]) -> List[_Piece]:
    """At most MAX_TAGS tags: the closest neighbouring request tags merge (with the text
    between them) first, so code blocks and pasted material keep their own tags."""
    tag_idx = [i for i, p in enumerate(pieces) if p.desc is not None]
    excess = len(tag_idx) - MAX_TAGS
    if excess <= 0:
        return pieces
    pasted = _lex().pasted
    gaps = []
    for a, b in zip(tag_idx, tag_idx[1:]):
        if pieces[a].desc not in pasted and pieces[b].desc not in pasted:
            gaps.append((sum(len(p.text) for p in pieces[a + 1:b]), a, b))
    joined = {a: b for _, a, b in sorted(gaps)[:excess]}
    out: List[_Piece] = []
    i = 0
    while i < len(pieces):
        if i not in joined:
            out.append(pieces[i])
            i += 1
            continue
        end = i
        while end in joined:
            end = joined[end]
        group = pieces[i:end + 1]
        descs = {p.desc for p in group if p.desc is not None}
        out.append(_Piece("".join(p.text for p in group), descs.pop() if len(descs) == 1 else MERGED))
        i = end + 1
    return _cap_tail(out)


def _cap_tail(pieces: List[_Piece]) -> List[_Piece]:
    """Merges every tag from the MAX_TAGS-th on (and the text between) into one tag."""
    tag_idx = [i for i, p in enumerate(pieces) if p.desc is not None]
    if len(tag_idx) <= MAX_TAGS:
        return pieces
    first, last = tag_idx[MAX_TAGS - 1], tag_idx[-1]
    merged = _Piece("".join(p.text for p in pieces[first:last + 1]), MERGED)
    return pieces[:first] + [merged] + pieces[last + 1:]


def _number(pieces: List[_Piece]) -> List[str]:
    """Final tag descriptions, repeated ones numbered ``#1``, ``#2`` (the paper's format)."""
    descs = [p.desc for p in pieces if p.desc is not None]
    counts: Dict[str, int] = {}
    for d in descs:
        counts[d] = counts.get(d, 0) + 1
    seen: Dict[str, int] = {}
    out = []
    for d in descs:
        if counts[d] > 1:
            seen[d] = seen.get(d, 0) + 1
            out.append(f"{d} #{seen[d]}")
        else:
            out.append(d)
    return out


# --- description ----------------------------------------------------------------------------

_QTYPE_SENTENCE = {
    "who": "It names the people or organizations involved and says who they are.",
    "when": "It gives the relevant dates or timing.",
    "where": "It says where this is located or takes place.",
    "why": "It explains the reasons or causes behind it.",
    "how": "It explains how this is done or how it works, in enough detail to follow.",
    "howmany": "It gives the specific number or amount asked for.",
    "what": "It states the specific facts that answer what is asked.",
    "which": "It identifies which option or item fits and why.",
    "yesno": "It says whether this is the case and explains why.",
    "write": "It contains material that could serve as a basis or model for writing this.",
    "explain": "It explains the subject clearly, with background and details.",
    "list": "It lists several relevant examples, options or items.",
    "transform": "It contains text of this kind that could be reworked as requested.",
    "code": "It includes working code and technical explanation.",
    "math": "It shows the worked calculation, derivation or proof.",
    "analyze": "It analyzes, compares or evaluates the relevant points.",
    "answer": "It gives the information needed to respond to the request.",
}
_YESNO = frozenset("is are was were do does did can could should would will has have may might must".split())


_POLITE_RE = re.compile(r"^(?:(?:please|hi|hello|hey|ok|okay)\s+)*(?:(?:can|could|would|will)\s+(?:you|u)\s+(?:please\s+)?|please\s+)")


def _qtype(words: List[str]) -> str:
    lex = _lex()
    words = _POLITE_RE.sub("", " ".join(words)).split()
    for k, w in enumerate(words[:12]):
        nxt = words[k + 1] if k + 1 < len(words) else ""
        if w == "how" and nxt in ("many", "much", "long", "old", "far", "big", "tall", "often", "fast"):
            return "howmany"
        if w in ("who", "whom", "whose", "when", "where", "why", "how", "what", "which"):
            return "who" if w in ("whom", "whose") else w
        if w in ("what's", "whats"):
            return "what"
        if w in ("who's",):
            return "who"
        if w in lex.request_kind and w not in ("make", "come", "take", "let", "look", "read", "play"):
            return lex.request_kind[w]
        if k == 0 and w in _YESNO:
            return "yesno"
    for w in words[:12]:
        if w in lex.request_kind:
            return lex.request_kind[w]
    return "what" if words else "answer"


def _article_cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _describe(template: str, pieces: List[_Piece], descs: List[str]) -> str:
    lex = _lex()
    base = []
    for d in descs:
        b = re.sub(r"\s+#\d+$", "", d)
        if b not in base:
            base.append(b)
    ranked = sorted(base, key=lambda b: (b in _FORM_ONLY, b in (TOPIC, ENTITY, MERGED)))
    specific = ranked or [TOPIC]
    kind = lex.doc_kind.get(specific[0])
    if not kind:
        kind = "a document" if specific[0] in (TOPIC, ENTITY, MERGED) else f"a document containing {specific[0]}"
    subjects = base[:3] if base else [TOPIC]
    subj = subjects[0] if len(subjects) == 1 else ", ".join(subjects[:-1]) + " and " + subjects[-1]
    if len(base) > 3:
        subj += " and other specifics"
    literal = " ".join(p.text for p in pieces if p.desc is None)
    focus = [re.sub(r"'s$", "", w) for w in _tokens_lower(literal)]
    focus = [w for w in focus if w not in lex.function and len(w) > 1]
    seen_f: List[str] = []
    for w in focus:
        if w not in seen_f:
            seen_f.append(w)
    first = f"{_article_cap(kind)} about {subj}"
    if seen_f:
        first += f" that covers {' '.join(seen_f[:8])}"
    qtype = _qtype(_tokens_lower(_literal_words(template)))
    return f"{first}. {_QTYPE_SENTENCE[qtype]}"


def _literal_words(template: str) -> str:
    """The template's literal words only (tags dropped), for question-type detection."""
    return re.sub(r"<fi>.*?</fi>", " ", template, flags=re.DOTALL)


# --- entry point ----------------------------------------------------------------------------

def genericize(text: str, common_words: Optional[FrozenSet[str]] = None) -> Tuple[str, str]:
    """A query -> (template, compatible document description). Never raises on a str.

    ``common_words`` are words frequent across the whole query set (the job's side input):
    they stay literal template words like the bundled common-word list.
    """
    try:
        return _genericize(text if isinstance(text, str) else str(text), common_words or frozenset())
    except Exception:  # a malformed record must become a dead letter, not crash the job
        return (text if isinstance(text, str) else ""), ""


def _genericize(text: str, extra: FrozenSet[str]) -> Tuple[str, str]:
    text = text.replace(OPEN, "").replace(CLOSE, "").replace("\r\n", "\n").strip()
    if not text:
        return "", ""
    blocks = _split_blocks(text) if ("```" in text or "\n\n" in text.strip()) else [(text, True)]
    request_text = " ".join(b for b, req in blocks if req)
    pieces = _assemble(blocks, request_text, extra, fallback=False)
    if all(p.desc is None for p in pieces):
        pieces = _assemble(blocks, request_text, extra, fallback=True)
    pieces = _cap_tags(_merge_pasted(pieces))
    descs = _number(pieces)
    out: List[str] = []
    k = 0
    for p in pieces:
        if p.desc is None:
            out.append(p.text)
        else:
            out.append(f"{OPEN}{descs[k]}{CLOSE}")
            k += 1
    template = "".join(out)
    return template, _describe(template, pieces, descs)


def _assemble(blocks: List[Tuple[str, bool]], request_text: str, extra: FrozenSet[str],
              fallback: bool) -> List[_Piece]:
    """Template pieces of all blocks; ``fallback`` tags the main phrase of tagless requests."""
    pieces: List[_Piece] = []
    for block, is_request in blocks:
        if is_request:
            pieces += _genericize_request(block, extra, fallback)
        elif block.startswith("```") or _is_code(block):
            pieces.append(_Piece(block, CODE))
        elif _is_table(block):
            pieces.append(_Piece(block, "a table of data"))
        else:
            pieces.append(_Piece(block, _passage_kind(request_text)))
    return pieces
