"""The command lines of deploy/dataflow/01_build_push_image.sh, 04_build_flex_template.sh and
05_run_flex_template.sh, printed with ``DRY_RUN=1`` (bash only: nothing is built, run or sent).

Covered: 01's Artifact Registry repository and its two builders (Cloud Build with cloudbuild.yaml,
local docker) and the Dockerfile stage they name; 04's ``flex-template build`` and its metadata
file; 05's ``flex-template run``: its template parameters (declared in metadata.json, valid there,
and parsed by the pipeline job's own flags) and its Beam options (the worker image, the GPU);
each script's refusals (exit 2, a message, nothing run); and the example environment
(00_env.example) being enough for each script.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import re
import subprocess
from typing import Dict, List, Optional

import pytest
import yaml

from test_deploy_dataflow import DEPLOY, DOCKERFILE, EXAMPLE_ENV, REPO, alt_list, printed_commands

METADATA = DEPLOY / "metadata.json"
BASE = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), "DRY_RUN": "1"}


@functools.lru_cache(maxsize=None)
def example() -> Dict[str, str]:
    """The variables 00_env.example exports, as bash expands them."""
    out = subprocess.run(["env", "-i", "bash", "-c", 'source "$0" && env -0', str(EXAMPLE_ENV)],
                         capture_output=True, text=True, check=True).stdout
    values = dict(item.split("=", 1) for item in out.split("\0") if item)
    return {k: v for k, v in values.items() if k not in ("PWD", "SHLVL", "_")}


def dry_run(script: str, *args: str, **overrides: Optional[str]) -> subprocess.CompletedProcess:
    """``DRY_RUN=1 deploy/dataflow/<script> args`` in the example's environment (no ENV_FILE, so
    ``overrides`` win; ``NAME=None`` removes NAME)."""
    env = {**BASE, **example(), **overrides}
    env = {k: v for k, v in env.items() if v is not None}
    return subprocess.run(["bash", str(DEPLOY / script), *args], env=env, capture_output=True, text=True,
                          timeout=60)


def commands(script: str, *args: str, **overrides: Optional[str]) -> List[List[str]]:
    """The argv of each command the script would run."""
    return printed_commands(dry_run(script, *args, **overrides))


def opt(argv: List[str], name: str) -> str:
    """The value after ``name``, which must occur once."""
    assert argv.count(name) == 1, (name, argv)
    return argv[argv.index(name) + 1]


def metadata_parameters() -> Dict[str, dict]:
    return {p["name"]: p for p in json.loads(METADATA.read_text())["parameters"]}


def assert_declared_and_valid(parameters: Dict[str, str]) -> None:
    """Every parameter is declared in metadata.json and passes its enum and regexes there."""
    declared = metadata_parameters()
    assert set(parameters) <= set(declared), set(parameters) - set(declared)
    for name, value in parameters.items():
        spec = declared[name]
        if "enumOptions" in spec:
            assert value in [o["value"] for o in spec["enumOptions"]], (name, value)
        for pattern in spec.get("regexes", []):
            assert re.search(pattern, value), (name, value, pattern)


def flex_run(**overrides: Optional[str]) -> List[str]:
    (argv,) = commands("05_run_flex_template.sh", **overrides)
    return argv


# ---------------------------------------------------------------------------------------------
# 01: the worker image
# ---------------------------------------------------------------------------------------------

def test_01_cloudbuild_creates_the_repository_and_submits_cloudbuild_yaml():
    env = example()
    create, submit = commands("01_build_push_image.sh")
    assert create[:5] == ["gcloud", "artifacts", "repositories", "create", env["AR_REPO"]]
    assert opt(create, "--project") == env["PROJECT"] and opt(create, "--location") == env["REGION"]
    assert opt(create, "--repository-format") == "docker"
    assert submit[:3] == ["gcloud", "builds", "submit"] and submit[-1] == "."
    assert opt(submit, "--project") == env["PROJECT"]
    assert opt(submit, "--config") == "deploy/dataflow/cloudbuild.yaml"
    assert opt(submit, "--ignore-file") == "deploy/dataflow/build.gcloudignore"
    assert opt(submit, "--substitutions") == f"_IMAGE={env['IMAGE']}"
    assert (REPO / opt(submit, "--ignore-file")).is_file()


def test_cloudbuild_yaml_builds_the_worker_stage_and_pushes_the_image():
    config = yaml.safe_load((DEPLOY / "cloudbuild.yaml").read_text())
    (step,) = config["steps"]
    args = step["args"]
    assert step["name"] == "gcr.io/cloud-builders/docker" and args[0] == "build" and args[-1] == "."
    assert opt(args, "--file") == "deploy/dataflow/Dockerfile" and opt(args, "--target") == "worker"
    assert opt(args, "--tag") == "${_IMAGE}"
    assert config["images"] == ["${_IMAGE}"]   # Cloud Build pushes what `images` lists
    assert "_IMAGE" in config["substitutions"]


def test_01_docker_builds_and_pushes_locally():
    image = example()["IMAGE"]
    _, login, build, push = commands("01_build_push_image.sh", BUILDER="docker")
    assert login == ["gcloud", "auth", "configure-docker", image.split("/")[0], "--quiet"]
    assert build == ["docker", "build", "--file", "deploy/dataflow/Dockerfile", "--target", "worker",
                     "--tag", image, "."]
    assert push == ["docker", "push", image]


def test_the_build_target_is_a_dockerfile_stage():
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", DOCKERFILE.read_text(), re.MULTILINE | re.IGNORECASE)
    build = commands("01_build_push_image.sh", BUILDER="docker")[2]
    assert opt(build, "--target") in stages
    assert stages[-1] == "worker"   # also what a build without --target produces


# ---------------------------------------------------------------------------------------------
# 04: the Flex Template spec
# ---------------------------------------------------------------------------------------------

def test_04_builds_the_template_with_the_image_and_metadata():
    env = example()
    (argv,) = commands("04_build_flex_template.sh", "--network", "vpc-1")
    bucket = f"gs://{env['BUCKET']}"
    assert argv[:5] == ["gcloud", "dataflow", "flex-template", "build",
                        f"{bucket}/templates/fineinstructions-pipeline.json"]
    assert opt(argv, "--project") == env["PROJECT"] and opt(argv, "--image") == env["IMAGE"]
    assert opt(argv, "--sdk-language") == "PYTHON"
    assert opt(argv, "--metadata-file") == str(METADATA)
    assert opt(argv, "--staging-location") == f"{bucket}/staging"
    assert opt(argv, "--temp-location") == f"{bucket}/tmp"
    assert argv[-2:] == ["--network", "vpc-1"]   # extra arguments pass through, last


def test_metadata_declares_the_template_parameters():
    parameters = json.loads(METADATA.read_text())["parameters"]
    assert isinstance(parameters, list) and parameters
    names = [p["name"] for p in parameters]
    assert len(names) == len(set(names)) and {"documents", "templates", "output"} <= set(names)


def test_05_runs_the_template_04_builds():
    (built,) = commands("04_build_flex_template.sh")
    assert opt(flex_run(), "--template-file-gcs-location") == built[4]


# ---------------------------------------------------------------------------------------------
# 05: a job from the Flex Template
# ---------------------------------------------------------------------------------------------

def test_05_run_command():
    env = example()
    argv = flex_run(JOB_NAME="fi-test", TEMPLATE_PATH="gs://b/t.json")
    assert argv[:5] == ["gcloud", "dataflow", "flex-template", "run", "fi-test"]
    assert opt(argv, "--template-file-gcs-location") == "gs://b/t.json"
    assert opt(argv, "--project") == env["PROJECT"] and opt(argv, "--region") == env["REGION"]
    assert not {"--service-account-email", "--subnetwork", "--disable-public-ips"} & set(argv)


def test_05_parameters_are_the_templates_and_pass_its_checks():
    env = example()
    parameters = alt_list(opt(flex_run(OUTPUT="gs://b/pairs/run-1"), "--parameters"))
    assert_declared_and_valid(parameters)
    assert parameters["documents"] == env["DOCUMENTS"] and parameters["templates"] == env["LIBRARY"]
    assert parameters["output"] == "gs://b/pairs/run-1"


def test_05_parameters_parse_as_pipeline_flags():
    from pipeline.options import DocumentPipelineOptions
    from transforms.job_options import add_job_arguments

    parser = argparse.ArgumentParser(allow_abbrev=False)
    add_job_arguments(parser, DocumentPipelineOptions)
    parameters = alt_list(opt(flex_run(), "--parameters"))
    # The Flex Template launcher passes each parameter as --name=value (flex_template_main.py).
    flags, unknown = parser.parse_known_args([f"--{k}={v}" for k, v in parameters.items()])
    assert unknown == []
    assert flags.documents == example()["DOCUMENTS"] and flags.embedding_device == "cpu"
    assert flags.instantiator == "vllm" and flags.judge == "vllm"
    assert flags.vllm_arg == ["gpu-memory-utilization=0.45"]
    assert flags.instantiator_vllm_arg == ["max-model-len=16384"] and flags.judge_vllm_arg == ["max-model-len=4096"]


def test_05_instruction_pretrain_parameters_parse_as_the_methods_flags():
    from pipeline.options import DocumentPipelineOptions
    from transforms.job_options import add_job_arguments

    parameters = alt_list(opt(flex_run(METHOD="instruction_pretrain", ROUNDS="3"), "--parameters"))
    assert_declared_and_valid(parameters)
    assert "templates" not in parameters
    parser = argparse.ArgumentParser(allow_abbrev=False)
    add_job_arguments(parser, DocumentPipelineOptions)
    flags, unknown = parser.parse_known_args([f"--{k}={v}" for k, v in parameters.items()])
    assert unknown == [] and flags.method == "instruction_pretrain" and flags.synthesizer == "vllm"
    assert flags.rounds == 3 and flags.vllm_arg == ["gpu-memory-utilization=0.9"] and flags.templates is None
    proc = dry_run("05_run_flex_template.sh", METHOD="bogus")
    assert proc.returncode == 2 and "METHOD" in proc.stderr and "+ " not in proc.stdout


def test_metadata_declares_every_flag_it_names_with_the_pipelines_choices():
    from pipeline.options import DocumentPipelineOptions
    from transforms.job_options import add_job_arguments

    parser = argparse.ArgumentParser(allow_abbrev=False)
    add_job_arguments(parser, DocumentPipelineOptions)
    actions = {a.dest: a for a in parser._actions}
    for name, spec in metadata_parameters().items():
        assert name in actions, name
        if "enumOptions" in spec and actions[name].choices is not None:  # transformers_dtype: free text
            assert [o["value"] for o in spec["enumOptions"]] == list(actions[name].choices), name


@pytest.mark.parametrize("driver, directive", [
    (None, "worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver:latest"),
    ("", "worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver"),   # Dataflow's default driver
])
def test_05_pipeline_options_set_the_image_and_the_gpu(driver, directive):
    from apache_beam.options.pipeline_options import PipelineOptions

    options = alt_list(opt(flex_run(NVIDIA_DRIVER=driver), "--additional-pipeline-options"))
    beam = PipelineOptions([f"--{k}={v}" for k, v in options.items()]).get_all_options()
    assert set(options) <= set(beam)   # every one is a Beam option
    assert beam["sdk_container_image"] == example()["IMAGE"] and beam["sdk_location"] == "container"
    assert beam["dataflow_service_options"] == [directive]


def test_05_service_account_and_subnetwork():
    argv = flex_run(SERVICE_ACCOUNT="sa@p.iam.gserviceaccount.com", SUBNETWORK="regions/r/subnetworks/s")
    assert opt(argv, "--service-account-email") == "sa@p.iam.gserviceaccount.com"
    assert opt(argv, "--subnetwork") == "regions/r/subnetworks/s" and "--disable-public-ips" in argv


# ---------------------------------------------------------------------------------------------
# Refusals and the example environment
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("script, overrides, message", [
    ("01_build_push_image.sh", {"IMAGE": "us-central1-docker.pkg.dev/p/r/img:latest"}, ":latest"),
    ("01_build_push_image.sh", {"IMAGE": "gcr.io/p/img:1"}, "Artifact Registry"),
    ("01_build_push_image.sh", {"BUILDER": "bogus"}, "BUILDER"),
    ("01_build_push_image.sh", {"PROJECT": None}, "PROJECT"),
    ("04_build_flex_template.sh", {"TEMPLATE_PATH": "gs://b/template.yaml"}, ".json"),
    ("04_build_flex_template.sh", {"TEMPLATE_PATH": "/tmp/template.json"}, "gs://"),
    ("05_run_flex_template.sh", {"DOCUMENTS": None}, "DOCUMENTS"),
])
def test_refusals_exit_2_and_run_nothing(script, overrides, message):
    proc = dry_run(script, **overrides)
    assert proc.returncode == 2 and message in proc.stderr and "+ " not in proc.stdout, proc


@pytest.mark.parametrize("script", ["01_build_push_image.sh", "04_build_flex_template.sh", "05_run_flex_template.sh"])
def test_example_env_file_is_enough(script):
    proc = subprocess.run(["bash", str(DEPLOY / script)], env={**BASE, "ENV_FILE": str(EXAMPLE_ENV)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("+ gcloud ")


def test_a_variable_set_on_the_command_line_wins_over_the_env_file():
    # `REGION=europe-west4 ENV_FILE=my.env 04_...`: the file exports REGION too; the caller's value
    # is kept, the file's other values still apply, and an empty value stays empty.
    env = {**BASE, "ENV_FILE": str(EXAMPLE_ENV), "PROJECT": "other-project", "NVIDIA_DRIVER": "",
           "DOCUMENTS": "gs://elsewhere/docs/*.jsonl"}
    proc = subprocess.run(["bash", str(DEPLOY / "05_run_flex_template.sh")], env=env, capture_output=True,
                          text=True, timeout=60)
    [argv] = printed_commands(proc)
    assert opt(argv, "--project") == "other-project"
    assert opt(argv, "--region") == example()["REGION"]
    assert alt_list(opt(argv, "--parameters"))["documents"] == "gs://elsewhere/docs/*.jsonl"
    assert alt_list(opt(argv, "--additional-pipeline-options"))["dataflow_service_options"].endswith(
        ";install-nvidia-driver")
