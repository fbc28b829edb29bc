"""API keys (issue 13): from Secret Manager on the worker, never a flag or a log line, redacted
from everything stored about a failed request."""
import json
import logging
import sys
import types
import urllib.request
import uuid

import pytest

from transforms import secrets
from transforms.generation_config import GenerationConfig
from transforms.openai_backend import OpenAICompatibleHandler

SECRET = "projects/p/secrets/openai-key/versions/3"


class FakeSecretManager:
    """Stands in for google.cloud.secretmanager.SecretManagerServiceClient (no network)."""
    calls = []
    values = {SECRET: b"sk-test-from-secret-manager-0123456789\n"}

    def access_secret_version(self, request):
        FakeSecretManager.calls.append(request["name"])
        return types.SimpleNamespace(payload=types.SimpleNamespace(data=FakeSecretManager.values[request["name"]]))


@pytest.fixture
def secret_manager(monkeypatch):
    from google.cloud import secretmanager

    monkeypatch.setattr(secretmanager, "SecretManagerServiceClient", FakeSecretManager)
    monkeypatch.setattr(secrets, "_SECRETS", {})
    FakeSecretManager.calls = []
    return FakeSecretManager


def log_of(base_url, tag):
    with urllib.request.urlopen(base_url.rsplit("/v1", 1)[0] + "/_log", timeout=5) as resp:
        return [r for r in json.load(resp)["requests"] if tag in r["prompt"]]


def test_the_key_comes_from_secret_manager_once_per_process(secret_manager, fake_openai_url, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    config = GenerationConfig(backend="openai", model="m", base_url=fake_openai_url, api_key_secret=SECRET,
                              max_retries=0)
    handler = OpenAICompatibleHandler(config)
    tag = uuid.uuid4().hex
    client = handler.load_model()
    handler.load_model()
    assert secret_manager.calls == [SECRET]   # read once, by the worker's own credentials
    handler.run_inference([f"{tag} hello"], client)
    [sent] = log_of(fake_openai_url, tag)
    assert sent["authorization"] == "Bearer sk-test-from-secret-manager-0123456789"
    assert "sk-test" not in repr(handler) and "sk-test" not in repr(config)


def test_an_error_body_that_echoes_the_key_is_redacted(secret_manager, fake_openai_url):
    config = GenerationConfig(backend="openai", model="m", base_url=fake_openai_url, api_key_secret=SECRET,
                              max_retries=0)
    handler = OpenAICompatibleHandler(config)
    [result] = handler.run_inference([f"{uuid.uuid4().hex} ECHO_AUTH"], handler.load_model())
    assert result.inference.reason == "endpoint_http_400"
    assert "sk-test" not in result.inference.detail and "[REDACTED]" in result.inference.detail


def test_redact_removes_known_keys_bearer_tokens_and_key_values(monkeypatch):
    monkeypatch.setattr(secrets, "_KNOWN", {"my-own-loaded-key-42"})
    text = ('got my-own-loaded-key-42; Authorization: Bearer abc.def-ghi; "api_key": "k3y-v4lue-123", '
            "key sk-proj-ABCDEFGH12345678 end")
    out = secrets.redact(text)
    for leaked in ("my-own-loaded-key-42", "abc.def-ghi", "k3y-v4lue-123", "sk-proj-ABCDEFGH12345678"):
        assert leaked not in out
    assert secrets.redact("nothing secret here: 200 OK") == "nothing secret here: 200 OK"


@pytest.mark.parametrize("arg", ["--openai_api_key=sk-live-123456789", "--api-key", "--hf_token=hf_abc123",
                                 "--db_password=x"])
def test_a_flag_that_looks_like_a_secret_is_refused_without_echoing_it(arg, tmp_path, capsys, caplog):
    from pipeline.job import main as pipeline_main
    from templates_mining.job import main as mining_main

    caplog.set_level(logging.DEBUG)
    for main in (pipeline_main, mining_main):
        assert main(["--output", str(tmp_path / "o"), arg]) == 2
    err = capsys.readouterr().err + caplog.text
    assert arg.split("=", 1)[0] in err and "--openai_api_key_secret" in err
    if "=" in arg:
        assert arg.split("=", 1)[1] not in err


def test_beam_logs_an_unknown_flag_in_full_which_is_why_secret_flags_are_refused(caplog):
    # The leak the refusal closes (issue 13): Beam's option parser logs any flag it does not know,
    # value included, at WARNING ("Discarding unparseable args"), so a key passed as
    # --openai_api_key=... would reach the launcher's log and Dataflow's job logs.
    from apache_beam.options.pipeline_options import PipelineOptions

    caplog.set_level(logging.WARNING)
    PipelineOptions(["--openai_api_key=sk-live-123456789"]).get_all_options()
    assert "sk-live-123456789" in caplog.text


def test_allowed_secret_flags_and_a_bad_version_name():
    secrets.refuse_secret_flags(["--openai_api_key_env", "MY_KEY", f"--openai_api_key_secret={SECRET}",
                                 "--max_document_tokens", "4096", "--synthesizer_max_tokens=400",
                                 "--budget_tokenizer", "t", "--secretive_flag_name=1"])
    with pytest.raises(ValueError, match="versions/V"):
        GenerationConfig(backend="openai", model="m", api_key_secret="my-key").validate()
