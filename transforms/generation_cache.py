"""A cache of finished generations, so a rerun never pays twice for a model's answer.

Beam and Dataflow rerun a killed or failed job from the start; for the model steps that is the
cost. With ``--generation_cache DIR`` (local or gs://) every prompt's text is kept under a key
of the prompt, the model and the decoding settings, and a rerun sends only the prompts not
answered yet. Failures are not kept (a rerun tries them again). Greedy decoding makes the
cached text the text a rerun would get, so outputs stay byte-identical.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, Iterable, Optional, Sequence

from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from transforms.accounting import NAMESPACE, SEP
from transforms.generation_config import GenerationConfig, Prompt
from transforms.work_cache import WorkCache

_HITS = Metrics.counter(NAMESPACE, f"generation{SEP}cache_hits")
_STORED = Metrics.counter(NAMESPACE, f"generation{SEP}cache_stored")


def cache_key(config: GenerationConfig, prompt: Prompt) -> str:
    """sha256 of everything that decides the text: backend, model, prompt and decoding settings."""
    decided = {"backend": config.backend, "model": config.model, "prompt": prompt,
               "max_new_tokens": config.max_new_tokens, "temperature": config.temperature, "top_p": config.top_p,
               "seed": config.seed, "json_schema": config.json_schema, "raw_prompt": config.raw_prompt}
    return hashlib.sha256(json.dumps(decided, sort_keys=True).encode("utf-8")).hexdigest()


class CachedModelHandler(ModelHandler):
    """Wraps a backend's handler: cached prompts are answered from ``config.cache_dir``, the rest
    go to the backend and its texts are stored (Beam's own wrappers delegate the same way)."""

    def __init__(self, base: ModelHandler, config: GenerationConfig):
        super().__init__()
        self._base, self._config = base, config
        self._dir = config.cache_dir.rstrip("/")
        self._cache = WorkCache(self._dir)
        self._env_vars = getattr(base, "_env_vars", {})

    def _lookup(self, key: str) -> Optional[str]:
        data = self._cache.get(key)
        try:
            text = json.loads(data.decode("utf-8")).get("text") if data is not None else None
        except ValueError:
            return None   # unreadable: generate again
        return text if isinstance(text, str) else None

    def _store(self, key: str, text: str) -> None:
        self._cache.put(key, json.dumps({"model": self._config.model, "text": text}).encode("utf-8"))

    def load_model(self):
        return self._base.load_model()

    def run_inference(self, batch: Sequence[Prompt], model: Any,
                      inference_args: Optional[Dict[str, Any]] = None) -> Iterable[PredictionResult]:
        keys = [cache_key(self._config, p) for p in batch]
        cached = [self._lookup(k) for k in keys]
        todo = [i for i, text in enumerate(cached) if text is None]
        fresh = list(self._base.run_inference([batch[i] for i in todo], model, inference_args)) if todo else []
        results = [PredictionResult(p, text, model_id=self._config.model) if text is not None else None
                   for p, text in zip(batch, cached)]
        _HITS.inc(len(batch) - len(todo))
        for i, result in zip(todo, fresh):
            if isinstance(result.inference, str):
                self._store(keys[i], result.inference)
                _STORED.inc()
            results[i] = result
        return results

    def get_num_bytes(self, batch) -> int:
        return self._base.get_num_bytes(batch)

    def get_metrics_namespace(self) -> str:
        return self._base.get_metrics_namespace()

    def get_resource_hints(self):
        return self._base.get_resource_hints()

    def batch_elements_kwargs(self):
        return self._base.batch_elements_kwargs()

    def validate_inference_args(self, inference_args):
        return self._base.validate_inference_args(inference_args)

    def should_skip_batching(self) -> bool:
        return self._base.should_skip_batching()

    def share_model_across_processes(self) -> bool:
        return self._base.share_model_across_processes()

    def model_copies(self) -> int:
        return self._base.model_copies()

    def __repr__(self) -> str:
        return f"CachedModelHandler({self._base!r}, cache_dir={self._dir!r})"
