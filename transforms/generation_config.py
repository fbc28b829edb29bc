"""What every generation backend and step shares: the prompt type, the per-step config and
the per-prompt failure. Backends import this module only, never ``transforms.generation``,
so the seam has no import cycle (generation -> backend -> generation_config).
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

Prompt = Union[str, List[Dict[str, str]]]
"""A completion prompt (text) or chat messages (``[{"role": ..., "content": ...}]``)."""

MODEL_BACKENDS = ("vllm", "openai", "transformers")


def raw_text(prompt: Prompt) -> str:
    """A raw prompt's text; raises TypeError for chat messages (a raw prompt is the model's whole input)."""
    if not isinstance(prompt, str):
        raise TypeError("a raw prompt is the model's whole input as text, not chat messages")
    return prompt


class GenerationFailure(NamedTuple):
    """A prompt the backend could not answer: ``reason`` is a short code for the dead letter."""
    reason: str
    detail: str = ""


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
    raw_prompt: bool = False
    """Text prompts are the model's whole input, special tokens spelled out (a base model's own
    format, e.g. the synthesizer's leading ``<s>``): no chat template, and no BOS added by the
    tokenizer or server, so exactly the prompt's own BOS reaches the model."""
    json_schema: Optional[dict] = None
    """Constrain output to this JSON schema where the backend supports it (vLLM, OpenAI-compatible
    servers with structured outputs); the parser still validates."""
    cache_dir: Optional[str] = None
    """Keep each finished generation here (local or gs://): a rerun sends only the rest."""
    # openai
    base_url: str = "http://localhost:8000/v1"
    api_key_env: str = "OPENAI_API_KEY"
    api_key_secret: Optional[str] = None
    """Secret Manager version name of the key (read on the worker); wins over ``api_key_env``."""
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
        if self.api_key_secret is not None:
            from transforms.secrets import SECRET_VERSION_RE
            if not SECRET_VERSION_RE.match(self.api_key_secret):
                raise ValueError("--openai_api_key_secret must be a Secret Manager version name, "
                                 f"projects/P/secrets/S/versions/V (got {self.api_key_secret!r})")
        if self.raw_prompt and self.json_schema is not None:
            raise ValueError("raw_prompt steps take free text: no json_schema")
        if not 0.0 <= self.top_p <= 1.0 or self.temperature < 0.0:
            raise ValueError("temperature must be >= 0 and top_p in [0, 1]")
