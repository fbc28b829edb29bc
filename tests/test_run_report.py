import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline

from transforms import run_report
from transforms.accounting import Rejected, accounted_map


def test_stage_summaries_and_conservation():
    counters = {"read|in": 10, "read|out": 8, "read|dead|invalid_json": 2, "filter|in": 8, "filter|out": 5,
                "filter|filtered|too_short": 2, "filter|filtered|pii_email": 1, "filter|busy_ms": 500,
                "near|unconverged_nodes": 0}
    report = run_report.build_report("job", counters, ["read", "filter"], [("read", "filter")], wall_s=1.0)
    assert report["conservation_ok"]
    read, filt = report["stages"][:2]
    assert read["dead_letters_by_reason"] == {"invalid_json": 2} and read["conserved"]
    assert filt["filtered"] == 3 and filt["records_per_busy_s"] == 16.0
    assert report["chain"] == [{"from": "read", "to": "filter", "out": 8, "in": 8, "ok": True}]
    table = run_report.format_table(report)
    assert "too_short=2" in table and "conservation: OK" in table


def test_conservation_failure_is_reported():
    report = run_report.build_report("job", {"a|in": 5, "a|out": 3, "b|in": 2, "b|out": 2},
                                     ["a", "b"], [("a", "b")])
    assert not report["conservation_ok"]
    assert "FAILED" in run_report.format_table(report)
    assert "CHAIN MISMATCH" in run_report.format_table(report)


def _fn(x):
    if x < 0:
        raise Rejected("negative")
    if x == 0:
        raise ZeroDivisionError("zero")
    return 1 / x


def test_counters_from_a_real_pipeline_run(tmp_path):
    p = TestPipeline()
    _ = p | beam.Create([-1, 0, 1, 2]) | accounted_map("div", _fn)
    result = p.run()
    result.wait_until_finish()
    counters = run_report.counters_from_result(result)
    assert counters["div|in"] == 4 and counters["div|out"] == 2
    assert counters["div|filtered|negative"] == 1 and counters["div|dead|error_ZeroDivisionError"] == 1
    report = run_report.build_report("div", counters, ["div"])
    assert report["conservation_ok"]
    path = run_report.write_report(report, str(tmp_path))
    assert '"conservation_ok": true' in open(path).read()


@pytest.mark.parametrize("options", ["templates_mining.options:MiningOptions",
                                     "pipeline.options:DocumentPipelineOptions",
                                     "transforms.job_options:JobOptions"])
def test_readme_documents_every_flag(options):
    import argparse
    import importlib
    import pathlib

    module, name = options.split(":")
    parser = argparse.ArgumentParser()
    getattr(importlib.import_module(module), name)._add_argparse_args(parser)
    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    flags = [a.option_strings[0] for a in parser._actions if a.option_strings and a.option_strings[0] != "-h"]
    missing = [f for f in flags if f"`{f}`" not in readme]
    assert not missing, f"README.md does not document {missing}"


# Airflow's Dataflow hook (apache-airflow-providers-google, hooks/dataflow.py, JOB_ID_PATTERN): when
# a launcher line matches, the Beam operator stops waiting for the launcher (and its report).
AIRFLOW_JOB_ID_PATTERN = r"Submitted job: (?P<job_id_java>[^\"\n\s]*)|Created job with id: \[(?P<job_id_python>[^\"\n\s]*)\]"


def test_a_submitted_dataflow_job_is_announced_but_not_in_the_line_airflow_stops_at(capsys):
    import re
    from types import SimpleNamespace

    from apache_beam.runners.dataflow.dataflow_runner import DataflowPipelineResult

    job_id = "2026-11-24_01_02_03-1234567890123456789"
    run_report.announce_job(DataflowPipelineResult(SimpleNamespace(id=job_id), runner=None))
    line = capsys.readouterr().out
    assert job_id in line
    assert re.search(AIRFLOW_JOB_ID_PATTERN, line) is None
    assert re.search(AIRFLOW_JOB_ID_PATTERN, f"Created job with id: [{job_id}]")  # the pattern is live
    # A classic template's creation (no job) and the DirectRunner have no job id: nothing printed.
    run_report.announce_job(DataflowPipelineResult(None, runner=None))
    p = TestPipeline()
    _ = p | beam.Create([1])
    run_report.announce_job(p.run())
    assert capsys.readouterr().out == ""
