import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from templates_mining.exact_dedupe import content_id
from templates_mining.genericize import CommonWords, Genericize, query_words, template_from_cluster
from transforms.template_format import normalize_template
from transforms.accounting import InvalidRecord, Rejected
from transforms.records import Example, QueryCluster, UniqueQuery


def cluster(text, count=3, sources=("a",)):
    u = UniqueQuery(content_id(text), text, count, list(sources), [Example(text, sources[0])])
    return QueryCluster(u.query_id, u, count, 1, list(sources), u.examples)


def test_template_carries_weight_and_provenance():
    q = "when did colombia become independent from spain"
    t = template_from_cluster(cluster(q, 7, ("nq", "web")), frozenset())
    assert t.template == "when did <fi>a country #1</fi> become independent from <fi>a country #2</fi>"
    assert t.weight == 7 and t.sources == ["nq", "web"]
    assert t.template_id == content_id(normalize_template(t.template))
    assert t.examples == [Example(q, "nq")]


def test_only_tags_untyped_and_nothing_specific_are_filtered_and_empty_is_dead():
    with pytest.raises(Rejected) as e:
        template_from_cluster(cluster("如何证明拉格朗日中值定理"), frozenset())
    assert e.value.reason == "no_literal_text"
    with pytest.raises(Rejected) as e:
        template_from_cluster(cluster("what is special about starfish tentacles"), frozenset())
    assert e.value.reason in ("untyped_slot", "nothing_specific")
    with pytest.raises(Rejected) as e:
        template_from_cluster(cluster("the of and"), frozenset())
    assert e.value.reason == "nothing_specific"
    with pytest.raises(InvalidRecord):
        template_from_cluster(cluster("   "), frozenset())


def test_query_words():
    assert query_words("What is the GDP of Germany? what") == ["gdp", "germany", "is", "of", "the", "what"]
    assert query_words("a b cc 12 dd") == ["cc", "dd"]


def test_common_words_and_genericize_stage():
    texts = [f"what is the population of city{i}" for i in range(30)] + ["the of and"]
    with TestPipeline() as p:
        clusters = p | beam.Create([cluster(t) for t in texts])
        common = clusters | CommonWords(min_df=0.5, min_count=20)
        assert_that(common, equal_to([frozenset({"what", "is", "the", "population", "of", "city"})]), label="common")
        res = clusters | Genericize("rules", common)
        assert_that(res.out | beam.combiners.Count.Globally(), equal_to([30]), label="out")
        assert_that(res.filtered | beam.Map(lambda d: (d.stage, d.reason)),
                    equal_to([("genericize", "nothing_specific")]), label="filtered")
