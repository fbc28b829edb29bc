import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from templates_mining.query_filter import (FilterConfig, NoHarmFilter, WordListHarmFilter, filter_query, find_pii,
                                           luhn_valid, make_harm_filter, query_filter_fn, scrub_pii)
from transforms.accounting import Rejected, accounted_map
from transforms.records import Filtered, Query
from transforms.words import content_words

CFG = FilterConfig()
HARM = make_harm_filter("wordlist")


def reason(text, cfg=CFG):
    with pytest.raises(Rejected) as e:
        filter_query(text, cfg, HARM)
    return e.value.reason


def test_length_and_not_a_query():
    assert reason("hi") == "too_short"
    assert reason("x" * 5000) == "too_long"
    assert reason("what is it and why?") == "not_a_query"
    assert reason("12345 678 90") == "not_a_query"
    assert filter_query("what is prime rate in canada", CFG, HARM) == "what is prime rate in canada"


def test_content_words():
    assert content_words("What is the prime rate in Canada?") == ["prime", "rate", "canada"]


@pytest.mark.parametrize("text,code", [
    ("email me at jane.doe@example.com about it", "pii_email"),
    ("call me on 555-201-3344 tomorrow please", "pii_phone"),
    ("call me on (555) 201-3344 tomorrow please", "pii_phone"),
    ("login at https://bob:hunter2@example.com/admin now", "pii_url_credentials"),
    ("why does https://api.example.com/v1?access_token=abcdef123456 fail", "pii_url_token"),
    ("my key sk-abcdefghijklmnopqrstuvwx does not work", "pii_secret"),
    ("is 123-45-6789 a valid ssn format", "pii_ssn"),
    ("charge my card 4111 1111 1111 1111 for the order", "pii_card"),
    ("card number 4012888888881881 was declined", "pii_card"),
])
def test_pii_detected(text, code):
    assert code in find_pii(text)
    assert reason(text) == code


def test_pii_not_triggered_by_years_and_prices():
    for text in ["what happened in 1990 - 2001 in europe", "is $1,299 a good price for a laptop",
                 "how far is 384400 km", "https://example.com/docs?page=2 explain this page",
                 "Is 9999999900000001 prime", "what day is 1311861118074000", "bars: 3 3 3 3 3 3 3 3 3 3 3 3 2 2 1 0",
                 "card 4111 1111 1111 1112 fails the checksum"]:
        assert find_pii(text) == [], text


def test_luhn():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")


def test_pii_scrub_mode_keeps_the_query():
    cfg = FilterConfig(pii="scrub")
    assert filter_query("email jane.doe@example.com the tax forms", cfg, HARM) == "email EMAIL_ADDRESS the tax forms"
    assert scrub_pii("ring 555-201-3344") == "ring PHONE_NUMBER"


def test_harm_filters():
    assert reason("step by step how to make a bomb at home") == "harmful_wordlist"
    assert filter_query("what is a bomb calorimeter used for", CFG, HARM)
    assert WordListHarmFilter(frozenset()).reason("make a bomb") is None
    assert NoHarmFilter().reason("make a bomb") is None


def test_harm_filter_hook_and_errors():
    hook = make_harm_filter("templates_mining.query_filter:NoHarmFilter")
    assert hook.reason("anything") is None
    with pytest.raises(ValueError, match="module:Class"):
        make_harm_filter("nonsense")
    with pytest.raises(ModuleNotFoundError):
        make_harm_filter("no_such_module_xyz:Thing")


def test_config_validation():
    with pytest.raises(ValueError):
        FilterConfig(min_chars=10, max_chars=5).validate()
    with pytest.raises(ValueError):
        FilterConfig(pii="keep").validate()


def test_filter_stage_in_beam_routes_filtered_with_reasons():
    queries = [Query("what is prime rate in canada", "a"), Query("hi", "b"),
               Query("mail me: jane.doe@example.com thanks", "c")]
    with TestPipeline() as p:
        res = p | beam.Create(queries) | accounted_map("filter", query_filter_fn(CFG))
        assert_that(res.out, equal_to([queries[0]]), label="out")
        assert_that(res.filtered, equal_to([
            Filtered("filter", "too_short", "hi", "b"),
            Filtered("filter", "pii_email", "mail me: jane.doe@example.com thanks", "c")]), label="filtered")
