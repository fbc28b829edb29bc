"""Command-line options of the templates-mining job (each with help text and a default)."""
from __future__ import annotations

import argparse

from apache_beam.options.pipeline_options import PipelineOptions

from templates_mining.templatizer_prompt import MODEL_NAME as TEMPLATIZER_MODEL
from transforms.flag_ranges import AT_LEAST_0, AT_LEAST_1, COSINE, SHARE
from transforms.generation_config import MODEL_BACKENDS



FLAG_RANGES = {
    "min_chars": AT_LEAST_0, "max_chars": AT_LEAST_1, "min_content_words": AT_LEAST_0, "num_perm": AT_LEAST_1,
    "bands": AT_LEAST_1, "rows": AT_LEAST_1, "shingle_size": AT_LEAST_1, "near_threshold": SHARE,
    "cc_max_rounds": AT_LEAST_1, "genericizer_max_tokens": AT_LEAST_1, "common_word_min_df": SHARE,
    "common_word_min_count": AT_LEAST_0, "semantic_threshold": COSINE, "semantic_query_weight": SHARE,
    "partition_size": AT_LEAST_1,
}
"""What each numeric flag of the mining job may be (checked before any work)."""

class MiningOptions(PipelineOptions):
    """Flags of ``python -m templates_mining`` besides the shared ones (transforms/job_options.py);
    Beam runner flags pass through unchanged."""

    @classmethod
    def _add_argparse_args(cls, parser):
        io = parser.add_argument_group("input and output")
        io.add_argument("--sources", default=None,
                        help="YAML or JSON list of query sources {name, path, format, text_field, header}; "
                             "path may be a glob or gs://, relative paths resolve against the file's folder.")
        io.add_argument("--queries", default=None,
                        help="Simple case: one glob of query files (instead of --sources).")
        io.add_argument("--query_format", default=None,
                        help="With --queries: jsonl|parquet|csv|tsv|text (default: from the extension).")
        io.add_argument("--source_name", default="queries", help="With --queries: the source name recorded.")

        f = parser.add_argument_group("filter")
        f.add_argument("--min_chars", type=int, default=8, help="Drop queries shorter than this (too_short).")
        f.add_argument("--max_chars", type=int, default=4000, help="Drop queries longer than this (too_long).")
        f.add_argument("--min_content_words", type=int, default=1,
                       help="Drop queries with fewer content words (not_a_query).")
        f.add_argument("--pii", choices=("drop", "scrub"), default="drop",
                       help="Queries with emails, phone numbers, secrets or credential URLs: drop them, "
                            "or scrub the match to a placeholder word.")
        f.add_argument("--harm_filter", default="wordlist",
                       help="Harmful-content filter: 'wordlist', 'none', or 'module:Class' (a model hook "
                            "with reason(text) -> str|None).")
        f.add_argument("--harm_wordlist", default=None,
                       help="Phrase list for the wordlist filter (default: the packaged list).")

        n = parser.add_argument_group("near dedupe (MinHash LSH)")
        n.add_argument("--num_perm", type=int, default=128, help="MinHash permutations.")
        n.add_argument("--bands", type=int, default=16, help="LSH bands (bands * rows <= num_perm).")
        n.add_argument("--rows", type=int, default=8, help="Rows per LSH band.")
        n.add_argument("--shingle_size", type=int, default=2, help="Words per shingle.")
        n.add_argument("--near_threshold", type=float, default=0.7,
                       help="Estimated Jaccard at or above which two queries are near duplicates.")
        n.add_argument("--cc_max_rounds", type=int, default=20,
                       help="Connected-components rounds unrolled in the graph (non-convergence is counted).")

        g = parser.add_argument_group("genericize")
        g.add_argument("--genericizer", choices=("rules",) + MODEL_BACKENDS, default="rules",
                       help="Backend turning queries into <fi> templates: 'rules' (deterministic CPU default) "
                            "or the query templatizer model on vllm, an openai-compatible endpoint, or "
                            "transformers (see the model backend flags).")
        g.add_argument("--genericizer_model", default=TEMPLATIZER_MODEL,
                       help="Model backends: the templatizer (hub name, local or gs:// dir; the served "
                            "model name for openai).")
        g.add_argument("--genericizer_max_tokens", type=int, default=512,
                       help="Model backends: most tokens generated per query.")
        g.add_argument("--templatizer_system_prompt", action=argparse.BooleanOptionalAction, default=True,
                       help="Model backends: send the <fi>-format instructions as a system message before "
                            "the query (--no-templatizer_system_prompt sends the bare query).")
        g.add_argument("--common_word_min_df", type=float, default=0.002,
                       help="Words in at least this fraction of queries are template words, never tags.")
        g.add_argument("--common_word_min_count", type=int, default=20,
                       help="...and in at least this many queries.")

        t = parser.add_argument_group("template dedupe, clustering, index")
        t.add_argument("--semantic_threshold", type=float, default=0.675,
                       help="Semantic dedupe merges two templates when w * cos(source queries) + "
                            "(1 - w) * cos(descriptions) reaches this (calibrated on labelled "
                            "duplicate questions: benchmarks/dedupe_quality.py).")
        t.add_argument("--semantic_query_weight", type=float, default=0.9,
                       help="w above: the share of source-query similarity in the semantic dedupe score.")
        t.add_argument("--partition_size", type=int, default=2000,
                       help="Target templates per k-means partition for pairwise semantic dedupe; "
                            "also the topic-cluster granularity (cluster_id).")
