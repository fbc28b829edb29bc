"""The vllm backend: construction, server command line and request arguments (vLLM itself runs
only on GPU workers; the response path is exercised against the fake OpenAI server)."""
import os
import uuid
from types import SimpleNamespace

import pytest

from test_openai_backend import server_log
from transforms.generation import model_handler
from transforms.generation_config import GenerationConfig, GenerationFailure
from transforms.job_options import parse_vllm_args
from transforms.openai_backend import completion_text as openai_completion_text
from transforms.vllm_backend import (VLLMGenerationHandler, as_messages, driver_problem, installed_driver,
                                     request_args, server_kwargs)


def completion_text(response):
    return openai_completion_text(response, chat=True)


@pytest.fixture(autouse=True)
def cpu_torch(monkeypatch):
    """Tests start Beam's server as a CPU build of torch would (no driver check), whatever torch
    this machine has; the driver check's own tests set a CUDA version."""
    import torch

    monkeypatch.setattr(torch.version, "cuda", None)


def config(**kw):
    base = dict(backend="vllm", model="fineinstructions/template_instantiator", batch_size=32, seed=7)
    return GenerationConfig(**{**base, **kw})


def test_vllm_args_parse_to_server_flags():
    args = parse_vllm_args(["max-num-seqs=64", "--gpu-memory-utilization=0.85", "enforce-eager"])
    assert args == (("max-num-seqs", "64"), ("gpu-memory-utilization", "0.85"), ("enforce-eager", ""))
    kwargs = server_kwargs(config(vllm_args=args))
    assert kwargs == {"seed": "7", "max-num-seqs": "64", "gpu-memory-utilization": "0.85", "enforce-eager": None}
    with pytest.raises(ValueError, match="key=value"):
        parse_vllm_args(["=3"])


def test_handler_is_beams_vllm_handler_with_our_batching_and_server_flags():
    handler = model_handler(config(vllm_args=(("max-model-len", "8192"),)))
    assert isinstance(handler, VLLMGenerationHandler)
    assert handler.share_model_across_processes()  # one server per worker VM
    assert handler.batch_elements_kwargs() == {"min_batch_size": 32, "max_batch_size": 32}
    assert handler._model_name == "fineinstructions/template_instantiator"
    assert handler._vllm_server_kwargs["max-model-len"] == "8192"


def test_beam_builds_the_server_command_from_our_flags(monkeypatch):
    from apache_beam.ml.inference import vllm_inference

    launched = {}

    def fake_start(cmd):
        launched["cmd"] = cmd
        raise RuntimeError("no GPU here")

    monkeypatch.setattr(vllm_inference, "start_process", fake_start)
    handler = model_handler(config(vllm_args=(("max-num-seqs", "64"), ("enforce-eager", ""))))
    with pytest.raises(Exception):
        handler.load_model()
    cmd = launched["cmd"]
    assert "vllm.entrypoints.openai.api_server" in cmd
    assert cmd[cmd.index("--model") + 1] == "fineinstructions/template_instantiator"
    assert cmd[cmd.index("--max-num-seqs") + 1] == "64"
    assert "--enforce-eager" in cmd and cmd[cmd.index("--seed") + 1] == "7"


def test_gs_model_dir_is_copied_locally_and_served_under_its_name(monkeypatch, tmp_path):
    from apache_beam.ml.inference import vllm_inference

    from transforms import remote_dirs

    launched, copied = {}, []

    def fake_start(cmd):
        launched["cmd"] = cmd
        raise RuntimeError("no GPU here")

    monkeypatch.setattr(remote_dirs, "cached_local_copy", lambda src: copied.append(src) or str(tmp_path))
    monkeypatch.setattr(vllm_inference, "start_process", fake_start)
    handler = model_handler(config(model="gs://bucket/models/instantiator"))
    with pytest.raises(RuntimeError):
        handler.load_model()
    cmd = launched["cmd"]
    assert copied == ["gs://bucket/models/instantiator"]
    assert cmd[cmd.index("--model") + 1] == str(tmp_path)
    assert cmd[cmd.index("--served-model-name") + 1] == "gs://bucket/models/instantiator"
    assert handler._model_name == "gs://bucket/models/instantiator"  # what each request names


def test_a_steps_own_server_flags_follow_and_override_the_shared_ones():
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.options import DocumentPipelineOptions
    from transforms.job_options import generation_config, job_flags
    opts = job_flags(PipelineOptions(["--vllm_arg", "max-model-len=8192", "--vllm_arg", "enforce-eager",
                                      "--judge_vllm_arg", "max-model-len=4096"]), DocumentPipelineOptions)
    judge = server_kwargs(generation_config(opts, "vllm", "m", 16, step_vllm_args=opts.judge_vllm_arg))
    instantiator = server_kwargs(generation_config(opts, "vllm", "m", 16, step_vllm_args=opts.instantiator_vllm_arg))
    assert judge["max-model-len"] == "4096" and instantiator["max-model-len"] == "8192"
    assert "enforce-eager" in judge and "enforce-eager" in instantiator


def test_request_args_carry_sampling_and_structured_output():
    args = request_args(config(max_new_tokens=300, temperature=0.5, top_p=0.9))
    assert args == {"max_tokens": 300, "temperature": 0.5, "top_p": 0.9, "seed": 7}
    schema = {"type": "object", "properties": {"instruction": {"type": "string"}}}
    assert request_args(config(json_schema=schema))["extra_body"] == {"structured_outputs": {"json": schema}}


def test_prompts_and_responses_translate():
    chat = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    assert as_messages(chat) == chat
    assert as_messages("plain") == [{"role": "user", "content": "plain"}]
    ok = SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content='{"a": 1}'), finish_reason="stop")])
    assert completion_text(ok) == '{"a": 1}'
    empty = SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=""), finish_reason="length")])
    assert completion_text(empty) == GenerationFailure("empty_completion", "finish_reason=length")
    assert completion_text(SimpleNamespace(choices=[])).reason == "endpoint_malformed_response"


@pytest.mark.parametrize("cuda, driver, problem", [
    (None, None, None),                          # a CPU build of torch: nothing to check
    ("13.0", "580.95.05", None),
    ("13.0", "570.172.08", "older than the 580.65 that CUDA 13.0"),
    ("12.8", "550.90.07", None),
    ("12.8", "470.256.02", "older than the 525.60 that CUDA 12.8"),
    ("13.0", None, "shows none"),
])
def test_driver_check(cuda, driver, problem):
    found = driver_problem(cuda, driver)
    assert (found is None) if problem is None else (problem in found and "install-nvidia-driver" in found)


def test_an_old_driver_fails_before_the_server_starts(monkeypatch, tmp_path):
    import torch
    from apache_beam.ml.inference import vllm_inference

    smi = tmp_path / "nvidia-smi"  # what the driver's tool prints for this query
    smi.write_text("#!/bin/sh\necho 535.261.03\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert installed_driver() == "535.261.03"
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    started = []
    monkeypatch.setattr(vllm_inference, "start_process", lambda cmd: started.append(cmd))
    with pytest.raises(RuntimeError, match="NVIDIA driver 535.261.03 is older than the 580.65"):
        model_handler(config()).load_model()
    assert started == []


class StubServer:
    """Beam's ``_VLLMModelServer`` as the handler sees it: a port, and a connectivity check."""

    def __init__(self, port: int):
        self.port, self.checks = port, 0

    def get_server_port(self) -> int:
        return self.port

    def check_connectivity(self):
        self.checks += 1


def test_a_prompt_the_server_rejects_is_its_own_dead_letter_not_its_batchs(fake_openai_url):
    # A prompt over max-model-len gets HTTP 400 from vLLM; Beam's own handler would raise and
    # RunInference would dead-letter all 3 prompts of the batch.
    server = StubServer(int(fake_openai_url.rsplit(":", 1)[1].split("/")[0]))
    handler = VLLMGenerationHandler(config(model="served-name", batch_size=3, max_new_tokens=64))
    batch = ["first", [{"role": "system", "content": "s"}, {"role": "user", "content": "TOO_LONG doc"}],
             [{"role": "user", "content": "third"}]]
    first, rejected, third = handler.run_inference(batch, server)
    assert [first.inference, third.inference] == ['{"echo": "first"}', '{"echo": "third"}']
    assert [first.example, rejected.example, third.example] == batch
    assert rejected.inference.reason == "endpoint_http_400"
    assert "maximum context length is 16384 tokens" in rejected.inference.detail
    assert server.checks == 0  # the server is fine: no connectivity check, no restart
    sent = [r["body"] for r in server_log(fake_openai_url, "") if r["prompt"] in ("first", "TOO_LONG doc", "third")]
    assert len(sent) == 3
    assert {(b["model"], b["max_tokens"], b["seed"]) for b in sent} == {("served-name", 64, 7)}


def test_an_unreachable_server_is_checked_once_and_its_prompts_are_dead_letters(closed_port):
    # Issue 13: this used to raise and dead-letter the whole batch as error_APIConnectionError.
    server = StubServer(closed_port)
    results = VLLMGenerationHandler(config(batch_size=2)).run_inference(["a", "b"], server)
    assert server.checks == 1
    assert [r.inference.reason for r in results] == ["endpoint_unreachable"] * 2


class RestartingServer(StubServer):
    """A server that is dead until Beam's connectivity check restarts it (on another port)."""

    def __init__(self, dead_port: int, live_port: int):
        super().__init__(dead_port)
        self.live_port = live_port

    def check_connectivity(self):
        super().check_connectivity()
        self.port = self.live_port


def test_a_server_that_died_is_restarted_and_its_prompts_retried(closed_port, fake_openai_url):
    live = int(fake_openai_url.rsplit(":", 1)[1].split("/")[0])
    server = RestartingServer(closed_port, live)
    tag = uuid.uuid4().hex
    results = VLLMGenerationHandler(config(model="m", batch_size=3)).run_inference(
        [f"{tag} one", f"{tag} two", f"{tag} ALWAYS_500"], server)
    assert server.checks == 1
    assert [r.inference for r in results[:2]] == [f'{{"echo": "{tag} one"}}', f'{{"echo": "{tag} two"}}']
    assert results[2].inference.reason == "endpoint_http_500"   # answered: an error of its own


def test_a_stalled_request_times_out_alone(fake_openai_url):
    server = StubServer(int(fake_openai_url.rsplit(":", 1)[1].split("/")[0]))
    tag = uuid.uuid4().hex
    handler = VLLMGenerationHandler(config(model="m", batch_size=3, timeout_s=1.0))
    fast, slow, garbage = handler.run_inference([f"{tag} fast", f"{tag} SLOW", f"{tag} MALFORMED"], server)
    assert fast.inference == f'{{"echo": "{tag} fast"}}'
    assert slow.inference.reason == "endpoint_timeout"
    assert garbage.inference.reason == "endpoint_malformed_response"
    assert server.checks == 0


def test_unknown_backend_and_bad_settings_fail_fast():
    with pytest.raises(ValueError, match="unknown generation backend"):
        model_handler(config(backend="tgi"))
    with pytest.raises(ValueError, match="batch_size"):
        model_handler(config(batch_size=0))
    with pytest.raises(ValueError, match="model"):
        model_handler(config(model=""))


def test_raw_prompts_go_to_the_completions_endpoint_with_no_bos_added(fake_openai_url):
    server = StubServer(int(fake_openai_url.rsplit(":", 1)[1].split("/")[0]))
    handler = VLLMGenerationHandler(config(model="fake-synthesizer", batch_size=2, max_new_tokens=400,
                                           temperature=0.0, raw_prompt=True))
    prompts = [f"<s> <CON> Raw text {i} is long enough to ask one question about it here. </CON>\n\n"
               for i in range(2)]
    results = handler.run_inference(prompts, server)
    assert [r.example for r in results] == prompts
    assert all(r.inference.startswith("<QUE> ") for r in results), [r.inference for r in results]
    sent = [r for r in server_log(fake_openai_url, "") if r["prompt"] in prompts]
    assert [r["path"] for r in sent] == ["/v1/completions"] * 2
    assert all(r["body"]["add_special_tokens"] is False and r["body"]["max_tokens"] == 400 for r in sent)
