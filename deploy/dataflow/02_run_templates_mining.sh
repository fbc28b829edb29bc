#!/usr/bin/env bash
# Run the templates-mining job on Dataflow: CPU workers, Beam's stock SDK container, the project
# shipped to the workers with --setup_file and CPU-only torch with --requirements_file (no custom
# image).
#
# Needs: PROJECT REGION BUCKET, and QUERIES (a glob) or SOURCES (a sources YAML/JSON, gs://).
# Optional: LIBRARY (default gs://BUCKET/library), QUERY_TEXT_FIELD, MINING_MACHINE_TYPE,
# MINING_MAX_WORKERS, JOB_NAME, SERVICE_ACCOUNT, SUBNETWORK, PYTHON. Extra arguments pass through
# to `python -m templates_mining` (e.g. --genericizer rules --num_shards 16). DRY_RUN=1 prints the
# command.
#
# The launcher waits for the job, then writes LIBRARY/report.json and prints the run report;
# exit status 0 when conservation holds, 1 when it does not, 2 on a usage error.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require PROJECT REGION BUCKET
check_bucket
if [[ -n "${QUERIES:-}" && -n "${SOURCES:-}" ]]; then
  die "set QUERIES or SOURCES, not both"
elif [[ -z "${QUERIES:-}" && -z "${SOURCES:-}" ]]; then
  die "missing environment variable: QUERIES (a glob of query files) or SOURCES (a sources YAML/JSON) (see deploy/dataflow/00_env.example)"
fi
GCS="gs://${BUCKET}"
LIBRARY="${LIBRARY:-${GCS}/library}"
require_gs LIBRARY
PY="$(launcher_python)"

if [[ -n "${QUERIES:-}" ]]; then
  require_gs QUERIES
  input=(--queries "${QUERIES}" --text_field "${QUERY_TEXT_FIELD:-text}")
else
  input=(--sources "${SOURCES}")
fi

network=()
[[ -z "${SERVICE_ACCOUNT:-}" ]] || network+=(--service_account_email "${SERVICE_ACCOUNT}")
[[ -z "${SUBNETWORK:-}" ]] || network+=(--subnetwork "${SUBNETWORK}" --no_use_public_ips)

# Paths are relative to the repository root. --setup_file: Beam builds an sdist of this project
# and every worker pip-installs it (and the core pins) at start. --requirements_file: each worker
# installs it before the sdist, so torch is PyTorch's CPU-only build, not PyPI's with its
# gigabytes of CUDA wheels; --requirements_cache skip: the launcher stages that file alone and
# downloads nothing (see the file's header).
cd "${REPO_ROOT}"
run "${PY}" -m templates_mining \
  "${input[@]}" \
  --output "${LIBRARY}" \
  --runner DataflowRunner \
  --project "${PROJECT}" \
  --region "${REGION}" \
  --temp_location "${GCS}/tmp" \
  --staging_location "${GCS}/staging" \
  --setup_file ./setup.py \
  --requirements_file deploy/dataflow/requirements-cpu-workers.txt \
  --requirements_cache skip \
  --job_name "${JOB_NAME:-fi-templates-mining-$(timestamp)}" \
  --machine_type "${MINING_MACHINE_TYPE:-n2-standard-8}" \
  --max_num_workers "${MINING_MAX_WORKERS:-20}" \
  --labels "app=fineinstructions" --labels "job=templates-mining" \
  ${network[@]+"${network[@]}"} \
  "$@"
