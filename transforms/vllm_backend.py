"""The ``vllm`` backend: Beam's vLLM chat handler, which starts one vLLM OpenAI-compatible
server per worker (shared by the worker's processes); each batch is sent to it concurrently.
Raw prompts (a base model's own format, ``GenerationConfig.raw_prompt``) go to the server's
completions endpoint instead, with no BOS added by the server.

We translate our prompts to chat messages, our flags to the server's command line
(``--vllm_arg max-num-seqs=64`` -> ``--max-num-seqs 64``) and to request arguments (sampling,
seed, structured JSON output), and the server's response to text. Requests are ours, not Beam's:
a prompt the server rejects (HTTP 400 for a prompt longer than ``max-model-len``) becomes that
prompt's dead letter, where Beam's handler would fail its whole batch; a request that times
out is that prompt's ``endpoint_timeout``; a server that dies mid-run is restarted (Beam's
connectivity check) and the prompts it lost are sent once more. vLLM itself is installed
only on GPU workers (the ``gpu`` extra, or the worker image): constructing the handler needs
only the ``openai`` client, so the job graph builds anywhere.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import openai
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.ml.inference.vllm_inference import VLLMChatModelHandler, getAsyncVLLMClient

from transforms.generation_config import GenerationConfig, GenerationFailure, Prompt, raw_text
# The same OpenAI response objects and client exceptions as the openai backend.
from transforms.openai_backend import completion_text, count_usage, failure_from_exception


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


def as_messages(prompt: Prompt) -> List[Dict[str, str]]:
    """Our prompt as chat messages; a bare string is one user message."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m["role"], "content": m["content"]} for m in prompt]


# The oldest NVIDIA driver each CUDA major version runs on (NVIDIA's CUDA Toolkit release notes,
# minor version compatibility): the worker image's torch and vLLM wheels are built for one CUDA.
MIN_DRIVER = {11: (450, 80), 12: (525, 60), 13: (580, 65)}
# Where Dataflow mounts the driver's tools in the worker container.
DATAFLOW_NVIDIA_BIN = "/usr/local/nvidia/bin"


def driver_problem(cuda: Optional[str], driver: Optional[str]) -> Optional[str]:
    """Why a torch built for CUDA ``cuda`` cannot use driver ``driver`` (None: it can, or torch is
    a CPU build). Checked before the server starts: vLLM's own error is a crash deep in its log."""
    if not cuda:
        return None
    fix = ("on Dataflow, ask for a newer driver with the worker_accelerator option's "
           "install-nvidia-driver:<version> (NVIDIA_DRIVER in deploy/dataflow, the DAG's nvidia_driver)")
    if not driver:
        return (f"vLLM needs an NVIDIA GPU and driver, and this worker shows none (no nvidia-smi on PATH "
                f"or in {DATAFLOW_NVIDIA_BIN}): run the generation steps on GPU workers; {fix}")
    need = MIN_DRIVER.get(int(cuda.split(".")[0]))
    have = tuple(int(x) for x in driver.split(".")[:2])
    if need and have < need:
        return (f"NVIDIA driver {driver} is older than the {need[0]}.{need[1]} that CUDA {cuda} (this image's "
                f"torch and vLLM) needs; {fix}")
    return None


def installed_driver() -> Optional[str]:
    """The NVIDIA driver version nvidia-smi reports, or None without one."""
    path = os.pathsep.join(filter(None, [os.environ.get("PATH"), DATAFLOW_NVIDIA_BIN]))
    smi = shutil.which("nvidia-smi", path=path)
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.split()[0] if out.split() else None


def _server_down(outcome: Any) -> bool:
    """The request never reached a live server (refused, reset, dropped): worth a restart and a retry."""
    return isinstance(outcome, openai.APIConnectionError) and not isinstance(outcome, openai.APITimeoutError)


def _as_text(outcome: Any, chat: bool) -> Union[str, GenerationFailure]:
    if isinstance(outcome, asyncio.TimeoutError):
        return GenerationFailure("endpoint_timeout", "no answer within --openai_timeout_s")
    if isinstance(outcome, BaseException):
        failure = failure_from_exception(outcome)
        if failure is None:
            raise outcome   # not the server's doing: a bug here must fail loudly
        return failure
    return completion_text(outcome, chat=chat)


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
        local directories and hub names only); it serves it under the configured name. Fails
        first, with the fix, on a worker whose NVIDIA driver is missing or too old."""
        import torch

        problem = driver_problem(torch.version.cuda, installed_driver())
        if problem:
            raise RuntimeError(problem)
        if not is_remote(self._config.model):
            return super().load_model()
        from transforms.remote_dirs import cached_local_copy

        self._model_name = cached_local_copy(self._config.model)
        try:
            return super().load_model()
        finally:
            self._model_name = self._config.model

    async def _send(self, batch: Sequence[Prompt], port: int, args: Dict[str, Any]) -> List[Any]:
        """Every prompt's response, or the exception its request raised (gathered, not thrown),
        each request bounded by ``timeout_s``. A raw prompt goes to ``/completions`` with no
        special tokens added (it holds its own BOS)."""
        timeout = self._config.timeout_s
        async with getAsyncVLLMClient(port) as client:
            client = client.with_options(max_retries=0)   # retries are ours: after a restart
            if self._config.raw_prompt:
                calls = [client.completions.create(model=self._model_name, prompt=raw_text(p), **args,
                                                   extra_body={"add_special_tokens": False}) for p in batch]
            else:
                calls = [client.chat.completions.create(
                    model=self._model_name, messages=as_messages(p), **args) for p in batch]
            return await asyncio.gather(*(asyncio.wait_for(c, timeout) for c in calls), return_exceptions=True)

    def run_inference(self, batch: Sequence[Prompt], model,
                      inference_args: Optional[Dict[str, Any]] = None) -> Iterable[PredictionResult]:
        """One result per prompt: text, or why not. A request the server answered with an error is
        that prompt's failure; one that timed out is ``endpoint_timeout``. When requests could not
        reach the server (it died mid-run), Beam's connectivity check restarts it and those prompts
        are sent once more; what still fails is ``endpoint_unreachable``, per prompt, so the
        batch's finished generations are kept."""
        args = {**self._request_args, **(inference_args or {})}
        outcomes = list(asyncio.run(self._send(batch, model.get_server_port(), args)))
        lost = [i for i, outcome in enumerate(outcomes) if _server_down(outcome)]
        if lost:
            model.check_connectivity()   # restarts a dead server (raises when it cannot)
            again = asyncio.run(self._send([batch[i] for i in lost], model.get_server_port(), args))
            for i, outcome in zip(lost, again):
                outcomes[i] = outcome
        for outcome in outcomes:
            count_usage(outcome)  # an exception has no usage: counts nothing
        chat = not self._config.raw_prompt
        return [PredictionResult(prompt, _as_text(outcome, chat), model_id=self._config.model)
                for prompt, outcome in zip(batch, outcomes)]

    def get_metrics_namespace(self) -> str:
        return "fineinstructions_vllm"
