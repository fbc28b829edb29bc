"""The run report: per-stage counts from Beam metrics, the conservation check, a table.

Every stage's counters follow ``transforms.accounting``; a stage is *conserved* when
``in = out + filtered + dead``. The report also checks that each stage's input equals the
previous stage's output where the job declares them chained.
"""
from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from apache_beam.metrics.metric import MetricsFilter

from transforms.accounting import NAMESPACE, SEP


def counters_from_result(result) -> Dict[str, int]:
    """``{counter name: value}`` for this project's namespace (committed, else attempted)."""
    out: Dict[str, int] = {}
    for c in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        value = c.committed if c.committed is not None else c.attempted
        out[c.key.metric.name] = out.get(c.key.metric.name, 0) + int(value or 0)
    return out


def stage_summaries(counters: Dict[str, int], stages: Sequence[str]) -> List[dict]:
    """One summary dict per stage in ``stages`` order, then any other stage seen."""
    per: Dict[str, dict] = defaultdict(lambda: {"in": 0, "out": 0, "filtered": {}, "dead_letters": {},
                                                "busy_ms": 0, "other": {}})
    for name, value in counters.items():
        parts = name.split(SEP)
        stage, kind = parts[0], parts[1] if len(parts) > 1 else ""
        s = per[stage]
        if kind in ("in", "out", "busy_ms"):
            s[kind] += value
        elif kind == "filtered" and len(parts) > 2:
            s["filtered"][parts[2]] = s["filtered"].get(parts[2], 0) + value
        elif kind == "dead" and len(parts) > 2:
            s["dead_letters"][parts[2]] = s["dead_letters"].get(parts[2], 0) + value
        else:
            s["other"][SEP.join(parts[1:])] = value
    order = list(stages) + sorted(set(per) - set(stages))
    summaries = []
    for stage in order:
        if stage not in per:
            continue
        s = per[stage]
        filtered, dead = sum(s["filtered"].values()), sum(s["dead_letters"].values())
        has_flow = s["in"] or s["out"] or filtered or dead
        summaries.append({
            "stage": stage, "in": s["in"], "out": s["out"],
            "filtered": filtered, "filtered_by_reason": dict(sorted(s["filtered"].items())),
            "dead_letters": dead, "dead_letters_by_reason": dict(sorted(s["dead_letters"].items())),
            "conserved": (s["in"] == s["out"] + filtered + dead) if has_flow else None,
            "busy_s": round(s["busy_ms"] / 1000.0, 3),
            "records_per_busy_s": round(s["in"] / (s["busy_ms"] / 1000.0), 1) if s["busy_ms"] else None,
            "other": dict(sorted(s["other"].items())),
        })
    return summaries


def chain_checks(summaries: List[dict], chain: Iterable[Tuple[str, str]]) -> List[dict]:
    """For each (upstream, downstream) pair: upstream ``out`` equals downstream ``in``.

    An upstream named ``stage|counter`` uses that stage's other counter instead of ``out``
    (where a stage fans out, e.g. one document -> several pairs).
    """
    by = {s["stage"]: s for s in summaries}
    checks = []
    for up, down in chain:
        stage, _, counter = up.partition(SEP)
        if stage in by and down in by:
            out = by[stage]["other"].get(counter, 0) if counter else by[stage]["out"]
            checks.append({"from": up, "to": down, "out": out, "in": by[down]["in"], "ok": out == by[down]["in"]})
    return checks


def with_generation_stages(stages: Sequence[str], chain: Iterable[Tuple[str, str]], generated: Iterable[str]
                           ) -> Tuple[Tuple[str, ...], Tuple[Tuple[str, str], ...]]:
    """Stages and chain with ``<s>_generate`` (the model call) in front of each stage ``s`` that
    runs on a model backend: what fed ``s`` now feeds ``<s>_generate``, whose output feeds ``s``."""
    generated = set(generated)
    new_stages: List[str] = []
    for s in stages:
        if s in generated:
            new_stages.append(f"{s}_generate")
        new_stages.append(s)
    new_chain: List[Tuple[str, str]] = []
    for a, b in chain:
        if b in generated:
            new_chain += [(a, f"{b}_generate"), (f"{b}_generate", b)]
        else:
            new_chain.append((a, b))
    return tuple(new_stages), tuple(new_chain)


def build_report(job: str, counters: Dict[str, int], stages: Sequence[str],
                 chain: Iterable[Tuple[str, str]] = (), wall_s: Optional[float] = None,
                 extra: Optional[dict] = None) -> dict:
    summaries = stage_summaries(counters, stages)
    checks = chain_checks(summaries, chain)
    ok = all(s["conserved"] is not False for s in summaries) and all(c["ok"] for c in checks)
    report = {
        "job": job,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_s": round(wall_s, 2) if wall_s is not None else None,
        "conservation_ok": ok,
        "stages": summaries,
        "chain": checks,
    }
    if extra:
        report.update(extra)
    return report


def format_table(report: dict) -> str:
    """A readable fixed-width table of the report for stdout."""
    head = f"{'stage':<22}{'in':>10}{'out':>10}{'filtered':>10}{'dead':>8}{'rec/s':>10}  ok  reasons"
    lines = [f"== {report['job']} run report ({report.get('wall_s')} s wall) ==", head, "-" * len(head)]
    for s in report["stages"]:
        reasons = {**s["filtered_by_reason"], **{f"dead:{k}": v for k, v in s["dead_letters_by_reason"].items()}}
        reason_text = ", ".join(f"{k}={v}" for k, v in reasons.items())
        ok = {True: "yes", False: "NO", None: "-"}[s["conserved"]]
        rate = f"{s['records_per_busy_s']:.0f}" if s["records_per_busy_s"] else "-"
        lines.append(f"{s['stage']:<22}{s['in']:>10}{s['out']:>10}{s['filtered']:>10}"
                     f"{s['dead_letters']:>8}{rate:>10}  {ok:<3} {reason_text}")
    bad_chain = [c for c in report["chain"] if not c["ok"]]
    for c in bad_chain:
        lines.append(f"CHAIN MISMATCH: {c['from']}.out={c['out']} != {c['to']}.in={c['in']}")
    lines.append("conservation: " + ("OK (every record is output, filtered or a dead letter)"
                                      if report["conservation_ok"] else "FAILED"))
    lines += [f"RUN FAILED: {cause}" for cause in report.get("failures", [])]
    return "\n".join(lines)


def write_report(report: dict, output_dir: str) -> str:
    """Writes ``report.json`` under ``output_dir`` (local or gs://) and returns its path."""
    from apache_beam.io.filesystems import FileSystems

    path = FileSystems.join(output_dir, "report.json")
    with FileSystems.create(path) as f:
        f.write(json.dumps(report, indent=2, sort_keys=False).encode("utf-8"))
    return path


def submitted_job_id(result) -> Optional[str]:
    """The Dataflow job id of a pipeline result; None for other runners and for a classic
    template's creation (no job is submitted)."""
    return result.job_id() if getattr(result, "has_job", False) else None


def announce_job(result) -> None:
    """Prints a submitted Dataflow job's id before waiting for it (the jobs log Beam at WARNING).

    Not in the words of Beam's INFO line "Created job with id: [ID]": Airflow's Beam operator stops
    reading the launcher when it sees that line and no longer waits for its exit status, the
    conservation check, or OUTPUT/report.json. Without a job nothing is printed."""
    job_id = submitted_job_id(result)
    if job_id:
        print(f"Dataflow job {job_id} submitted; waiting for it to finish.", flush=True)


def run_failures(summaries: List[dict], max_dead_fraction: float) -> List[str]:
    """Why a finished run failed: a stage whose dead letters exceed ``max_dead_fraction`` of its
    input, or a source (``read|source|NAME`` rows) all of whose rows are dead letters."""
    causes = []
    for s in summaries:
        if s["in"] and s["dead_letters"] > max_dead_fraction * s["in"]:
            top = max(s["dead_letters_by_reason"].items(), key=lambda kv: kv[1])[0]
            causes.append(f"stage {s['stage']}: {s['dead_letters']} of {s['in']} records are dead letters "
                          f"(mostly {top}; --max_dead_fraction {max_dead_fraction:g})")
        rows = {k.split(SEP, 1)[1]: v for k, v in s["other"].items() if k.startswith(f"source{SEP}")}
        dead = {k.split(SEP, 1)[1]: v for k, v in s["other"].items() if k.startswith(f"source_dead{SEP}")}
        for name, n in sorted(rows.items()):
            if n and dead.get(name, 0) >= n:
                causes.append(f"source {name}: all {n} rows are dead letters")
    return causes


def run_and_report(job: str, pipeline, stages: Sequence[str], chain: Iterable[Tuple[str, str]], output: str,
                   extra: Optional[dict] = None, max_dead_fraction: float = 1.0) -> Tuple[dict, str]:
    """Runs ``pipeline`` to completion, then writes ``OUTPUT/report.json`` and prints the table;
    returns the report and its path."""
    start = time.monotonic()
    result = pipeline.run()
    announce_job(result)
    result.wait_until_finish()
    report = build_report(job, counters_from_result(result), stages, chain, wall_s=time.monotonic() - start,
                          extra={"output": output, **(extra or {})})
    report["failures"] = run_failures(report["stages"], max_dead_fraction)
    path = write_report(report, output)
    print(format_table(report))
    return report, path
