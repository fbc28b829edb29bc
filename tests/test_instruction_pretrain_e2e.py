"""End-to-end runs of ``python -m pipeline --method instruction_pretrain`` on shared Wikipedia articles.

The synthesizer is played by tests/fake_openai_server.py (``fake-synthesizer``: it refuses any
request that is not a raw completion in the released multi-round format with no BOS added, and
answers in the model's format) and, on the transformers backend, by a tiny random
Mistral-shaped model with the real Mistral-7B tokenizer.
"""
import glob
import json
import pathlib
import urllib.request

import pyarrow.parquet as pq
import pytest

from pipeline.documents import clean_text
from pipeline.instruction_pretrain import stages_and_chain, token_counter
from pipeline.job import run
from pipeline.synthesizer_context import part_budget, split_text
from pipeline.synthesizer_format import MARKERS
from tiny_models import build_mistral_tokenizer, build_tiny_mistral_lm

pytestmark = pytest.mark.e2e

CONTEXT, MAX_TOKENS, ROUNDS = 1024, 200, 2
FAILING_TEXT = ("This planted article says ALWAYS_500, so the fake synthesizer answers every request about it "
                "with a server error. Its text must still reach the augmented corpus, without pairs, and the "
                "failed request must be a dead letter of its round, not of its whole batch.")


def _rows(pattern):
    rows = []
    for path in sorted(glob.glob(str(pattern))):
        rows += [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    return rows


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("mistral-tokenizer")
    build_mistral_tokenizer(str(path))
    return path


@pytest.fixture(scope="module")
def documents(tmp_path_factory):
    """Seven shared Wikipedia articles, one the fake server fails on, a short one and a bad line."""
    shared = pathlib.Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "documents" / "wikipedia"
    if not shared.is_dir():
        pytest.skip("../shared/data is not beside this checkout")
    lines = (shared / "wiki_01.jsonl").read_text("utf-8").splitlines()[:7]
    lines += [json.dumps({"id": "planted-500", "text": FAILING_TEXT}),
              json.dumps({"id": "planted-marker", "text": "An HTML page kept its strike-through tag: <s>old price</s> "
                                                          "and then the new price, which a prompt would read as a "
                                                          "second BOS and an end of sequence in the middle of a text. It is filtered with its reason before "
                                                          "any prompt is built, so nothing is lost silently."}),
              json.dumps({"id": "short", "text": "Too short."}), '{"id": "broken", "text": ']
    path = tmp_path_factory.mktemp("docs") / "docs.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def fake_args(documents, out, tokenizer_dir, url, *extra):
    return ["--method", "instruction_pretrain", "--documents", str(documents), "--output", str(out),
            "--synthesizer", "openai", "--synthesizer_model", "fake-synthesizer",
            "--synthesizer_tokenizer", str(tokenizer_dir), "--openai_base_url", url, "--openai_max_retries", "0",
            "--synthesizer_context", str(CONTEXT), "--synthesizer_max_tokens", str(MAX_TOKENS),
            "--rounds", str(ROUNDS), *extra]


@pytest.fixture(scope="module")
def fake_run(documents, tokenizer_dir, fake_openai_url, tmp_path_factory):
    out = tmp_path_factory.mktemp("ipt") / "out"
    return out, run(fake_args(documents, out, tokenizer_dir, fake_openai_url))


def expected_parts(documents, tokenizer_dir, context=CONTEXT, max_tokens=MAX_TOKENS):
    """Each kept document's parts, split as the job must split them."""
    from transformers import AutoTokenizer

    count = token_counter(AutoTokenizer.from_pretrained(str(tokenizer_dir)))
    parts = {}
    for line in documents.read_text("utf-8").splitlines():
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            continue
        text = clean_text(doc["text"])   # the document as the job reads it
        if len(text) >= 200 and not any(m in text for m in MARKERS):
            texts = split_text(text, count, part_budget(context, max_tokens, ROUNDS))
            assert "".join(texts) == text
            parts.update({f"{doc['id']}#{i}": t for i, t in enumerate(texts)})
    return parts


def assert_verbatim(augmented, parts):
    """Each text is listed once, and is in its augmented document verbatim, in chain order."""
    listed = [p for a in augmented for p in a["part_ids"]]
    assert sorted(listed) == sorted(parts)
    for a in augmented:
        position = 0
        for part_id in a["part_ids"]:
            position = a["text"].index(parts[part_id], position) + len(parts[part_id])


def test_every_record_is_accounted_for(fake_run):
    out, report = fake_run
    assert report["conservation_ok"], report
    stages, chain = stages_and_chain(ROUNDS)
    assert [c["from"] for c in report["chain"]] == [a for a, _ in chain] and all(c["ok"] for c in report["chain"])
    s = {st["stage"]: st for st in report["stages"]}
    assert s["read"]["in"] == 11 and s["read"]["dead_letters_by_reason"] == {"invalid_json": 1}
    assert s["filter_documents"]["filtered_by_reason"] == {"too_short": 1}
    assert s["split"]["in"] == 9 and s["split"]["other"]["parts"] == s["chain"]["in"] == s["augment"]["out"]
    assert s["split"]["filtered_by_reason"] == {"marker_in_text": 1}
    [marked] = [f for f in _rows(out / "filtered" / "*.jsonl") if f["stage"] == "split"]
    assert marked["reason"] == "marker_in_text" and "planted-marker" in marked["text"]
    assert s["split"]["other"]["documents_split"] == 7  # every article is longer than one prompt
    # Round 1 synthesizes every chain's first text, round 2 the second texts.
    assert s["synthesize_r1_generate"]["in"] == s["chain"]["other"]["chains"]
    assert s["synthesize_r1_generate"]["in"] + s["synthesize_r2_generate"]["in"] == s["chain"]["out"]
    for r in ("synthesize_r1", "synthesize_r2"):
        assert s[r]["other"]["pairs"] > 0 and s[r]["other"]["dropped|truncated_pair"] > 0
    # The planted article's one request failed alone.
    dead = _rows(out / "dead_letters" / "*.jsonl")
    failed = [d for d in dead if d["reason"] == "endpoint_http_500"]
    assert len(failed) == 1 and failed[0]["stage"].startswith("synthesize_r") and "ALWAYS_500" in failed[0]["raw"]
    assert s["write_pairs"]["out"] == len(_rows(out / "pairs" / "*.jsonl"))


def test_every_text_is_verbatim_in_the_augmented_corpus_with_its_pairs(fake_run, documents, tokenizer_dir):
    out, _ = fake_run
    augmented = _rows(out / "augmented" / "*.jsonl")
    parts = expected_parts(documents, tokenizer_dir)
    assert_verbatim(augmented, parts)
    planted = next(a for a in augmented if "planted-500" in a["doc_ids"])
    assert FAILING_TEXT in planted["text"]
    pairs = _rows(out / "pairs" / "*.jsonl")
    by_chain = {a["augmented_id"]: a for a in augmented}
    for p in pairs:
        text = by_chain[p["chain"]]["text"]
        assert p["question"] in text and p["answer"] in text
        assert p["answer"] in parts[f"{p['doc_id']}#{p['part']}"]  # the fake answers from the text
    assert sum(a["num_pairs"] for a in augmented) == len(pairs)
    assert not [p for p in pairs if p["doc_id"] == "planted-500"]


def test_outputs_are_parquet_and_jsonl_with_provenance(fake_run):
    out, _ = fake_run
    pairs = pq.read_table(glob.glob(str(out / "pairs" / "*.parquet"))).to_pylist()
    assert sorted(pairs, key=lambda r: r["pair_id"]) == sorted(_rows(out / "pairs" / "*.jsonl"),
                                                             key=lambda r: r["pair_id"])
    assert {p["round"] for p in pairs} == {1, 2} and {p["model"] for p in pairs} == {"fake-synthesizer"}
    settings = json.loads(pairs[0]["settings"])
    assert {k: settings[k] for k in ("rounds", "max_new_tokens", "context", "temperature", "backend")} == {
        "rounds": 2, "max_new_tokens": 200, "context": 1024, "temperature": 0.0, "backend": "openai"}
    assert len({p["pair_id"] for p in pairs}) == len(pairs)
    augmented = pq.read_table(glob.glob(str(out / "augmented" / "*.parquet")))
    assert augmented.schema.names == ["augmented_id", "text", "doc_ids", "part_ids", "num_pairs", "layout"]
    assert len({r["layout"] for r in augmented.to_pylist()}) > 1  # seeded layouts vary


def test_round_two_prompts_hold_round_one_pairs_as_examples(fake_run, fake_openai_url):
    root = fake_openai_url.rsplit("/v1", 1)[0]
    with urllib.request.urlopen(f"{root}/_log", timeout=5) as resp:
        prompts = [r["prompt"] for r in json.load(resp)["requests"] if r["body"].get("model") == "fake-synthesizer"]
    multi = [p for p in prompts if p.count("<s> <CON> ") == 2]
    assert multi and all(p.startswith("<s> <CON> ") and "</END></s><s> <CON> " in p for p in multi)


def test_one_worker_and_several_give_identical_output(fake_run, documents, tokenizer_dir, fake_openai_url, tmp_path):
    out, _ = fake_run
    other = tmp_path / "out"
    run(fake_args(documents, other, tokenizer_dir, fake_openai_url, "--direct_num_workers", "3",
                  "--direct_running_mode", "multi_threading"))
    for sub in ("pairs", "augmented"):
        a = sorted(pathlib.Path(out, sub).iterdir())
        b = sorted(pathlib.Path(other, sub).iterdir())
        assert [f.name for f in a] == [f.name for f in b]
        assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b)), sub


def test_transformers_backend_with_a_tiny_mistral_shaped_model(documents, tmp_path):
    model = build_tiny_mistral_lm(str(tmp_path / "model"))
    docs = tmp_path / "docs.jsonl"
    docs.write_text("\n".join(documents.read_text("utf-8").splitlines()[:2]) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    report = run(["--method", "instruction_pretrain", "--documents", str(docs), "--output", str(out),
                  "--synthesizer", "transformers", "--synthesizer_model", model, "--synthesizer_context", "512",
                  "--synthesizer_max_tokens", "8", "--generation_batch_size", "8"])
    assert report["conservation_ok"], report
    s = {st["stage"]: st for st in report["stages"]}
    texts = s["split"]["other"]["parts"]
    assert texts > 2 and s["augment"]["out"] == texts
    assert s["synthesize_r1_generate"]["out"] + s["synthesize_r2_generate"]["out"] == texts
    assert_verbatim(_rows(out / "augmented" / "*.jsonl"), expected_parts(docs, model, 512, 8))


def test_bad_synthesizer_flags_fail_before_the_job_starts(documents, tmp_path):
    base = ["--method", "instruction_pretrain", "--documents", str(documents), "--output", str(tmp_path / "o")]
    with pytest.raises(ValueError, match="no room for a prompt"):
        run(base + ["--synthesizer_context", "400", "--synthesizer_max_tokens", "400"])
    with pytest.raises(ValueError, match="--rounds must be >= 1"):
        run(base + ["--rounds", "0"])
