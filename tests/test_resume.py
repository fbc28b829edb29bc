"""A killed run, rerun (issue 13): the same pairs as a clean run, and with --generation_cache
the rerun pays only for the generations the killed run had not finished."""
import json
import random
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import REPO
from pipeline.job import run

pytestmark = pytest.mark.e2e

DOCS = str(REPO / "sample_data" / "documents" / "web_docs.jsonl")


def requests_seen(base_url: str) -> int:
    with urllib.request.urlopen(base_url.rsplit("/v1", 1)[0] + "/_log", timeout=5) as resp:
        return len(json.load(resp)["requests"])


def test_a_killed_run_rerun_gives_the_clean_pairs_and_pays_only_for_the_rest(fake_openai_url, sample_library,
                                                                            tmp_path):
    library, _ = sample_library
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(open(DOCS, encoding="utf-8").readlines()[:12]), encoding="utf-8")
    base = ["--documents", str(docs), "--templates", str(library), "--templates_per_document", "6",
            "--instantiator", "openai",
            "--instantiator_model", "fake-instantiator", "--judge", "openai", "--judge_model", "fake-judge",
            "--openai_base_url", fake_openai_url, "--generation_batch_size", "4"]
    before = requests_seen(fake_openai_url)
    run(base + ["--output", str(tmp_path / "clean")])
    clean_requests = requests_seen(fake_openai_url) - before
    assert clean_requests > 20

    out, cache = tmp_path / "killed", tmp_path / "cache"
    kill_after = random.Random(13).randint(clean_requests // 4, clean_requests // 2)
    before = requests_seen(fake_openai_url)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", *base, "--output", str(out),
                             "--generation_cache", str(cache)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while proc.poll() is None and requests_seen(fake_openai_url) - before < kill_after and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=60)
    assert proc.returncode != 0, "the run finished before it could be killed"
    cached = len(list(cache.rglob("*.json")))
    assert cached > 0 and not (out / "report.json").exists()

    before = requests_seen(fake_openai_url)
    report = run(base + ["--output", str(out), "--generation_cache", str(cache)])
    resent = requests_seen(fake_openai_url) - before
    assert report["conservation_ok"]
    assert resent <= clean_requests - cached + 2   # the probes; nothing finished is paid for twice
    hits = next(s for s in report["stages"] if s["stage"] == "generation")["other"]["cache_hits"]
    assert hits >= cached
    clean_files = sorted((tmp_path / "clean" / "pairs").iterdir())
    assert [f.name for f in clean_files] == sorted(f.name for f in (out / "pairs").iterdir())
    for f in clean_files:
        assert f.read_bytes() == (out / "pairs" / f.name).read_bytes(), f.name


def test_a_killed_extractive_run_rerun_skips_the_embeddings_and_instantiations_it_finished(sample_library,
                                                                                           tmp_path):
    # The CPU default's expensive steps (embed, instantiate) keep their finished work in the same
    # cache: the rerun reads it back, does the rest, and writes the clean run's files.
    library, _ = sample_library
    base = ["--documents", DOCS, "--templates", str(library)]
    clean = run(base + ["--output", str(tmp_path / "clean")])
    tried = next(s for s in clean["stages"] if s["stage"] == "instantiate")["in"]
    assert tried > 30

    out, cache = tmp_path / "killed", tmp_path / "cache"
    kill_after = random.Random(17).randint(tried // 4, tried // 2)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", *base, "--output", str(out),
                             "--generation_cache", str(cache)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while proc.poll() is None and len(list((cache / "instantiate").rglob("*.json"))) < kill_after \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=60)
    assert proc.returncode != 0, "the run finished before it could be killed"
    embedded = len(list((cache / "embed").rglob("*.npz")))
    instantiated = len(list((cache / "instantiate").rglob("*.json")))
    assert embedded > 0 and instantiated >= kill_after and not (out / "report.json").exists()

    report = run(base + ["--output", str(out), "--generation_cache", str(cache)])
    assert report["conservation_ok"]
    stage = {s["stage"]: s for s in report["stages"]}
    assert stage["embed"]["other"]["cache_hits"] == embedded
    assert stage["instantiate"]["other"]["cache_hits"] == instantiated
    # the counts of every stage are the clean run's
    assert [(s["stage"], s["in"], s["out"]) for s in clean["stages"]] == \
        [(s["stage"], s["in"], s["out"]) for s in report["stages"]]
    clean_files = sorted((tmp_path / "clean" / "pairs").iterdir())
    assert [f.name for f in clean_files] == sorted(f.name for f in (out / "pairs").iterdir())
    for f in clean_files:
        assert f.read_bytes() == (out / "pairs" / f.name).read_bytes(), f.name
