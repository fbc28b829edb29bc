"""Tiny causal LMs for tests, built on disk with no downloads.

The tokenizer is a byte-level BPE trained on a few in-code sentences, so any text (JSON
braces, quotes, markup, non-ASCII) encodes; it carries a small Jinja chat template. The
model is a randomly initialised ``LlamaForCausalLM`` (same architecture family as the
production models), small enough to generate on CPU in milliseconds. Both are saved with
``save_pretrained`` so ``AutoTokenizer`` / ``AutoModelForCausalLM`` load the directory
exactly as they would a real checkpoint.
"""
from __future__ import annotations

import os
from typing import Optional

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
CHAT_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK] + CHAT_TOKENS

_CORPUS = [
    "How do I bake sourdough bread at home?",
    "Write a Python function that reverses a list.",
    'Return JSON like {"instruction": "...", "answer": "..."} with keys and values.',
    "<compatible>yes</compatible> <template>Explain <topic> to a beginner.</template>",
    "The quick brown fox jumps over the lazy dog 0123456789 times.",
    "Summarise the document in three bullet points: - one - two - three",
    "What is the capital of France? Paris is the capital of France.",
    "Translate 'good morning' into Spanish: buenos días.",
]


def build_tokenizer(chat_template: Optional[str] = CHAT_TEMPLATE, vocab_size: int = 384):
    """A byte-level BPE ``PreTrainedTokenizerFast`` (pad/bos/eos/unk set; chat template optional)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        additional_special_tokens=CHAT_TOKENS,
    )
    if chat_template is not None:
        fast.chat_template = chat_template
    return fast


def tiny_llama_config(vocab_size: int, tokenizer=None, **overrides):
    """A ``LlamaConfig`` small enough for CPU tests (hidden 32, 2 layers, 4 heads)."""
    from transformers import LlamaConfig

    kwargs = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=False,
    )
    if tokenizer is not None:
        kwargs.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id)
    kwargs.update(overrides)
    return LlamaConfig(**kwargs)


def llama_1b_shaped_config(vocab_size: int = 128256, **overrides):
    """A ``LlamaConfig`` with Llama-3.2-1B's shapes (about 1.24B parameters at full vocab)."""
    from transformers import LlamaConfig

    kwargs = dict(
        vocab_size=vocab_size,
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=64,
        max_position_embeddings=131072,
        # transformers 5 keeps rope_theta inside rope_parameters (a top-level rope_theta is folded in)
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8192},
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
    )
    kwargs.update(overrides)
    return LlamaConfig(**kwargs)


def save_causal_lm(path: str, config, tokenizer=None, seed: int = 0, dtype=None,
                   device: str = "cpu", suppress_special_tokens: bool = True) -> str:
    """Randomly initialises the causal LM of ``config`` (Llama, Mistral) and saves it (and ``tokenizer``) to ``path``.

    ``suppress_special_tokens`` bans the tokenizer's special tokens from generation (saved in
    ``generation_config.json``): a random model would otherwise stop at EOS or emit tokens that
    decoding strips, at random, which makes "generates non-empty text" tests flaky. Ids the
    tokenizer does not know (``config.vocab_size`` larger than the tokenizer, as in the
    Llama-3.2-1B-shaped model) are always banned, so every generated id decodes.
    """
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    os.makedirs(path, exist_ok=True)
    torch.manual_seed(seed)
    with torch.device(device):  # init directly on the GPU for the 1B-shaped model
        model = AutoModelForCausalLM.from_config(config)
    if dtype is not None:
        model = model.to(dtype)
    gen = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )
    if tokenizer is not None:
        banned = set(range(len(tokenizer), config.vocab_size))
        if suppress_special_tokens:
            banned.update(tokenizer.all_special_ids)
        if banned:
            gen.suppress_tokens = sorted(banned)
    model.generation_config = gen
    model.save_pretrained(path)
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    del model
    return path


def build_tiny_causal_lm(path: str, seed: int = 0, chat_template: Optional[str] = CHAT_TEMPLATE,
                         suppress_special_tokens: bool = True, **config_overrides) -> str:
    """Builds a tiny random Llama + byte-level tokenizer in ``path``; returns ``path``.

    ``chat_template=None`` saves a tokenizer with no chat template; ``config_overrides`` go to
    the ``LlamaConfig`` (e.g. ``num_hidden_layers=1``).
    """
    tokenizer = build_tokenizer(chat_template=chat_template)
    vocab_size = config_overrides.pop("vocab_size", len(tokenizer))  # larger: extra ids are banned
    config = tiny_llama_config(vocab_size, tokenizer=tokenizer, **config_overrides)
    return save_causal_lm(path, config, tokenizer, seed=seed,
                          suppress_special_tokens=suppress_special_tokens)


def build_llama_1b_shaped_lm(path: str, device: str = "cuda", seed: int = 0,
                             full_vocab: bool = True) -> str:
    """A random-weight Llama-3.2-1B-shaped model (bf16) + the tiny tokenizer, saved to ``path``.

    ``full_vocab`` keeps the real 128256-row embedding / LM head (about 1.24B parameters,
    ~2.5 GB in bf16), so memory and the LM-head matmul match the real model; ids beyond the
    tiny tokenizer are banned from generation (see :func:`save_causal_lm`). Weights are
    initialised on ``device`` because a CPU init of 1.2B parameters is slow.
    """
    import torch

    tokenizer = build_tokenizer()
    config = llama_1b_shaped_config(
        vocab_size=128256 if full_vocab else len(tokenizer),
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return save_causal_lm(path, config, tokenizer, seed=seed, dtype=torch.bfloat16, device=device)


MISTRAL_TOKENIZER_FILE = "tokenizer.model.v1"
"""Mistral-7B-v0.1's SentencePiece model (32,000 pieces), shipped inside Mistral AI's
``mistral-common`` package (Apache-2.0): the tokenizer of the instruction synthesizer, a
Mistral-7B fine-tune. A dev dependency, so tests use the real tokenizer with no download."""


def build_mistral_tokenizer(path: str):
    """The real Mistral-7B tokenizer (BOS added by default, as the model's config says), saved to
    ``path`` as a fast tokenizer and returned."""
    import importlib.util
    import shutil
    import tempfile

    from transformers import LlamaTokenizer

    spec = importlib.util.find_spec("mistral_common")
    if spec is None:
        raise RuntimeError("the real Mistral tokenizer comes from the mistral-common package (the dev extra)")
    source = os.path.join(spec.submodule_search_locations[0], "data", MISTRAL_TOKENIZER_FILE)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(source, os.path.join(tmp, "tokenizer.model"))
        tokenizer = LlamaTokenizer.from_pretrained(tmp, add_bos_token=True, add_eos_token=False, legacy=False)
    tokenizer.save_pretrained(path)
    return tokenizer


def tiny_mistral_config(tokenizer, **overrides):
    """A ``MistralConfig`` with the real vocabulary and a tiny body (hidden 32, 2 layers)."""
    from transformers import MistralConfig

    kwargs = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=4096,
                  sliding_window=None, tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id)
    kwargs.update(overrides)
    return MistralConfig(**kwargs)


def build_tiny_mistral_lm(path: str, seed: int = 0, **config_overrides) -> str:
    """A tiny random Mistral-shaped model with the real Mistral tokenizer, saved to ``path``."""
    tokenizer = build_mistral_tokenizer(path)
    return save_causal_lm(path, tiny_mistral_config(tokenizer, **config_overrides), tokenizer, seed=seed)
