"""The openai backend against a scripted OpenAI-compatible server in a separate process."""
import json
import logging
import pickle
import urllib.request
import uuid

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference.base import PredictionResult, RunInference
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms.generation_config import GenerationConfig, GenerationFailure
from transforms.openai_backend import OpenAICompatibleHandler

MODEL = "fake/model-1"


@pytest.fixture
def server_url(fake_openai_url):
    """The session's fake server (tests/fake_openai_server.py); prompts are unique per test."""
    return fake_openai_url


def server_log(base_url, tag):
    """The requests the server saw whose prompt contains ``tag``, in arrival order."""
    root = base_url.rsplit("/v1", 1)[0]
    with urllib.request.urlopen(f"{root}/_log", timeout=5) as resp:
        return [r for r in json.load(resp)["requests"] if tag in r["prompt"]]


def make(base_url, **overrides):
    """A handler and its loaded client, with test-sized timeouts and retries."""
    fields = dict(backend="openai", model=MODEL, base_url=base_url, timeout_s=0.5, max_retries=1,
                  max_new_tokens=64, temperature=0.7, top_p=0.9, seed=7, batch_size=8,
                  api_key_env="FI_TEST_OPENAI_KEY")
    fields.update(overrides)
    handler = OpenAICompatibleHandler(GenerationConfig(**fields))
    return handler, handler.load_model()


def chat(text):
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]


def echo(text):
    return json.dumps({"echo": text})


@pytest.fixture
def tag():
    return uuid.uuid4().hex


def test_chat_and_completions_in_order_with_sampling_params(server_url, tag):
    handler, client = make(server_url)
    batch = [chat(f"{tag} a"), f"{tag} b", chat(f"{tag} c"), f"{tag} d"]
    results = handler.run_inference(batch, client)
    assert [r.example for r in results] == batch
    assert [r.inference for r in results] == [echo(f"{tag} {x}") for x in "abcd"]
    assert {r.model_id for r in results} == {MODEL}
    assert all(isinstance(r, PredictionResult) for r in results)
    log = server_log(server_url, tag)
    assert sorted(r["path"] for r in log) == ["/v1/chat/completions"] * 2 + ["/v1/completions"] * 2
    for r in log:
        params = {k: r["body"].get(k) for k in ("model", "max_tokens", "temperature", "top_p", "seed")}
        assert params == {"model": MODEL, "max_tokens": 64, "temperature": 0.7, "top_p": 0.9, "seed": 7}
        assert "response_format" not in r["body"] and "guided_json" not in r["body"]
    assert next(r for r in log if r["prompt"] == f"{tag} a")["body"]["messages"] == chat(f"{tag} a")


def test_rate_limit_is_retried_then_succeeds(server_url, tag):
    handler, client = make(server_url)
    [result] = handler.run_inference([f"{tag} RATE_LIMIT_ONCE"], client)
    assert result.inference == echo(f"{tag} RATE_LIMIT_ONCE")
    assert len(server_log(server_url, tag)) == 2


def test_retry_after_header_is_honoured(server_url, tag):
    handler, client = make(server_url, timeout_s=5.0)
    [result] = handler.run_inference([f"{tag} RATE_LIMIT_ONCE RETRY_AFTER=1"], client)
    assert isinstance(result.inference, str)
    first, second = server_log(server_url, tag)
    assert second["start"] - first["end"] >= 0.95  # the backoff alone would wait at most 0.5 s


def test_rate_limit_without_retries_left_is_a_failure(server_url, tag):
    handler, client = make(server_url, max_retries=0)
    [result] = handler.run_inference([chat(f"{tag} RATE_LIMIT_ONCE")], client)
    assert result.inference.reason == "endpoint_rate_limited"


def test_timeout_fails_only_that_prompt(server_url, tag):
    handler, client = make(server_url)
    batch = [f"{tag} one", chat(f"{tag} SLOW"), chat(f"{tag} three")]
    results = handler.run_inference(batch, client)
    assert results[0].inference == echo(f"{tag} one")
    assert isinstance(results[1].inference, GenerationFailure)
    assert results[1].inference.reason == "endpoint_timeout"
    assert results[2].inference == echo(f"{tag} three")
    assert len([r for r in server_log(server_url, tag) if "SLOW" in r["prompt"]]) == 2  # retried once


@pytest.mark.parametrize("word,reason", [("MALFORMED", "endpoint_malformed_response"),
                                         ("HTML_BODY", "endpoint_malformed_response"),
                                         ("NO_CHOICES", "endpoint_malformed_response"),
                                         ("EMPTY", "empty_completion")])
@pytest.mark.parametrize("as_chat", [True, False], ids=["chat", "completions"])
def test_bad_bodies_are_failures(server_url, tag, word, reason, as_chat):
    handler, client = make(server_url)
    prompt = f"{tag} {word}"
    [bad, good] = handler.run_inference([chat(prompt) if as_chat else prompt, f"{tag} ok"], client)
    assert isinstance(bad.inference, GenerationFailure) and bad.inference.reason == reason
    assert good.inference == echo(f"{tag} ok")


def test_server_error_after_retries(server_url, tag):
    handler, client = make(server_url, max_retries=2)
    [result] = handler.run_inference([chat(f"{tag} ALWAYS_500")], client)
    assert result.inference.reason == "endpoint_http_500"
    assert len(server_log(server_url, tag)) == 3


def test_server_down_is_unreachable(closed_port):
    handler, client = make(f"http://127.0.0.1:{closed_port}/v1")
    results = handler.run_inference([chat("hello"), "hello"], client)
    assert [r.inference.reason for r in results] == ["endpoint_unreachable"] * 2


def test_concurrency_is_bounded(server_url, tag):
    handler, client = make(server_url, max_concurrency=2, timeout_s=5.0)
    batch = [f"{tag} HOLD {i}" for i in range(6)]
    results = handler.run_inference(batch, client)
    assert [r.inference for r in results] == [echo(p) for p in batch]
    log = server_log(server_url, tag)
    events = sorted([(r["start"], 1) for r in log] + [(r["end"], -1) for r in log])
    in_flight, peak = 0, 0
    for _, step in events:
        in_flight += step
        peak = max(peak, in_flight)
    assert peak == 2


def test_json_schema_is_sent(server_url, tag):
    schema = {"type": "object", "properties": {"echo": {"type": "string"}}, "required": ["echo"]}
    handler, client = make(server_url, json_schema=schema)
    handler.run_inference([chat(f"{tag} c"), f"{tag} p"], client)
    by_prompt = {r["prompt"]: r["body"] for r in server_log(server_url, tag)}
    assert by_prompt[f"{tag} c"]["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
    assert by_prompt[f"{tag} p"]["guided_json"] == schema
    assert by_prompt[f"{tag} p"]["structured_outputs"] == {"json": schema}


def test_api_key_from_env_is_sent_but_not_shown(server_url, tag, monkeypatch, caplog):
    secret = f"sk-secret-{tag}"
    monkeypatch.setenv("FI_TEST_OPENAI_KEY", secret)
    caplog.set_level(logging.DEBUG)
    handler, client = make(server_url)
    handler.run_inference([chat(f"{tag} key")], client)
    assert [r["authorization"] for r in server_log(server_url, tag)] == [f"Bearer {secret}"]
    assert secret not in repr(handler) and secret not in str(handler)
    assert secret.encode() not in pickle.dumps(handler)
    assert secret not in caplog.text


def test_missing_api_key_sends_empty(server_url, tag, monkeypatch):
    monkeypatch.delenv("FI_TEST_OPENAI_KEY", raising=False)
    handler, client = make(server_url)
    handler.run_inference([f"{tag} nokey"], client)
    assert [r["authorization"] for r in server_log(server_url, tag)] == ["Bearer EMPTY"]


def test_handler_settings(server_url):
    handler, _ = make(server_url, batch_size=5)
    assert handler.batch_elements_kwargs() == {"min_batch_size": 5, "max_batch_size": 5}
    assert handler.share_model_across_processes() is False
    assert handler.get_metrics_namespace() == "fineinstructions_openai"


def test_run_inference_in_a_beam_pipeline(server_url, tag):
    handler, _ = make(server_url, batch_size=2)
    prompts = [f"{tag} x{i}" for i in range(3)] + [chat(f"{tag} ALWAYS_500")]
    pipeline = TestPipeline()
    results = pipeline | beam.Create(prompts) | RunInference(handler)
    summary = results | beam.Map(lambda r: (type(r).__name__, r.model_id, getattr(r.inference, "reason", r.inference)))
    assert_that(summary, equal_to([("PredictionResult", MODEL, echo(f"{tag} x{i}")) for i in range(3)]
                                  + [("PredictionResult", MODEL, "endpoint_http_500")]))
    result = pipeline.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_name("generation|completion_tokens"))["counters"]
    assert sum(c.committed for c in counters) == 3 * 3  # the fake server reports 3 tokens a completion


def test_raw_prompts_go_to_completions_with_no_bos_added(server_url, tag):
    handler, client = make(server_url, raw_prompt=True, temperature=0.0, top_p=1.0)
    prompt = f"<s> <CON> {tag} Paris is the capital and largest city of France by population. </CON>\n\n"
    [result] = handler.run_inference([prompt], client)
    [sent] = server_log(server_url, tag)
    assert sent["path"] == "/v1/completions" and sent["body"]["prompt"] == prompt
    assert sent["body"]["add_special_tokens"] is False  # vLLM adds no second BOS
    assert result.inference == echo(prompt)
    with pytest.raises(TypeError, match="raw prompt"):
        handler.run_inference([chat(f"{tag} chat")], client)


def test_the_fake_synthesizer_refuses_a_prompt_that_would_get_two_bos(server_url, tag):
    prompt = f"<s> <CON> {tag} Paris is the capital and largest city of France by population. </CON>\n\n"
    raw, client = make(server_url, model="fake-synthesizer", raw_prompt=True, temperature=0.0)
    plain, _ = make(server_url, model="fake-synthesizer", temperature=0.0)
    [ok] = raw.run_inference([prompt], client)
    assert ok.inference.startswith("<QUE> What does the text say about ") and " </END>" in ok.inference
    [refused] = plain.run_inference([prompt], client)
    assert refused.inference.reason == "endpoint_http_400" and "two BOS" in refused.inference.detail
