"""Texts/s of the multi-round synthesis stage vs a plain batched ``generate`` loop over the same prompts.

Both sides synthesize the same chains of shared Wikipedia texts (split to the context with the
real Mistral-7B tokenizer, chained as the job chains them) for ``--rounds`` rounds with the same
model, batch size and max_new_tokens, greedy, in the same process, alternating, best of
``--repeats``. The pipeline side is a DirectRunner pipeline ``Create -> SynthesisRound x rounds``
(each round: prompt with the earlier examples that fit, RunInference on the ``transformers``
handler, parse, joined back to its chain), timed from ``run()`` to finish, model loads included;
the plain side loads the model once and, round by round, builds the same prompts and calls
``generate`` on batches of them, then parses. Ratio = pipeline texts/s / plain texts/s (target
>= 0.9 on CPU with the tiny model).

    python benchmarks/synthesis_throughput.py                        # tiny Mistral-shaped model, CPU
    python benchmarks/synthesis_throughput.py --shape mistral-7b     # Mistral-7B-shaped (bf16), GPU
"""
from __future__ import annotations

import argparse
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

from pipeline.instruction_pretrain import SynthesisRound, token_counter  # noqa: E402
from pipeline.synthesizer_chains import TextPart, examples_before, form_chains, with_pairs  # noqa: E402
from pipeline.synthesizer_context import fit_examples, part_budget, prompt_budget, split_text  # noqa: E402
from pipeline.synthesizer_format import build_prompt, parse_pairs  # noqa: E402
from transforms.generation_config import GenerationConfig  # noqa: E402
from transforms.transformers_backend import load_causal_lm  # noqa: E402

SHARED = REPO.parent / "shared" / "data" / "documents" / "wikipedia"


def build_model(path: str, shape: str, device: str) -> str:
    from tiny_models import build_mistral_tokenizer, save_causal_lm, tiny_mistral_config

    tokenizer = build_mistral_tokenizer(path)
    if shape == "tiny":
        config = tiny_mistral_config(tokenizer, hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                                     head_dim=32)
        return save_causal_lm(path, config, tokenizer)
    import torch

    config = tiny_mistral_config(tokenizer, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                 num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                                 max_position_embeddings=32768)
    return save_causal_lm(path, config, tokenizer, dtype=torch.bfloat16, device=device)


def chains_of(articles: int, rounds: int, context: int, max_tokens: int, tokenizer):
    count = token_counter(tokenizer)
    parts = []
    with open(SHARED / "wiki_02.jsonl", encoding="utf-8") as f:
        for line in list(f)[:articles]:
            doc = json.loads(line)
            texts = split_text(doc["text"], count, part_budget(context, max_tokens, rounds))
            parts += [TextPart(doc["id"], i, len(texts), t, "wiki") for i, t in enumerate(texts)]
    return form_chains(parts, rounds, seed=42), count


def plain_loop(model, chains, rounds: int, budget: int, count, config: GenerationConfig):
    """Round by round: the same prompts, ``generate`` on batches of them, parse, next round."""
    chains = list(chains)
    for r in range(rounds):
        todo = [i for i, c in enumerate(chains) if len(c.parts) > r]
        prompts = []
        for i in todo:
            examples, _ = fit_examples(examples_before(chains[i], r), chains[i].parts[r].text, count, budget)
            prompts.append((i, len(examples), build_prompt(examples, chains[i].parts[r].text)))
        for start in range(0, len(prompts), config.batch_size):
            batch = prompts[start:start + config.batch_size]
            texts, _ = model.generate_batch([p for _, _, p in batch], config)
            for (i, used, _), text in zip(batch, texts):
                chains[i] = with_pairs(chains[i], r, parse_pairs(text)[0], used)
    return chains


def pipeline_run(chains, rounds: int, budget: int, tokenizer_dir: str, config: GenerationConfig, out: str):
    with beam.Pipeline(runner="DirectRunner") as p:
        current = p | beam.Create(chains)
        for r in range(rounds):
            current = (current | f"Round{r + 1}" >> SynthesisRound(r, config, tokenizer_dir, budget))["out"]
        _ = current | beam.Map(lambda c: json.dumps([c.chain_id, [list(p) if p else [] for p in c.pairs]])) \
            | beam.io.WriteToText(out, shard_name_template="")
    with open(out, encoding="utf-8") as f:
        return sorted(json.loads(line) for line in f)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=("tiny", "mistral-7b"), default="tiny")
    ap.add_argument("--articles", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--max_new_tokens", type=int, default=64)
    ap.add_argument("--batch_size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default=None, help="default: cuda when present, else cpu")
    args = ap.parse_args(argv)
    if args.shape == "mistral-7b" and args.context == 1024:
        args.context, args.max_new_tokens, args.articles = 4096, 400, 40
    import torch
    from transformers import AutoTokenizer

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_model(os.path.join(tmp, "model"), args.shape, device)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        chains, count = chains_of(args.articles, args.rounds, args.context, args.max_new_tokens, tokenizer)
        texts = sum(len(c.parts) for c in chains)
        budget = prompt_budget(args.context, args.max_new_tokens)
        config = GenerationConfig(backend="transformers", model=model_dir, max_new_tokens=args.max_new_tokens,
                                  batch_size=args.batch_size, raw_prompt=True, device=device)
        print(f"{texts} texts in {len(chains)} chains, {args.rounds} rounds, batch {args.batch_size}, "
              f"{args.max_new_tokens} new tokens, {args.shape} on {device}")
        best = {"plain": float("inf"), "pipeline": float("inf")}
        results = {}
        for rep in range(args.repeats):
            start = time.perf_counter()
            model = load_causal_lm(config)
            plain = plain_loop(model, chains, args.rounds, budget, count, config)
            best["plain"] = min(best["plain"], time.perf_counter() - start)
            del model
            results["plain"] = sorted([c.chain_id, [list(p) if p else [] for p in c.pairs]] for c in plain)
            start = time.perf_counter()
            results["pipeline"] = pipeline_run(chains, args.rounds, budget, model_dir, config,
                                               os.path.join(tmp, f"out{rep}.jsonl"))
            best["pipeline"] = min(best["pipeline"], time.perf_counter() - start)
        same = json.loads(json.dumps(results["plain"])) == results["pipeline"]
        for side in ("plain", "pipeline"):
            print(f"  {side:9s} {best[side]:8.2f} s  {texts / best[side]:7.2f} texts/s")
        ratio = best["plain"] / best["pipeline"]
        print(f"ratio (pipeline texts/s / plain texts/s): {ratio:.2f}  (target >= 0.9); same pairs: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
