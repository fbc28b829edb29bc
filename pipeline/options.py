"""Command-line options of the pipeline job (each with help text and a default)."""
from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.gaussian_pooling import DEFAULT_ALPHA, DEFAULT_K, DEFAULT_MAX_DOCUMENT_TOKENS, DEFAULT_SIGMA
from pipeline.instantiator_prompt import MODEL_NAME as INSTANTIATOR_MODEL
from pipeline.judge_prompt import MODEL_NAME as JUDGE_MODEL
from pipeline.synthesizer_format import SYNTHESIZER_MODEL
from transforms.flag_ranges import AT_LEAST_0, AT_LEAST_1, COSINE, POSITIVE, SHARE, Range
from transforms.generation_config import MODEL_BACKENDS

INSTANTIATOR_PROMPTS = ("json", "json_with_instructions", "paper")
METHODS = ("fineinstructions", "instruction_pretrain")

FLAG_RANGES = {
    "min_document_chars": AT_LEAST_0, "max_document_chars": AT_LEAST_1, "pooling_k": AT_LEAST_0,
    "pooling_sigma": POSITIVE, "pooling_alpha": SHARE, "max_document_tokens": AT_LEAST_1, "top_k": AT_LEAST_1,
    "match_threshold": COSINE, "templates_per_document": AT_LEAST_1, "max_pairs_per_document": AT_LEAST_0,
    "match_temperature": AT_LEAST_0, "instantiator_max_tokens": AT_LEAST_1, "min_tag_similarity": COSINE,
    "min_answer_similarity": COSINE, "max_answer_chars": AT_LEAST_1, "min_excerpt_ratio": SHARE,
    "judge_max_tokens": AT_LEAST_1, "min_score": Range(1, 5), "max_template_share": Range(0, 1, lo_open=True),
    "rounds": AT_LEAST_1, "synthesizer_max_tokens": AT_LEAST_1, "synthesizer_context": Range(2),
    "max_part_tokens": AT_LEAST_0,
}
"""What each numeric flag of the pipeline job may be (checked before any work)."""

DEFAULT_MATCH_THRESHOLD = 0.05
DEFAULT_MATCH_TEMPERATURE = 0.02
DEFAULT_TEMPLATES_PER_DOCUMENT = 400
"""Cosine (MiniLM description vs Gaussian-pooled document vector) above which a template is a
candidate; calibrated on the shared Wikipedia articles (docs/benchmarks.md, "match threshold")."""


class DocumentPipelineOptions(PipelineOptions):
    """Flags of ``python -m pipeline`` besides the shared ones (transforms/job_options.py); Beam
    runner flags pass through unchanged."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--method", choices=METHODS, default="fineinstructions",
                            help="fineinstructions: templates from a library, instantiated on documents "
                                 "(METHOD.md §1). instruction_pretrain: the context-based instruction "
                                 "synthesizer writes question/answer pairs about each text, in multi-round "
                                 "chains, and the output is an instruction-augmented corpus (METHOD.md §2).")
        io = parser.add_argument_group("input and output")
        io.add_argument("--documents", default=None,
                        help="Glob of document files (JSONL or Parquet; local or gs://). Required.")
        io.add_argument("--document_format", default=None, choices=("jsonl", "parquet"),
                        help="jsonl|parquet (default: from the extension).")
        io.add_argument("--id_field", default="id", help="Document id field (missing: a content hash is used).")
        io.add_argument("--url_field", default="url", help="Document URL field (optional in the input).")
        io.add_argument("--templates", default=None,
                        help="Template library directory written by templates_mining (local or gs://). "
                             "Required by --method fineinstructions.")
        io.add_argument("--skip_library_check", action="store_true", default=False,
                        help="Do not verify the library's files against the sha256 values of its manifest "
                             "before the job (reads every file once: for a library of many millions of "
                             "templates that is minutes; a broken library then fails on the workers).")
        io.add_argument("--augmented_corpus", action="store_true", default=False,
                        help="fineinstructions: also write OUTPUT/augmented/, every document followed by its "
                             "kept pairs (an instruction-augmented corpus, as --method instruction_pretrain "
                             "writes).")

        d = parser.add_argument_group("documents")
        d.add_argument("--min_document_chars", type=int, default=200,
                       help="Drop documents shorter than this (too_short).")
        d.add_argument("--max_document_chars", type=int, default=1_000_000,
                       help="Drop documents longer than this (too_long).")

        e = parser.add_argument_group("embedding (Gaussian pooling)")
        e.add_argument("--pooling_k", type=int, default=DEFAULT_K, help="Local chunks K (K+1 vectors per document).")
        e.add_argument("--pooling_sigma", type=float, default=DEFAULT_SIGMA,
                       help="Gaussian width as a fraction of the document's tokens.")
        e.add_argument("--pooling_alpha", type=float, default=DEFAULT_ALPHA,
                       help="Mix of local (1.0) vs global (0.0) embedding in each chunk vector.")
        e.add_argument("--max_document_tokens", type=int, default=DEFAULT_MAX_DOCUMENT_TOKENS,
                       help="Tokens of each document that are embedded (in model-sized windows); "
                            "later tokens are not pooled.")
        e.add_argument("--embedding_device", default="auto", choices=("auto", "cpu", "cuda"),
                       help="Where the embedding model runs in each worker process: 'auto' = cuda when "
                            "the worker has a GPU. 'cpu' leaves a GPU worker's memory to the model "
                            "servers (vllm) when every worker has a GPU.")

        m = parser.add_argument_group("matching")
        m.add_argument("--top_k", type=int, default=400, help="Templates retrieved per retrieval vector.")
        m.add_argument("--match_threshold", type=float, default=DEFAULT_MATCH_THRESHOLD,
                       help="Cosine above which a retrieved template is a candidate (model-specific: the "
                            "paper's 0.865 is for its BGE-M3 model).")
        m.add_argument("--templates_per_document", type=int, default=DEFAULT_TEMPLATES_PER_DOCUMENT,
                       help="Templates sampled per document from its candidates and tried by the instantiator "
                            "(the extractive one declines most: it keeps a template only when a sentence "
                            "answers it; a model instantiator needs fewer, e.g. the paper's 6).")
        m.add_argument("--max_pairs_per_document", type=int, default=6,
                       help="Most pairs kept per document (its best-matching templates first), before the "
                            "token budget; 0 = no cap.")
        m.add_argument("--match_temperature", type=float, default=DEFAULT_MATCH_TEMPERATURE,
                       help="How strongly the sample prefers a document's best matches: a candidate this much "
                            "cosine below the best is e times less likely to be drawn (0 = ignore the score).")
        m.add_argument("--tag_distribution", default="library",
                       help="Target distribution of <fi> tag counts among sampled templates: 'library' "
                            "(the library's templates weighted by source queries) or e.g. '1:0.4,2:0.3,3:0.2,4:0.1' "
                            "(the last bucket takes larger counts too).")

        g = parser.add_argument_group("instantiate, judge, budget")
        g.add_argument("--instantiator", choices=("extractive",) + MODEL_BACKENDS, default="extractive",
                       help="Backend filling templates and answering: 'extractive' (deterministic CPU default) "
                            "or the template instantiator model on vllm, an openai-compatible endpoint, or "
                            "transformers (see the model backend flags).")
        g.add_argument("--instantiator_model", default=INSTANTIATOR_MODEL,
                       help="Model backends: the instantiator (hub name, local or gs:// dir; the served model "
                            "name for openai).")
        g.add_argument("--instantiator_max_tokens", type=int, default=1024,
                       help="Model backends: most tokens generated per (document, template).")
        g.add_argument("--instantiator_vllm_arg", action="append", default=[],
                       help="vllm: a server flag for the instantiator's server only, after --vllm_arg "
                            "(repeatable), e.g. max-model-len=16384 (its prompt holds the whole document).")
        g.add_argument("--instantiator_prompt", choices=INSTANTIATOR_PROMPTS, default="json",
                       help="Model backends: 'json' sends the user message {instruction_template, document} "
                            "alone (as the released model is fed); 'json_with_instructions' adds the "
                            "paper's instructions as a system message; 'paper' sends the paper-style prompt.")
        g.add_argument("--min_tag_similarity", type=float, default=0.35,
                       help="extractive: a slot whose kind has no entity label (a condition, a food) is "
                            "filled only by a noun phrase at least this similar to its description.")
        g.add_argument("--min_answer_similarity", type=float, default=0.3,
                       help="extractive: null when no answering sentence is at least this similar to the "
                            "filled instruction.")
        g.add_argument("--max_answer_chars", type=int, default=800,
                       help="extractive: longest answer excerpt, in characters.")
        g.add_argument("--min_excerpt_ratio", type=float, default=0.8,
                       help="Reject answers whose verbatim excerpts are less than this share of the characters.")
        g.add_argument("--judge", choices=("heuristic",) + MODEL_BACKENDS, default="heuristic",
                       help="Backend scoring pairs 1-5: 'heuristic' (CPU default) or a Flow-Judge-style "
                            "rubric model on vllm, an openai-compatible endpoint, or transformers.")
        g.add_argument("--judge_model", default=JUDGE_MODEL,
                       help="Model backends: the judge (hub name, local or gs:// dir; served name for openai).")
        g.add_argument("--judge_max_tokens", type=int, default=512,
                       help="Model backends: most tokens generated per judgement (feedback, then score).")
        g.add_argument("--judge_vllm_arg", action="append", default=[],
                       help="vllm: a server flag for the judge's server only, after --vllm_arg (repeatable), "
                            "e.g. max-model-len=4096 (its prompt holds one instruction and answer).")
        g.add_argument("--min_score", type=int, default=4, help="Keep pairs the judge scores at least this.")
        g.add_argument("--max_template_share", type=float, default=0.01,
                       help="Most of a run's pairs one template may make (its best matches kept; at least 3 "
                            "per template), so a frame that fits every document cannot crowd out the rest.")
        g.add_argument("--budget_tokenizer", default=None,
                       help="Tokenizer counting tokens for the per-document budget (HF name or dir; "
                            "default: the embedding model's).")
        g.add_argument("--budget_rollover", action="store_true", default=False,
                       help="Carry unused budget to the next document of the same worker bundle "
                            "(order-dependent: reruns are no longer byte-identical).")

        s = parser.add_argument_group("instruction pre-training (--method instruction_pretrain)")
        s.add_argument("--synthesizer", choices=MODEL_BACKENDS, default="vllm",
                       help="Backend of the instruction synthesizer (a base model: its raw prompts go to the "
                            "completions endpoint or generate, with no chat template and exactly one BOS).")
        s.add_argument("--synthesizer_model", default=SYNTHESIZER_MODEL,
                       help="The synthesizer (hub name, local or gs:// dir; the served model name for openai).")
        s.add_argument("--synthesizer_tokenizer", default=None,
                       help="Tokenizer counting the context budget (default: --synthesizer_model's; name it "
                            "for openai when the served name is not a hub name or directory).")
        s.add_argument("--rounds", type=int, default=2,
                       help="Texts per chain: round r's prompt holds the chain's earlier texts and their "
                            "pairs as examples (2 for pre-training from scratch, 3 for domain-adaptive "
                            "continued pre-training; 1 = no examples).")
        s.add_argument("--synthesizer_max_tokens", type=int, default=400,
                       help="Most tokens the synthesizer writes per text (the released setting).")
        s.add_argument("--synthesizer_context", type=int, default=4096,
                       help="The synthesizer's context in tokens: prompt + --synthesizer_max_tokens must fit; "
                            "longer texts are split at sentence ends, older examples dropped first.")
        s.add_argument("--max_part_tokens", type=int, default=0,
                       help="Longest text prompt (tokens): longer documents are split at sentence ends. "
                            "0 = (context - rounds x max_tokens) / rounds, so a whole chain of texts and "
                            "their pairs fits one prompt.")
        s.add_argument("--synthesizer_vllm_arg", action="append", default=[],
                       help="vllm: a server flag for the synthesizer's server only, after --vllm_arg "
                            "(repeatable); max-model-len is set to --synthesizer_context unless given.")
