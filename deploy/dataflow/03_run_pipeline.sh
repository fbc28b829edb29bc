#!/usr/bin/env bash
# Run the pipeline job on Dataflow with vLLM on GPU workers, from the image of 01.
#
# Needs: PROJECT REGION BUCKET IMAGE DOCUMENTS. Optional (defaults in 00_env.example): LIBRARY,
# OUTPUT, GPU_PLACEMENT, GPU_TYPE, GPU_COUNT, NVIDIA_DRIVER, GPU_MACHINE_TYPE, CPU_MACHINE_TYPE,
# MAX_WORKERS, DISK_SIZE_GB, INSTANTIATOR, JUDGE, INSTANTIATOR_MODEL, JUDGE_MODEL,
# VLLM_GPU_MEMORY_UTILIZATION, VLLM_MAX_MODEL_LEN, JUDGE_VLLM_MAX_MODEL_LEN, MAX_DOCUMENT_CHARS,
# EMBEDDING_DEVICE, JOB_NAME, SERVICE_ACCOUNT, SUBNETWORK, PYTHON.
# Extra arguments pass through to `python -m pipeline`. DRY_RUN=1 prints the command.
#
# GPU_PLACEMENT:
#   all_workers (default)  --dataflow_service_options worker_accelerator=... and
#                          --machine_type GPU_MACHINE_TYPE: every worker has the GPU; reading,
#                          embedding and matching share those workers.
#   right_fitting          --accelerator 'type:...;count:...;machine_type:GPU_MACHINE_TYPE;...':
#                          the resource hint on the generation steps (transforms/generation.py)
#                          gives them their own GPU worker pool; the other steps run on
#                          CPU_MACHINE_TYPE workers.
#   Dataflow's right-fitting docs: don't use the worker_accelerator service option together with
#   resource hints, so each mode sets exactly one of the two.
#
# The launcher (this machine, PYTHON) must have this project installed at the image's version with
# apache-beam 2.77.0 on Python 3.11; it waits for the job, then writes OUTPUT/report.json.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require PROJECT REGION BUCKET IMAGE DOCUMENTS
check_bucket
GCS="gs://${BUCKET}"
LIBRARY="${LIBRARY:-${GCS}/library}"
OUTPUT="${OUTPUT:-${GCS}/pairs/$(timestamp)}"
require_gs DOCUMENTS LIBRARY OUTPUT
PY="$(launcher_python)"

INSTANTIATOR="${INSTANTIATOR:-vllm}"
JUDGE="${JUDGE:-vllm}"
set_gpu_placement

models=()
[[ -z "${INSTANTIATOR_MODEL:-}" ]] || models+=(--instantiator_model "${INSTANTIATOR_MODEL}")
[[ -z "${JUDGE_MODEL:-}" ]] || models+=(--judge_model "${JUDGE_MODEL}")

set_network
set_image_job

cd "${REPO_ROOT}"
run "${PY}" -m pipeline \
  --documents "${DOCUMENTS}" \
  --templates "${LIBRARY}" \
  --output "${OUTPUT}" \
  --instantiator "${INSTANTIATOR}" \
  --judge "${JUDGE}" \
  ${models[@]+"${models[@]}"} \
  --vllm_arg "gpu-memory-utilization=${VLLM_GPU_MEMORY_UTILIZATION:-0.45}" \
  --instantiator_vllm_arg "max-model-len=${VLLM_MAX_MODEL_LEN:-16384}" \
  --judge_vllm_arg "max-model-len=${JUDGE_VLLM_MAX_MODEL_LEN:-4096}" \
  --max_document_chars "${MAX_DOCUMENT_CHARS:-50000}" \
  --embedding_device "${EMBEDDING_DEVICE:-cpu}" \
  --job_name "${JOB_NAME:-fi-pipeline-$(timestamp)}" \
  "${image_job[@]}" \
  "${placement[@]}" \
  --labels "app=fineinstructions" --labels "job=pipeline" \
  ${network[@]+"${network[@]}"} \
  "$@"
