"""The ``transformers`` generation backend: Hugging Face ``generate`` inside the Beam worker.

For small models, CPU runs and tests, where a vLLM server per worker is overkill. The
handler only loads a model and generates for a batch; ``RunInference`` owns batching,
sharing and metrics. On a GPU the model is shared across the worker's processes (Beam's
``large_model``), so one copy per GPU VM serves every SDK process; a shared model is a
proxy that exposes only public methods, which is why the loaded model is a
:class:`LoadedCausalLM` whose single :meth:`LoadedCausalLM.generate_batch` does the work.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from transforms.generation_config import GenerationConfig, GenerationFailure, Prompt, raw_text
from transforms.remote_dirs import cached_local_copy

COMPLETION_TOKENS_COUNTER = "generation|completion_tokens"
METRICS_NAMESPACE = "fineinstructions_transformers"



# --------------------------------------------------------------------------- pure helpers

def resolve_device(device: Optional[str]) -> str:
    """``device`` if given, else ``cuda`` when a GPU is visible, else ``cpu``.

    Resolved on the worker (not when the pipeline is built), since the launcher may have no GPU.
    """
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str):
    """The torch dtype for ``dtype``: ``auto`` is bfloat16 on a GPU and float32 on CPU
    (CPU bf16 matmuls are slow and fp16 is unsupported for many CPU ops)."""
    import torch

    if dtype in (None, "", "auto"):
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    name = dtype[len("torch."):] if dtype.startswith("torch.") else dtype
    resolved = getattr(torch, name, None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"unknown torch dtype {dtype!r}")
    return resolved


def resolve_model_path(name_or_path: str) -> str:
    """A local directory or hub name ``from_pretrained`` can load (remote dirs are copied)."""
    if os.path.isdir(name_or_path):
        return os.path.abspath(name_or_path)
    if "://" in name_or_path:
        return cached_local_copy(name_or_path)
    return name_or_path


def prompt_text(tokenizer, prompt: Prompt, model_name: str = "", raw: bool = False) -> Tuple[str, bool]:
    """``(text, add_special_tokens)`` for one prompt.

    Chat messages are rendered with the tokenizer's chat template, which already places
    BOS etc., so special tokens are not added again; a completion string is used as-is and
    gets the tokenizer's usual special tokens, except a ``raw`` one, which spells out its own
    (the synthesizer's literal ``<s>`` is its BOS: adding the tokenizer's would make two).
    """
    if raw:
        return raw_text(prompt), False
    if isinstance(prompt, str):
        return prompt, True
    if isinstance(prompt, (list, tuple)) and all(isinstance(m, dict) for m in prompt):
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                f"model {model_name or getattr(tokenizer, 'name_or_path', '?')!r} has no chat "
                "template, so it cannot take chat prompts; give it a completion (str) prompt "
                "or use an instruction-tuned model")
        text = tokenizer.apply_chat_template(list(prompt), add_generation_prompt=True,
                                             tokenize=False)
        return text, False
    raise TypeError(f"a prompt is a str or a list of chat messages, got {type(prompt).__name__}")


def build_inputs(tokenizer, prompts: Sequence[Prompt], model_name: str = "", raw: bool = False) -> Dict[str, Any]:
    """Left-padded ``input_ids`` / ``attention_mask`` tensors for a batch of prompts."""
    encoded = []
    for prompt in prompts:
        text, add_special = prompt_text(tokenizer, prompt, model_name, raw)
        ids = tokenizer(text, add_special_tokens=add_special)["input_ids"]
        encoded.append({"input_ids": ids})
    return tokenizer.pad(encoded, padding=True, return_tensors="pt", return_attention_mask=True)


def generation_kwargs(config: GenerationConfig, pad_id: Optional[int]) -> Dict[str, Any]:
    """``model.generate`` kwargs: greedy at temperature 0, else sampling with temperature/top_p."""
    kwargs: Dict[str, Any] = {
        "max_new_tokens": config.max_new_tokens,
        "do_sample": config.temperature > 0,
        "pad_token_id": pad_id,
    }
    if kwargs["do_sample"]:
        kwargs["temperature"] = config.temperature
        kwargs["top_p"] = config.top_p
    else:
        # Override sampling defaults from the model's generation_config so greedy runs do
        # not warn (or, for top_k/top_p, silently keep sampling-only settings).
        kwargs.update(temperature=None, top_p=None, top_k=None)
    return kwargs


def completion_lengths(new_ids, eos_ids: Iterable[Optional[int]]) -> List[int]:
    """Generated tokens per row: up to and including the first EOS, else the whole row
    (rows that finish early are padded after their EOS, which must not count)."""
    stop = {int(i) for i in eos_ids if i is not None}
    lengths = []
    for row in new_ids.tolist():
        n = len(row)
        for i, tok in enumerate(row):
            if tok in stop:
                n = i + 1
                break
        lengths.append(n)
    return lengths


# --------------------------------------------------------------------------- loaded model

class LoadedCausalLM:
    """A tokenizer and causal LM on one device.

    Its one public method runs a whole batch, so it works the same when Beam shares it
    across processes (the proxy exposes methods only) and arguments/results are plain
    picklable lists.
    """

    def __init__(self, tokenizer, model, device: str, model_name: str = ""):
        self.tokenizer = tokenizer
        self.model = model
        self.device = device
        self.model_name = model_name

    def generate_batch(self, prompts: Sequence[Prompt], config: GenerationConfig
                       ) -> Tuple[List[str], int]:
        """``(decoded completions, total generated tokens)`` for ``prompts``, in order."""
        import torch

        tok = self.tokenizer
        inputs = build_inputs(tok, prompts, self.model_name or config.model, config.raw_prompt)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        kwargs = generation_kwargs(config, tok.pad_token_id)
        with torch.inference_mode():
            if kwargs["do_sample"]:
                torch.manual_seed(config.seed)  # per batch: a rerun of a batch samples the same
            out = self.model.generate(**inputs, **kwargs)
        new_ids = out[:, inputs["input_ids"].shape[1]:].cpu()
        eos = self.model.generation_config.eos_token_id
        eos_ids = eos if isinstance(eos, (list, tuple)) else [eos if eos is not None
                                                              else tok.eos_token_id]
        n_tokens = sum(completion_lengths(new_ids, eos_ids))
        texts = tok.batch_decode(new_ids, skip_special_tokens=True)
        return list(texts), int(n_tokens)


def load_causal_lm(config: GenerationConfig) -> LoadedCausalLM:
    """Loads tokenizer + model for ``config`` (left padding, pad = EOS when missing, eval mode)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = resolve_device(config.device)
    path = resolve_model_path(config.model)
    local = os.path.isdir(path)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local)
    tokenizer.padding_side = "left"  # decoder-only: new tokens must follow the prompt directly
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=resolve_dtype(config.dtype, device), local_files_only=local)
    model.to(device)
    model.eval()
    return LoadedCausalLM(tokenizer, model, device, config.model)


# --------------------------------------------------------------------------- handler

class TransformersGenerationHandler(ModelHandler[Prompt, Union[str, GenerationFailure], Any]):
    """RunInference handler: Hugging Face ``generate`` for batches of prompts.

    Yields ``PredictionResult(prompt, text | GenerationFailure, model_id=config.model)`` in
    input order; an empty completion becomes ``GenerationFailure("empty_completion")`` so
    the parser's dead letter sees why.
    """

    def __init__(self, config: GenerationConfig):
        super().__init__()
        self._config = config

    @property
    def config(self) -> GenerationConfig:
        return self._config

    def load_model(self) -> LoadedCausalLM:
        return load_causal_lm(self._config)

    def run_inference(self, batch: Sequence[Prompt], model: LoadedCausalLM,
                      inference_args: Optional[Dict[str, Any]] = None
                      ) -> Iterable[PredictionResult]:
        batch = list(batch)
        if not batch:
            return []
        texts, n_tokens = model.generate_batch(batch, self._config)
        Metrics.counter("fineinstructions", COMPLETION_TOKENS_COUNTER).inc(n_tokens)
        results = []
        for example, text in zip(batch, texts):
            inference: Union[str, GenerationFailure] = text
            if not text.strip():
                inference = GenerationFailure("empty_completion",
                                              "the model generated no text for this prompt")
            results.append(PredictionResult(example, inference, model_id=self._config.model))
        return results

    def batch_elements_kwargs(self) -> Dict[str, Any]:
        # Full batches from the start: Beam's adaptive batching otherwise begins at 1 and a
        # padded generate call costs about the same for 1 prompt as for the whole batch.
        return {"min_batch_size": self._config.batch_size, "max_batch_size": self._config.batch_size}

    def share_model_across_processes(self) -> bool:
        """One model per GPU VM (Beam's ``large_model``); on CPU each process keeps its own,
        since proxying every batch to another process buys nothing there."""
        return resolve_device(self._config.device).startswith("cuda")

    def get_metrics_namespace(self) -> str:
        return METRICS_NAMESPACE
