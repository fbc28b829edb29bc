"""The ``vllm`` backend: Beam's vLLM chat handler, which starts one vLLM OpenAI-compatible
server per worker (shared by the worker's processes) and sends it each batch concurrently.

We only translate: our prompts to Beam's chat messages, our flags to the server's command line
(``--vllm_arg max-num-seqs=64`` -> ``--max-num-seqs 64``) and to request arguments (sampling,
seed, structured JSON output), and the server's response to text. vLLM itself is installed
only on GPU workers (the ``gpu`` extra, or the worker image): constructing the handler needs
only the ``openai`` client, so the job graph builds anywhere.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence

from apache_beam.ml.inference.base import PredictionResult
from apache_beam.ml.inference.vllm_inference import OpenAIChatMessage, VLLMChatModelHandler

from transforms.generation import GenerationConfig, Prompt
from transforms.openai_backend import completion_text  # the same OpenAI response objects


def server_kwargs(config: GenerationConfig) -> Dict[str, Optional[str]]:
    """vLLM server flags (Beam adds ``--model`` and ``--port``); a bare switch maps to None."""
    kwargs: Dict[str, Optional[str]] = {"seed": str(config.seed)}
    for key, value in config.vllm_args:
        kwargs[key] = value or None
    return kwargs


def is_remote(model: str) -> bool:
    """A model directory on a Beam filesystem (``gs://...``) rather than a local path or hub name."""
    return "://" in model


def request_args(config: GenerationConfig) -> Dict[str, Any]:
    """Per-request arguments: sampling, seed, and structured JSON output when a schema is set."""
    args: Dict[str, Any] = {"max_tokens": config.max_new_tokens, "temperature": config.temperature,
                            "top_p": config.top_p, "seed": config.seed}
    if config.json_schema is not None:
        # vLLM >= 0.12 spelling (guided_json was removed); grammar-constrained decoding.
        args["extra_body"] = {"structured_outputs": {"json": config.json_schema}}
    return args


def as_chat(prompt: Prompt) -> List[OpenAIChatMessage]:
    """Our prompt as Beam's chat messages; a bare string is one user message."""
    if isinstance(prompt, str):
        return [OpenAIChatMessage("user", prompt)]
    return [OpenAIChatMessage(m["role"], m["content"]) for m in prompt]


class VLLMGenerationHandler(VLLMChatModelHandler):
    """Beam's ``VLLMChatModelHandler`` speaking our ``Prompt -> text | GenerationFailure``."""

    def __init__(self, config: GenerationConfig):
        kwargs = server_kwargs(config)
        if is_remote(config.model):  # requests name the model as configured
            kwargs.setdefault("served-model-name", config.model)
        super().__init__(config.model, vllm_server_kwargs=kwargs,
                         min_batch_size=config.batch_size, max_batch_size=config.batch_size)
        self._config = config
        self._request_args = request_args(config)

    def load_model(self):
        """Beam's server, started on a local copy of a ``gs://`` model directory (vLLM reads
        local directories and hub names only); it serves it under the configured name."""
        if not is_remote(self._config.model):
            return super().load_model()
        from transforms.remote_dirs import cached_local_copy

        self._model_name = cached_local_copy(self._config.model)
        try:
            return super().load_model()
        finally:
            self._model_name = self._config.model

    def run_inference(self, batch: Sequence[Prompt], model,
                      inference_args: Optional[Dict[str, Any]] = None) -> Iterable[PredictionResult]:
        args = {**self._request_args, **(inference_args or {})}
        responses = super().run_inference([as_chat(p) for p in batch], model, args)
        return [PredictionResult(prompt, completion_text(r.inference, chat=True), model_id=self._config.model)
                for prompt, r in zip(batch, responses)]

    def get_metrics_namespace(self) -> str:
        return "fineinstructions_vllm"
