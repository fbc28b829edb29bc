"""Both jobs end to end on model backends: the openai backend against the fake server (which
answers like the released templatizer, instantiator and judge), failures as dead letters."""
import json

import pytest

from pipeline.job import read_pairs
from pipeline.job import run as run_pipeline
from templates_mining.job import run as run_mining
from transforms.errors import InputError
from transforms.template_library import load_library, read_manifest

from conftest import REPO, SAMPLE_SOURCES

pytestmark = pytest.mark.e2e

SAMPLE_DOCS = str(REPO / "sample_data" / "documents" / "web_docs.jsonl")


def stage(report, name):
    return next(s for s in report["stages"] if s["stage"] == name)


def dead_letters(out):
    return [json.loads(line) for path in sorted((out / "dead_letters").glob("*.jsonl"))
            for line in path.read_text().splitlines()]


def write_queries(path, queries):
    path.write_text("".join(json.dumps({"text": q}) + "\n" for q in queries))
    return str(path)


def test_mining_on_the_templatizer_model(fake_openai_url, tmp_path):
    out = tmp_path / "library"
    report = run_mining(["--sources", str(SAMPLE_SOURCES), "--output", str(out), "--genericizer", "openai",
                         "--genericizer_model", "fake-templatizer", "--openai_base_url", fake_openai_url,
                         "--generation_batch_size", "8"])
    assert report["conservation_ok"]
    generate, genericize = stage(report, "genericize_generate"), stage(report, "genericize")
    assert generate["in"] == stage(report, "near_dedupe")["out"] > 100
    assert generate["out"] == generate["in"] and genericize["in"] == generate["out"]
    templates = load_library(str(out)).template_table().to_pylist()
    assert templates and all("<fi>a specific subject</fi>" in t["template"] for t in templates)
    assert all(t["description"].startswith("A document that explains") for t in templates)
    assert read_manifest(str(out))["build"]["genericizer_model"] == "fake-templatizer"


def test_unparseable_model_output_and_a_dead_endpoint_are_dead_letters(fake_openai_url, tmp_path):
    queries = write_queries(tmp_path / "q.jsonl", ["how do I repot a cactus without gloves",
                                                   "what is the boiling point of water at altitude",
                                                   "write a limerick about a sleepy walrus"])
    out = tmp_path / "echo"
    report = run_mining(["--queries", queries, "--output", str(out), "--genericizer", "openai",
                         "--genericizer_model", "fake/echo", "--openai_base_url", fake_openai_url])
    assert report["conservation_ok"]
    assert stage(report, "genericize")["dead_letters_by_reason"] == {"missing_key": 3}
    dead = [d for d in dead_letters(out) if d["stage"] == "genericize"]
    assert len(dead) == 3 and all('"echo"' in d["raw"] for d in dead)  # the raw model text is kept

    # An endpoint that is down stops the job before any work (exit 3), naming the URL ...
    down = ["--queries", queries, "--genericizer", "openai", "--genericizer_model", "fake-templatizer",
            "--openai_base_url", "http://127.0.0.1:9/v1", "--openai_max_retries", "0", "--openai_timeout_s", "2"]
    with pytest.raises(InputError, match="http://127.0.0.1:9/v1 cannot be reached"):
        run_mining(down + ["--output", str(tmp_path / "down")])
    from templates_mining.job import main as mining_main
    assert mining_main(down + ["--output", str(tmp_path / "down")]) == 3
    assert not (tmp_path / "down").exists()
    # ... and, unprobed, it is a failed run (exit 4 after the report), not a finished one.
    out = tmp_path / "unprobed"
    report = run_mining(down + ["--output", str(out), "--no-probe_endpoint"])
    assert report["conservation_ok"]
    assert stage(report, "genericize_generate")["dead_letters_by_reason"] == {"endpoint_unreachable": 3}
    assert report["failures"] and report["failures"][0].startswith("stage genericize_generate: 3 of 3")
    assert json.loads((out / "report.json").read_text())["failures"] == report["failures"]
    assert mining_main(down + ["--output", str(tmp_path / "unprobed2"), "--no-probe_endpoint"]) == 4


def test_an_endpoint_that_refuses_the_key_stops_the_job(fake_openai_url, tmp_path, monkeypatch):
    queries = write_queries(tmp_path / "q.jsonl", ["how do I boil an egg"])
    monkeypatch.setenv("OPENAI_API_KEY", "REJECT-ME")
    with pytest.raises(InputError, match=r"refused the API key from \$OPENAI_API_KEY \(HTTP 401\)"):
        run_mining(["--queries", queries, "--output", str(tmp_path / "o"), "--genericizer", "openai",
                    "--openai_base_url", fake_openai_url])


def test_pipeline_on_instantiator_and_judge_models(fake_openai_url, sample_library, tmp_path):
    library, _ = sample_library
    out = tmp_path / "pairs"
    report = run_pipeline(["--documents", SAMPLE_DOCS, "--templates", str(library), "--output", str(out),
                           "--instantiator", "openai", "--instantiator_model", "fake-instantiator",
                           "--judge", "openai", "--judge_model", "fake-judge", "--openai_base_url", fake_openai_url])
    assert report["conservation_ok"]
    names = [s["stage"] for s in report["stages"]]
    assert names.index("instantiate_generate") + 1 == names.index("instantiate")
    assert names.index("judge_generate") + 1 == names.index("judge")
    assert stage(report, "instantiate_generate")["in"] == stage(report, "match")["other"]["pairs"] > 0
    pairs = read_pairs(str(out))
    assert len(pairs) >= 10
    docs = {json.loads(line)["id"]: json.loads(line)["text"] for line in open(SAMPLE_DOCS, encoding="utf-8")}
    for p in pairs:
        assert p["instantiator"] == "openai:fake-instantiator" and p["judge"] == "openai:fake-judge"
        assert p["judge_score"] == 5 and "<fi>" not in p["instruction"]
        assert p["answer"] in docs[p["doc_id"]]  # the excerpt markers expanded to a verbatim span


def test_document_text_that_looks_like_markup_cannot_break_answers(fake_openai_url, sample_library, tmp_path):
    """Issue 13: <excerpt>, <...>, </excerpt> and <fi> inside a document used to pass into the
    excerpt markers (pairs failing the grounding check, whole documents malformed_excerpt)."""
    from pipeline.grounding import library_template_ids, ungrounded

    library, _ = sample_library
    markup = ["<excerpt>", "</excerpt>", "<...>", "<fi>", "</fi>"]
    rows = []
    for i, line in enumerate(open(SAMPLE_DOCS, encoding="utf-8")):
        row = json.loads(line)
        if isinstance(row.get("text"), str) and len(row["text"]) > 300:
            tag = markup[i % len(markup)]
            row["text"] = (f"The editor wrote the marker {tag} into this opening sentence of the page on purpose. "
                           + row["text"])
            rows.append(row)
    docs_path = tmp_path / "injected.jsonl"
    docs_path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "pairs"
    report = run_pipeline(["--documents", str(docs_path), "--templates", str(library), "--output", str(out),
                           "--instantiator", "openai", "--instantiator_model", "fake-instantiator",
                           "--judge", "openai", "--judge_model", "fake-judge", "--openai_base_url", fake_openai_url])
    assert report["conservation_ok"]
    expand = stage(report, "expand")
    assert "malformed_excerpt" not in expand["filtered_by_reason"] and expand["out"] > 0
    pairs = read_pairs(str(out))
    docs = {r["id"]: r["text"] for r in rows}
    assert [p for p in pairs if any(t in p["answer"] for t in markup)]   # the markup came through as text
    assert ungrounded(pairs, docs, library_template_ids(str(library))) == {}


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """A tiny random Llama with a chat template, built in the test (no download)."""
    from tiny_models import build_tiny_causal_lm

    return build_tiny_causal_lm(str(tmp_path_factory.mktemp("tiny_lm")), max_position_embeddings=16384)


def test_transformers_backend_through_both_jobs(tiny_lm, sample_library, tmp_path):
    """A random model's text is never the templatizer's JSON nor the instantiator's: every prompt
    is generated in batches and lands in dead letters with the raw text, and the books balance."""
    queries = write_queries(tmp_path / "q.jsonl", [f"how do I keep {plant} alive through a dry summer"
                                                   for plant in ("basil", "ferns", "tomatoes", "roses", "mint")])
    out = tmp_path / "library"
    report = run_mining(["--queries", queries, "--output", str(out), "--genericizer", "transformers",
                         "--genericizer_model", tiny_lm, "--genericizer_max_tokens", "6",
                         "--generation_batch_size", "2", "--near_threshold", "0.99"])
    assert report["conservation_ok"]
    generate = stage(report, "genericize_generate")
    assert generate["in"] == generate["out"] == stage(report, "near_dedupe")["out"] >= 2
    assert stage(report, "genericize")["dead_letters"] == generate["out"]
    raws = [d["raw"] for d in dead_letters(out) if d["stage"] == "genericize"]
    assert len(raws) == generate["out"] and all(raws)

    library, _ = sample_library
    out = tmp_path / "pairs"
    report = run_pipeline(["--documents", SAMPLE_DOCS, "--templates", str(library), "--output", str(out),
                           "--instantiator", "transformers", "--instantiator_model", tiny_lm,
                           "--instantiator_max_tokens", "4", "--templates_per_document", "1"])
    assert report["conservation_ok"]
    generate = stage(report, "instantiate_generate")
    assert generate["in"] == stage(report, "match")["other"]["pairs"] > 0
    assert stage(report, "instantiate")["in"] == generate["out"]
    assert stage(report, "instantiate")["dead_letters"] == generate["out"]  # unparseable, kept with raw text
    assert read_pairs(str(out)) == []
