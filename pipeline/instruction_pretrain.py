"""The Instruction Pre-Training method (METHOD.md §2) as Beam steps, and its graph.

Documents -> parts that fit the synthesizer's context (``split``) -> chains of ``--rounds``
texts (``chain``) -> one RunInference stage per round, unrolled (``synthesize_r<N>_generate``
and its parse ``synthesize_r<N>``) -> the pairs and the instruction-augmented corpus
(``augment``). A chain rides through each round as the key of its prompt, so its result joins
back to it; a prompt the model could not answer is a dead letter, and its text goes on with no
pairs, so every text reaches the augmented corpus.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import threading
import time
from typing import Dict, Iterable, List, NamedTuple, Tuple

import apache_beam as beam
import pyarrow as pa

from pipeline.records import Document
from pipeline.synthesizer_chains import (Chain, TextPart, augmented_text, bucket_of, examples_before,
                                         form_chains, layout_for, num_buckets, with_pairs, LAYOUTS)
from pipeline.synthesizer_context import fit_examples, part_budget, prompt_budget, split_text
from pipeline.synthesizer_format import MARKERS, QAPair, build_prompt, parse_pairs
from transforms.accounting import DEAD, FILTERED, NAMESPACE, SEP, StageCounters, count_stage
from transforms.generation import FAILED, Generate, Generated
from transforms.generation_config import GenerationConfig
from transforms.records import DeadLetter
from transforms.record_io import WriteSortedShards, first_jsonl_rows

PAIR_SCHEMA = pa.schema([
    ("pair_id", pa.string()), ("doc_id", pa.string()), ("part", pa.int32()), ("round", pa.int32()),
    ("chain", pa.string()), ("pair_index", pa.int32()), ("question", pa.string()), ("answer", pa.string()),
    ("model", pa.string()), ("settings", pa.string()),
])
AUGMENTED_SCHEMA = pa.schema([
    ("augmented_id", pa.string()), ("text", pa.string()), ("doc_ids", pa.list_(pa.string())),
    ("part_ids", pa.list_(pa.string())), ("num_pairs", pa.int32()), ("layout", pa.string()),
])


def round_stage(r: int) -> str:
    """The parse stage of round ``r`` (0-based); its model call is ``<stage>_generate``."""
    return f"synthesize_r{r + 1}"


def stages_and_chain(rounds: int):
    """Run-report stages and chain of this method: documents are conserved up to ``split``, texts
    (parts) from ``split|parts`` to ``augment``; each round is conserved on its own."""
    stages = ["read", "filter_documents", "dedupe_documents", "split", "chain"]
    for r in range(rounds):
        stages += [f"{round_stage(r)}_generate", round_stage(r)]
    stages += ["augment", "write_pairs"]
    chain = (("read", "filter_documents"), ("filter_documents", "dedupe_documents"),
             ("dedupe_documents", "split"), (f"split{SEP}parts", "chain"), ("chain", "augment"))
    return tuple(stages), chain


# --------------------------------------------------------------------------- tokenizer

_LOCK = threading.Lock()
_TOKENIZERS: Dict[str, object] = {}


def load_tokenizer(name: str):
    """The synthesizer's tokenizer (hub name, local or gs:// dir), once per process."""
    with _LOCK:
        if name not in _TOKENIZERS:
            from transformers import AutoTokenizer

            from transforms.transformers_backend import resolve_model_path
            path = resolve_model_path(name)
            _TOKENIZERS[name] = AutoTokenizer.from_pretrained(path, local_files_only=os.path.isdir(path))
        return _TOKENIZERS[name]


def token_counter(tokenizer):
    """Tokens of a raw prompt exactly as the model receives it: its literal ``<s>`` is its BOS,
    and none is added."""
    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
    return count


# --------------------------------------------------------------------------- steps

class _SplitFn(beam.DoFn):
    """Document -> its TextParts (one, unless its prompt would not fit the context); a document
    holding one of the format's markers is filtered (``marker_in_text``): in a prompt it would end
    the text early or, as ``<s>``/``</s>``, become a special token."""

    def __init__(self, tokenizer: str, budget: int, stage: str = "split"):
        self._tokenizer, self._budget, self._stage = tokenizer, budget, stage

    def setup(self):
        self._counters = StageCounters(self._stage)
        self._parts = beam.metrics.Metrics.counter(NAMESPACE, f"{self._stage}{SEP}parts")
        self._split = beam.metrics.Metrics.counter(NAMESPACE, f"{self._stage}{SEP}documents_split")
        self._count = token_counter(load_tokenizer(self._tokenizer))

    def process(self, doc: Document):
        c = self._counters
        c.inc_in()
        marker = next((m for m in MARKERS if m in doc.text), None)
        if marker is not None:  # it would read as the format's own structure (or a BOS/EOS token)
            yield c.filtered_output("marker_in_text", f"{doc.accounting_text()} (holds {marker!r})", doc.source)
            return
        start = time.perf_counter()
        try:
            texts = split_text(doc.text, self._count, self._budget)
        except Exception as e:  # noqa: BLE001 - a document the tokenizer cannot take is a dead letter
            reason = f"error_{type(e).__name__}"
            c.dead(reason)
            yield beam.pvalue.TaggedOutput(DEAD, DeadLetter(self._stage, reason, str(e)[:2000],
                                                            doc.accounting_text(), doc.source))
            return
        finally:
            c.busy(time.perf_counter() - start)
        c.inc_out()
        self._parts.inc(len(texts))
        if len(texts) > 1:
            self._split.inc()
        for i, text in enumerate(texts):
            yield TextPart(doc.doc_id, i, len(texts), text, doc.source)


class FormChains(beam.PTransform):
    """TextPart -> Chain: stable buckets by document id, chains of ``rounds`` cut in hash order."""

    def __init__(self, rounds: int, seed: int, stage: str = "chain"):
        super().__init__()
        self._rounds, self._seed, self._stage = rounds, seed, stage

    def expand(self, parts):
        rounds, seed, stage = self._rounds, self._seed, self._stage
        buckets = (parts
                   | "CountParts" >> beam.combiners.Count.Globally()
                   | "NumBuckets" >> beam.Map(num_buckets, rounds))
        out_counter = count_stage(stage, "out")
        chains_counter = beam.metrics.Metrics.counter(NAMESPACE, f"{stage}{SEP}chains")

        def chains_of(keyed):
            chains = form_chains(keyed[1], rounds, seed)
            for chain in chains:
                chains_counter.inc()
                for part in chain.parts:
                    out_counter(part)
            return chains

        return (parts
                | "CountIn" >> beam.Map(count_stage(stage, "in"))
                | "Bucket" >> beam.Map(lambda p, n: (bucket_of(p.doc_id, seed, n), p), n=beam.pvalue.AsSingleton(buckets))
                | "GroupBuckets" >> beam.GroupByKey()
                | "Chains" >> beam.FlatMap(chains_of))


class _RoundPromptFn(beam.DoFn):
    """Chain -> (RoundKey, prompt) for its ``r``-th text; a chain with no
    ``r``-th text goes to ``done``."""

    def __init__(self, r: int, tokenizer: str, budget: int):
        self._r, self._tokenizer, self._budget = r, tokenizer, budget

    def setup(self):
        self._count = token_counter(load_tokenizer(self._tokenizer))
        self._dropped = beam.metrics.Metrics.counter(NAMESPACE, f"{round_stage(self._r)}{SEP}examples_dropped")

    def process(self, chain: Chain):
        r = self._r
        if len(chain.parts) <= r:
            yield beam.pvalue.TaggedOutput("done", chain)
            return
        text = chain.parts[r].text
        examples, dropped = fit_examples(examples_before(chain, r), text, self._count, self._budget)
        if dropped:
            self._dropped.inc(dropped)
        yield (RoundKey(chain, len(examples)), build_prompt(examples, text))


class RoundKey(NamedTuple):
    """What a round's prompt carries through RunInference: its chain, and the examples it holds."""
    chain: Chain
    examples: int

    def accounting_text(self) -> str:
        return self.chain.accounting_text()

    @property
    def source(self) -> str:
        return self.chain.source


class _ParseRoundFn(beam.DoFn):
    """Generated -> the chain with its ``r``-th text's pairs; fragments dropped are counted by reason."""

    def __init__(self, r: int):
        self._r = r

    def setup(self):
        stage = round_stage(self._r)
        self._counters = StageCounters(stage)
        self._stage = stage
        self._pairs = beam.metrics.Metrics.counter(NAMESPACE, f"{stage}{SEP}pairs")
        self._no_pairs = beam.metrics.Metrics.counter(NAMESPACE, f"{stage}{SEP}no_pairs")
        self._drops: Dict[str, object] = {}

    def process(self, generated: Generated):
        c = self._counters
        c.inc_in()
        chain, examples = generated.record
        pairs, drops = parse_pairs(generated.text)
        for reason, n in drops.items():
            if reason not in self._drops:
                self._drops[reason] = beam.metrics.Metrics.counter(NAMESPACE, f"{self._stage}{SEP}dropped{SEP}{reason}")
            self._drops[reason].inc(n)
        if pairs:
            self._pairs.inc(len(pairs))
        else:
            self._no_pairs.inc()
        c.inc_out()
        yield with_pairs(chain, self._r, pairs, examples)


class SynthesisRound(beam.PTransform):
    """Chains -> the same chains with their ``r``-th text synthesized (outputs ``out``, ``dead_letters``)."""

    def __init__(self, r: int, config: GenerationConfig, tokenizer: str, budget: int, accelerator=None,
                 handler=None):
        super().__init__()
        self._r, self._tokenizer, self._budget = r, tokenizer, budget
        self._generate = Generate(f"{round_stage(r)}_generate", config, accelerator, handler)

    def expand(self, chains):
        r = self._r
        prompts = chains | "Prompt" >> beam.ParDo(_RoundPromptFn(r, self._tokenizer, self._budget)).with_outputs(
            "done", main="prompts")
        generated = prompts.prompts | "Generate" >> self._generate
        parsed = generated["out"] | "Parse" >> beam.ParDo(_ParseRoundFn(r))
        # A failed prompt is a dead letter of the generate stage; its text goes on with no pairs.
        unanswered = generated[FAILED] | "NoPairs" >> beam.Map(lambda keyed: with_pairs(keyed[0], r, (), keyed[1]))
        out = (parsed, unanswered, prompts.done) | "Chains" >> beam.Flatten()
        return {"out": out, DEAD: generated[DEAD]}


def _settings(opts: argparse.Namespace, max_part_tokens: int) -> Dict[str, object]:
    return {"rounds": opts.rounds, "max_new_tokens": opts.synthesizer_max_tokens, "max_part_tokens": max_part_tokens,
            "context": opts.synthesizer_context, "temperature": opts.temperature, "backend": opts.synthesizer}


def pair_records(chain: Chain, model: str, settings: Dict[str, object]) -> List[dict]:
    """The output rows of a chain's pairs (round = the text's position in its chain, from 1)."""
    rows = []
    for r, (part, pairs) in enumerate(zip(chain.parts, chain.pairs)):
        used = chain.examples_used[r] if r < len(chain.examples_used) else 0
        row_settings = json.dumps({**settings, "examples_in_prompt": used}, sort_keys=True)
        for i, pair in enumerate(pairs or ()):
            key = f"{chain.chain_id}\x00{part.part_id}\x00{i}\x00{pair.question}"
            rows.append({"pair_id": hashlib.sha256(key.encode("utf-8")).hexdigest()[:16], "doc_id": part.doc_id,
                         "part": part.part, "round": r + 1, "chain": chain.chain_id, "pair_index": i,
                         "question": pair.question, "answer": pair.answer, "model": model,
                         "settings": row_settings})
    return rows


def augmented_record(augmented_id: str, texts: List[Tuple[str, tuple]], doc_ids: Iterable[str],
                     part_ids: List[str], seed: int) -> dict:
    """One document of the instruction-augmented corpus: each text verbatim, then its pairs."""
    layout = layout_for(augmented_id, seed)
    q_label, a_label = LAYOUTS[layout]
    return {"augmented_id": augmented_id, "text": augmented_text(texts, layout),
            "doc_ids": list(dict.fromkeys(doc_ids)), "part_ids": part_ids,
            "num_pairs": sum(len(p) for _, p in texts), "layout": f"{q_label.strip()} / {a_label.strip()}"}


def chain_document(chain: Chain, seed: int) -> dict:
    return augmented_record(chain.chain_id, [(p.text, pairs or ()) for p, pairs in zip(chain.parts, chain.pairs)],
                            [p.doc_id for p in chain.parts], [p.part_id for p in chain.parts], seed)


def instruction_pretrain_graph(documents, opts: argparse.Namespace, config: GenerationConfig, out: str,
                               handler=None) -> List:
    """Documents -> OUTPUT/pairs/ and OUTPUT/augmented/; returns the dead-letter and filtered PCollections."""
    budget = prompt_budget(opts.synthesizer_context, opts.synthesizer_max_tokens)
    per_text = min(budget, opts.max_part_tokens or part_budget(opts.synthesizer_context, opts.synthesizer_max_tokens,
                                                               opts.rounds))
    tokenizer = opts.synthesizer_tokenizer or opts.synthesizer_model
    split = documents | "Split" >> beam.ParDo(_SplitFn(tokenizer, per_text)).with_outputs(DEAD, FILTERED, main="out")
    chains = split.out | "FormChains" >> FormChains(opts.rounds, opts.seed)
    dead = [split[DEAD]]
    for r in range(opts.rounds):
        done = chains | f"Round{r + 1}" >> SynthesisRound(r, config, tokenizer, budget, opts.accelerator, handler)
        chains, dead = done["out"], dead + [done[DEAD]]
    settings = _settings(opts, per_text)
    _ = (chains
         | "PairRecords" >> beam.FlatMap(pair_records, opts.synthesizer_model, settings)
         | "CountPairsIn" >> beam.Map(count_stage("write_pairs", "in"))
         | "CountPairsOut" >> beam.Map(count_stage("write_pairs", "out"))
         | "WritePairs" >> WriteSortedShards(f"{out}/pairs/pairs", PAIR_SCHEMA, "pair_id", opts.num_shards))
    augment_in, augment_out = count_stage("augment", "in"), count_stage("augment", "out")

    def to_document(chain: Chain) -> dict:
        for part in chain.parts:
            augment_in(part)
            augment_out(part)
        return chain_document(chain, opts.seed)

    _ = (chains
         | "AugmentedDocuments" >> beam.Map(to_document)
         | "WriteAugmented" >> WriteSortedShards(f"{out}/augmented/augmented", AUGMENTED_SCHEMA, "augmented_id",
                                                 opts.num_shards))
    return dead, [split[FILTERED]]


def document_augmented(doc: Document, pairs: List[Tuple[str, str]], seed: int) -> dict:
    """A FineInstructions document with its kept (instruction, answer) pairs, as an augmented document."""
    ordered = tuple(QAPair(q, a) for q, a in sorted(pairs))
    return augmented_record(doc.doc_id, [(doc.text, ordered)], [doc.doc_id], [doc.doc_id], seed)



def summary(output: str, report: dict, examples: int = 2) -> str:
    """Texts, pairs and chains (from the report's counters) and the start of a few augmented documents."""
    stages = {st["stage"]: st for st in report["stages"]}
    parts = stages.get("split", {}).get("other", {}).get("parts", 0)
    chains = stages.get("chain", {}).get("other", {}).get("chains", 0)
    pairs = stages.get("write_pairs", {}).get("out", 0)
    lines = [f"\nInstruction pre-training: {pairs} pairs about {parts} texts in {chains} chains"]
    for row in first_jsonl_rows(f"{output}/augmented/augmented-*.jsonl", examples):
        text = row["text"] if len(row["text"]) <= 600 else row["text"][:600] + " ..."
        lines.append(f"--- augmented {row['augmented_id']} ({row['num_pairs']} pairs, texts {', '.join(row['part_ids'])})")
        lines.append(text)
    lines.append(f"\nPairs: {output}/pairs/")
    return "\n".join(lines)

