import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from templates_mining.exact_dedupe import ExactDedupe, MergeQueries, content_id, dedupe_key, to_unique_query
from transforms.records import Example, Query


def test_dedupe_key_ignores_case_space_and_end_punctuation():
    assert dedupe_key("What is  the Capital of Portugal?") == dedupe_key("what is the capital of portugal !")
    assert dedupe_key("what is c++") != dedupe_key("what is c")


def test_content_id_is_stable():
    assert content_id("what is love") == content_id("what is love")
    assert len(content_id("x")) == 16


def test_merge_is_order_independent():
    fn = MergeQueries()
    qs = [Query(f"Q{i}", f"s{i % 3}") for i in range(8)]
    a = fn.add_inputs(fn.create_accumulator(), qs)
    b = fn.merge_accumulators([fn.add_inputs(fn.create_accumulator(), qs[5:]),
                               fn.add_inputs(fn.create_accumulator(), qs[:5])])
    assert a == b
    assert a.count == 8 and a.sources == {"s0", "s1", "s2"} and len(a.examples) == 5


def test_exact_dedupe_transform_keeps_count_sources_examples():
    qs = [Query("What is the capital of Portugal?", "nq"), Query("what is the capital of portugal", "web"),
          Query("what is the capital of portugal ?", "nq"), Query("how do bees make honey", "web")]
    key = dedupe_key(qs[0].text)
    with TestPipeline() as p:
        out = p | beam.Create(qs) | ExactDedupe()
        assert_that(out | beam.Map(lambda u: (u.query_id, u.text, u.count, tuple(u.sources), len(u.examples))),
                    equal_to([(content_id(key), "What is the capital of Portugal?", 3, ("nq", "web"), 3),
                              (content_id(dedupe_key(qs[3].text)), "how do bees make honey", 1, ("web",), 1)]))


def test_to_unique_query_uses_sorted_first_example():
    fn = MergeQueries()
    acc = fn.add_inputs(fn.create_accumulator(), [Query("b text", "x"), Query("a text", "y")])
    u = to_unique_query("k", acc)
    assert u.text == "a text" and u.examples == [Example("a text", "y"), Example("b text", "x")]
