"""The pipeline job: corpus documents -> grounded instruction/answer pairs.

``create_pipeline(options)`` returns the unrun Beam pipeline; ``run(argv=None,
test_pipeline=None)`` runs it, then writes and prints the run report. Stages and their
counter names are listed in ``STAGES``; document-level stages chain into pair-level ones
through the ``match|pairs`` counter (templates sampled).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from typing import List, Optional, Sequence

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import instruction_pretrain
from pipeline.budget import TokenBudget
from pipeline.template_cap import TemplateCap
from pipeline.documents import DedupeDocuments, DocumentFields, ReadDocuments, document_format, length_filter
from pipeline.extractive import ExtractiveConfig, frame_in_document, usable_template
from pipeline.match import LibraryRef, check_library_matches
from pipeline.model_steps import INSTANTIATOR_SCHEMA, instantiator_prompt, judge_parser, judge_prompt, parse_instantiation
from pipeline.options import FLAG_RANGES, DocumentPipelineOptions
from pipeline.synthesizer_context import prompt_budget
from pipeline.steps import (EmbedStep, ExtractiveInstantiateStep, HeuristicJudgeStep, MatchStep, expand_step,
                            pair_record, to_drafts)
from transforms import run_report
from transforms.cli import PASS_THROUGH, job_main
from transforms.flag_ranges import check_ranges
from transforms.output_dir import prepare_output, remove_empty_dirs
from transforms.secrets import refuse_secret_flags
from transforms.accounting import DEAD, FILTERED, NAMESPACE, SEP, accounted_map, count_stage
from transforms.generation import GenerativeStep
from transforms.generation_config import MODEL_BACKENDS, GenerationConfig
from transforms.job_options import generation_config, job_flags
from transforms.record_io import WriteJsonl, WriteSortedShards, first_jsonl_rows
from transforms.template_library import read_manifest, verify_library

OWNED_OUTPUTS = ("report.json", "pairs", "augmented", "filtered", "dead_letters")
"""What a run writes under OUTPUT (a rerun clears them first; transforms/output_dir.py)."""

STAGES = ("read", "filter_documents", "dedupe_documents", "embed", "match", "instantiate", "expand",
          "judge", "budget", "template_cap", "write")
CHAIN = (("read", "filter_documents"), ("filter_documents", "dedupe_documents"), ("dedupe_documents", "embed"),
         ("embed", "match"), (f"match{SEP}pairs", "instantiate"), ("instantiate", "expand"),
         ("expand", "judge"), ("judge", "budget"), ("budget", "template_cap"), ("template_cap", "write"))

PAIR_SCHEMA = pa.schema([
    ("pair_id", pa.string()), ("doc_id", pa.string()), ("template_id", pa.string()), ("template", pa.string()),
    ("chunk", pa.int32()), ("match_score", pa.float64()), ("instruction", pa.string()), ("answer", pa.string()),
    ("excerpt_share", pa.float64()), ("excerpt_spans", pa.list_(pa.list_(pa.int64()))),
    ("judge_score", pa.int32()), ("instantiator", pa.string()),
    ("judge", pa.string()), ("embedding_model", pa.string()), ("text", pa.string()),
])


def _fan_out_counter():
    counter = Metrics.counter(NAMESPACE, f"match{SEP}pairs")

    def fan_out(matched):
        drafts = to_drafts(matched)
        counter.inc(len(drafts))
        return drafts

    return fan_out


def backend_name(backend: str, model: str) -> str:
    """What a pair records about the backend that made it: ``extractive`` or ``vllm:<model>``."""
    return f"{backend}:{model}" if backend in MODEL_BACKENDS else backend


def embedding_device(opts: argparse.Namespace) -> Optional[str]:
    """``--embedding_device`` as the model cache takes it (None = cuda when visible, else cpu)."""
    return None if opts.embedding_device == "auto" else opts.embedding_device


def instantiate_step(opts: argparse.Namespace) -> beam.PTransform:
    """PairDraft -> instantiated PairDraft on ``--instantiator`` (outputs out, filtered, dead_letters)."""
    if opts.instantiator == "extractive":
        extractive = ExtractiveConfig(min_tag_similarity=opts.min_tag_similarity,
                                      min_answer_similarity=opts.min_answer_similarity,
                                      max_answer_chars=opts.max_answer_chars)
        return accounted_map("instantiate", ExtractiveInstantiateStep(opts.embedding_model, extractive,
                                                                      embedding_device(opts), opts.generation_cache))
    config = generation_config(opts, opts.instantiator, opts.instantiator_model, opts.instantiator_max_tokens,
                               INSTANTIATOR_SCHEMA, opts.instantiator_vllm_arg)
    return GenerativeStep("instantiate", instantiator_prompt(opts.instantiator_prompt), parse_instantiation,
                          config, opts.accelerator)


def judge_step(opts: argparse.Namespace) -> beam.PTransform:
    """PairDraft -> scored PairDraft on ``--judge``; below ``--min_score`` is filtered."""
    if opts.judge == "heuristic":
        return accounted_map("judge", HeuristicJudgeStep(opts.embedding_model, opts.min_score, embedding_device(opts)))
    config = generation_config(opts, opts.judge, opts.judge_model, opts.judge_max_tokens,
                               step_vllm_args=opts.judge_vllm_arg)
    return GenerativeStep("judge", judge_prompt, judge_parser(opts.min_score), config, opts.accelerator)


def stages_and_chain(opts: argparse.Namespace):
    """The run report's stages and chain for this run's method and backends."""
    if opts.method == "instruction_pretrain":
        stages, chain = instruction_pretrain.stages_and_chain(opts.rounds)
        return stages, chain
    generated = [stage for stage, backend in (("instantiate", opts.instantiator), ("judge", opts.judge))
                 if backend in MODEL_BACKENDS]
    stages, chain = run_report.with_generation_stages(STAGES, CHAIN, generated)
    if opts.augmented_corpus:
        stages, chain = stages + ("augment",), chain + (("dedupe_documents", "augment"),)
    return stages, chain


def synthesizer_config(opts: argparse.Namespace) -> GenerationConfig:
    """The synthesizer's GenerationConfig: raw prompts (its own ``<s>``, no chat template), and a
    vLLM server whose max-model-len is the context (unless --synthesizer_vllm_arg sets it)."""
    if opts.rounds < 1 or opts.max_part_tokens < 0:
        raise ValueError(f"--rounds must be >= 1 and --max_part_tokens >= 0, got {opts.rounds}, {opts.max_part_tokens}")
    prompt_budget(opts.synthesizer_context, opts.synthesizer_max_tokens)
    server = [] if any(a.lstrip("-").startswith("max-model-len") for a in opts.synthesizer_vllm_arg) else [
        f"max-model-len={opts.synthesizer_context}"]
    config = generation_config(opts, opts.synthesizer, opts.synthesizer_model, opts.synthesizer_max_tokens,
                               step_vllm_args=[*server, *opts.synthesizer_vllm_arg])
    return dataclasses.replace(config, raw_prompt=True)


def create_pipeline(options: PipelineOptions, pipeline: Optional[beam.Pipeline] = None) -> beam.Pipeline:
    """Builds (does not run) the pipeline for ``options``: the documents are read, filtered and
    deduplicated the same way, then go through ``--method``'s graph. Fails fast on bad flags
    or a library built with another embedding model."""
    opts = job_flags(options, DocumentPipelineOptions)
    check_ranges(opts, FLAG_RANGES)
    required = ("documents", "output") + (("templates",) if opts.method == "fineinstructions" else ())
    for flag in required:
        if not getattr(opts, flag):
            raise ValueError(f"--{flag} is required" + (" (--method fineinstructions)" if flag == "templates" else ""))
    synthesizer = synthesizer_config(opts) if opts.method == "instruction_pretrain" else None
    manifest = None
    if opts.method == "fineinstructions":
        manifest = read_manifest(opts.templates)
        check_library_matches(manifest, opts.embedding_model)
        if not opts.skip_library_check:
            verify_library(opts.templates, manifest)
    fmt = document_format(opts.documents, opts.document_format)
    if not FileSystems.match([opts.documents])[0].metadata_list:
        raise FileNotFoundError(f"--documents {opts.documents!r} matches no file")
    out = opts.output.rstrip("/")
    p = pipeline if pipeline is not None else beam.Pipeline(options=options)

    read = p | "ReadDocuments" >> ReadDocuments(opts.documents, fmt,
                                                DocumentFields(opts.id_field, opts.text_field, opts.url_field))
    sized = read["out"] | "FilterDocuments" >> accounted_map(
        "filter_documents", length_filter(opts.min_document_chars, opts.max_document_chars))
    unique = sized.out | "DedupeDocuments" >> DedupeDocuments()
    dead = [read[DEAD], sized.dead_letters]
    filtered = [sized.filtered, unique.filtered]
    if synthesizer is not None:
        more_dead, more_filtered = instruction_pretrain.instruction_pretrain_graph(unique.out, opts, synthesizer, out)
        dead, filtered = dead + more_dead, filtered + more_filtered
    else:
        more_dead, more_filtered = fineinstructions_graph(p, unique.out, opts, manifest, out)
        dead, filtered = dead + more_dead, filtered + more_filtered
    _ = dead | "AllDeadLetters" >> beam.Flatten() | "WriteDeadLetters" >> WriteJsonl(
        f"{out}/dead_letters/dead_letters", num_shards=1)
    _ = filtered | "AllFiltered" >> beam.Flatten() | "WriteFiltered" >> WriteJsonl(
        f"{out}/filtered/filtered", num_shards=opts.num_shards)
    return p


def fineinstructions_graph(p: beam.Pipeline, documents, opts: argparse.Namespace, manifest: dict, out: str):
    """Documents -> OUTPUT/pairs/ (and OUTPUT/augmented/ with --augmented_corpus); returns the
    dead-letter and filtered PCollections."""
    backends = {"instantiator": backend_name(opts.instantiator, opts.instantiator_model),
                "judge": backend_name(opts.judge, opts.judge_model), "embedding_model": opts.embedding_model}
    embedded = documents | "Embed" >> accounted_map(
        "embed", EmbedStep(opts.embedding_model, opts.pooling_k, opts.pooling_sigma, opts.pooling_alpha,
                           opts.max_document_tokens, opts.embedding_batch_size, opts.budget_tokenizer,
                           keep_token_vectors=opts.instantiator == "extractive", device=embedding_device(opts),
                           cache_dir=opts.generation_cache))
    library = p | "LibraryRef" >> beam.Create([LibraryRef(opts.templates.rstrip("/"), manifest)])
    matched = embedded.out | "Match" >> accounted_map(
        "match", MatchStep(opts.embedding_model, opts.top_k, opts.match_threshold, opts.templates_per_document,
                           opts.tag_distribution, opts.seed, embedding_device(opts), opts.match_temperature,
                           *((usable_template, frame_in_document) if opts.instantiator == "extractive" else ())),
        beam.pvalue.AsSingleton(library))
    # No reshuffle here: documents were spread over workers by the dedupe's grouping, and
    # embed -> match -> instantiate stay fused, so the drafts of one document are processed
    # together and the token embeddings the extractive instantiator late-chunks never leave
    # the worker (they are dropped when it is done).
    drafts = matched.out | "ToPairs" >> beam.FlatMap(_fan_out_counter())
    instantiated = drafts | "Instantiate" >> instantiate_step(opts)
    expanded = instantiated["out"] | "ExpandExcerpts" >> accounted_map("expand", expand_step(opts.min_excerpt_ratio))
    judged = expanded.out | "Judge" >> judge_step(opts)
    kept = judged["out"] | "TokenBudget" >> TokenBudget(opts.embedding_model, opts.budget_tokenizer, opts.seed,
                                                     opts.budget_rollover, max_pairs=opts.max_pairs_per_document)
    capped = kept.out | "TemplateCap" >> TemplateCap(opts.max_template_share)
    _ = (capped.out
         | "CountWriteIn" >> beam.Map(count_stage("write", "in"))
         | "ToRecord" >> beam.Map(pair_record, backends)
         | "CountWriteOut" >> beam.Map(count_stage("write", "out"))
         | "WritePairs" >> WriteSortedShards(f"{out}/pairs/pairs", PAIR_SCHEMA, "pair_id", opts.num_shards))
    if opts.augmented_corpus:
        _ = ({"document": documents | "DocById" >> beam.Map(lambda d: (d.doc_id, d)),
              "pairs": capped.out | "PairByDoc" >> beam.Map(lambda d: (d.doc_id, (d.instruction, d.answer)))}
             | "JoinPairs" >> beam.CoGroupByKey()
             | "AugmentedDocuments" >> beam.FlatMap(_augmented_documents, opts.seed)
             | "WriteAugmented" >> WriteSortedShards(f"{out}/augmented/augmented", instruction_pretrain.AUGMENTED_SCHEMA,
                                                     "augmented_id", opts.num_shards))
    dead = [embedded.dead_letters, matched.dead_letters, instantiated[DEAD], expanded.dead_letters, judged[DEAD]]
    filtered = [matched.filtered, instantiated[FILTERED], expanded.filtered, judged[FILTERED], kept.filtered,
                capped.filtered]
    return dead, filtered


def _augmented_documents(joined, seed: int):
    """A document and its kept pairs -> its augmented document (documents sharing an id: each
    with the pairs; a pair is not in the record of which of them it came from)."""
    _, grouped = joined
    pairs = list(grouped["pairs"])
    for doc in sorted(grouped["document"], key=lambda d: d.content_hash):
        _AUGMENT_IN(doc)
        record = instruction_pretrain.document_augmented(doc, pairs, seed)
        _AUGMENT_OUT(doc)
        yield record


_AUGMENT_IN, _AUGMENT_OUT = count_stage("augment", "in"), count_stage("augment", "out")


def run(argv: Optional[Sequence[str]] = None, test_pipeline: Optional[beam.Pipeline] = None) -> dict:
    """Runs the job to completion; returns the run report (also written to OUTPUT/report.json)."""
    refuse_secret_flags(list(argv or []))
    options = PipelineOptions(argv)
    opts = job_flags(options, DocumentPipelineOptions)
    p = create_pipeline(options, pipeline=test_pipeline)
    prepare_output(opts.output, "pipeline", vars(opts), OWNED_OUTPUTS, opts.overwrite)
    extra = ({"method": opts.method, "synthesizer": f"{opts.synthesizer}:{opts.synthesizer_model}", "rounds": opts.rounds}
             if opts.method == "instruction_pretrain" else {"method": opts.method, "templates": opts.templates})
    report, path = run_report.run_and_report("pipeline", p, *stages_and_chain(opts), opts.output, extra=extra,
                                             max_dead_fraction=opts.max_dead_fraction)
    out = opts.output.rstrip("/")
    if opts.method == "instruction_pretrain":
        print(instruction_pretrain.summary(out, report))
    else:
        print(pairs_summary(opts.output, report))
        print(f"\nPairs: {out}/pairs/")
    if opts.augmented_corpus:
        print(augmented_example(out))
    if opts.method == "instruction_pretrain" or opts.augmented_corpus:
        print(f"Instruction-augmented corpus: {out}/augmented/")
    print(f"Run report: {path}")
    remove_empty_dirs(opts.output)
    return report


def pair_shards(output: str) -> List[str]:
    """The JSONL shards of ``OUTPUT/pairs/``, sorted."""
    match = FileSystems.match([f"{output.rstrip('/')}/pairs/pairs-*.jsonl"])[0].metadata_list
    return sorted(m.path for m in match)


def read_pairs(output: str) -> List[dict]:
    """Every kept pair under ``OUTPUT/pairs/`` (JSONL shards), sorted by pair_id."""
    rows = []
    for path in pair_shards(output):
        with FileSystems.open(path) as f:
            rows.extend(json.loads(line) for line in f.read().decode("utf-8").splitlines() if line)
    return sorted(rows, key=lambda r: r["pair_id"])


def first_pairs(output: str, n: int) -> List[dict]:
    """The first ``n`` pairs of the first shard (shards are sorted): reads no more than that."""
    return first_jsonl_rows(f"{output.rstrip('/')}/pairs/pairs-*.jsonl", n)


def augmented_example(output: str, look_at: int = 100, chars: int = 600) -> str:
    """The end of the first augmented document (of the first ``look_at``) that has pairs."""
    rows = first_jsonl_rows(f"{output}/augmented/augmented-*.jsonl", look_at)
    row = next((r for r in rows if r["num_pairs"]), None)
    if row is None:
        return f"\nAugmented corpus: {len(rows)}+ documents, none of the first with pairs"
    text = row["text"] if len(row["text"]) <= chars else "... " + row["text"][-chars:]
    return f"\n--- augmented document {row['augmented_id']} ({row['num_pairs']} pairs), its end:\n{text}"


def pairs_summary(output: str, report: dict, examples: int = 3) -> str:
    """Pair count and documents covered (from the report's counters) and a few example pairs."""
    stages = {s["stage"]: s for s in report["stages"]}
    pairs = stages.get("write", {}).get("out", 0)
    docs = stages.get("budget", {}).get("other", {}).get("documents_with_pairs", 0)
    lines = [f"\nPairs: {pairs} from {docs} documents"]
    for r in first_pairs(output, examples):
        lines.append(f"--- {r['doc_id']} x template {r['template_id'][:12]} (chunk {r['chunk']}, "
                     f"match {r['match_score']:.3f}, judge {r['judge_score']}, excerpts {r['excerpt_share']:.0%})")
        lines.append(f"  template:    {r['template']}")
        lines.append(f"  instruction: {r['instruction']}")
        answer = r["answer"] if len(r["answer"]) <= 400 else r["answer"][:400] + " ..."
        lines.append(f"  answer:      {answer}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    return job_main(argv, "python -m pipeline", "Turn corpus documents into grounded instruction/answer pairs with a template library. " + PASS_THROUGH, DocumentPipelineOptions, run)
