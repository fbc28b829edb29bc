"""Checks that a written pair is grounded: what a user verifies before training on the output.

A pair is grounded when it traces to an existing document and template, no ``<fi>`` tag or
excerpt marker is left, every recorded excerpt span is verbatim in the document and in the
answer, the spans cover at least ``min_excerpt_ratio`` of the answer, and ``text`` is the
training text of its instruction and answer. Used by the end-to-end tests and the
throughput benchmark over the whole shared corpus.
"""
from __future__ import annotations

import glob
import json
from typing import Collection, Dict, List, Mapping, Set

from pipeline.documents import clean_text
from pipeline.steps import pair_text


def read_documents(pattern: str) -> Dict[str, str]:
    """``doc_id -> text`` of the JSONL documents matching ``pattern`` as the job reads them (control
    and invisible characters removed, pipeline/documents.py: excerpt spans are offsets into that
    text); the first text of a repeated id; lines that are not a document with an id are skipped."""
    docs: Dict[str, str] = {}
    for path in sorted(glob.glob(pattern)):
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict) and isinstance(row.get("text"), str) and row.get("id"):
                    docs.setdefault(row["id"], clean_text(row["text"]))
    return docs


def library_template_ids(library_dir: str) -> Set[str]:
    """Every template id of a template library."""
    from transforms.template_library import load_library

    return set(load_library(library_dir).template_table().column("template_id").to_pylist())


def _unexpanded(answer: str, excerpts: List[str]) -> bool:
    """Whether ``answer`` holds an excerpt marker outside its verbatim excerpts (the document's
    own text may hold marker-like strings, and then so may an excerpt of it)."""
    for excerpt in excerpts:
        answer = answer.replace(excerpt, "", 1)
    return "<excerpt>" in answer or "<...>" in answer or "</excerpt>" in answer


def grounding_problems(pair: Mapping, documents: Mapping[str, str], template_ids: Collection[str],
                       min_excerpt_ratio: float = 0.8, min_score: int = 4) -> List[str]:
    """The reasons ``pair`` is not grounded (empty when it is)."""
    problems = []
    doc = documents.get(pair["doc_id"])
    if doc is None:
        return [f"unknown document {pair['doc_id']!r}"]
    if pair["template_id"] not in template_ids:
        problems.append(f"unknown template {pair['template_id']!r}")
    if "<fi>" in pair["instruction"] or "</fi>" in pair["instruction"]:
        problems.append("leftover <fi> tag")
    if _unexpanded(pair["answer"], [doc[a:b] for a, b in pair["excerpt_spans"] if 0 <= a < b <= len(doc)]):
        problems.append("unexpanded excerpt marker")
    if pair["excerpt_share"] < min_excerpt_ratio or pair["judge_score"] < min_score:
        problems.append(f"excerpt share {pair['excerpt_share']} or judge score {pair['judge_score']} below the bar")
    if not pair["excerpt_spans"]:
        problems.append("no excerpt span")
    covered = 0
    for start, end in pair["excerpt_spans"]:
        if not 0 <= start < end <= len(doc) or doc[start:end] not in pair["answer"]:
            problems.append(f"excerpt [{start}, {end}) is not verbatim in the document and the answer")
        covered += end - start
    if pair["answer"] and covered / len(pair["answer"]) < min_excerpt_ratio - 1e-9:
        problems.append(f"excerpt spans cover {covered / len(pair['answer']):.2f} of the answer")
    if pair["text"] != pair_text(pair["instruction"], pair["answer"]):
        problems.append("text is not the instruction/answer training text")
    return problems


def ungrounded(pairs, documents: Mapping[str, str], template_ids: Collection[str], **bars) -> Dict[str, List[str]]:
    """``pair_id -> problems`` for every pair that is not grounded."""
    out = {}
    for pair in pairs:
        problems = grounding_problems(pair, documents, template_ids, **bars)
        if problems:
            out[pair["pair_id"]] = problems
    return out
