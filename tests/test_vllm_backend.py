"""The vllm backend: construction, server command line and request arguments (vLLM itself runs
only on GPU workers; the response path is exercised against the fake OpenAI server)."""
from types import SimpleNamespace

import pytest

from transforms.generation import GenerationConfig, GenerationFailure, model_handler
from transforms.job_options import parse_vllm_args
from transforms.openai_backend import completion_text as openai_completion_text
from transforms.vllm_backend import VLLMGenerationHandler, as_chat, request_args, server_kwargs


def completion_text(response):
    return openai_completion_text(response, chat=True)


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
    chat = as_chat([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])
    assert [(m.role, m.content) for m in chat] == [("system", "s"), ("user", "u")]
    assert [(m.role, m.content) for m in as_chat("plain")] == [("user", "plain")]
    ok = SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content='{"a": 1}'), finish_reason="stop")])
    assert completion_text(ok) == '{"a": 1}'
    empty = SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=""), finish_reason="length")])
    assert completion_text(empty) == GenerationFailure("empty_completion", "finish_reason=length")
    assert completion_text(SimpleNamespace(choices=[])).reason == "endpoint_malformed_response"


def test_unknown_backend_and_bad_settings_fail_fast():
    with pytest.raises(ValueError, match="unknown generation backend"):
        model_handler(config(backend="tgi"))
    with pytest.raises(ValueError, match="batch_size"):
        model_handler(config(batch_size=0))
    with pytest.raises(ValueError, match="model"):
        model_handler(config(model=""))
