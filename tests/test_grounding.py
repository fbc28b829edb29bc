"""The grounding check finds each way a written pair can fail to be grounded."""
import pytest

from pipeline.grounding import grounding_problems, ungrounded
from pipeline.steps import pair_text

DOC = "Lisbon is the capital of Portugal. It has about 545,000 residents."


def pair(**changes):
    answer = "Lisbon is the capital of Portugal."
    row = {"pair_id": "p1", "doc_id": "d1", "template_id": "t1", "instruction": "What is the capital of Portugal?",
           "answer": answer, "excerpt_share": 1.0, "judge_score": 5, "excerpt_spans": [[0, 34]]}
    row.update(changes)
    row.setdefault("text", pair_text(row["instruction"], row["answer"]))
    return row


def test_grounded_pair_has_no_problem():
    assert grounding_problems(pair(), {"d1": DOC}, {"t1"}) == []
    assert ungrounded([pair()], {"d1": DOC}, {"t1"}) == {}


@pytest.mark.parametrize("changes,docs,templates,expected", [
    ({"doc_id": "d9"}, {"d1": DOC}, {"t1"}, "unknown document"),
    ({}, {"d1": DOC}, {"t2"}, "unknown template"),
    ({"instruction": "What is the capital of <fi>a country</fi>?"}, {"d1": DOC}, {"t1"}, "leftover <fi> tag"),
    ({"answer": "<excerpt>Lisbon<...>Portugal.</excerpt>"}, {"d1": DOC}, {"t1"}, "unexpanded excerpt marker"),
    ({"excerpt_share": 0.5}, {"d1": DOC}, {"t1"}, "below the bar"),
    ({"judge_score": 3}, {"d1": DOC}, {"t1"}, "below the bar"),
    ({"excerpt_spans": []}, {"d1": DOC}, {"t1"}, "no excerpt span"),
    ({"excerpt_spans": [[35, 60]]}, {"d1": DOC}, {"t1"}, "not verbatim"),
    ({"excerpt_spans": [[0, 400]]}, {"d1": DOC}, {"t1"}, "not verbatim"),
    ({"answer": "Lisbon is the capital of Portugal. " + "And I add many words of my own. " * 3},
     {"d1": DOC}, {"t1"}, "excerpt spans cover"),
    ({"text": "Instruction: something else"}, {"d1": DOC}, {"t1"}, "training text"),
])
def test_each_problem_is_found(changes, docs, templates, expected):
    problems = grounding_problems(pair(**changes), docs, templates)
    assert any(expected in p for p in problems), problems


def test_ungrounded_lists_only_the_failing_pairs():
    pairs = [pair(), pair(pair_id="p2", excerpt_spans=[[35, 60]]), pair(pair_id="p3", doc_id="d9")]
    found = ungrounded(pairs, {"d1": DOC}, {"t1"})
    assert sorted(found) == ["p2", "p3"] and found["p3"] == ["unknown document 'd9'"]


def test_spans_index_the_document_as_the_job_reads_it(tmp_path):
    # Issue 13's cleaning at read: a zero-width space before an excerpt shifts raw offsets by one.
    import json

    from pipeline.grounding import read_documents

    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "Zero\u200bwidth\x8d and then the excerpt."}) + "\n")
    assert read_documents(str(path)) == {"a": "Zerowidth and then the excerpt."}
