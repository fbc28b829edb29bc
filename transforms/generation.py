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

import dataclasses
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple, Union

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from transforms.accounting import DEAD, FILTERED, StageCounters, accounted_map, count_stage, text_and_source
from transforms.records import DeadLetter

Prompt = Union[str, List[Dict[str, str]]]
"""A completion prompt (text) or chat messages (``[{"role": ..., "content": ...}]``)."""

MODEL_BACKENDS = ("vllm", "openai", "transformers")


class GenerationFailure(NamedTuple):
    """A prompt the backend could not answer: ``reason`` is a short code for the dead letter."""
    reason: str
    detail: str = ""


class Generated(NamedTuple):
    """A model's text for the record its prompt came from; a parse failure shows the raw text."""
    record: Any
    text: str

    @property
    def source(self) -> str:
        return text_and_source(self.record)[1]

    def accounting_text(self) -> str:
        return self.text[:20000]


@dataclasses.dataclass(frozen=True)
class GenerationConfig:
    """Everything a backend needs; one per generative step (the jobs build it from flags)."""
    backend: str
    model: str
    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    batch_size: int = 8
    seed: int = 42
    json_schema: Optional[dict] = None
    """Constrain output to this JSON schema where the backend supports it (vLLM, OpenAI-compatible
    servers with structured outputs); the parser still validates."""
    # openai
    base_url: str = "http://localhost:8000/v1"
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = 16
    timeout_s: float = 120.0
    max_retries: int = 5
    # vllm: extra server flags, as (flag, value) pairs; value "" for a bare switch
    vllm_args: Tuple[Tuple[str, str], ...] = ()
    # transformers
    device: Optional[str] = None
    dtype: str = "auto"

    def validate(self) -> None:
        if self.backend not in MODEL_BACKENDS:
            raise ValueError(f"unknown generation backend {self.backend!r}; one of {MODEL_BACKENDS}")
        if not self.model:
            raise ValueError(f"the {self.backend} backend needs a model name or path")
        for name in ("max_new_tokens", "batch_size", "max_concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_retries < 0 or self.timeout_s <= 0:
            raise ValueError("max_retries must be >= 0 and timeout_s > 0")
        if not 0.0 <= self.top_p <= 1.0 or self.temperature < 0.0:
            raise ValueError("temperature must be >= 0 and top_p in [0, 1]")


def model_handler(config: GenerationConfig):
    """The backend's ModelHandler for ``config`` (imports only that backend's dependencies)."""
    config.validate()
    if config.backend == "openai":
        from transforms.openai_backend import OpenAICompatibleHandler
        return OpenAICompatibleHandler(config)
    if config.backend == "transformers":
        from transforms.transformers_backend import TransformersGenerationHandler
        return TransformersGenerationHandler(config)
    from transforms.vllm_backend import VLLMGenerationHandler
    return VLLMGenerationHandler(config)


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
            yield beam.pvalue.TaggedOutput(DEAD, DeadLetter(
                self._stage, result.inference.reason, result.inference.detail[:2000],
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
            yield DeadLetter(self._stage, reason, str(exc_repr)[:2000], prompt_text(prompt)[:20000], source)


class Generate(beam.PTransform):
    """``(key, Prompt)`` -> :class:`Generated` ``(key, text)`` through RunInference, as one accounted stage.

    The key rides along untouched (the record the prompt came from). Work is reshuffled first so
    it spreads over (GPU) workers; ``accelerator`` (e.g.
    ``type:nvidia-l4;count:1;install-nvidia-driver``) is a resource hint so a runner can place
    this step alone on GPU workers. Outputs: ``out`` and ``dead_letters``.
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
        unpacked = main | "Unpack" >> beam.ParDo(_Unpack(self._stage)).with_outputs(DEAD, main="out")
        failed = other.failed_inferences | "FailedBatches" >> beam.ParDo(_FailedBatch(self._stage))
        dead = (unpacked[DEAD], failed) | "DeadLetters" >> beam.Flatten()
        return {"out": unpacked.out, DEAD: dead}


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
