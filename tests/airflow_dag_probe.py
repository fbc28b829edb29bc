"""Loads deploy/airflow/ with the real Airflow and describes and exercises the DAG, as JSON.

Run by tests/test_airflow_dag.py with ``.venv-airflow/bin/python`` (Airflow 3, the Beam and google
providers, no Apache Beam, not this project). No Google Cloud; no metadata database except for
the last step:

- the DAG folder is parsed by ``DagBag`` and the DAG serialized as the dag-processor does;
- tasks, edges, trigger rules, retries and operator arguments are dumped as they are parsed;
- ``plan_run`` and ``library_needs_mining`` run their real callables against a local stand-in for
  GCS (a directory per bucket; object sizes and base64 CRC32C as GCS reports them);
- ``mine_templates`` and every ``generate_pairs`` shard run the Beam operator's real ``execute``:
  templates rendered, ``dataflow_config`` cast to ``DataflowConfiguration``, the launcher started by
  the Beam hook as a subprocess. The launcher is a stub (FINEINSTRUCTIONS_PYTHON) that records its
  argv and exits with STUB_EXIT; the Dataflow API is a stand-in that reports one job in a chosen
  state, so ``DataflowHook.wait_for_done`` really decides success or failure;
- last, two whole runs with ``dag.test()`` (scheduler loop and task runner in this process, a fresh
  sqlite metadata database in AIRFLOW_HOME): library missing (mined), library present (skipped).

Usage: python airflow_dag_probe.py DAG_FOLDER WORK_DIR OUT_JSON
"""
from __future__ import annotations

import base64
import copy
import inspect
import json
import os
import re
import sys
import traceback
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List

DAG_ID = "fineinstructions"
BUCKET = "fi-test"
CONF = {
    "project": "fi-test-project",
    "region": "us-central1",
    "bucket": BUCKET,
    "image": "us-central1-docker.pkg.dev/fi-test-project/fi/worker:1",
    "corpus_globs": [f"gs://{BUCKET}/corpus/a/*.jsonl", f"gs://{BUCKET}/corpus/b/*.parquet"],
    "service_account": "fi-worker@fi-test-project.iam.gserviceaccount.com",
    "subnetwork": "regions/us-central1/subnetworks/fi",
}


def jsonable(value: Any) -> Any:
    """Parsed values as JSON: XComArgs as references, timedeltas in seconds, the rest as repr."""
    from airflow.sdk.definitions.xcom_arg import XComArg

    if isinstance(value, XComArg):
        refs = [{"task_id": op.task_id, "key": key} for op, key in value.iter_references()]
        return {"xcom": refs[0] if len(refs) == 1 else refs}
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


# --------------------------------------------------------------------------------------------
# Stand-ins: GCS (a directory per bucket), the Dataflow API, a task instance, the launcher.
# --------------------------------------------------------------------------------------------

def gcs_glob_regex(glob: str) -> "re.Pattern[str]":
    """GCS match_glob: ``**`` crosses ``/``, ``*`` and ``?`` do not."""
    out, i = "", 0
    while i < len(glob):
        if glob.startswith("**", i):
            out, i = out + ".*", i + 2
        elif glob[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif glob[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(glob[i]), i + 1
    return re.compile(out + r"\Z")


class FakeGCS:
    root: Path

    class Client:
        def list_blobs(self, bucket: str, match_glob: str):
            import google_crc32c

            base = FakeGCS.root / bucket
            pattern = gcs_glob_regex(match_glob)
            for path in sorted(p for p in base.rglob("*") if p.is_file()):
                name = path.relative_to(base).as_posix()
                if pattern.match(name):
                    data = path.read_bytes()
                    crc = base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()
                    yield SimpleNamespace(name=name, size=len(data), crc32c=crc)

    class Hook:
        instances: List[str] = []

        def __init__(self, gcp_conn_id: str = "google_cloud_default", **kwargs):
            FakeGCS.Hook.instances.append(gcp_conn_id)

        def get_conn(self):
            return FakeGCS.Client()

        def exists(self, bucket_name: str, object_name: str, **kwargs) -> bool:
            return (FakeGCS.root / bucket_name / object_name).is_file()


class FakeDataflow:
    """``DataflowHook.get_conn()``: jobs().list() reports the launched job (found by its job name)."""

    state = "JOB_STATE_DONE"
    argv_log: Path
    calls: List[Dict[str, Any]] = []

    def __init__(self, hook):
        self.hook = hook

    def projects(self):
        return self

    def locations(self):
        return self

    def jobs(self):
        return self

    def list(self, projectId: str, location: str):
        FakeDataflow.calls.append({"projectId": projectId, "location": location})
        last = json.loads(FakeDataflow.argv_log.read_text().splitlines()[-1])
        name = next(a.split("=", 1)[1] for a in last if a.startswith("--job_name="))
        jobs = [{"id": "2026-11-23_00_00_00-1", "name": name, "type": "JOB_TYPE_BATCH",
                 "currentState": FakeDataflow.state, "projectId": projectId, "location": location}]
        return SimpleNamespace(execute=lambda num_retries=0: {"jobs": jobs})

    def list_next(self, previous_request=None, previous_response=None):
        return None

    def get(self, projectId: str, location: str, jobId: str):
        return SimpleNamespace(execute=lambda num_retries=0: {
            "id": jobId, "name": "?", "type": "JOB_TYPE_BATCH", "currentState": FakeDataflow.state})


class FakeTI:
    def __init__(self, task_id: str, map_index: int = -1):
        self.task_id, self.map_index, self.try_number = task_id, map_index, 1
        self.dag_id, self.run_id = DAG_ID, "manual__test"
        self.pushed: Dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any, **kwargs) -> None:
        self.pushed[key] = value


STUB = '''#!{python}
import json, os, sys
if sys.argv[1:2] == ["-c"]:  # the Beam hook asks for apache_beam.__version__
    print("2.77.0")
    sys.exit(0)
with open(os.environ["STUB_ARGV_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
if os.environ.get("STUB_PID_FILE"):  # a launcher waiting on its job until it is killed
    with open(os.environ["STUB_PID_FILE"], "w") as f:
        f.write(str(os.getpid()))
    import time
    time.sleep(120)
sys.exit(int(os.environ.get("STUB_EXIT", "0")))
'''


# --------------------------------------------------------------------------------------------

def describe_task(task) -> Dict[str, Any]:
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    mapped = isinstance(task, MappedOperator)
    cls = task.operator_class if mapped else type(task)
    if isinstance(cls, dict):  # a mapped decorated task keeps its class as a dict
        cls = SimpleNamespace(__module__=cls.get("_task_module"), __qualname__=cls.get("task_type"))
    out: Dict[str, Any] = {
        "operator": f"{cls.__module__}.{cls.__qualname__}",
        "operator_mro": [f"{c.__module__}.{c.__qualname__}" for c in getattr(cls, "__mro__", ())],
        "mapped": mapped,
        "upstream": sorted(task.upstream_task_ids),
        "downstream": sorted(task.downstream_task_ids),
        "trigger_rule": str(getattr(task.trigger_rule, "value", task.trigger_rule)),
        "retries": task.retries,
        "retry_delay": jsonable(task.retry_delay),
        "execution_timeout": jsonable(task.execution_timeout),
        "max_active_tis_per_dagrun": task.max_active_tis_per_dagrun,
    }
    fields = ("py_file", "py_options", "py_interpreter", "runner", "pipeline_options",
              "default_pipeline_options", "dataflow_config", "gcp_conn_id", "py_requirements",
              "deferrable", "multiple_outputs", "ignore_downstream_trigger_rules", "op_args", "op_kwargs")
    if mapped:
        kwargs = dict(task.partial_kwargs)
        out["expand"] = jsonable(dict(task._get_specified_expand_input().value))
        out["template_fields"] = list(getattr(task.operator_class, "template_fields", ()))
    else:
        kwargs = {f: getattr(task, f) for f in fields if hasattr(task, f)}
        out["template_fields"] = list(task.template_fields)
        if hasattr(task, "python_callable"):
            out["python_callable"] = task.python_callable.__name__
    out["arguments"] = {k: jsonable(v) for k, v in kwargs.items() if k in fields}
    return out


def run_plan(dag, params: Dict[str, Any]) -> Dict[str, Any]:
    """The real plan_run callable over the stand-in GCS."""
    ti = FakeTI("plan_run")
    shards = dag.get_task("plan_run").python_callable(params=copy.deepcopy(params), ti=ti)
    return {"return_value": shards, "xcom": ti.pushed}


def execute_beam(dag, task_id: str, pipeline_options: Dict[str, Any], params: Dict[str, Any],
                 map_index: int, state: str, stub_exit: int) -> Dict[str, Any]:
    """Unmap (when mapped), render and execute a Beam task as a worker would; what it did."""
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    task = dag.get_task(task_id)
    if isinstance(task, MappedOperator):
        op = task.unmap({"pipeline_options": copy.deepcopy(pipeline_options)})
    else:
        op = copy.deepcopy(task)
        op.pipeline_options = copy.deepcopy(pipeline_options)  # what the XComArg resolves to
    ti = FakeTI(task_id, map_index)
    context = {"params": params, "ti": ti, "task_instance": ti, "task": op, "dag": dag,
               "map_index": map_index, "run_id": ti.run_id}
    op.render_template_fields(context)
    rendered_config = copy.deepcopy(op.dataflow_config)
    FakeDataflow.state = state
    os.environ["STUB_EXIT"] = str(stub_exit)
    log = Path(os.environ["STUB_ARGV_LOG"])
    before = len(log.read_text().splitlines()) if log.exists() else 0
    FakeDataflow.calls.clear()
    result: Dict[str, Any] = {"state": state, "stub_exit": stub_exit,
                              "rendered_dataflow_config": jsonable(rendered_config)}
    try:
        result["return_value"] = jsonable(op.execute(context))
        result["error"] = None
    except BaseException as e:  # noqa: BLE001 - the task's failure is what is recorded
        result["error"] = f"{type(e).__module__}.{type(e).__name__}: {e}"
    lines = log.read_text().splitlines() if log.exists() else []
    result["launches"] = [json.loads(line) for line in lines[before:]]
    cfg = op.dataflow_config
    result["dataflow_config_type"] = f"{type(cfg).__module__}.{type(cfg).__qualname__}"
    result["dataflow_config"] = jsonable({k: v for k, v in vars(cfg).items() if not k.startswith("_")})
    hook = op.dataflow_hook
    result["dataflow_hook"] = None if hook is None else {
        "gcp_conn_id": hook.gcp_conn_id, "wait_until_finished": hook.wait_until_finished,
        "poll_sleep": hook.poll_sleep, "cancel_timeout": hook.cancel_timeout,
        "drain_pipeline": hook.drain_pipeline}
    result["dataflow_api_calls"] = list(FakeDataflow.calls)
    result["xcom"] = jsonable(ti.pushed)
    return result


def kill_while_running(dag, pipeline_options: Dict[str, Any], params: Dict[str, Any]) -> Dict[str, Any]:
    """A generate_pairs task killed while its launcher waits on the job, as the task runner does on
    SIGTERM or execution_timeout: ``on_kill()`` (Dataflow's cancel recorded), then the launcher dies."""
    import signal
    import threading
    import time

    from airflow.providers.google.cloud.hooks.dataflow import DataflowHook

    op = dag.get_task("generate_pairs").unmap({"pipeline_options": copy.deepcopy(pipeline_options)})
    ti = FakeTI("generate_pairs", 0)
    context = {"params": params, "ti": ti, "task_instance": ti, "task": op, "dag": dag,
               "map_index": 0, "run_id": ti.run_id}
    op.render_template_fields(context)
    cancels: List[Dict[str, Any]] = []
    DataflowHook.cancel_job = lambda self, **kw: cancels.append(kw)
    pid_file = Path(os.environ["STUB_ARGV_LOG"]).with_name("stub.pid")
    os.environ.update(STUB_PID_FILE=str(pid_file), STUB_EXIT="0")
    errors: List[str] = []

    def execute() -> None:
        try:
            op.execute(context)
        except BaseException as e:  # noqa: BLE001 - the killed launcher's failure
            errors.append(f"{type(e).__module__}.{type(e).__name__}: {e}")

    worker = threading.Thread(target=execute)
    worker.start()
    deadline = time.monotonic() + 60
    while not pid_file.exists() and worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    op.on_kill()
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    worker.join(60)
    del os.environ["STUB_PID_FILE"]
    launched = json.loads(Path(os.environ["STUB_ARGV_LOG"]).read_text().splitlines()[-1])
    return {"launched_job_name": next(a.split("=", 1)[1] for a in launched if a.startswith("--job_name=")),
            "job_id": op.dataflow_job_id, "cancel_calls": jsonable(cancels),
            "execute_error": errors[0] if errors else None}


def main(dag_folder: str, work_dir: str, out_json: str) -> int:
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    stub = work / "launcher-stub"
    stub.write_text(STUB.format(python=sys.executable))
    stub.chmod(0o755)
    # Read by the DAG file when it is parsed.
    os.environ["FINEINSTRUCTIONS_PYTHON"] = str(stub)
    os.environ["FINEINSTRUCTIONS_REPO"] = "/opt/fineinstructions-beam"
    os.environ["STUB_ARGV_LOG"] = str(work / "launches.jsonl")
    # The Google Cloud connection the hooks look up (no credentials: the APIs are stand-ins).
    os.environ["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"] = json.dumps({"conn_type": "google_cloud_platform"})
    FakeDataflow.argv_log = work / "launches.jsonl"
    FakeGCS.root = work / "gcs"

    out: Dict[str, Any] = {"python": sys.version.split()[0]}
    import airflow
    from importlib.metadata import PackageNotFoundError, version

    out["versions"] = {}
    for dist in ("apache-airflow", "apache-airflow-core", "apache-airflow-task-sdk",
                 "apache-airflow-providers-apache-beam", "apache-airflow-providers-google", "apache-beam"):
        try:
            out["versions"][dist] = version(dist)
        except PackageNotFoundError:
            out["versions"][dist] = None
    out["airflow_version"] = airflow.__version__

    from airflow.dag_processing.dagbag import DagBag

    kwargs: Dict[str, Any] = {"dag_folder": dag_folder, "safe_mode": False}
    if "include_examples" in inspect.signature(DagBag.__init__).parameters:  # gone in Airflow 3.2+
        kwargs["include_examples"] = False
    bag = DagBag(**kwargs)
    out["import_errors"] = {str(k): v for k, v in bag.import_errors.items()}
    out["dag_ids"] = sorted(bag.dags)
    dag = bag.dags.get(DAG_ID)
    if dag is None:
        Path(out_json).write_text(json.dumps(out, indent=1))
        return 0

    # What the dag-processor does next: serialize (and the scheduler deserializes).
    from airflow.serialization.serialized_objects import DagSerialization

    try:
        DagSerialization.from_dict(DagSerialization.to_dict(dag))
        out["serialization_error"] = None
    except Exception:  # noqa: BLE001
        out["serialization_error"] = traceback.format_exc()

    out["dag"] = {
        "dag_id": dag.dag_id, "schedule": jsonable(dag.schedule), "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs, "tags": sorted(dag.tags),
        "params": jsonable(dag.params.dump()),
        "param_schemas": {k: dag.params.get_param(k).schema for k in dag.params},
    }
    out["tasks"] = {t.task_id: describe_task(t) for t in dag.tasks}

    # ---- the triggered params, validated by the DAG's own Param schemas ----------------------
    params_dict = copy.deepcopy(dag.params)
    params_dict.update(CONF)
    params = params_dict.validate()
    out["params"] = jsonable(params)

    # ---- plan_run: fingerprint scenarios over the stand-in GCS ----------------------------------
    import airflow.providers.google.cloud.hooks.gcs as gcs_module

    gcs_module.GCSHook = FakeGCS.Hook
    bucket = FakeGCS.root / BUCKET
    (bucket / "queries" / "old").mkdir(parents=True, exist_ok=True)
    files = {
        "queries/a.jsonl": '{"text": "how do I boil an egg"}\n{"text": "what is the capital of peru"}\n',
        "queries/b.jsonl": '{"text": "why is the sky blue"}\n',
        "queries/old/c.jsonl": '{"text": "not matched: * does not cross /"}\n',
        "queries/notes.txt": "not matched: another extension\n",
    }
    for name, text in files.items():
        (bucket / name).write_text(text)

    def fp(p: Dict[str, Any]) -> Dict[str, Any]:
        r = run_plan(dag, p)
        return {"fingerprint": r["xcom"]["fingerprint"], "library": r["xcom"]["library"],
                "query_objects": r["xcom"]["query_objects"]}

    scenarios: Dict[str, Any] = {}
    base_run = run_plan(dag, params)
    out["plan"] = jsonable(base_run)
    scenarios["base"] = fp(params)
    scenarios["rerun"] = fp(params)
    (bucket / "queries/b.jsonl").write_text(files["queries/b.jsonl"])  # rewritten, same bytes
    scenarios["rewritten_same_bytes"] = fp(params)
    (bucket / "queries/old/d.jsonl").write_text('{"text": "unmatched"}\n')
    (bucket / "queries/more.txt").write_text("unmatched\n")
    scenarios["unmatched_files_added"] = fp(params)
    for name, value in (("corpus_globs", [f"gs://{BUCKET}/corpus/other/*.jsonl"]), ("gpu_type", "nvidia-a100"),
                        ("mining_machine_type", "n2-standard-16"), ("mining_max_workers", 3),
                        ("force_mining", True), ("instantiator", "extractive"),
                        ("pipeline_args", {"templates_per_document": 3})):
        scenarios[f"param_{name}"] = fp({**params, name: value})
    for name, value in (("query_text_field", "question"), ("query_format", "jsonl"),
                        ("mining_args", {"genericizer": "rules"}),
                        ("queries", f"gs://{BUCKET}/queries/**.jsonl")):
        scenarios[f"content_param_{name}"] = fp({**params, name: value})
    (bucket / "queries/b.jsonl").write_text(files["queries/b.jsonl"].replace("blue", "grey"))  # same size
    scenarios["file_changed_same_size"] = fp(params)
    (bucket / "queries/b.jsonl").write_text(files["queries/b.jsonl"])
    scenarios["file_restored"] = fp(params)
    (bucket / "queries/z.jsonl").write_text('{"text": "a new query"}\n')
    scenarios["file_added"] = fp(params)
    (bucket / "queries/z.jsonl").unlink()
    scenarios["file_removed_again"] = fp(params)
    (bucket / "queries/a.jsonl").unlink()
    scenarios["file_deleted"] = fp(params)
    (bucket / "queries/a.jsonl").write_text(files["queries/a.jsonl"])
    out["fingerprints"] = scenarios
    try:
        run_plan(dag, {**params, "queries": f"gs://{BUCKET}/nothing/*.jsonl"})
        out["plan_no_queries_error"] = None
    except Exception as e:  # noqa: BLE001
        out["plan_no_queries_error"] = f"{type(e).__name__}: {e}"
    bad = {}
    for name, value in (("bucket", f"gs://{BUCKET}"), ("corpus_globs", []), ("project", ""),
                        ("corpus_globs", [f"gs://{BUCKET}/x/*", f"gs://{BUCKET}/x/*"])):
        try:
            run_plan(dag, {**params, name: value})
            bad[f"{name}={value!r}"] = None
        except Exception as e:  # noqa: BLE001
            bad[f"{name}={value!r}"] = f"{type(e).__name__}: {e}"
    out["plan_bad_params"] = bad

    # ---- library_needs_mining ----------------------------------------------------------------
    library = base_run["xcom"]["library"]
    needs = dag.get_task("library_needs_mining").python_callable
    lib_bucket, lib_prefix = library[len("gs://"):].split("/", 1)
    needs_out = {"no_manifest": needs(library, params=params)}
    manifest = FakeGCS.root / lib_bucket / lib_prefix / "manifest.json"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text("{}")
    needs_out["manifest"] = needs(library, params=params)
    needs_out["manifest_force_mining"] = needs(library, params={**params, "force_mining": True})
    manifest.unlink()
    out["library_needs_mining"] = needs_out

    # ---- the Beam tasks, executed --------------------------------------------------------------
    from airflow.providers.google.cloud.hooks.dataflow import DataflowHook

    DataflowHook.get_conn = lambda self: FakeDataflow(self)
    mining_options = base_run["xcom"]["mining_options"]
    shards = base_run["return_value"]
    runs: Dict[str, Any] = {
        "mine_templates": execute_beam(dag, "mine_templates", mining_options, params, -1, "JOB_STATE_DONE", 0),
        "generate_pairs": [execute_beam(dag, "generate_pairs", shard, params, i, "JOB_STATE_DONE", 0)
                           for i, shard in enumerate(shards)],
        "mine_templates_job_failed": execute_beam(dag, "mine_templates", mining_options, params, -1,
                                                  "JOB_STATE_FAILED", 0),
        "generate_pairs_job_cancelled": execute_beam(dag, "generate_pairs", shards[0], params, 0,
                                                     "JOB_STATE_CANCELLED", 0),
        "generate_pairs_launcher_failed": execute_beam(dag, "generate_pairs", shards[0], params, 0,
                                                       "JOB_STATE_DONE", 1),
    }
    right = {**params, "gpu_placement": "right_fitting", "subnetwork": ""}
    right_shard = run_plan(dag, right)["return_value"][1]
    runs["generate_pairs_right_fitting"] = execute_beam(dag, "generate_pairs", right_shard, right, 1,
                                                        "JOB_STATE_DONE", 0)
    runs["generate_pairs_killed"] = kill_while_running(dag, shards[0], params)
    out["runs"] = runs
    out["instruction_pretrain"] = instruction_pretrain_probe(bag)

    # ---- whole DAG runs: dag.test() schedules and runs every task in this process ------------------
    # (the only part that needs the metadata database: a fresh sqlite one in AIRFLOW_HOME)
    out["dag_test"] = dag_test_runs(dag, library)
    Path(out_json).write_text(json.dumps(out, indent=1, default=repr))
    return 0


def instruction_pretrain_probe(bag) -> Dict[str, Any]:
    """The instruction_pretrain DAG: serialized, its tasks, its plan over CONF, one shard executed."""
    from airflow.serialization.serialized_objects import DagSerialization

    dag = bag.dags.get("instruction_pretrain")
    if dag is None:
        return {"missing": True}
    out: Dict[str, Any] = {"tasks": {t.task_id: describe_task(t) for t in dag.tasks}}
    try:
        DagSerialization.from_dict(DagSerialization.to_dict(dag))
        out["serialization_error"] = None
    except Exception:  # noqa: BLE001
        out["serialization_error"] = traceback.format_exc()
    params_dict = copy.deepcopy(dag.params)
    params_dict.update(CONF)
    params = params_dict.validate()
    out["params"] = jsonable(params)
    shards = dag.get_task("plan_shards").python_callable(params=copy.deepcopy(params))
    out["shards"] = jsonable(shards)
    out["shards_rounds_3"] = jsonable(dag.get_task("plan_shards").python_callable(params={**params, "rounds": 3}))
    out["run"] = execute_beam(dag, "augment_corpus", shards[0], params, 0, "JOB_STATE_DONE", 0)
    out["run_job_failed"] = execute_beam(dag, "augment_corpus", shards[1], params, 1, "JOB_STATE_FAILED", 0)
    return out


def dag_test_runs(dag, library: str) -> Dict[str, Any]:
    """Two runs with ``dag.test``: the library missing (mined), then present (mining skipped)."""
    results: Dict[str, Any] = {}
    try:
        from airflow.utils import db

        db.upgradedb()  # what `airflow db migrate` does
        FakeDataflow.state = "JOB_STATE_DONE"
        os.environ["STUB_EXIT"] = "0"
        log = Path(os.environ["STUB_ARGV_LOG"])
        lib_bucket, lib_prefix = library[len("gs://"):].split("/", 1)
        manifest = FakeGCS.root / lib_bucket / lib_prefix / "manifest.json"
        for name, has_manifest in (("library_missing", False), ("library_exists", True)):
            if has_manifest:
                manifest.parent.mkdir(parents=True, exist_ok=True)
                manifest.write_text("{}")
            before = len(log.read_text().splitlines()) if log.exists() else 0
            run = dag.test(run_conf=CONF)
            launches = [json.loads(line) for line in log.read_text().splitlines()[before:]]
            results[name] = {
                "state": str(run.state),
                "task_instances": sorted([ti.task_id, ti.map_index, str(ti.state)] for ti in run.get_task_instances()),
                "launched_jobs": [argv[1] for argv in launches],
            }
    except Exception:  # noqa: BLE001
        results["error"] = traceback.format_exc()
    return results


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
