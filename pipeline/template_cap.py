"""The template-share stage: no template above ``max_share`` of a run's pairs.

FineInstructions reports no template above 0.09% of its ~1B pairs: the point of mining real
queries is many different requests, and a frame that fits most documents ("who was <X>",
"what is <X>") would otherwise crowd out the rest. Each template keeps its best-matching pairs
(match score, then pair order: the same on every rerun) up to ``max(min_per_template,
max_share * pairs)``; the rest are filtered as ``over_template_share``.
"""
from __future__ import annotations

import math

import apache_beam as beam

from transforms.accounting import FILTERED, StageCounters


def template_cap(total: int, max_share: float, min_per_template: int) -> int:
    """Most pairs one template may keep in a run of ``total`` pairs."""
    return max(min_per_template, math.floor(max_share * total))


class _CapFn(beam.DoFn):
    def __init__(self, max_share: float, min_per_template: int, stage: str):
        self._share, self._min, self._stage = max_share, min_per_template, stage

    def setup(self):
        self._counters = StageCounters(self._stage)

    def process(self, keyed, total):
        template_id, drafts = keyed
        drafts = sorted(drafts, key=lambda d: (-d.match.score, d.doc_id, d.instruction))
        cap = template_cap(total, self._share, self._min)
        c = self._counters
        c.inc_in(len(drafts))
        for i, draft in enumerate(drafts):
            if i < cap:
                c.inc_out()
                yield draft
            else:
                yield c.filtered_output(
                    "over_template_share",
                    f"{draft.accounting_text()} (template {template_id} already has {cap} pairs of {total})",
                    draft.doc_id)


class TemplateCap(beam.PTransform):
    """PairDraft -> the drafts kept under the per-template share (outputs ``out``, ``filtered``)."""

    def __init__(self, max_share: float, min_per_template: int = 3, stage: str = "template_cap"):
        super().__init__()
        if not 0 < max_share <= 1:
            raise ValueError(f"--max_template_share must be in (0, 1], got {max_share}")
        self._fn = _CapFn(max_share, min_per_template, stage)

    def expand(self, drafts):
        total = drafts | "CountPairs" >> beam.combiners.Count.Globally()
        return (drafts
                | "KeyByTemplate" >> beam.Map(lambda d: (d.match.template_id, d))
                | "GroupByTemplate" >> beam.GroupByKey()
                | "Cap" >> beam.ParDo(self._fn, total=beam.pvalue.AsSingleton(total)).with_outputs(FILTERED, main="out"))
