"""The Airflow DAG (deploy/airflow/fineinstructions_dag.py) under real Airflow 3.

tests/airflow_dag_probe.py runs in .venv-airflow (Airflow and the Beam and google providers pinned by
deploy/airflow/requirements-test.txt; no Apache Beam, not this project; `make test` creates it): it
parses the DAG folder with DagBag, serializes the DAG, runs plan_run and library_needs_mining against
a local stand-in for GCS, and executes the Beam operators (templates rendered, DataflowConfiguration
cast, the launcher started as a subprocess, DataflowHook.wait_for_done against a stand-in Dataflow
API). This test checks what it reports, and parses the launched command lines with the jobs' own
flag parsers (Beam's and this project's, in .venv).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

REPO = Path(__file__).resolve().parent.parent
DAG_FOLDER = REPO / "deploy" / "airflow"
AIRFLOW_VENV = REPO / ".venv-airflow"
AIRFLOW_PYTHON = AIRFLOW_VENV / "bin" / "python"
REQUIREMENTS = DAG_FOLDER / "requirements-test.txt"
PROBE = Path(__file__).resolve().parent / "airflow_dag_probe.py"

TASKS = {"plan_run", "library_needs_mining", "mine_templates", "generate_pairs"}
BEAM_OPERATOR = "airflow.providers.apache.beam.operators.beam.BeamRunPythonPipelineOperator"
DATAFLOW_CONFIGURATION = "airflow.providers.google.cloud.operators.dataflow.DataflowConfiguration"
# What tests/airflow_dag_probe.py triggers the DAG with (CONF there).
BUCKET = "fi-test"
IMAGE = "us-central1-docker.pkg.dev/fi-test-project/fi/worker:1"
CORPUS_GLOBS = [f"gs://{BUCKET}/corpus/a/*.jsonl", f"gs://{BUCKET}/corpus/b/*.parquet"]
SERVICE_ACCOUNT = "fi-worker@fi-test-project.iam.gserviceaccount.com"
SUBNETWORK = "regions/us-central1/subnetworks/fi"
ACCELERATOR = "type:nvidia-l4;count:1;install-nvidia-driver:latest"
CONF_PROJECT, CONF_REGION = "fi-test-project", "us-central1"


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Dict[str, Any]:
    if not AIRFLOW_PYTHON.exists():
        pytest.fail(f"{AIRFLOW_VENV.name}/ is missing: run `make test` (or `make .venv-airflow/.installed`), "
                    f"which creates it from {REQUIREMENTS.relative_to(REPO)}", pytrace=False)
    work = tmp_path_factory.mktemp("airflow")
    (work / "home").mkdir()
    # Nothing from this process's environment that could put .venv's packages (Beam) or another
    # Airflow configuration in front of the probe.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "FINEINSTRUCTIONS_", "PYTHON", "VIRTUAL_ENV"))}
    env.update({
        "AIRFLOW_HOME": str(work / "home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAG_FOLDER),
        # DagBag needs no metadata database; this keeps any file Airflow creates in the tmp dir.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{work / 'home' / 'airflow.db'}",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    out = work / "probe.json"
    proc = subprocess.run([str(AIRFLOW_PYTHON), str(PROBE), str(DAG_FOLDER), str(work / "probe"), str(out)],
                          env=env, cwd=work, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and out.exists(), (
        f"probe failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}")
    return json.loads(out.read_text())


def pins(path: Path) -> Dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        m = re.match(r"([A-Za-z0-9_.-]+)==([^\s;]+)", line)
        if m:
            found[m.group(1).lower()] = m.group(2)
    return found


# ------------------------------------------------------------------------------------------------
# Parsing
# ------------------------------------------------------------------------------------------------

def test_dag_parses_under_real_airflow_without_beam(probe):
    assert probe["import_errors"] == {}, "\n".join(probe["import_errors"].values())
    assert probe["dag_ids"] == ["fineinstructions", "instruction_pretrain"]
    assert probe["serialization_error"] is None, probe["serialization_error"]
    # The versions the lock pins are the ones that parsed it; Beam is not there.
    locked = pins(REQUIREMENTS)
    for dist in ("apache-airflow", "apache-airflow-core", "apache-airflow-task-sdk",
                 "apache-airflow-providers-apache-beam", "apache-airflow-providers-google"):
        assert probe["versions"][dist] == locked[dist], (
            f"{dist} {probe['versions'][dist]} in {AIRFLOW_VENV.name}/, {locked[dist]} in the lock: "
            f"rebuild it with `make .venv-airflow/.installed`")
    assert probe["versions"]["apache-airflow"].startswith("3.")
    assert probe["versions"]["apache-beam"] is None
    assert "apache-beam" not in locked
    assert probe["python"].startswith("3.11.")


def test_tasks_edges_and_trigger_rules(probe):
    tasks = probe["tasks"]
    assert set(tasks) == TASKS
    edges = {(up, t) for t, d in tasks.items() for up in d["upstream"]}
    assert edges == {
        ("plan_run", "library_needs_mining"),
        ("plan_run", "mine_templates"),        # mining options (XCom)
        ("plan_run", "generate_pairs"),        # the mapped shards (XCom)
        ("library_needs_mining", "mine_templates"),
        ("mine_templates", "generate_pairs"),
    }
    for t, d in tasks.items():  # downstream mirrors upstream
        assert d["downstream"] == sorted(u for (s, u) in edges if s == t)
    # plan_run -> library_needs_mining -> mine_templates -> generate_pairs
    order = ["plan_run", "library_needs_mining", "mine_templates", "generate_pairs"]
    for before, after in zip(order, order[1:]):
        assert before in tasks[after]["upstream"]

    assert tasks["plan_run"]["operator"].endswith("._PythonDecoratedOperator")
    assert tasks["plan_run"]["arguments"]["multiple_outputs"] is False
    short = tasks["library_needs_mining"]
    assert short["operator"] == "airflow.providers.standard.decorators.short_circuit._ShortCircuitDecoratedOperator"
    # Skips only mine_templates; generate_pairs still decides by its own trigger rule.
    assert short["arguments"]["ignore_downstream_trigger_rules"] is False
    assert short["arguments"]["op_args"] == [{"xcom": {"task_id": "plan_run", "key": "library"}}]

    assert {t: d["trigger_rule"] for t, d in tasks.items()} == {
        "plan_run": "all_success", "library_needs_mining": "all_success",
        "mine_templates": "all_success", "generate_pairs": "none_failed"}
    for t, d in tasks.items():
        assert d["retries"] == 1, t
        assert d["retry_delay"] == 600.0, t
    assert tasks["mine_templates"]["execution_timeout"] == 12 * 3600
    assert tasks["generate_pairs"]["execution_timeout"] == 48 * 3600


def test_beam_operators_as_parsed(probe):
    mine, pairs = probe["tasks"]["mine_templates"], probe["tasks"]["generate_pairs"]
    for task in (mine, pairs):  # the provider's operator, with on_kill cancelling by job name
        assert task["operator"].endswith("fineinstructions_dag.DataflowBeamOperator")
        assert task["operator_mro"][1] == BEAM_OPERATOR
    assert not mine["mapped"] and pairs["mapped"]
    for task, module in ((mine, "templates_mining"), (pairs, "pipeline")):
        args = task["arguments"]
        assert args["py_file"] == module
        assert args["py_options"] == ["-m"]
        assert args["runner"] == "DataflowRunner"
        assert args["gcp_conn_id"] == "google_cloud_default"
        assert args["py_interpreter"].endswith("launcher-stub")  # FINEINSTRUCTIONS_PYTHON
        assert "dataflow_config" in task["template_fields"] and "pipeline_options" in task["template_fields"]
        cfg = args["dataflow_config"]
        assert cfg["wait_until_finished"] is True  # the task fails unless the job ends JOB_STATE_DONE
        assert cfg["append_job_name"] is True
        assert cfg["project_id"] == "{{ params.project }}" and cfg["location"] == "{{ params.region }}"
        assert cfg["service_account"] == "{{ params.service_account }}"
        assert cfg["drain_pipeline"] is False
    assert mine["arguments"]["dataflow_config"]["job_name"] == "fi-templates-mining"
    assert pairs["arguments"]["dataflow_config"]["job_name"] == "fi-pipeline-shard-{{ ti.map_index }}"
    assert mine["arguments"]["pipeline_options"] == {"xcom": {"task_id": "plan_run", "key": "mining_options"}}
    assert mine["arguments"]["deferrable"] is False
    # One mapped task instance per corpus glob: pipeline_options expanded over plan_run's return value.
    assert pairs["expand"] == {"pipeline_options": {"xcom": {"task_id": "plan_run", "key": "return_value"}}}
    assert "pipeline_options" not in pairs["arguments"]
    assert pairs["max_active_tis_per_dagrun"] == 2


def test_params(probe):
    params, schemas = probe["dag"]["params"], probe["dag"]["param_schemas"]
    assert probe["dag"]["schedule"] is None and probe["dag"]["max_active_runs"] == 1
    for name in ("project", "region", "bucket", "image", "queries", "query_text_field", "corpus_globs",
                 "force_mining", "gpu_placement", "vllm_args", "service_account", "subnetwork", "repo_dir"):
        assert name in params, name
    assert params["corpus_globs"] == [] and schemas["corpus_globs"]["type"] == "array"
    assert params["gpu_placement"] == "all_workers"
    assert schemas["gpu_placement"]["enum"] == ["all_workers", "right_fitting"]
    assert params["force_mining"] is False and params["query_text_field"] == "text"
    # The trigger's conf passed the DAG's own Param validation.
    assert probe["params"]["corpus_globs"] == CORPUS_GLOBS and probe["params"]["bucket"] == BUCKET


# ------------------------------------------------------------------------------------------------
# plan_run and library_needs_mining (real callables, stand-in GCS)
# ------------------------------------------------------------------------------------------------

def test_fingerprint_follows_the_query_set_and_nothing_else(probe):
    fp = {name: s["fingerprint"] for name, s in probe["fingerprints"].items()}
    base = fp["base"]
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    unchanged = ["rerun", "rewritten_same_bytes", "unmatched_files_added", "file_restored", "file_removed_again"]
    unchanged += [name for name in fp if name.startswith("param_")]
    for name in unchanged:
        assert fp[name] == base, f"{name} changed the fingerprint"
    changed = ["file_changed_same_size", "file_added", "file_deleted"]
    changed += [name for name in fp if name.startswith("content_param_")]
    assert {"content_param_query_text_field", "content_param_query_format", "content_param_mining_args",
            "content_param_queries"} <= set(changed)
    for name in changed:
        assert fp[name] != base, f"{name} did not change the fingerprint"
    assert len({fp[name] for name in changed}) == len(changed)
    assert probe["fingerprints"]["base"]["query_objects"] == 2  # queries/*.jsonl does not descend
    assert probe["fingerprints"]["file_added"]["query_objects"] == 3
    for s in probe["fingerprints"].values():
        assert s["library"] == f"gs://{BUCKET}/library/{s['fingerprint'][:16]}"
    assert probe["plan_no_queries_error"].startswith("ValueError: queries")
    assert all(err and err.startswith("ValueError: DAG param") for err in probe["plan_bad_params"].values()), \
        probe["plan_bad_params"]


def test_plan_outputs(probe):
    plan = probe["plan"]
    fingerprint = plan["xcom"]["fingerprint"]
    library = f"gs://{BUCKET}/library/{fingerprint[:16]}"
    assert set(plan["xcom"]) == {"fingerprint", "query_objects", "library", "mining_options"}
    assert plan["xcom"]["library"] == library
    mining = plan["xcom"]["mining_options"]
    assert mining["queries"] == f"gs://{BUCKET}/queries/*.jsonl"
    assert mining["output"] == library
    assert mining["setup_file"] == "/opt/fineinstructions-beam/setup.py"  # FINEINSTRUCTIONS_REPO
    assert mining["labels"]["library"] == fingerprint[:16]
    shards = plan["return_value"]
    assert [s["documents"] for s in shards] == CORPUS_GLOBS
    for shard, glob in zip(shards, CORPUS_GLOBS):
        key = hashlib.sha256(glob.encode()).hexdigest()[:12]
        assert shard["output"] == f"gs://{BUCKET}/pairs/{fingerprint[:16]}/shard-{key}"
        assert shard["templates"] == library
        assert shard["sdk_container_image"] == IMAGE
        assert shard["labels"] == {"app": "fineinstructions", "job": "pipeline",
                                   "library": fingerprint[:16], "shard": key}


def test_library_needs_mining(probe):
    assert probe["library_needs_mining"] == {"no_manifest": True, "manifest": False, "manifest_force_mining": True}


# ------------------------------------------------------------------------------------------------
# The Beam tasks, executed
# ------------------------------------------------------------------------------------------------

def job_flags(argv: List[str], job: str) -> Tuple[Dict[str, Any], List[str]]:
    """``python -m JOB ARGS``'s flags as the job parses them: Beam's options and the job's own.

    Returns (parsed values, flags no parser knows)."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    from pipeline.options import DocumentPipelineOptions
    from templates_mining.options import MiningOptions
    from transforms.job_options import GenerationOptions, JobOptions

    own = {"pipeline": DocumentPipelineOptions, "templates_mining": MiningOptions}[job]
    classes = {}
    for cls in PipelineOptions.__subclasses__():  # what PipelineOptions.get_all_options walks
        if cls.__module__.startswith("apache_beam."):
            classes.setdefault(str(cls), cls)
    for cls in (JobOptions, GenerationOptions, own):
        classes[str(cls)] = cls
    parser = _BeamArgumentParser(allow_abbrev=False)
    for cls in classes.values():
        cls._add_argparse_args(parser)
    known, unknown = parser.parse_known_args(argv)
    return vars(known), unknown


def launched(run: Dict[str, Any], job: str) -> List[str]:
    assert run["error"] is None, run["error"]
    assert len(run["launches"]) == 1
    argv = run["launches"][0]
    assert argv[:3] == ["-m", job, "--runner=DataflowRunner"]
    return argv[3:]


def check_dataflow(run: Dict[str, Any], job_name: str) -> None:
    assert run["dataflow_config_type"] == DATAFLOW_CONFIGURATION
    cfg = run["dataflow_config"]
    assert cfg["wait_until_finished"] is True and cfg["job_name"] == job_name
    assert cfg["project_id"] == "fi-test-project" and cfg["location"] == "us-central1"
    assert cfg["service_account"] == SERVICE_ACCOUNT
    hook = run["dataflow_hook"]
    assert hook["wait_until_finished"] is True and hook["gcp_conn_id"] == "google_cloud_default"
    # After the launcher exits the operator looks the job up through the Dataflow API.
    assert run["dataflow_api_calls"] == [{"projectId": "fi-test-project", "location": "us-central1"}]


def test_mine_templates_runs_templates_mining_on_dataflow(probe):
    run = probe["runs"]["mine_templates"]
    check_dataflow(run, "fi-templates-mining")
    argv = launched(run, "templates_mining")
    flags, unknown = job_flags(argv, "templates_mining")
    assert unknown == []
    assert re.fullmatch(r"fi-templates-mining-[0-9a-f]{8}", flags["job_name"])
    fingerprint = probe["plan"]["xcom"]["fingerprint"]
    assert flags["setup_file"] == "/opt/fineinstructions-beam/setup.py"
    assert flags["requirements_file"] == "/opt/fineinstructions-beam/deploy/dataflow/requirements-cpu-workers.txt"
    assert flags["requirements_cache"] == "skip"
    assert flags["queries"] == f"gs://{BUCKET}/queries/*.jsonl"
    assert flags["text_field"] == "text"
    assert flags["output"] == f"gs://{BUCKET}/library/{fingerprint[:16]}"
    assert flags["project"] == "fi-test-project" and flags["region"] == "us-central1"
    assert flags["service_account_email"] == SERVICE_ACCOUNT
    assert flags["temp_location"] == f"gs://{BUCKET}/tmp" and flags["staging_location"] == f"gs://{BUCKET}/staging"
    assert flags["subnetwork"] == SUBNETWORK and flags["use_public_ips"] is False
    assert flags["machine_type"] == "n2-standard-8" and flags["max_num_workers"] == 20
    assert flags["sdk_container_image"] is None  # Beam's stock container on CPU workers
    assert "app=fineinstructions" in flags["labels"] and f"library={fingerprint[:16]}" in flags["labels"]


def test_generate_pairs_runs_pipeline_per_shard_on_gpu_workers(probe):
    runs = probe["runs"]["generate_pairs"]
    shards = probe["plan"]["return_value"]
    assert len(runs) == len(shards) == len(CORPUS_GLOBS)
    for index, (run, shard) in enumerate(zip(runs, shards)):
        check_dataflow(run, f"fi-pipeline-shard-{index}")
        flags, unknown = job_flags(launched(run, "pipeline"), "pipeline")
        assert unknown == []
        assert re.fullmatch(rf"fi-pipeline-shard-{index}-[0-9a-f]{{8}}", flags["job_name"])
        assert flags["documents"] == CORPUS_GLOBS[index] == shard["documents"]
        assert flags["output"] == shard["output"] and flags["templates"] == shard["templates"]
        assert flags["sdk_container_image"] == IMAGE and flags["sdk_location"] == "container"
        assert "use_runner_v2" in flags["experiments"]
        assert flags["dataflow_service_options"] == [f"worker_accelerator={ACCELERATOR}"]
        assert flags["machine_type"] == "g2-standard-8"
        assert flags["accelerator"] is None  # all_workers: no resource hint beside the service option
        assert flags["instantiator"] == "vllm" and flags["judge"] == "vllm"
        assert flags["vllm_arg"] == ["gpu-memory-utilization=0.45"]
        assert flags["instantiator_vllm_arg"] == ["max-model-len=16384"]
        assert flags["judge_vllm_arg"] == ["max-model-len=4096"]
        assert flags["embedding_device"] == "cpu"
        assert flags["max_document_chars"] == 50000
        assert flags["max_num_workers"] == 10 and flags["disk_size_gb"] == 150
        assert flags["project"] == "fi-test-project" and flags["region"] == "us-central1"
        assert flags["service_account_email"] == SERVICE_ACCOUNT
        assert flags["subnetwork"] == SUBNETWORK and flags["use_public_ips"] is False
        assert f"shard={shard['labels']['shard']}" in flags["labels"]


def test_generate_pairs_right_fitting(probe):
    run = probe["runs"]["generate_pairs_right_fitting"]
    flags, unknown = job_flags(launched(run, "pipeline"), "pipeline")
    assert unknown == []
    assert flags["accelerator"] == "type:nvidia-l4;count:1;machine_type:g2-standard-8;install-nvidia-driver:latest"
    assert not flags["dataflow_service_options"]
    assert flags["machine_type"] == "n2-standard-8"
    assert flags["documents"] == CORPUS_GLOBS[1]
    assert flags["use_public_ips"] is None and flags["subnetwork"] is None  # no subnetwork param


def test_a_failed_job_or_launcher_fails_the_task(probe):
    runs = probe["runs"]
    for name, state in (("mine_templates_job_failed", "JOB_STATE_FAILED"),
                        ("generate_pairs_job_cancelled", "JOB_STATE_CANCELLED")):
        run = runs[name]
        assert len(run["launches"]) == 1
        assert run["error"] and "AirflowException" in run["error"] and state in run["error"], run["error"]
    launcher = runs["generate_pairs_launcher_failed"]
    assert launcher["error"] and "return code 1" in launcher["error"], launcher["error"]
    assert launcher["dataflow_api_calls"] == []  # failed before any wait


def test_a_killed_task_cancels_its_dataflow_job_by_name(probe):
    # The launcher prints no job id the operator would read (it would stop waiting for the
    # launcher's verdict), so on_kill (SIGTERM or execution_timeout) cancels by the task try's
    # unique job name instead of leaving the job running beside the retry's.
    killed = probe["runs"]["generate_pairs_killed"]
    assert killed["job_id"] is None
    assert killed["launched_job_name"].startswith("fi-pipeline-shard-0-")
    assert killed["cancel_calls"] == [{"job_name": killed["launched_job_name"], "project_id": CONF_PROJECT,
                                       "location": CONF_REGION}]
    assert killed["execute_error"] and "return code -9" in killed["execute_error"], killed["execute_error"]


# ------------------------------------------------------------------------------------------------
# Whole runs (dag.test: Airflow's scheduler loop and task runner, in-process, sqlite metadata DB)
# ------------------------------------------------------------------------------------------------

def test_whole_dag_runs_mine_then_skip_mining_when_the_library_exists(probe):
    runs = probe["dag_test"]
    assert "error" not in runs, runs.get("error")
    missing, exists = runs["library_missing"], runs["library_exists"]
    assert missing["state"] == "success"
    assert missing["task_instances"] == [
        ["generate_pairs", 0, "success"], ["generate_pairs", 1, "success"],
        ["library_needs_mining", -1, "success"], ["mine_templates", -1, "success"], ["plan_run", -1, "success"]]
    assert missing["launched_jobs"] == ["templates_mining", "pipeline", "pipeline"]
    # Same query set, manifest.json present: mining is skipped, the shards still run (none_failed).
    assert exists["state"] == "success"
    assert exists["task_instances"] == [
        ["generate_pairs", 0, "success"], ["generate_pairs", 1, "success"],
        ["library_needs_mining", -1, "success"], ["mine_templates", -1, "skipped"], ["plan_run", -1, "success"]]
    assert exists["launched_jobs"] == ["pipeline", "pipeline"]


# ------------------------------------------------------------------------------------------------
# The instruction_pretrain DAG
# ------------------------------------------------------------------------------------------------

def test_instruction_pretrain_dag_plans_one_gpu_job_per_shard(probe):
    ipt = probe["instruction_pretrain"]
    assert ipt["serialization_error"] is None, ipt["serialization_error"]
    tasks = ipt["tasks"]
    assert set(tasks) == {"plan_shards", "augment_corpus"}
    assert tasks["augment_corpus"]["upstream"] == ["plan_shards"] and tasks["augment_corpus"]["mapped"]
    assert tasks["augment_corpus"]["operator"].endswith("fineinstructions_dag.DataflowBeamOperator")
    assert tasks["augment_corpus"]["expand"] == {
        "pipeline_options": {"xcom": {"task_id": "plan_shards", "key": "return_value"}}}
    args = tasks["augment_corpus"]["arguments"]
    assert args["py_file"] == "pipeline" and args["py_options"] == ["-m"]
    assert args["dataflow_config"]["job_name"] == "fi-instruction-pretrain-shard-{{ ti.map_index }}"
    assert args["dataflow_config"]["wait_until_finished"] is True
    shards = ipt["shards"]
    assert [s["documents"] for s in shards] == CORPUS_GLOBS
    outputs = [s["output"] for s in shards]
    assert len(set(outputs)) == 2 and all(o.startswith(f"gs://{BUCKET}/augmented/") for o in outputs)
    # Other settings write elsewhere; the same settings overwrite their own shard.
    assert {s["output"].rsplit("/", 2)[1] for s in ipt["shards_rounds_3"]} != {o.rsplit("/", 2)[1] for o in outputs}
    for s in shards:
        assert s["method"] == "instruction_pretrain" and s["synthesizer"] == "vllm" and "templates" not in s
        assert s["dataflow_service_options"] == [f"worker_accelerator={ACCELERATOR}"]


def test_instruction_pretrain_shard_launches_the_method_and_fails_with_its_job(probe):
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.options import DocumentPipelineOptions
    from transforms.job_options import job_flags

    run = probe["instruction_pretrain"]["run"]
    assert run["error"] is None, run["error"]
    [argv] = run["launches"]
    assert argv[:2] == ["-m", "pipeline"]
    opts = job_flags(PipelineOptions(argv[2:]), DocumentPipelineOptions)
    assert opts.method == "instruction_pretrain" and opts.synthesizer == "vllm" and opts.rounds == 2
    assert opts.synthesizer_model == "instruction-pretrain/instruction-synthesizer"
    assert opts.vllm_arg == ["gpu-memory-utilization=0.9"] and opts.templates is None
    assert opts.generation_cache == f"gs://{BUCKET}/generation-cache"   # a retried task pays no model call twice
    assert opts.documents == CORPUS_GLOBS[0]
    beam = PipelineOptions(argv[2:]).get_all_options()
    assert beam["sdk_container_image"] == IMAGE and beam["runner"] == "DataflowRunner"
    assert beam["job_name"].startswith("fi-instruction-pretrain-shard-0")
    failed = probe["instruction_pretrain"]["run_job_failed"]
    assert failed["error"] and "JOB_STATE_FAILED" in failed["error"]
