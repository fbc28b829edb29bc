"""Numeric flags are range-checked before any work (issue 13: bad values used to be accepted and fail per record)."""
import argparse
import re

import pytest

from transforms.flag_ranges import AT_LEAST_1, COSINE, POSITIVE, SHARE, Range, check_ranges


def test_ranges_and_their_wording():
    assert AT_LEAST_1.contains(1) and not AT_LEAST_1.contains(0)
    assert POSITIVE.contains(0.1) and not POSITIVE.contains(0) and str(POSITIVE) == "> 0"
    assert SHARE.contains(0) and SHARE.contains(1) and not SHARE.contains(3) and str(SHARE) == "in [0, 1]"
    assert not Range(0, 1, lo_open=True).contains(0) and str(Range(0, 1, lo_open=True)) == "in (0, 1]"
    assert not COSINE.contains(float("nan"))


def test_every_bad_flag_is_named_at_once():
    opts = argparse.Namespace(embedding_batch_size=0, top_p=1.5, num_shards=0, x=3, flag=True)
    with pytest.raises(ValueError) as e:
        check_ranges(opts, {"x": SHARE, "flag": SHARE})
    assert str(e.value) == ("--embedding_batch_size must be >= 1 (got 0); --top_p must be in [0, 1] (got 1.5); "
                            "--x must be in [0, 1] (got 3)")


@pytest.mark.parametrize("flag, value, message", [
    ("--embedding_batch_size", "0", "--embedding_batch_size must be >= 1"),
    ("--max_answer_chars", "0", "--max_answer_chars must be >= 1"),
    ("--max_document_tokens", "0", "--max_document_tokens must be >= 1"),
    ("--min_score", "9", "--min_score must be in [1, 5]"),
    ("--max_template_share", "0", "--max_template_share must be in (0, 1]"),
    ("--rounds", "-1", "--rounds must be >= 1"),
])
def test_the_pipeline_refuses_a_bad_value_before_reading_anything(tmp_path, flag, value, message):
    from pipeline.job import main

    # No library and no documents exist: the range check comes first, and the CLI says why (exit 2).
    argv = ["--documents", str(tmp_path / "none.jsonl"), "--templates", str(tmp_path), "--output",
            str(tmp_path / "o"), flag, value]
    with pytest.raises(ValueError, match=re.escape(message)):
        from apache_beam.options.pipeline_options import PipelineOptions

        from pipeline.job import create_pipeline
        create_pipeline(PipelineOptions(argv))
    assert main(argv) == 2


@pytest.mark.parametrize("flag, value", [("--semantic_query_weight", "3"), ("--num_perm", "0"),
                                         ("--near_threshold", "-0.1")])
def test_the_mining_job_refuses_a_bad_value(tmp_path, flag, value):
    from templates_mining.job import main

    assert main(["--queries", str(tmp_path / "none.jsonl"), "--output", str(tmp_path / "o"), flag, value]) == 2
