"""FineInstructions and Instruction Pre-Training on Dataflow, scheduled by Airflow 3.

Two DAGs. ``instruction_pretrain``: ``plan_shards ──► augment_corpus[shard 0..n-1]`` runs
``python -m pipeline --method instruction_pretrain`` once per corpus glob on GPU workers (the
synthesizer on vLLM) and writes ``OUTPUT_ROOT/<settings hash>/shard-<sha256(glob)[:12]>``; the
same failure handling as below. ``fineinstructions``, tasks:

    plan_run ──► library_needs_mining ──► mine_templates ──► generate_pairs[shard 0..n-1]
       │          (short-circuit)          (Dataflow, CPU)    (Dataflow, GPU; one mapped task
       └──────────────────────────────────────────────────────► per corpus glob)

- ``plan_run`` lists the query files (name, size, CRC32C) and hashes them with the mining
  options into a fingerprint; the template library for this query set lives at
  ``LIBRARY_ROOT/<fingerprint[:16]>``. It also builds every job's pipeline options: it returns the
  list of shard options (what ``generate_pairs`` maps over: Airflow maps only over a task's return
  value) and pushes ``fingerprint``, ``query_objects``, ``library`` and ``mining_options`` as XComs
  of their own. The fingerprint covers the listing and ``queries``, ``query_text_field``,
  ``query_format`` and ``mining_args``; no other param changes it.
- ``library_needs_mining`` short-circuits: when that library's ``manifest.json`` exists (the
  mining job writes it last, so it exists only for a complete library) the query set has not
  changed since it was mined, and ``mine_templates`` is skipped. ``force_mining`` overrides.
- ``mine_templates`` runs ``python -m templates_mining`` on Dataflow (CPU workers, --setup_file).
- ``generate_pairs`` runs ``python -m pipeline`` once per corpus glob (dynamic task mapping,
  ``.partial(...).expand(pipeline_options=...)``) on GPU workers from the worker image; each
  shard writes ``OUTPUT_ROOT/<fingerprint[:16]>/shard-<sha256(glob)[:12]>`` (a rerun overwrites,
  never duplicates). Trigger rule ``none_failed``: it runs after mining or after a skip.

Failure: both operators use the Dataflow configuration ``wait_until_finished=True``. The launcher
(``python -m ...``) waits for its job and exits non-zero when the job fails or conservation does not
hold; the operator then checks the job's terminal state through the Dataflow API
(``DataflowHook.wait_for_done``) and raises unless it is JOB_STATE_DONE. (The jobs' CLI logs
Beam at WARNING, so the operator never sees Beam's "Created job with id" line and reads the
launcher's output until it exits; the job is then found by its unique job name. That is what keeps
OUTPUT/report.json: the launcher writes it after the job.) A task killed while its job runs
(SIGTERM, "mark failed", ``execution_timeout``) cancels the job by that name
(:class:`DataflowBeamOperator`), so a retry never runs beside a leftover job.

Where it runs: the Airflow worker needs this project installed (apache-beam 2.77.0, Python 3.11)
in the interpreter named by FINEINSTRUCTIONS_PYTHON (e.g. a virtualenv made once on the worker,
or Cloud Composer's PyPI packages) and the repository checkout (for --setup_file) at
FINEINSTRUCTIONS_REPO. It also needs apache-airflow-providers-google (the Dataflow hook and the
GCS listing) and a Google Cloud connection (FINEINSTRUCTIONS_GCP_CONN_ID).

Parse time stays light: no Beam import; the google provider is imported inside the tasks (the
Beam operator module imports it too when it is installed).
"""
from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterable, List, Sequence, Tuple

from airflow.providers.apache.beam.operators.beam import BeamRunPythonPipelineOperator
from airflow.sdk import DAG, Param, task

DAG_ID = "fineinstructions"
IPT_DAG_ID = "instruction_pretrain"
# Not templated by the operator (read when the DAG is parsed).
PYTHON = os.environ.get("FINEINSTRUCTIONS_PYTHON", "python3")
REPO_DIR = os.environ.get("FINEINSTRUCTIONS_REPO", "/home/airflow/gcs/data/fineinstructions-beam")
GCP_CONN_ID = os.environ.get("FINEINSTRUCTIONS_GCP_CONN_ID", "google_cloud_default")
# How many shard jobs run at once (GPU quota: this x max workers x GPUs per worker).
MAX_PARALLEL_SHARDS = int(os.environ.get("FINEINSTRUCTIONS_MAX_PARALLEL_SHARDS", "2"))

# Mining options that change what the library contains (the fingerprint covers them).
MINING_CONTENT_KEYS = ("queries", "query_text_field", "query_format", "mining_args")
# What plan_run pushes as XComs of their own (its return value is the list of shard options).
PLAN_XCOM_KEYS = ("fingerprint", "query_objects", "library", "mining_options")


# --------------------------------------------------------------------------------------------
# Pure helpers (no Airflow context, no network): what the tasks compute.
# --------------------------------------------------------------------------------------------

def split_gcs(url: str) -> Tuple[str, str]:
    """``gs://bucket/a/b`` -> ``("bucket", "a/b")``."""
    if not url.startswith("gs://") or len(url) <= 5:
        raise ValueError(f"expected a gs:// URL, got {url!r}")
    bucket, _, path = url[5:].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {url!r}")
    return bucket, path


def short_hash(text: str, n: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def resolved_params(params: Dict[str, Any]) -> Dict[str, Any]:
    """The DAG params with their derived defaults filled in; raises ValueError on a missing or bad one."""
    p = dict(params)
    for name in ("project", "region", "bucket", "image"):
        if not str(p.get(name) or "").strip():
            raise ValueError(f"DAG param {name!r} is required")
    if str(p["bucket"]).startswith("gs://") or "/" in str(p["bucket"]):
        raise ValueError(f"DAG param 'bucket' is a bucket name, not a URL: {p['bucket']!r}")
    gs = f"gs://{p['bucket']}"
    p["queries"] = p.get("queries") or f"{gs}/queries/*.jsonl"
    p["library_root"] = (p.get("library_root") or f"{gs}/library").rstrip("/")
    p["output_root"] = (p.get("output_root") or f"{gs}/pairs").rstrip("/")
    for name in ("queries", "library_root", "output_root"):
        split_gcs(p[name])
    globs = list(p.get("corpus_globs") or [])
    if not globs:
        raise ValueError("DAG param 'corpus_globs' needs at least one gs:// glob of corpus documents")
    for glob in globs:
        split_gcs(glob)
    if len(set(globs)) != len(globs):
        raise ValueError("DAG param 'corpus_globs' lists a glob twice")
    p["corpus_globs"] = globs
    if p.get("gpu_placement", "all_workers") not in ("all_workers", "right_fitting"):
        raise ValueError(f"gpu_placement must be all_workers or right_fitting, got {p['gpu_placement']!r}")
    return p


def query_set_fingerprint(objects: Iterable[Sequence[Any]], p: Dict[str, Any]) -> str:
    """sha256 over the query objects (name, size, crc32c) and the content-relevant mining options."""
    payload = {
        "objects": sorted([list(o) for o in objects]),
        "options": {k: p.get(k) for k in MINING_CONTENT_KEYS},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def library_path(p: Dict[str, Any], fingerprint: str) -> str:
    return f"{p['library_root']}/{fingerprint[:16]}"


def _common_options(p: Dict[str, Any]) -> Dict[str, Any]:
    gs = f"gs://{p['bucket']}"
    # The worker service account comes from dataflow_config (service_account -> --service_account_email).
    options: Dict[str, Any] = {"temp_location": f"{gs}/tmp", "staging_location": f"{gs}/staging"}
    if p.get("subnetwork"):
        options["subnetwork"] = p["subnetwork"]
        options["use_public_ips"] = False  # the Beam hook turns this into --no_use_public_ips
    return options


def mining_options(p: Dict[str, Any], library: str, fingerprint: str) -> Dict[str, Any]:
    """Options of ``python -m templates_mining`` (project, region, job name come from dataflow_config)."""
    repo = p.get("repo_dir") or REPO_DIR
    options = {
        **_common_options(p),
        "queries": p["queries"],
        "text_field": p.get("query_text_field") or "text",
        "output": library,
        "setup_file": f"{repo}/setup.py",
        # Installed before the sdist: CPU-only torch, not PyPI's with gigabytes of CUDA wheels.
        "requirements_file": f"{repo}/deploy/dataflow/requirements-cpu-workers.txt",
        "requirements_cache": "skip",
        "machine_type": p.get("mining_machine_type") or "n2-standard-8",
        "max_num_workers": int(p.get("mining_max_workers") or 20),
    }
    if p.get("query_format"):
        options["query_format"] = p["query_format"]
    options.update(p.get("mining_args") or {})
    options["labels"] = {"app": "fineinstructions", "job": "templates-mining", "library": fingerprint[:16]}
    return options


def accelerator_spec(p: Dict[str, Any], with_machine_type: bool) -> str:
    driver = "install-nvidia-driver" + (f":{p['nvidia_driver']}" if p.get("nvidia_driver") else "")
    machine = f"machine_type:{p.get('gpu_machine_type') or 'g2-standard-8'};" if with_machine_type else ""
    return f"type:{p.get('gpu_type') or 'nvidia-l4'};count:{int(p.get('gpu_count') or 1)};{machine}{driver}"


def gpu_placement(p: Dict[str, Any]) -> Dict[str, Any]:
    """all_workers: every worker gets the GPU (worker_accelerator service option, GPU machine type).
    right_fitting: the generation steps carry the accelerator resource hint (with its machine type);
    the other steps run on the CPU machine type. Dataflow: don't combine the two."""
    if p.get("gpu_placement", "all_workers") == "all_workers":
        return {"dataflow_service_options": [f"worker_accelerator={accelerator_spec(p, False)}"],
                "machine_type": p.get("gpu_machine_type") or "g2-standard-8"}
    return {"accelerator": accelerator_spec(p, True), "machine_type": p.get("cpu_machine_type") or "n2-standard-8"}


def _image_options(p: Dict[str, Any]) -> Dict[str, Any]:
    """Options of a job that runs in the GPU worker image."""
    return {
        **_common_options(p),
        "sdk_container_image": p["image"],
        "sdk_location": "container",
        "experiments": ["use_runner_v2"],
        "max_num_workers": int(p.get("pipeline_max_workers") or 10),
        "disk_size_gb": int(p.get("disk_size_gb") or 150),
        # A retried task reruns its job from the start: finished generations are not paid twice.
        "generation_cache": f"gs://{p['bucket']}/generation-cache",
    }


def pipeline_shard_options(p: Dict[str, Any], library: str, fingerprint: str) -> List[Dict[str, Any]]:
    """One options dict of ``python -m pipeline`` per corpus glob (the mapped task's expand input),
    GPUs placed by :func:`gpu_placement`."""
    common = {
        **_image_options(p),
        "templates": library,
        "instantiator": p.get("instantiator") or "vllm",
        "judge": p.get("judge") or "vllm",
        "vllm_arg": list(p.get("vllm_args") or []),
        "instantiator_vllm_arg": list(p.get("instantiator_vllm_args") or []),
        "judge_vllm_arg": list(p.get("judge_vllm_args") or []),
        # A whole document goes into the instantiator's prompt: keep it under max-model-len.
        "max_document_chars": int(p.get("max_document_chars") or 50000),
        # The embedding model on the CPU: the GPU's memory belongs to the vLLM servers.
        "embedding_device": "cpu",
    }
    common.update(gpu_placement(p))
    common.update(p.get("pipeline_args") or {})
    shards = []
    for glob in p["corpus_globs"]:
        shard = short_hash(glob, 12)
        shards.append({
            **common,
            "documents": glob,
            "output": f"{p['output_root']}/{fingerprint[:16]}/shard-{shard}",
            "labels": {"app": "fineinstructions", "job": "pipeline", "library": fingerprint[:16], "shard": shard},
        })
    return shards


def run_plan(p: Dict[str, Any], objects: Sequence[Sequence[Any]]) -> Dict[str, Any]:
    """Everything plan_run computes from the resolved params and the query objects (name, size, crc32c)."""
    if not objects:
        raise ValueError(f"queries {p['queries']!r} match no object")
    fingerprint = query_set_fingerprint(objects, p)
    library = library_path(p, fingerprint)
    return {
        "fingerprint": fingerprint,
        "query_objects": len(objects),
        "library": library,
        "mining_options": mining_options(p, library, fingerprint),
        "pipeline_shards": pipeline_shard_options(p, library, fingerprint),
    }


def instruction_pretrain_shard_options(params: Dict[str, Any]) -> List[Dict[str, Any]]:
    """One options dict of ``python -m pipeline --method instruction_pretrain`` per corpus glob.

    Each shard writes ``OUTPUT_ROOT/<settings hash>/shard-<sha256(glob)[:12]>``: the hash covers the
    synthesizer, its model, rounds, token limits and extra flags, so other settings never
    overwrite a corpus made with these (a rerun with the same ones does).
    """
    p = resolved_params({**params, "output_root": params.get("output_root") or f"gs://{params.get('bucket')}/augmented"})
    settings = {
        "method": "instruction_pretrain",
        "synthesizer": p.get("synthesizer") or "vllm",
        "synthesizer_model": p.get("synthesizer_model") or "instruction-pretrain/instruction-synthesizer",
        "rounds": int(p.get("rounds") or 2),
        "synthesizer_max_tokens": int(p.get("synthesizer_max_tokens") or 400),
        "synthesizer_context": int(p.get("synthesizer_context") or 4096),
        # One vLLM server per worker (no judge beside it): it may take most of the GPU.
        "vllm_arg": list(p.get("vllm_args") or []),
        **(p.get("pipeline_args") or {}),
    }
    version = short_hash(json.dumps(settings, sort_keys=True, default=str), 16)
    common = {**_image_options(p), **gpu_placement(p), **settings}
    shards = []
    for glob in p["corpus_globs"]:
        shard = short_hash(glob, 12)
        shards.append({**common, "documents": glob, "output": f"{p['output_root']}/{version}/shard-{shard}",
                       "labels": {"app": "fineinstructions", "job": "instruction-pretrain", "settings": version,
                                  "shard": shard}})
    return shards


def dataflow_config(job_name: str) -> Dict[str, Any]:
    """Keyword arguments of ``DataflowConfiguration`` (airflow.providers.google.cloud.operators.dataflow).

    Given as a dict: the Beam operator renders it as a template field (project_id is not among
    DataflowConfiguration's own template_fields) and casts it with DataflowConfiguration(**dict)
    when the task runs, and the DAG file does not import the google provider at parse time.
    """
    return {
        "job_name": job_name,
        "append_job_name": True,  # a unique suffix: the hook finds the job by this name
        "project_id": "{{ params.project }}",
        "location": "{{ params.region }}",
        "gcp_conn_id": GCP_CONN_ID,
        "service_account": "{{ params.service_account }}",
        "wait_until_finished": True,
        "poll_sleep": 60,
        "cancel_timeout": 600,
        "drain_pipeline": False,
    }


class DataflowBeamOperator(BeamRunPythonPipelineOperator):
    """The Beam provider's operator; killed before it has read a job id, it cancels by job name.

    The provider's ``on_kill`` cancels the job whose id it read in the launcher's output, and ours
    does not print one (see the module docstring). The name is unique per task try
    (``append_job_name``); cancelling a name with no running job does nothing.
    """

    def on_kill(self) -> None:
        name = getattr(self, "dataflow_job_name", None)
        if self.dataflow_job_id or not (self.dataflow_hook and name):
            return super().on_kill()
        self.log.info("Cancelling the Dataflow job named %s.", name)
        self.dataflow_hook.cancel_job(job_name=name, project_id=self.dataflow_config.project_id,
                                      location=self.dataflow_config.location)


# --------------------------------------------------------------------------------------------
# The DAGs
# --------------------------------------------------------------------------------------------

def cloud_params() -> Dict[str, Param]:
    """The Params both DAGs take: where the jobs run and on which GPUs."""
    return {
        "project": Param(os.environ.get("FINEINSTRUCTIONS_PROJECT", ""), type="string",
                         description="Google Cloud project id."),
        "region": Param(os.environ.get("FINEINSTRUCTIONS_REGION", "us-central1"), type="string",
                        description="Dataflow region (with L4 GPUs)."),
        "bucket": Param(os.environ.get("FINEINSTRUCTIONS_BUCKET", ""), type="string",
                        description="Bucket name (no gs://) for tmp/, staging/ and the defaults below."),
        "image": Param(os.environ.get("FINEINSTRUCTIONS_IMAGE", ""), type="string",
                       description="GPU worker image (deploy/dataflow/01_build_push_image.sh)."),
        "gpu_placement": Param("all_workers", enum=["all_workers", "right_fitting"],
                               description="all_workers: worker_accelerator service option; right_fitting: accelerator resource hint."),
        "gpu_type": Param("nvidia-l4", type="string"),
        "gpu_count": Param(1, type="integer", minimum=1),
        "nvidia_driver": Param("latest", type="string",
                               description="install-nvidia-driver:<this> (CUDA 13.0 needs driver >= 580); empty: Dataflow's default."),
        "gpu_machine_type": Param("g2-standard-8", type="string"),
        "cpu_machine_type": Param("n2-standard-8", type="string", description="right_fitting only."),
        "pipeline_max_workers": Param(10, type="integer", minimum=1),
        "disk_size_gb": Param(150, type="integer", minimum=50),
        "service_account": Param("", type="string", description="Worker service account (empty: the default)."),
        "subnetwork": Param("", type="string", description="regions/R/subnetworks/S; with it workers get no public IPs."),
    }


with DAG(
    dag_id=DAG_ID,
    description="Mine a template library when the query set changes; generate pairs over corpus shards.",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["fineinstructions", "dataflow"],
    default_args={"retries": 1, "retry_delay": timedelta(minutes=10)},
    params={
        **cloud_params(),
        "queries": Param("", type="string",
                         description="gs:// glob of query files (GCS match_glob syntax). Default: gs://BUCKET/queries/*.jsonl."),
        "query_text_field": Param("text", type="string", description="Field holding the query."),
        "query_format": Param("", type="string", description="jsonl|parquet|csv|tsv|text; empty: from the extension."),
        "library_root": Param("", type="string",
                              description="Libraries go to LIBRARY_ROOT/<query-set fingerprint>. Default: gs://BUCKET/library."),
        "corpus_globs": Param([], type="array", items={"type": "string"},
                              description="gs:// globs of corpus documents; one pipeline job per glob."),
        "output_root": Param("", type="string",
                             description="Pairs go to OUTPUT_ROOT/<fingerprint>/shard-<hash of glob>. Default: gs://BUCKET/pairs."),
        "force_mining": Param(False, type="boolean", description="Mine even when the library exists."),
        "mining_machine_type": Param("n2-standard-8", type="string"),
        "mining_max_workers": Param(20, type="integer", minimum=1),
        "mining_args": Param({}, type="object",
                             description="Extra templates_mining flags, e.g. {\"genericizer\": \"rules\"} (a list repeats the flag)."),
        "instantiator": Param("vllm", enum=["extractive", "vllm", "openai", "transformers"]),
        "judge": Param("vllm", enum=["heuristic", "vllm", "openai", "transformers"]),
        "vllm_args": Param(["gpu-memory-utilization=0.45"], type="array", items={"type": "string"},
                           description="--vllm_arg values, for every vLLM server (each vLLM step starts its own)."),
        "instantiator_vllm_args": Param(["max-model-len=16384"], type="array", items={"type": "string"},
                                        description="--instantiator_vllm_arg values (its prompt holds a whole document)."),
        "judge_vllm_args": Param(["max-model-len=4096"], type="array", items={"type": "string"},
                                 description="--judge_vllm_arg values (its prompt holds one instruction and answer)."),
        "max_document_chars": Param(50000, type="integer", minimum=1,
                                    description="Longer documents are filtered (too_long): a whole document goes "
                                                "into the instantiator's prompt (~4 chars/token under max-model-len)."),
        "pipeline_args": Param({}, type="object", description="Extra pipeline flags, e.g. {\"templates_per_document\": 6}."),
        "repo_dir": Param(REPO_DIR, type="string", description="Checkout of this repository on the Airflow worker (--setup_file)."),
    },
) as dag:

    @task(multiple_outputs=False)
    def plan_run(**context) -> List[Dict[str, Any]]:
        """Fingerprint the query set; push the library path and mining options; return the shards.

        The return value is the list generate_pairs maps over: Airflow maps only over a task's
        return value, never over one key of a ``multiple_outputs`` task. The rest of the plan goes
        out as XComs with their own keys (PLAN_XCOM_KEYS).
        """
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        p = resolved_params(context["params"])
        bucket, glob = split_gcs(p["queries"])
        client = GCSHook(gcp_conn_id=GCP_CONN_ID).get_conn()
        objects = [(b.name, b.size, b.crc32c) for b in client.list_blobs(bucket, match_glob=glob)]
        plan = run_plan(p, objects)
        for key in PLAN_XCOM_KEYS:
            context["ti"].xcom_push(key=key, value=plan[key])
        return plan["pipeline_shards"]

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def library_needs_mining(library: str, **context) -> bool:
        """False (skip mining) when LIBRARY/manifest.json exists and force_mining is off."""
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        if context["params"].get("force_mining"):
            return True
        bucket, prefix = split_gcs(library)
        return not GCSHook(gcp_conn_id=GCP_CONN_ID).exists(bucket, f"{prefix}/manifest.json")

    plan = plan_run()  # return value: the shards' options; plan["key"] pulls a PLAN_XCOM_KEYS XCom
    needs_mining = library_needs_mining(plan["library"])

    mine_templates = DataflowBeamOperator(
        task_id="mine_templates",
        runner="DataflowRunner",
        py_file="templates_mining",
        py_options=["-m"],
        py_interpreter=PYTHON,
        pipeline_options=plan["mining_options"],
        dataflow_config=dataflow_config("fi-templates-mining"),
        gcp_conn_id=GCP_CONN_ID,
        execution_timeout=timedelta(hours=12),
    )

    generate_pairs = DataflowBeamOperator.partial(
        task_id="generate_pairs",
        runner="DataflowRunner",
        py_file="pipeline",
        py_options=["-m"],
        py_interpreter=PYTHON,
        dataflow_config=dataflow_config("fi-pipeline-shard-{{ ti.map_index }}"),
        gcp_conn_id=GCP_CONN_ID,
        trigger_rule="none_failed",
        max_active_tis_per_dagrun=MAX_PARALLEL_SHARDS,
        execution_timeout=timedelta(hours=48),
    ).expand(pipeline_options=plan)

    needs_mining >> mine_templates >> generate_pairs


with DAG(
    dag_id=IPT_DAG_ID,
    description="Instruction Pre-Training: an instruction-augmented corpus per corpus shard (GPU, vLLM).",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["fineinstructions", "instruction-pretrain", "dataflow"],
    default_args={"retries": 1, "retry_delay": timedelta(minutes=10)},
    params={
        **cloud_params(),
        "corpus_globs": Param([], type="array", items={"type": "string"},
                              description="gs:// globs of raw texts (JSONL or Parquet); one job per glob."),
        "output_root": Param("", type="string",
                             description="Corpora go to OUTPUT_ROOT/<settings hash>/shard-<hash of glob>. "
                                         "Default: gs://BUCKET/augmented."),
        "synthesizer": Param("vllm", enum=["vllm", "openai", "transformers"]),
        "synthesizer_model": Param("instruction-pretrain/instruction-synthesizer", type="string",
                                   description="Hub name or gs:// dir (a copy in the bucket avoids a hub download "
                                               "on every worker)."),
        "rounds": Param(2, type="integer", minimum=1,
                        description="2 for pre-training from scratch, 3 for domain-adaptive continued pre-training."),
        "synthesizer_max_tokens": Param(400, type="integer", minimum=1),
        "synthesizer_context": Param(4096, type="integer", minimum=2),
        "vllm_args": Param(["gpu-memory-utilization=0.9"], type="array", items={"type": "string"},
                           description="--vllm_arg values (one vLLM server per worker: the synthesizer's)."),
        "pipeline_args": Param({}, type="object", description="Extra pipeline flags, e.g. {\"max_part_tokens\": 1024}."),
    },
) as instruction_pretrain_dag:

    @task
    def plan_shards(**context) -> List[Dict[str, Any]]:
        """The options of every shard's job (what augment_corpus maps over)."""
        return instruction_pretrain_shard_options(context["params"])

    DataflowBeamOperator.partial(
        task_id="augment_corpus",
        runner="DataflowRunner",
        py_file="pipeline",
        py_options=["-m"],
        py_interpreter=PYTHON,
        dataflow_config=dataflow_config("fi-instruction-pretrain-shard-{{ ti.map_index }}"),
        gcp_conn_id=GCP_CONN_ID,
        max_active_tis_per_dagrun=MAX_PARALLEL_SHARDS,
        execution_timeout=timedelta(hours=48),
    ).expand(pipeline_options=plan_shards())
