"""The generation seam: Generate / GenerativeStep accounting and dead letters, resource hints,
flags -> GenerationConfig, and the run report's generation stages."""
from typing import NamedTuple

import apache_beam as beam
import pytest
from apache_beam.ml.inference.base import ModelHandler, PredictionResult
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms import run_report
from transforms.accounting import DEAD, FILTERED, InvalidRecord, Rejected
from transforms.generation import Generate, GenerativeStep, prompt_text
from transforms.generation_config import GenerationConfig, GenerationFailure
from transforms.job_options import GenerationOptions, generation_config, job_flags


class Record(NamedTuple):
    text: str
    source: str = "unit"


class ScriptedModel:
    """Beam keeps a weak reference to the loaded model: a plain object, not a str."""


class ScriptedHandler(ModelHandler):
    """Upper-cases each prompt; "BOOM" fails its whole batch, "GONE" fails only itself."""

    def load_model(self):
        return ScriptedModel()

    def run_inference(self, batch, model, inference_args=None):
        if any("BOOM" in prompt_text(p).upper() for p in batch):
            raise RuntimeError("batch exploded")
        return [PredictionResult(p, GenerationFailure("endpoint_timeout", "gone") if "GONE" in prompt_text(p).upper()
                                 else prompt_text(p).upper()) for p in batch]

    def batch_elements_kwargs(self):
        return {"min_batch_size": 1, "max_batch_size": 1}


CONFIG = GenerationConfig(backend="openai", model="m")


def parse(generated):
    if "SKIP" in generated.text:
        raise Rejected("skipped")
    if "BAD" in generated.text:
        raise InvalidRecord("unparseable_output", "not the format")
    return generated.record._replace(text=generated.text)


def run_step(texts):
    with TestPipeline() as p:
        step = (p | beam.Create([Record(t) for t in texts])
                | GenerativeStep("step", lambda r: [{"role": "user", "content": r.text}], parse, CONFIG,
                                 handler=ScriptedHandler()))
        assert_that(step["out"] | "Texts" >> beam.Map(lambda r: r.text), equal_to(["[USER] OK"]), label="out")
        assert_that(step[FILTERED] | "F" >> beam.Map(lambda f: (f.stage, f.reason)),
                    equal_to([("step", "skipped")]), label="filtered")
        assert_that(step[DEAD] | "D" >> beam.Map(lambda d: (d.stage, d.reason)),
                    equal_to([("step_generate", "error_RuntimeError"), ("step_generate", "endpoint_timeout"),
                              ("step", "unparseable_output")]), label="dead")
    return run_report.stage_summaries(run_report.counters_from_result(p.result), ["step_generate", "step"])


def test_generative_step_accounts_for_every_record():
    generate, step = run_step(["ok", "skip", "bad", "boom", "gone"])
    assert (generate["in"], generate["out"], generate["dead_letters"]) == (5, 3, 2)
    assert generate["dead_letters_by_reason"] == {"endpoint_timeout": 1, "error_RuntimeError": 1}
    assert (step["in"], step["out"], step["filtered"], step["dead_letters"]) == (3, 1, 1, 1)
    assert generate["conserved"] and step["conserved"]


def test_dead_letters_keep_the_prompt_and_the_raw_model_text():
    with TestPipeline() as p:
        step = (p | beam.Create([Record("bad one"), Record("boom")])
                | GenerativeStep("step", lambda r: r.text, parse, CONFIG, handler=ScriptedHandler()))
        assert_that(step[DEAD] | beam.Map(lambda d: (d.reason, d.raw, d.source)),
                    equal_to([("unparseable_output", "BAD ONE", "unit"), ("error_RuntimeError", "boom", "unit")]))


def test_accelerator_is_a_resource_hint_on_the_inference_step():
    p = beam.Pipeline()
    _ = (p | beam.Create([("k", "prompt")])
         | Generate("g", CONFIG, accelerator="type:nvidia-l4;count:1;install-nvidia-driver", handler=ScriptedHandler()))
    proto = p.to_runner_api()
    hinted = [t.unique_name for t in proto.components.transforms.values()
              if t.environment_id and any(b"nvidia-l4" in v for v in
                                          proto.components.environments[t.environment_id].resource_hints.values())]
    assert hinted and all("RunInference" in name for name in hinted)


def test_flags_build_the_step_config():
    opts = job_flags(PipelineOptions(["--generation_batch_size", "4", "--temperature", "0.3",
                                      "--vllm_arg", "max-num-seqs=8", "--openai_max_retries", "2",
                                      "--no-structured_output"]), GenerationOptions)
    config = generation_config(opts, "vllm", "some/model", 99, json_schema={"type": "object"})
    assert (config.batch_size, config.temperature, config.max_new_tokens, config.max_retries) == (4, 0.3, 99, 2)
    assert config.vllm_args == (("max-num-seqs", "8"),) and config.json_schema is None and config.seed == 42
    with pytest.raises(ValueError, match="temperature"):
        generation_config(job_flags(PipelineOptions(["--temperature", "-1"]), GenerationOptions), "openai", "m", 8)


def test_generation_stages_in_the_report_chain():
    stages, chain = run_report.with_generation_stages(("a", "b", "c"), (("a", "b"), ("b", "c")), ["b"])
    assert stages == ("a", "b_generate", "b", "c")
    assert chain == (("a", "b_generate"), ("b_generate", "b"), ("b", "c"))
    assert run_report.with_generation_stages(("a", "b"), (("a", "b"),), []) == (("a", "b"), (("a", "b"),))
