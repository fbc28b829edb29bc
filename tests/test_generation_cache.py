"""The generation cache: cached prompts never reach the backend, failures are not kept."""
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from transforms.generation_cache import CachedModelHandler, cache_key
from transforms.generation_config import GenerationConfig, GenerationFailure


class CountingHandler(ModelHandler):
    def __init__(self):
        super().__init__()
        self.sent = []

    def load_model(self):
        return "model"

    def run_inference(self, batch, model, inference_args=None):
        self.sent.extend(batch)
        return [PredictionResult(p, GenerationFailure("endpoint_http_500") if "FAIL" in p else p.upper())
                for p in batch]

    def batch_elements_kwargs(self):
        return {"min_batch_size": 3, "max_batch_size": 3}


def test_only_unanswered_prompts_reach_the_backend(tmp_path):
    config = GenerationConfig(backend="openai", model="m", cache_dir=str(tmp_path / "cache"))
    base = CountingHandler()
    handler = CachedModelHandler(base, config)
    first = handler.run_inference(["a", "FAIL b", "c"], handler.load_model())
    assert [r.inference for r in first][::2] == ["A", "C"] and first[1].inference.reason == "endpoint_http_500"
    second = handler.run_inference(["c", "FAIL b", "a", "d"], "model")
    assert [r.inference for r in second if isinstance(r.inference, str)] == ["C", "A", "D"]
    assert base.sent == ["a", "FAIL b", "c", "FAIL b", "d"]   # failures are tried again, answers never
    assert handler.batch_elements_kwargs() == {"min_batch_size": 3, "max_batch_size": 3}


def test_the_key_covers_model_prompt_and_decoding():
    config = GenerationConfig(backend="openai", model="m")
    key = cache_key(config, "p")
    assert key == cache_key(GenerationConfig(backend="openai", model="m", batch_size=99), "p")
    assert len({key, cache_key(config, "q"), cache_key(GenerationConfig(backend="openai", model="n"), "p"),
                cache_key(GenerationConfig(backend="openai", model="m", temperature=0.7), "p"),
                cache_key(GenerationConfig(backend="openai", model="m", max_new_tokens=9), "p")}) == 5
