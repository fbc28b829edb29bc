#!/usr/bin/env bash
# Run the pipeline job from the Flex Template of 04 (no local Python or checkout needed).
#
# Needs: PROJECT REGION BUCKET IMAGE DOCUMENTS. Optional: METHOD (fineinstructions | instruction_pretrain,
# with SYNTHESIZER_MODEL and ROUNDS), LIBRARY, OUTPUT, TEMPLATE_PATH, GPU_TYPE,
# GPU_COUNT, NVIDIA_DRIVER, GPU_MACHINE_TYPE, MAX_WORKERS, DISK_SIZE_GB, INSTANTIATOR, JUDGE,
# VLLM_GPU_MEMORY_UTILIZATION, VLLM_MAX_MODEL_LEN, JUDGE_VLLM_MAX_MODEL_LEN, MAX_DOCUMENT_CHARS,
# EMBEDDING_DEVICE, JOB_NAME, SERVICE_ACCOUNT, SUBNETWORK. Extra arguments pass through
# to `gcloud dataflow flex-template run`. DRY_RUN=1 prints the command.
#
# The template's parameters (metadata.json) go in --parameters; Beam/Dataflow options (the worker
# image, the GPU) in --additional-pipeline-options. Lists use gcloud's alternate delimiter (^~^)
# because values contain ";" and "=" (and tag distributions contain ",").
# Placement is all_workers only (the worker_accelerator service option): a template parameter
# carries one value (one --vllm_arg, one per step), and right fitting would need the accelerator
# parameter instead.
# A Flex Template run writes no OUTPUT/report.json (flex_template_main.py does not wait for the job).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require PROJECT REGION BUCKET IMAGE DOCUMENTS
check_bucket
GCS="gs://${BUCKET}"
LIBRARY="${LIBRARY:-${GCS}/library}"
OUTPUT="${OUTPUT:-${GCS}/pairs/$(timestamp)}"
TEMPLATE_PATH="${TEMPLATE_PATH:-${GCS}/templates/fineinstructions-pipeline.json}"
require_gs DOCUMENTS LIBRARY OUTPUT TEMPLATE_PATH
NVIDIA_DRIVER="${NVIDIA_DRIVER-latest}"

case "${METHOD:-fineinstructions}" in
  fineinstructions)
    parameters="^~^documents=${DOCUMENTS}~templates=${LIBRARY}~output=${OUTPUT}"
    parameters+="~instantiator=${INSTANTIATOR:-vllm}~judge=${JUDGE:-vllm}"
    parameters+="~vllm_arg=gpu-memory-utilization=${VLLM_GPU_MEMORY_UTILIZATION:-0.45}"
    parameters+="~embedding_device=${EMBEDDING_DEVICE:-cpu}"
    parameters+="~instantiator_vllm_arg=max-model-len=${VLLM_MAX_MODEL_LEN:-16384}"
    parameters+="~judge_vllm_arg=max-model-len=${JUDGE_VLLM_MAX_MODEL_LEN:-4096}"
    parameters+="~max_document_chars=${MAX_DOCUMENT_CHARS:-50000}"
    ;;
  instruction_pretrain)
    # One vLLM server per worker (the synthesizer's): it may take most of the GPU.
    parameters="^~^documents=${DOCUMENTS}~output=${OUTPUT}~method=instruction_pretrain~synthesizer=vllm"
    parameters+="~synthesizer_model=${SYNTHESIZER_MODEL:-instruction-pretrain/instruction-synthesizer}"
    parameters+="~rounds=${ROUNDS:-2}~vllm_arg=gpu-memory-utilization=${VLLM_GPU_MEMORY_UTILIZATION:-0.9}"
    ;;
  *)
    die "METHOD must be fineinstructions or instruction_pretrain (got '${METHOD}')"
    ;;
esac
options="^~^sdk_container_image=${IMAGE}~sdk_location=container"
options+="~dataflow_service_options=worker_accelerator=type:${GPU_TYPE:-nvidia-l4};count:${GPU_COUNT:-1};$(driver_directive)"
options+="~disk_size_gb=${DISK_SIZE_GB:-150}"

network=()
[[ -z "${SERVICE_ACCOUNT:-}" ]] || network+=(--service-account-email "${SERVICE_ACCOUNT}")
[[ -z "${SUBNETWORK:-}" ]] || network+=(--subnetwork "${SUBNETWORK}" --disable-public-ips)

run gcloud dataflow flex-template run "${JOB_NAME:-fi-pipeline-$(timestamp)}" \
  --project "${PROJECT}" \
  --region "${REGION}" \
  --template-file-gcs-location "${TEMPLATE_PATH}" \
  --staging-location "${GCS}/staging" \
  --temp-location "${GCS}/tmp" \
  --worker-machine-type "${GPU_MACHINE_TYPE:-g2-standard-8}" \
  --max-workers "${MAX_WORKERS:-10}" \
  --additional-experiments use_runner_v2 \
  --parameters "${parameters}" \
  --additional-pipeline-options "${options}" \
  ${network[@]+"${network[@]}"} \
  "$@"
