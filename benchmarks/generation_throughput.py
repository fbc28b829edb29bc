"""Generated tokens/s of the pipeline's generation stage vs a plain batched ``generate`` loop.

Both sides generate for the same chat prompts (the templatizer prompt over the bundled sample
queries) with the same model, batch size and max_new_tokens, in the same process, alternating,
best of ``--repeats``. The pipeline side is a DirectRunner pipeline
``Create -> Generate`` (RunInference with the ``transformers`` handler, Reshuffle, counters,
dead-letter routing), timed from ``run()`` to finish, model load included; the plain side loads
the model with ``from_pretrained`` and loops ``apply_chat_template -> tokenizer -> generate``,
load included. Tokens are counted on each side (new tokens up to the first EOS).
Ratio = pipeline tokens/s / plain tokens/s (target >= 0.9).

    python benchmarks/generation_throughput.py                       # tiny random model, CPU
    python benchmarks/generation_throughput.py --shape llama-1b      # Llama-3.2-1B-shaped, GPU
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # tiny_models: random-weight models built locally
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import apache_beam as beam  # noqa: E402
import torch  # noqa: E402
from apache_beam.metrics.metric import MetricsFilter  # noqa: E402

from templates_mining.templatizer_prompt import build_templatizer_messages  # noqa: E402
from transforms.accounting import NAMESPACE  # noqa: E402
from transforms.generation import Generate  # noqa: E402
from transforms.generation_config import GenerationConfig  # noqa: E402
from transforms.transformers_backend import COMPLETION_TOKENS_COUNTER, completion_lengths, resolve_dtype  # noqa: E402


def sample_prompts(n: int):
    """``n`` templatizer prompts over the bundled sample's JSONL queries (cycled)."""
    queries = []
    for path in sorted(glob.glob(str(REPO / "sample_data/queries/*.jsonl"))):
        for line in open(path, encoding="utf-8", errors="replace"):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            text = row.get("question") or row.get("prompt") if isinstance(row, dict) else None
            if isinstance(text, str) and text.strip():
                queries.append(text)
    if not queries:
        raise SystemExit("no sample queries found under sample_data/queries")
    return [build_templatizer_messages(queries[i % len(queries)]) for i in range(n)]


def plain_loop(model_dir: str, prompts, config: GenerationConfig, device: str) -> int:
    """The baseline: from_pretrained, then batched apply_chat_template -> generate; returns new tokens."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=resolve_dtype(config.dtype, device)).to(device).eval()
    tokens = 0
    with torch.inference_mode():
        for i in range(0, len(prompts), config.batch_size):
            texts = [tok.apply_chat_template(p, add_generation_prompt=True, tokenize=False)
                     for p in prompts[i:i + config.batch_size]]
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            out = model.generate(**enc, max_new_tokens=config.max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
            tokens += sum(completion_lengths(out[:, enc["input_ids"].shape[1]:], [tok.eos_token_id]))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return tokens


def pipeline_stage(prompts, config: GenerationConfig) -> int:
    """The pipeline side: Create -> Generate on the DirectRunner; returns the counted new tokens."""
    p = beam.Pipeline()
    _ = (p | beam.Create([(i, prompt) for i, prompt in enumerate(prompts)])
         | Generate("bench_generate", config))
    result = p.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE).with_name(COMPLETION_TOKENS_COUNTER))
    return sum(c.committed for c in counters["counters"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=("tiny", "llama-1b"), default="tiny",
                        help="tiny: 2-layer random Llama (CPU); llama-1b: Llama-3.2-1B-shaped random weights (GPU)")
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_new_tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    from tiny_models import build_llama_1b_shaped_lm, build_tiny_causal_lm

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = (build_llama_1b_shaped_lm(tmp, device=device) if args.shape == "llama-1b"
                     else build_tiny_causal_lm(tmp, max_position_embeddings=4096))
        config = GenerationConfig(backend="transformers", model=model_dir, max_new_tokens=args.max_new_tokens,
                                  batch_size=args.batch_size, device=device)
        prompts = sample_prompts(args.prompts)
        best = {"plain": 0.0, "pipeline": 0.0}
        for rep in range(args.repeats):
            for side in ("plain", "pipeline") if rep % 2 == 0 else ("pipeline", "plain"):
                start = time.perf_counter()
                tokens = plain_loop(model_dir, prompts, config, device) if side == "plain" else pipeline_stage(prompts, config)
                elapsed = time.perf_counter() - start
                best[side] = max(best[side], tokens / elapsed)
                print(f"  {side:<9} run {rep + 1}: {tokens} tokens in {elapsed:.1f} s = {tokens / elapsed:,.0f} tok/s")
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    print(f"\n{args.shape} model on {gpu}; {args.prompts} prompts, batch {args.batch_size}, "
          f"max_new_tokens {args.max_new_tokens}")
    print(f"plain generate loop: {best['plain']:,.0f} tok/s   pipeline stage: {best['pipeline']:,.0f} tok/s   "
          f"ratio {best['pipeline'] / best['plain']:.2f} (target >= 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
