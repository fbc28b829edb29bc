#!/usr/bin/env bash
# Build the Flex Template spec of the pipeline job: TEMPLATE_PATH (a JSON file in GCS) that points
# at the worker image of 01 (which also holds the Flex Template launcher and
# FLEX_TEMPLATE_PYTHON_PY_FILE=flex_template_main.py) and carries metadata.json's parameters.
#
# Needs: PROJECT REGION BUCKET IMAGE. Optional: TEMPLATE_PATH (default
# gs://BUCKET/templates/fineinstructions-pipeline.json), GPU_MACHINE_TYPE, MAX_WORKERS.
# Extra arguments pass through to `gcloud dataflow flex-template build`. DRY_RUN=1 prints the command.
# Run a job from it with 05_run_flex_template.sh.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require PROJECT REGION BUCKET IMAGE
check_bucket
GCS="gs://${BUCKET}"
TEMPLATE_PATH="${TEMPLATE_PATH:-${GCS}/templates/fineinstructions-pipeline.json}"
require_gs TEMPLATE_PATH
[[ "${TEMPLATE_PATH}" == *.json ]] || die "TEMPLATE_PATH must name a .json file (got '${TEMPLATE_PATH}')"

run gcloud dataflow flex-template build "${TEMPLATE_PATH}" \
  --project "${PROJECT}" \
  --image "${IMAGE}" \
  --sdk-language PYTHON \
  --metadata-file "${DEPLOY_DIR}/metadata.json" \
  --staging-location "${GCS}/staging" \
  --temp-location "${GCS}/tmp" \
  --worker-machine-type "${GPU_MACHINE_TYPE:-g2-standard-8}" \
  --max-workers "${MAX_WORKERS:-10}" \
  --additional-experiments use_runner_v2 \
  --additional-user-labels "app=fineinstructions,job=pipeline" \
  "$@"

echo "Flex Template: ${TEMPLATE_PATH}"
