import unicodedata

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from templates_mining.normalize import NormalizeQueries, clean_text, is_encodable, nfkc_batch, normalize_batch
from transforms.records import Query

TRICKY = ["ｆｕｌｌwidth", "ﬁve ﬂowers", "Ⅻ chapters", "e\u0301clair", "x\u00b2 + y\u00b2", "①②", "\u212b ngstrom",
          "plain ascii"]


def test_tf_text_nfkc_matches_unicodedata():
    assert nfkc_batch(TRICKY) == [unicodedata.normalize("NFKC", t) for t in TRICKY]


def test_clean_text_removes_controls_and_collapses_whitespace():
    assert clean_text("  what\u200b is\t\tthis\u0007 \u00a0 thing?  ") == "what is this thing?"
    assert clean_text("line one\r\n\r\n\r\n\r\nline   two \n three") == "line one\n\nline two\nthree"
    assert clean_text("\ufeffbom first") == "bom first"


def test_normalize_batch_end_to_end():
    assert normalize_batch(["  ｗｈａｔ  is  ﬁre? "]) == ["what is fire?"]


def test_is_encodable_detects_lone_surrogates():
    assert is_encodable("fine é")
    assert not is_encodable("bad \ud800 surrogate")


def test_normalize_transform_with_dead_letters():
    with TestPipeline() as p:
        res = (p | beam.Create([Query("ｈｉ  there", "s1"), Query("bad \udc80", "s2")])
               | NormalizeQueries())
        assert_that(res.out, equal_to([Query("hi there", "s1")]), label="out")
        assert_that(res.dead_letters | beam.Map(lambda d: (d.stage, d.reason, d.source)),
                    equal_to([("normalize", "invalid_unicode", "s2")]), label="dead")
