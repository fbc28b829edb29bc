#!/usr/bin/env bash
# Run Instruction Pre-Training on Dataflow: the instruction synthesizer on vLLM on GPU workers,
# from the image of 01; writes OUTPUT/pairs/ and the instruction-augmented corpus OUTPUT/augmented/.
#
# Needs: PROJECT REGION BUCKET IMAGE DOCUMENTS. Optional (defaults in 00_env.example): OUTPUT,
# GPU_PLACEMENT, GPU_TYPE, GPU_COUNT, NVIDIA_DRIVER, GPU_MACHINE_TYPE, CPU_MACHINE_TYPE, MAX_WORKERS,
# DISK_SIZE_GB, SYNTHESIZER_MODEL, ROUNDS, VLLM_GPU_MEMORY_UTILIZATION, JOB_NAME, SERVICE_ACCOUNT,
# SUBNETWORK, PYTHON. Extra arguments pass through to `python -m pipeline`. DRY_RUN=1 prints the command.
#
# One vLLM server per worker (the synthesizer's; no judge beside it), so it may take most of the
# GPU: VLLM_GPU_MEMORY_UTILIZATION defaults to 0.9. Mistral-7B in bf16 is ~14.5 GB of an L4's 24 GB;
# the server's max-model-len is the synthesizer's 4,096-token context (set by the job).
# GPU_PLACEMENT as in 03: all_workers (default) or right_fitting.
# SYNTHESIZER_MODEL: the hub name (default) or a gs:// copy of it in your bucket (no hub download on
# each worker: copy it once with `gcloud storage cp -r`).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require PROJECT REGION BUCKET IMAGE DOCUMENTS
check_bucket
GCS="gs://${BUCKET}"
OUTPUT="${OUTPUT:-${GCS}/augmented/$(timestamp)}"
require_gs DOCUMENTS OUTPUT
PY="$(launcher_python)"
set_gpu_placement
set_network
set_image_job

cd "${REPO_ROOT}"
run "${PY}" -m pipeline \
  --method instruction_pretrain \
  --documents "${DOCUMENTS}" \
  --output "${OUTPUT}" \
  --synthesizer vllm \
  --synthesizer_model "${SYNTHESIZER_MODEL:-instruction-pretrain/instruction-synthesizer}" \
  --rounds "${ROUNDS:-2}" \
  --vllm_arg "gpu-memory-utilization=${VLLM_GPU_MEMORY_UTILIZATION:-0.9}" \
  --job_name "${JOB_NAME:-fi-instruction-pretrain-$(timestamp)}" \
  "${image_job[@]}" \
  "${placement[@]}" \
  --labels "app=fineinstructions" --labels "job=instruction-pretrain" \
  ${network[@]+"${network[@]}"} \
  "$@"
