"""The ``openai`` generation backend: any OpenAI-compatible endpoint (vLLM server, TGI, OpenAI).

A Beam ``ModelHandler`` whose "model" is an ``openai.OpenAI`` client. RunInference owns
batching and metrics; the handler sends a batch's prompts concurrently and returns, per
prompt, the generated text or a :class:`~transforms.generation_config.GenerationFailure`, so one
prompt that still fails after the client's retries does not sink its batch.

Retries are the openai client's own (read in openai 3.54.0, ``openai/_base_client.py``):
with ``max_retries=N`` it retries a request up to N times on connection errors, timeouts,
and HTTP 408, 409, 429 and 5xx (or whatever an ``x-should-retry`` header says), with
exponential backoff (0.5 s doubling to at most 8 s, minus up to 25% jitter); a
``Retry-After``/``retry-after-ms`` header of more than 0 and at most 120 s replaces the
backoff, and a longer one makes it give up at once. So no backoff is implemented here.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

import openai
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from transforms.accounting import NAMESPACE, SEP
from transforms.generation_config import GenerationConfig, GenerationFailure, Prompt, raw_text
from transforms.secrets import api_key, redact

_DETAIL_CHARS = 500
_PROMPT_TOKENS = Metrics.counter(NAMESPACE, f"generation{SEP}prompt_tokens")
_COMPLETION_TOKENS = Metrics.counter(NAMESPACE, f"generation{SEP}completion_tokens")


def failure_from_exception(exc: BaseException) -> Optional[GenerationFailure]:
    """The dead-letter reason for an exception the client raised for one prompt.

    ``None`` for an exception that is not the endpoint's doing (a bug here should fail
    loudly rather than become a dead letter).
    """
    detail = redact(f"{type(exc).__name__}: {exc}")[:_DETAIL_CHARS]
    if isinstance(exc, openai.APITimeoutError):  # a subclass of APIConnectionError: test first
        return GenerationFailure("endpoint_timeout", detail)
    if isinstance(exc, openai.APIConnectionError):
        return GenerationFailure("endpoint_unreachable", detail)
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code == 429:
            return GenerationFailure("endpoint_rate_limited", detail)
        return GenerationFailure(f"endpoint_http_{exc.status_code}", detail)
    # APIResponseValidationError (strict clients), or a JSON content type whose body is not JSON.
    if isinstance(exc, (openai.APIResponseValidationError, json.JSONDecodeError)):
        return GenerationFailure("endpoint_malformed_response", detail)
    if isinstance(exc, openai.OpenAIError):
        return GenerationFailure("endpoint_error", detail)
    return None


def completion_text(response: Any, chat: bool) -> Union[str, GenerationFailure]:
    """The text of the first choice of a (chat) completion, or why there is none.

    The client does not validate bodies: a non-JSON content type comes back as a ``str``, and
    a JSON body without ``choices`` as a model missing that attribute.
    """
    if isinstance(response, str):
        return GenerationFailure("endpoint_malformed_response", f"non-JSON body: {response[:200]!r}")
    try:
        choice = response.choices[0]
        text = choice.message.content if chat else choice.text
    except (AttributeError, IndexError, KeyError, TypeError) as exc:
        return GenerationFailure("endpoint_malformed_response", f"no choice text: {type(exc).__name__}: {exc}"[:_DETAIL_CHARS])
    if text is not None and not isinstance(text, str):
        return GenerationFailure("endpoint_malformed_response", f"choice text is {type(text).__name__}")
    if not text or not text.strip():
        reason = getattr(choice, "finish_reason", None)
        return GenerationFailure("empty_completion", f"finish_reason={reason}")
    return text


def usage_tokens(response: Any) -> Tuple[int, int]:
    """``(prompt_tokens, completion_tokens)`` from the response's usage block, 0 where absent."""
    usage = getattr(response, "usage", None)
    counts = (getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None))
    return tuple(n if isinstance(n, int) else 0 for n in counts)  # type: ignore[return-value]


def count_usage(response: Any) -> None:
    """Adds a response's token usage to the job's counters. Call it on the thread running the
    DoFn: Beam metrics are scoped to that thread."""
    prompt_tokens, completion_tokens = usage_tokens(response)
    if prompt_tokens or completion_tokens:
        _PROMPT_TOKENS.inc(prompt_tokens)
        _COMPLETION_TOKENS.inc(completion_tokens)


class OpenAICompatibleHandler(ModelHandler[Prompt, Union[str, GenerationFailure], Any]):
    """Generates with an OpenAI-compatible HTTP endpoint; the loaded "model" is the client.

    Chat messages (a list) go to ``/chat/completions``, a text prompt to ``/completions``
    (a ``raw_prompt`` one with vLLM's ``add_special_tokens: false``, so the server adds no
    second BOS; servers without that field may reject it).
    The API key is read when the client is made, on the worker: from Secret Manager when
    ``config.api_key_secret`` names a version, else from ``config.api_key_env`` (``"EMPTY"``
    when unset, as a vLLM server without ``--api-key`` expects); it is never stored on the
    handler, so it is neither pickled into the pipeline nor shown by ``repr``.
    """

    def __init__(self, config: GenerationConfig):
        super().__init__()
        self._config = config

    def __repr__(self) -> str:
        c = self._config
        return f"OpenAICompatibleHandler(model={c.model!r}, base_url={c.base_url!r}, api_key_env={c.api_key_env!r})"

    def load_model(self) -> Any:
        """An ``openai.OpenAI`` client; its own retries (see the module docstring) apply to every call."""
        c = self._config
        return openai.OpenAI(
            base_url=c.base_url,
            api_key=api_key(c.api_key_env, c.api_key_secret),
            timeout=c.timeout_s,
            max_retries=c.max_retries,
        )

    def _request(self, prompt: Prompt, inference_args: Mapping[str, Any]) -> Tuple[str, Dict[str, Any]]:
        """``(endpoint, create() kwargs)`` for one prompt."""
        c = self._config
        kwargs: Dict[str, Any] = dict(model=c.model, max_tokens=c.max_new_tokens,
                                      temperature=c.temperature, top_p=c.top_p, seed=c.seed)
        chat = isinstance(prompt, list)
        if c.raw_prompt:
            kwargs["prompt"] = raw_text(prompt)
        elif chat:
            kwargs["messages"] = prompt
        else:
            kwargs["prompt"] = prompt
        if c.raw_prompt:
            # vLLM's completions field (default true): the prompt already holds its BOS.
            kwargs["extra_body"] = {"add_special_tokens": False}
        if c.json_schema is not None:
            # Structured output. Servers without it ignore the field or reject the request
            # (then a per-prompt endpoint_http_400). Chat uses OpenAI's response_format;
            # completions has no standard field, so both vLLM spellings go in extra_body:
            # guided_json (vLLM < 0.12) and structured_outputs.json (vLLM >= 0.10.2).
            if chat:
                kwargs["response_format"] = {"type": "json_schema",
                                             "json_schema": {"name": "output", "schema": c.json_schema}}
            else:
                kwargs["extra_body"] = {"guided_json": c.json_schema,
                                        "structured_outputs": {"json": c.json_schema}}
        kwargs.update(inference_args)
        return ("chat" if chat else "completions"), kwargs

    def _generate_one(self, client: Any, prompt: Prompt,
                      inference_args: Mapping[str, Any]) -> Tuple[Union[str, GenerationFailure], Any]:
        """``(text or failure, raw response or None)`` for one prompt; endpoint errors become failures."""
        endpoint, kwargs = self._request(prompt, inference_args)
        create = client.chat.completions.create if endpoint == "chat" else client.completions.create
        try:
            response = create(**kwargs)
        except Exception as exc:  # pylint: disable=broad-except
            failure = failure_from_exception(exc)
            if failure is None:
                raise
            return failure, None
        return completion_text(response, chat=endpoint == "chat"), response

    def run_inference(self, batch: Sequence[Prompt], model: Any,
                      inference_args: Optional[Dict[str, Any]] = None) -> Iterable[PredictionResult]:
        """One ``PredictionResult`` per prompt, in input order, at most ``max_concurrency`` in flight.

        The bound holds per batch (one RunInference call), i.e. per DoFn thread of a worker.
        Token counters are incremented here, on the calling thread (see :func:`count_usage`).
        """
        args = dict(inference_args or {})
        workers = max(1, min(self._config.max_concurrency, len(batch)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-gen") as pool:
            outcomes = list(pool.map(lambda p: self._generate_one(model, p, args), batch))
        results = []
        for prompt, (inference, response) in zip(batch, outcomes):
            count_usage(response)
            results.append(PredictionResult(prompt, inference, model_id=self._config.model))
        return results

    def validate_inference_args(self, inference_args: Optional[Dict[str, Any]]) -> None:
        """Any inference_args (e.g. ``stop``) are passed on to ``create()`` as request fields."""

    def batch_elements_kwargs(self) -> Mapping[str, Any]:
        # Full batches from the start (Beam's adaptive batching begins at 1): a batch is the
        # unit of concurrency here.
        return {"min_batch_size": self._config.batch_size, "max_batch_size": self._config.batch_size}

    def share_model_across_processes(self) -> bool:
        """A client is cheap; the endpoint, not the worker, holds the model."""
        return False

    def get_metrics_namespace(self) -> str:
        return "fineinstructions_openai"


def probe_endpoint(config: GenerationConfig, timeout_s: float = 15.0) -> None:
    """One ``GET {base_url}/models`` before the job: raises InputError naming the URL when the
    endpoint cannot be reached or refuses the key (401/403). Any other answer, a 404 from a
    server without that route included, means it is there."""
    import urllib.error
    import urllib.request

    from transforms.errors import InputError

    url = config.base_url.rstrip("/") + "/models"
    key = api_key(config.api_key_env, config.api_key_secret)
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            return
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            raise InputError(f"the openai endpoint {config.base_url} refused the API key from ${config.api_key_env} "
                             f"(HTTP {e.code}): set it, or name the variable with --openai_api_key_env") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise InputError(f"the openai endpoint {config.base_url} cannot be reached ({reason}): start it or fix "
                         "--openai_base_url (--no-probe_endpoint skips this check when only the workers can "
                         "reach it)") from None