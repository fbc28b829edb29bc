"""The model-worker seam: ``build_prompt -> generate -> parse`` for every generative step.

A backend is a Beam ``ModelHandler`` that only loads a model and generates text for a batch
of prompts; RunInference owns batching, model sharing across processes, metrics and the
dead-letter output. Backends: ``vllm`` (Beam's vLLM handler: one vLLM server per GPU
worker), ``openai`` (any OpenAI-compatible endpoint), ``transformers`` (Hugging Face
generation in the worker). A handler returns, per prompt, the generated text or a
:class:`GenerationFailure` (e.g. an endpoint that still fails after its retries), so one bad
prompt does not sink its batch.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from transforms.accounting import DEAD, FILTERED, StageCounters, accounted_map, count_stage, text_and_source
from transforms.generation_config import GenerationConfig, GenerationFailure, Prompt
from transforms.records import DeadLetter
from transforms.secrets import redact


FAILED = "failed"


class Generated(NamedTuple):
    """A model's text for the record its prompt came from; a parse failure shows the raw text."""
    record: Any
    text: str

    @property
    def source(self) -> str:
        return text_and_source(self.record)[1]

    def accounting_text(self) -> str:
        return self.text[:20000]

def model_handler(config: GenerationConfig):
    """The backend's ModelHandler for ``config`` (imports only that backend's dependencies), behind
    the generation cache when ``config.cache_dir`` is set."""
    config.validate()
    if config.backend == "openai":
        from transforms.openai_backend import OpenAICompatibleHandler
        handler = OpenAICompatibleHandler(config)
    elif config.backend == "transformers":
        from transforms.transformers_backend import TransformersGenerationHandler
        handler = TransformersGenerationHandler(config)
    else:
        from transforms.vllm_backend import VLLMGenerationHandler
        handler = VLLMGenerationHandler(config)
    if config.cache_dir:
        from transforms.generation_cache import CachedModelHandler
        handler = CachedModelHandler(handler, config)
    return handler


def prompt_text(prompt: Prompt) -> str:
    """A prompt as one string, for dead letters."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"[{m.get('role', '?')}] {m.get('content', '')}" for m in prompt)


class _Unpack(beam.DoFn):
    """(key, PredictionResult) -> (key, text); a GenerationFailure becomes a dead letter."""

    def __init__(self, stage: str):
        self._stage = stage

    def setup(self):
        self._counters = StageCounters(self._stage)

    def process(self, keyed):
        key, result = keyed
        if isinstance(result.inference, GenerationFailure):
            self._counters.dead(result.inference.reason)
            _, source = text_and_source(key)
            yield beam.pvalue.TaggedOutput(FAILED, key)
            yield beam.pvalue.TaggedOutput(DEAD, DeadLetter(
                self._stage, result.inference.reason, redact(result.inference.detail)[:2000],
                prompt_text(result.example)[:20000], source))
            return
        self._counters.inc_out()
        yield Generated(key, result.inference)


class _FailedBatch(beam.DoFn):
    """A batch whose inference raised (after the backend's own retries): each element a dead letter."""

    def __init__(self, stage: str):
        self._stage = stage

    def setup(self):
        self._counters = StageCounters(self._stage)

    def process(self, failed):
        batch, (exc_type, exc_repr, _traceback) = failed  # Beam's dead-letter form
        reason = f"error_{exc_type.__name__}"
        for key, prompt in batch:
            self._counters.dead(reason)
            _, source = text_and_source(key)
            yield beam.pvalue.TaggedOutput(FAILED, key)
            yield DeadLetter(self._stage, reason, redact(str(exc_repr))[:2000], prompt_text(prompt)[:20000], source)


class Generate(beam.PTransform):
    """``(key, Prompt)`` -> :class:`Generated` ``(key, text)`` through RunInference, as one accounted stage.

    The key rides along untouched (the record the prompt came from). Work is reshuffled first so
    it spreads over (GPU) workers; ``accelerator`` (e.g.
    ``type:nvidia-l4;count:1;install-nvidia-driver``) is a resource hint so a runner can place
    this step alone on GPU workers. Outputs: ``out``, ``dead_letters`` and ``failed`` (the key of
    each dead-lettered prompt, for a step whose record must go on without the model's text).
    """

    def __init__(self, stage: str, config: GenerationConfig, accelerator: Optional[str] = None,
                 handler=None):
        super().__init__()
        self._stage = stage
        self._handler = handler if handler is not None else model_handler(config)
        self._accelerator = accelerator

    def expand(self, keyed_prompts):
        inference = RunInference(KeyedModelHandler(self._handler))
        if self._accelerator:
            inference = inference.with_resource_hints(accelerator=self._accelerator)
        main, other = (keyed_prompts
                       | "CountIn" >> beam.Map(count_stage(self._stage, "in"))
                       | "Reshuffle" >> beam.Reshuffle()
                       | "RunInference" >> inference.with_exception_handling())
        unpacked = main | "Unpack" >> beam.ParDo(_Unpack(self._stage)).with_outputs(DEAD, FAILED, main="out")
        failed = (other.failed_inferences
                  | "FailedBatches" >> beam.ParDo(_FailedBatch(self._stage)).with_outputs(FAILED, main=DEAD))
        dead = (unpacked[DEAD], failed[DEAD]) | "DeadLetters" >> beam.Flatten()
        failed_keys = (unpacked[FAILED], failed[FAILED]) | "FailedKeys" >> beam.Flatten()
        return {"out": unpacked.out, DEAD: dead, FAILED: failed_keys}


class GenerativeStep(beam.PTransform):
    """``build_prompt -> generate -> parse`` for one step: records in, parsed records out.

    Two accounted stages: ``<stage>_generate`` (the model call; failures are dead letters) and
    ``<stage>`` (``parse(Generated)``: filtered on purpose with a reason, dead letter with the raw
    model text when unparseable). Outputs ``out``, ``filtered``, ``dead_letters``.
    """

    def __init__(self, stage: str, build_prompt: Callable[[Any], Prompt], parse: Callable[[Generated], Any],
                 config: GenerationConfig, accelerator: Optional[str] = None, handler=None):
        super().__init__()
        self._stage, self._build_prompt, self._parse = stage, build_prompt, parse
        self._generate = Generate(f"{stage}_generate", config, accelerator, handler)

    def expand(self, records):
        build_prompt = self._build_prompt
        generated = (records
                     | "BuildPrompt" >> beam.Map(lambda record: (record, build_prompt(record)))
                     | "Generate" >> self._generate)
        parsed = generated["out"] | "Parse" >> accounted_map(self._stage, self._parse)
        dead = (generated[DEAD], parsed[DEAD]) | "DeadLetters" >> beam.Flatten()
        return {"out": parsed.out, FILTERED: parsed[FILTERED], DEAD: dead}
