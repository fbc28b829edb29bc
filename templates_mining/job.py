"""The templates-mining job: real user queries -> a template library.

``create_pipeline(options)`` returns the unrun Beam pipeline (testable, or submitted to
any runner); ``run(argv=None, test_pipeline=None)`` runs it, then writes and prints the
run report. Stages and their counter names are listed in ``STAGES``.
"""
from __future__ import annotations

import argparse
from typing import List, Optional, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from templates_mining.exact_dedupe import ExactDedupe
from templates_mining.genericize import CommonWords, Genericize
from templates_mining.near_dedupe import NearDedupe, NearDedupeConfig
from templates_mining.normalize import NormalizeQueries
from templates_mining.options import FLAG_RANGES as MINING_FLAG_RANGES, MiningOptions
from templates_mining.templatizer_prompt import OUTPUT_SCHEMA
from templates_mining.query_filter import FilterConfig, query_filter_fn
from templates_mining.template_dedupe import (ExactTemplateDedupe, SemanticDedupe, SemanticDedupeConfig,
                                              with_dedupe_vector)
from transforms.accounting import DEAD, FILTERED, accounted_map
from transforms.embedding import EmbedTexts
from transforms.record_io import ReadQueries, SourceSpec, WriteJsonl, infer_format, load_sources
from transforms import run_report
from transforms.cli import PASS_THROUGH, job_main
from transforms.flag_ranges import check_ranges
from transforms.output_dir import prepare_output, remove_empty_dirs
from transforms.secrets import refuse_secret_flags
from transforms.job_options import generation_config, job_flags
from transforms.template_library import WriteLibrary, load_library, read_manifest

STAGES = ("read", "normalize", "filter", "exact_dedupe", "near_dedupe", "genericize",
          "template_exact_dedupe", "embed", "embed_queries", "semantic_dedupe", "write_library")
CHAIN = tuple(zip(STAGES, STAGES[1:]))


OWNED_OUTPUTS = ("report.json", "manifest.json", "templates", "embeddings", "index", "filtered", "dead_letters")
"""What a run writes under OUTPUT: a rerun clears them first, so a killed rerun never leaves the
old manifest.json (which marks a complete library) beside partial files (transforms/output_dir.py)."""


def source_specs(opts: argparse.Namespace) -> List[SourceSpec]:
    """The query sources from ``--sources`` or from ``--queries``/``--text_field``."""
    if bool(opts.sources) == bool(opts.queries):
        raise ValueError("give exactly one of --sources FILE or --queries GLOB")
    if opts.sources:
        specs = load_sources(opts.sources)
    else:
        fmt = opts.query_format or infer_format(opts.queries)
        header = not (fmt in ("csv", "tsv") and opts.text_field.isdigit())
        specs = [SourceSpec(name=opts.source_name, path=opts.queries, format=fmt,
                            text_field=opts.text_field, header=header)]
    for spec in specs:
        if not FileSystems.match([spec.path])[0].metadata_list:
            flag = "--queries" if opts.queries else f"--sources {opts.sources}: source {spec.name!r}"
            raise FileNotFoundError(f"{flag}: {spec.path!r} matches no file")
    return specs


def configs(opts: argparse.Namespace):
    """The per-stage config objects built (and validated) from the flags."""
    filter_cfg = FilterConfig(opts.min_chars, opts.max_chars, opts.min_content_words, opts.pii,
                              opts.harm_filter, opts.harm_wordlist).validate()
    near_cfg = NearDedupeConfig(num_perm=opts.num_perm, bands=opts.bands, rows=opts.rows,
                                shingle_size=opts.shingle_size, threshold=opts.near_threshold,
                                seed=opts.seed, max_rounds=opts.cc_max_rounds)
    near_cfg.validate()
    semantic_cfg = SemanticDedupeConfig(threshold=opts.semantic_threshold,
                                        partition_size=opts.partition_size, seed=opts.seed,
                                        max_rounds=opts.cc_max_rounds)
    semantic_cfg.validate()
    return filter_cfg, near_cfg, semantic_cfg


def create_pipeline(options: PipelineOptions, pipeline: Optional[beam.Pipeline] = None) -> beam.Pipeline:
    """Builds (does not run) the mining pipeline for ``options``."""
    opts = job_flags(options, MiningOptions)
    if not opts.output:
        raise ValueError("--output DIR is required (a local or gs:// directory)")
    check_ranges(opts, MINING_FLAG_RANGES)
    specs = source_specs(opts)
    filter_cfg, near_cfg, semantic_cfg = configs(opts)
    out = opts.output.rstrip("/")
    p = pipeline if pipeline is not None else beam.Pipeline(options=options)

    read = p | "ReadQueries" >> ReadQueries(specs)
    normalized = read["out"] | "Normalize" >> NormalizeQueries()
    kept = normalized.out | "Filter" >> accounted_map("filter", query_filter_fn(filter_cfg))
    unique = kept.out | "ExactDedupe" >> ExactDedupe()
    near = unique | "NearDedupe" >> NearDedupe(near_cfg)
    templates = near.out | "Genericize" >> genericize_step(opts, near.out)
    distinct = templates["out"] | "TemplateExactDedupe" >> ExactTemplateDedupe()
    embedded = (
        distinct.out
        | "EmbedDescriptions" >> EmbedTexts(opts.embedding_model, text_fn=lambda t: t.description,
                                            batch_size=opts.embedding_batch_size, stage="embed")
        | "EmbedSourceQueries" >> EmbedTexts(opts.embedding_model, text_fn=lambda td: td[0].examples[0].text,
                                             batch_size=opts.embedding_batch_size, stage="embed_queries")
        | "DedupeVector" >> beam.Map(with_dedupe_vector, opts.semantic_query_weight))
    library = embedded | "SemanticDedupe" >> SemanticDedupe(semantic_cfg)
    _ = library.out | "WriteLibrary" >> WriteLibrary(
        out, embedding_model=opts.embedding_model, num_shards=opts.num_shards,
        build_params=_build_params(opts, specs))

    dead = [read[DEAD], normalized.dead_letters, kept.dead_letters, templates[DEAD]]
    filtered = [kept.filtered, near.filtered, templates[FILTERED], distinct.filtered, library.filtered]
    _ = dead | "AllDeadLetters" >> beam.Flatten() | "WriteDeadLetters" >> WriteJsonl(
        f"{out}/dead_letters/dead_letters", num_shards=1)
    _ = filtered | "AllFiltered" >> beam.Flatten() | "WriteFiltered" >> WriteJsonl(
        f"{out}/filtered/filtered", num_shards=opts.num_shards)
    return p


def genericize_step(opts: argparse.Namespace, clusters) -> Genericize:
    """The Genericize transform for ``--genericizer`` (rules: with the common words of ``clusters``)."""
    if opts.genericizer == "rules":
        common_words = clusters | "CommonWords" >> CommonWords(opts.common_word_min_df, opts.common_word_min_count)
        return Genericize("rules", common_words)
    config = generation_config(opts, opts.genericizer, opts.genericizer_model, opts.genericizer_max_tokens,
                               OUTPUT_SCHEMA)
    return Genericize(opts.genericizer, generation=config, accelerator=opts.accelerator,
                      system_prompt=opts.templatizer_system_prompt)


def stages_and_chain(opts: argparse.Namespace):
    """The run report's stages and chain for this run's backends."""
    return run_report.with_generation_stages(STAGES, CHAIN, [] if opts.genericizer == "rules" else ["genericize"])


def _build_params(opts: argparse.Namespace, specs: Sequence[SourceSpec]) -> dict:
    """What the manifest records about how the library was built."""
    keys = ("min_chars", "max_chars", "min_content_words", "pii", "harm_filter", "num_perm", "bands",
            "rows", "shingle_size", "near_threshold", "genericizer", "common_word_min_df",
            "common_word_min_count", "semantic_threshold", "semantic_query_weight", "partition_size", "seed")
    if opts.genericizer != "rules":
        keys += ("genericizer_model", "genericizer_max_tokens", "temperature", "top_p", "templatizer_system_prompt")
    return {"sources": [s._asdict() for s in specs], **{k: getattr(opts, k) for k in keys}}


def run(argv: Optional[Sequence[str]] = None, test_pipeline: Optional[beam.Pipeline] = None) -> dict:
    """Runs the job to completion; returns the run report (also written to OUTPUT/report.json)."""
    refuse_secret_flags(list(argv or []))
    options = PipelineOptions(argv)
    opts = job_flags(options, MiningOptions)
    p = create_pipeline(options, pipeline=test_pipeline)
    prepare_output(opts.output, "templates_mining", vars(opts), OWNED_OUTPUTS, opts.overwrite)
    report, path = run_report.run_and_report("templates_mining", p, *stages_and_chain(opts), opts.output,
                                             max_dead_fraction=opts.max_dead_fraction)
    print(library_summary(opts.output))
    print(f"\nTemplate library: {opts.output}\nRun report: {path}")
    remove_empty_dirs(opts.output)
    return report


def library_summary(output: str, top: int = 5) -> str:
    """A few lines about the written library: size, index, the heaviest templates."""
    manifest = read_manifest(output)
    lines = [f"\nLibrary: {manifest['count']} templates, {manifest['embedding']['name']} "
             f"({manifest['embedding']['dimension']}-d), index {manifest['index']['type']}"]
    if manifest["count"]:
        rows = load_library(output).template_table().to_pylist()
        rows.sort(key=lambda r: (-r["weight"], r["template_id"]))
        lines.append(f"Heaviest {min(top, len(rows))} templates (weight = source queries merged):")
        for r in rows[:top]:
            lines.append(f"  [{r['weight']:>3}] {r['template']}")
            lines.append(f"        e.g. {r['examples'][0]['text'][:100]!r}  ({r['examples'][0]['source']})")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    return job_main(argv, "python -m templates_mining", "Mine real user queries into a <fi> template library. " + PASS_THROUGH, MiningOptions, run)
