"""The token-budget stage: per document, keep one pair per distinct answer and question word, at most
``max_pairs`` pairs (its best matches first), then a seeded random subset of them whose tokens
fit in the document's own token count (METHOD.md §1.4), so the output never outweighs its source."""
from __future__ import annotations

import re
from typing import Optional

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline.steps import count_tokens, load_tokenizer, pair_text
from pipeline.token_budget import BudgetRollover, select_within_budget
from transforms.accounting import FILTERED, NAMESPACE, SEP, StageCounters


#: Question words by what they ask ("which city" asks what "what city" does).
_QUESTION_WORDS = {"what": "what", "which": "what", "who": "who", "whom": "who", "whose": "who", "when": "when",
                   "where": "where", "why": "why", "how": "how"}


def question_word(instruction: str) -> str:
    """What kind of thing the instruction asks, by its first question word ("" for none)."""
    return next((_QUESTION_WORDS[w] for w in re.findall(r"[a-z]+", instruction.casefold()) if w in _QUESTION_WORDS),
                "")


class _BudgetFn(beam.DoFn):
    def __init__(self, embedding_model: str, tokenizer: Optional[str], seed: int, rollover: bool, stage: str,
                 max_pairs: int = 0):
        self._model, self._tokenizer, self._seed = embedding_model, tokenizer, seed
        self._rollover, self._stage, self._max_pairs = rollover, stage, max_pairs

    def setup(self):
        self._tok = load_tokenizer(self._tokenizer, self._model)
        self._counters = StageCounters(self._stage)
        self._documents_with_pairs = Metrics.counter(NAMESPACE, f"{self._stage}{SEP}documents_with_pairs")

    def start_bundle(self):
        self._carry = BudgetRollover() if self._rollover else None

    def process(self, keyed):
        doc_id, drafts = keyed
        drafts = sorted(drafts, key=lambda d: d.match.template_id)  # input order must not matter
        c = self._counters
        c.inc_in(len(drafts))
        # The document's best matches first (score, then template id: stable on reruns). A pair
        # whose answer an earlier one already gives with the same question word asks the same
        # thing again ("who did X play for", "who does X play for"): one is enough; "when did X
        # die" and "where did X die" ask two things of one sentence.
        ranked, answers = [], set()
        for draft in sorted(drafts, key=lambda d: (-d.match.score, d.match.template_id)):
            asked = (draft.answer, question_word(draft.instruction))
            reason = ("same_answer" if asked in answers
                      else "over_pair_cap" if self._max_pairs and len(ranked) >= self._max_pairs else None)
            if reason is None:
                ranked.append(draft)
                answers.add(asked)
                continue
            yield c.filtered_output(reason, f"{draft.accounting_text()} ({reason.replace('_', ' ')})", doc_id)
        drafts = sorted(ranked, key=lambda d: d.match.template_id)
        if not drafts:
            return
        tokens = [count_tokens(self._tok, pair_text(d.instruction, d.answer)) for d in drafts]
        budget = drafts[0].num_tokens
        if self._carry is not None:
            granted = self._carry.grant(budget)
        else:
            granted = budget
        kept = set(select_within_budget(tokens, granted, f"{self._seed}\x00{doc_id}"))
        if self._carry is not None:
            self._carry.spend(sum(tokens[i] for i in kept), granted)
        if kept:
            self._documents_with_pairs.inc()
        for i, draft in enumerate(drafts):
            if i in kept:
                c.inc_out()
                yield draft
            else:
                yield c.filtered_output(
                    "over_token_budget",
                    f"{draft.accounting_text()} ({tokens[i]} tokens; document budget {granted})", doc_id)


class TokenBudget(beam.PTransform):
    """PairDraft per (document, template) -> the drafts kept within each document's budget."""

    def __init__(self, embedding_model: str, tokenizer: Optional[str] = None, seed: int = 0,
                 rollover: bool = False, stage: str = "budget", max_pairs: int = 0):
        super().__init__()
        self._fn = _BudgetFn(embedding_model, tokenizer, seed, rollover, stage, max_pairs)

    def expand(self, drafts):
        return (drafts
                | "KeyByDocument" >> beam.Map(lambda d: (d.doc_id, d))
                | "GroupByDocument" >> beam.GroupByKey()
                | "Select" >> beam.ParDo(self._fn).with_outputs(FILTERED, main="out"))
