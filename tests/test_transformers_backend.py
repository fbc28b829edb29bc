"""The transformers generation backend on tiny random Llamas built in the test (no downloads)."""
import multiprocessing.managers
import os
import sys

import apache_beam as beam
import pytest
import torch
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference.base import PredictionResult, RunInference
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

sys.path.insert(0, os.path.dirname(__file__))
from tiny_models import build_llama_1b_shaped_lm, build_tiny_causal_lm, build_tiny_mistral_lm  # noqa: E402

from transforms.generation_config import GenerationConfig, GenerationFailure  # noqa: E402
from transforms.remote_dirs import cached_local_copy  # noqa: E402
from transforms.transformers_backend import (  # noqa: E402
    COMPLETION_TOKENS_COUNTER,
    LoadedCausalLM,
    TransformersGenerationHandler,
    build_inputs,
    completion_lengths,
    generation_kwargs,
    load_causal_lm,
    resolve_dtype,
)

CHAT = [{"role": "system", "content": "Answer in JSON."},
        {"role": "user", "content": 'Give me {"instruction": "...", "answer": "..."}'}]
PROMPTS = [
    CHAT,
    "The quick brown fox",
    [{"role": "user", "content": "How do I bake bread?"}],
    "Write a Python function that",
    [{"role": "user", "content": "<template>Explain <topic></template>"}],
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_causal_lm(str(tmp_path_factory.mktemp("tiny-llama")))


@pytest.fixture(scope="module")
def no_template_dir(tmp_path_factory):
    return build_tiny_causal_lm(str(tmp_path_factory.mktemp("tiny-no-template")), chat_template=None)


def config_for(model, **kw):
    return GenerationConfig(backend="transformers", model=model, **{"max_new_tokens": 8, **kw})


@pytest.fixture(scope="module")
def loaded(tiny_dir):
    return load_causal_lm(config_for(tiny_dir))


def generate(model_dir, loaded, prompts=PROMPTS, **kw):
    handler = TransformersGenerationHandler(config_for(model_dir, **kw))
    return list(handler.run_inference(prompts, loaded))


# --------------------------------------------------------------------------- handler, direct

def test_chat_and_str_prompts_generate_text_in_order(tiny_dir, loaded):
    results = generate(tiny_dir, loaded)
    assert [r.example for r in results] == PROMPTS
    for r in results:
        assert isinstance(r, PredictionResult)
        assert isinstance(r.inference, str) and r.inference.strip()
        assert r.model_id == tiny_dir


def test_loaded_model_settings(loaded):
    assert loaded.device == "cpu"
    assert loaded.tokenizer.padding_side == "left"
    assert loaded.tokenizer.pad_token is not None
    assert not loaded.model.training
    assert next(loaded.model.parameters()).dtype == torch.float32  # "auto" on CPU


def test_greedy_is_deterministic(tiny_dir, loaded):
    first = [r.inference for r in generate(tiny_dir, loaded)]
    assert [r.inference for r in generate(tiny_dir, loaded)] == first


def test_sampling_is_reproducible_with_the_same_seed(tiny_dir, loaded):
    kw = dict(temperature=1.0, top_p=0.95, seed=7)
    first = [r.inference for r in generate(tiny_dir, loaded, **kw)]
    assert [r.inference for r in generate(tiny_dir, loaded, **kw)] == first
    other = [r.inference for r in generate(tiny_dir, loaded, **{**kw, "seed": 8})]
    assert other != first
    greedy = [r.inference for r in generate(tiny_dir, loaded)]
    assert greedy != first


def test_max_new_tokens_is_respected(tiny_dir, loaded):
    for n in (1, 5):
        texts, n_tokens = loaded.generate_batch(PROMPTS, config_for(tiny_dir, max_new_tokens=n))
        assert len(texts) == len(PROMPTS)
        # the tiny model may not stop early (its special tokens are suppressed), so exactly n each
        assert n_tokens == n * len(PROMPTS)
    inputs = build_inputs(loaded.tokenizer, PROMPTS)
    out = loaded.model.generate(**inputs, **generation_kwargs(config_for(tiny_dir, max_new_tokens=3),
                                                              loaded.tokenizer.pad_token_id))
    assert out.shape[1] - inputs["input_ids"].shape[1] == 3


def test_chat_prompt_without_chat_template_is_a_clear_error(no_template_dir):
    cfg = config_for(no_template_dir)
    handler = TransformersGenerationHandler(cfg)
    model = handler.load_model()
    with pytest.raises(ValueError, match="no chat template") as err:
        handler.run_inference([CHAT], model)
    assert no_template_dir in str(err.value)
    # completion prompts still work on a base model
    [result] = handler.run_inference(["The quick brown fox"], model)
    assert isinstance(result.inference, str) and result.inference


def test_empty_completion_is_a_generation_failure(tiny_dir):
    """A model that can only emit EOS generates nothing: a failure for that prompt, not ""."""
    cfg = config_for(tiny_dir)
    model = load_causal_lm(cfg)
    eos = model.tokenizer.eos_token_id
    model.model.generation_config.suppress_tokens = [
        i for i in range(model.model.config.vocab_size) if i != eos]
    results = list(TransformersGenerationHandler(cfg).run_inference(PROMPTS[:2], model))
    assert [r.example for r in results] == PROMPTS[:2]
    assert all(r.inference == GenerationFailure("empty_completion", r.inference.detail)
               for r in results)
    _, n_tokens = model.generate_batch(PROMPTS[:2], cfg)
    assert n_tokens == 2  # the EOS each row generated counts, its padding does not


def test_invalid_prompt_type_raises(tiny_dir, loaded):
    with pytest.raises(TypeError, match="str or a list of chat messages"):
        generate(tiny_dir, loaded, prompts=["ok", 7])


# --------------------------------------------------------------------------- pure helpers

def test_generation_kwargs_greedy_and_sampling(tiny_dir):
    greedy = generation_kwargs(config_for(tiny_dir, max_new_tokens=9), pad_id=0)
    assert greedy["do_sample"] is False and greedy["max_new_tokens"] == 9
    assert greedy["pad_token_id"] == 0 and greedy["temperature"] is None
    sampled = generation_kwargs(config_for(tiny_dir, temperature=0.7, top_p=0.9), pad_id=3)
    assert sampled["do_sample"] is True
    assert (sampled["temperature"], sampled["top_p"]) == (0.7, 0.9)


def test_build_inputs_pads_left(loaded):
    inputs = build_inputs(loaded.tokenizer, ["a", "a much longer prompt than the first one"])
    mask = inputs["attention_mask"]
    assert inputs["input_ids"].shape == mask.shape
    assert mask[0, 0] == 0 and mask[0, -1] == 1 and mask[1].all()


def test_completion_lengths_stop_at_first_eos():
    ids = torch.tensor([[5, 6, 2, 0, 0], [5, 6, 7, 8, 9], [2, 0, 0, 0, 0]])
    assert completion_lengths(ids, [2]) == [3, 5, 1]
    assert completion_lengths(ids, [None]) == [5, 5, 5]


def test_resolve_dtype():
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("auto", "cuda:0") == torch.bfloat16
    assert resolve_dtype("float16", "cpu") == torch.float16
    assert resolve_dtype("torch.bfloat16", "cpu") == torch.bfloat16
    with pytest.raises(ValueError):
        resolve_dtype("float77", "cpu")


def test_handler_batching_sharing_and_namespace(tiny_dir):
    handler = TransformersGenerationHandler(config_for(tiny_dir, batch_size=3, device="cpu"))
    assert handler.batch_elements_kwargs() == {"min_batch_size": 3, "max_batch_size": 3}
    assert handler.get_metrics_namespace() == "fineinstructions_transformers"
    assert handler.share_model_across_processes() is False
    assert TransformersGenerationHandler(
        config_for(tiny_dir, device="cuda")).share_model_across_processes() is True


def test_generate_batch_is_exposed_through_beams_process_proxy(loaded):
    """A shared (large_model) model reaches run_inference as a proxy exposing public methods only."""
    assert "generate_batch" in multiprocessing.managers.public_methods(loaded)
    assert isinstance(loaded, LoadedCausalLM)


def test_model_dir_is_copied_through_beam_filesystems(tiny_dir, tmp_path):
    local = cached_local_copy(tiny_dir + "/", str(tmp_path / "copy"))
    assert sorted(f for f in os.listdir(local) if not f.startswith(".")) == sorted(os.listdir(tiny_dir))
    assert cached_local_copy(tiny_dir, local) == local  # second call: already complete
    model = load_causal_lm(config_for(local))
    [result] = TransformersGenerationHandler(config_for(local)).run_inference(["Hello"], model)
    assert isinstance(result.inference, str)


# --------------------------------------------------------------------------- through RunInference

def test_run_inference_on_direct_runner(tiny_dir):
    handler = TransformersGenerationHandler(config_for(tiny_dir, batch_size=2, max_new_tokens=4))
    p = TestPipeline()
    results = p | beam.Create(PROMPTS) | RunInference(handler)
    assert_that(results | beam.Map(lambda r: (type(r.inference).__name__, bool(r.inference),
                                              r.model_id == tiny_dir)),
                equal_to([("str", True, True)] * len(PROMPTS)), label="types")
    assert_that(results | "Examples" >> beam.Map(lambda r: str(r.example)),
                equal_to([str(x) for x in PROMPTS]), label="examples")
    result = p.run()
    result.wait_until_finish()
    counters = result.metrics().query(
        MetricsFilter().with_namespace("fineinstructions").with_name(COMPLETION_TOKENS_COUNTER))
    assert sum(c.committed for c in counters["counters"]) == 4 * len(PROMPTS)


def test_with_exception_handling_routes_a_failing_batch_to_dead_letter(tiny_dir):
    handler = TransformersGenerationHandler(config_for(tiny_dir, batch_size=1, max_new_tokens=2))
    with TestPipeline() as p:
        good, dead = (p | beam.Create(["The quick brown fox", 7, PROMPTS[2]])
                      | RunInference(handler).with_exception_handling())
        assert_that(good | beam.Map(lambda r: r.example),
                    equal_to(["The quick brown fox", PROMPTS[2]]), label="good")
        # each dead letter is (batch, (exception type, repr, formatted traceback))
        assert_that(dead.failed_inferences
                    | beam.Map(lambda f: (list(f[0]), f[1][0].__name__, "chat messages" in f[1][1])),
                    equal_to([([7], "TypeError", True)]), label="dead")


# --------------------------------------------------------------------------- GPU

@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_llama_1b_shaped_model_generates_on_gpu(tmp_path):
    """Llama-3.2-1B shapes (full 128256 vocab, tied embeddings) with random bf16 weights."""
    model_dir = build_llama_1b_shaped_lm(str(tmp_path / "llama-1b-shaped"), device="cuda")
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    cfg = GenerationConfig(backend="transformers", model=model_dir, max_new_tokens=32, batch_size=8)
    handler = TransformersGenerationHandler(cfg)
    assert handler.share_model_across_processes() is True
    model = handler.load_model()
    params = list(model.model.parameters())
    assert all(p.device.type == "cuda" for p in params)
    assert params[0].dtype == torch.bfloat16
    assert sum(p.numel() for p in params) > 1.2e9
    prompts = [[{"role": "user", "content": f"Question {i}: explain topic number {i}."}]
               for i in range(8)]
    results = list(handler.run_inference(prompts, model))
    assert [r.example for r in results] == prompts
    assert all(isinstance(r.inference, str) and r.inference for r in results)
    _, n_tokens = model.generate_batch(prompts, cfg)
    assert n_tokens == 8 * 32
    assert torch.cuda.max_memory_allocated() > 1e9


# --------------------------------------------------------------------------- raw prompts

SYNTH_PROMPT = "<s> <CON> Paris is the capital of France. </CON>\n\n"


@pytest.fixture(scope="module")
def mistral_dir(tmp_path_factory):
    """A tiny random Mistral-shaped model with the real Mistral-7B tokenizer (BOS added by default)."""
    return build_tiny_mistral_lm(str(tmp_path_factory.mktemp("tiny-mistral")))


def test_a_raw_prompt_reaches_the_model_with_exactly_one_bos(mistral_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(mistral_dir)
    tok.pad_token = tok.eos_token  # as load_causal_lm does: Mistral has no pad token
    bos = tok.bos_token_id
    # The reference's weak point: the literal <s> plus the tokenizer's own BOS.
    assert tok(SYNTH_PROMPT)["input_ids"][:2] == [bos, bos]
    ids = build_inputs(tok, [SYNTH_PROMPT], raw=True)["input_ids"][0].tolist()
    assert ids.count(bos) == 1 and ids[0] == bos
    assert tok.convert_ids_to_tokens(ids[:4]) == ["<s>", "▁<", "CON", ">"]
    # A two-round prompt holds one <s> per text, as the model was trained, and nothing more.
    two = "<s> <CON> A. </CON>\n\n<QUE> Q? <ANS> A. </END></s>" + SYNTH_PROMPT
    assert build_inputs(tok, [two], raw=True)["input_ids"][0].tolist().count(bos) == 2
    with pytest.raises(TypeError, match="raw prompt"):
        build_inputs(tok, [CHAT], raw=True)


def test_raw_prompts_generate_on_a_mistral_shaped_model(mistral_dir):
    config = GenerationConfig(backend="transformers", model=mistral_dir, max_new_tokens=6, raw_prompt=True)
    model = load_causal_lm(config)
    results = list(TransformersGenerationHandler(config).run_inference([SYNTH_PROMPT, SYNTH_PROMPT + " "], model))
    assert [r.example for r in results] == [SYNTH_PROMPT, SYNTH_PROMPT + " "]
    assert all(isinstance(r.inference, str) and r.inference.strip() for r in results)
