# shellcheck shell=bash
# Sourced by the numbered scripts in this folder (not run on its own).
#
# - ENV_FILE=path: a file of `export NAME=value` lines (a copy of 00_env.example) to source first;
#   a variable already set in the environment keeps its value.
# - DRY_RUN=1: print each command (shell-quoted, one line, prefixed with "+") instead of running it.
# - PYTHON: the interpreter that launches the jobs (default: the repository's .venv).

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${DEPLOY_DIR}/../.." && pwd)"
export DEPLOY_DIR REPO_ROOT

die() {
  echo "error: $*" >&2
  exit 2
}

if [[ -n "${ENV_FILE:-}" ]]; then
  [[ -f "${ENV_FILE}" ]] || die "ENV_FILE=${ENV_FILE} does not exist"
  # A variable already set (NAME=value ENV_FILE=f script) wins over the file's `export NAME=`.
  declare -A _preset=()
  while IFS= read -r _name; do
    if [[ -n "${!_name+set}" ]]; then _preset["${_name}"]="${!_name}"; fi
  done < <(sed -n 's/^[[:space:]]*export[[:space:]]\{1,\}\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' "${ENV_FILE}")
  # shellcheck source=/dev/null
  source "${ENV_FILE}"
  for _name in "${!_preset[@]}"; do export "${_name}=${_preset[${_name}]}"; done
  unset _preset _name
fi

# require NAME...: every NAME must be set and non-empty.
require() {
  local missing=() name
  for name in "$@"; do
    [[ -n "${!name:-}" ]] || missing+=("${name}")
  done
  if ((${#missing[@]})); then
    die "missing environment variable(s): ${missing[*]} (documented in deploy/dataflow/00_env.example; set them or pass ENV_FILE=...)"
  fi
}

# require_gs NAME...: each value must be a gs:// URL.
require_gs() {
  local name
  for name in "$@"; do
    [[ "${!name}" == gs://?* ]] || die "${name} must be a gs:// URL, got '${!name}'"
  done
}

# check_bucket: BUCKET is a bare bucket name (gs://BUCKET is derived from it).
check_bucket() {
  [[ "${BUCKET}" != gs://* && "${BUCKET}" != */* ]] \
    || die "BUCKET is a bucket name, not a URL or path (got '${BUCKET}'); e.g. BUCKET=my-fineinstructions"
}

# driver_directive: install-nvidia-driver[:NVIDIA_DRIVER] (NVIDIA_DRIVER empty: the plain directive).
driver_directive() {
  if [[ -n "${NVIDIA_DRIVER:-}" ]]; then
    echo "install-nvidia-driver:${NVIDIA_DRIVER}"
  else
    echo "install-nvidia-driver"
  fi
}

# set_gpu_placement: the array `placement` for GPU_PLACEMENT (all_workers | right_fitting), from
# GPU_TYPE, GPU_COUNT, NVIDIA_DRIVER, GPU_MACHINE_TYPE and CPU_MACHINE_TYPE (defaults set here).
# Dataflow's right-fitting docs: don't combine the worker_accelerator service option with
# resource hints, so each mode sets exactly one of the two.
set_gpu_placement() {
  GPU_PLACEMENT="${GPU_PLACEMENT:-all_workers}"
  GPU_TYPE="${GPU_TYPE:-nvidia-l4}"
  GPU_COUNT="${GPU_COUNT:-1}"
  NVIDIA_DRIVER="${NVIDIA_DRIVER-latest}"
  GPU_MACHINE_TYPE="${GPU_MACHINE_TYPE:-g2-standard-8}"
  CPU_MACHINE_TYPE="${CPU_MACHINE_TYPE:-n2-standard-8}"
  case "${GPU_PLACEMENT}" in
    all_workers)
      placement=(
        --dataflow_service_options "worker_accelerator=type:${GPU_TYPE};count:${GPU_COUNT};$(driver_directive)"
        --machine_type "${GPU_MACHINE_TYPE}"
      )
      ;;
    right_fitting)
      placement=(
        --accelerator "type:${GPU_TYPE};count:${GPU_COUNT};machine_type:${GPU_MACHINE_TYPE};$(driver_directive)"
        --machine_type "${CPU_MACHINE_TYPE}"
      )
      ;;
    *)
      die "GPU_PLACEMENT must be all_workers or right_fitting (got '${GPU_PLACEMENT}')"
      ;;
  esac
}

# set_image_job: the array `image_job`: a Dataflow job in the worker image IMAGE (Runner v2), with
# GCS's tmp/ and staging/, MAX_WORKERS and DISK_SIZE_GB (03 and 06).
set_image_job() {
  image_job=(
    --runner DataflowRunner
    --project "${PROJECT}"
    --region "${REGION}"
    --temp_location "gs://${BUCKET}/tmp"
    --staging_location "gs://${BUCKET}/staging"
    --sdk_container_image "${IMAGE}"
    --sdk_location container
    --experiments use_runner_v2
    --max_num_workers "${MAX_WORKERS:-10}"
    --disk_size_gb "${DISK_SIZE_GB:-150}"
  )
}

# set_network: the array `network` from SERVICE_ACCOUNT and SUBNETWORK (Beam's flags).
set_network() {
  network=()
  [[ -z "${SERVICE_ACCOUNT:-}" ]] || network+=(--service_account_email "${SERVICE_ACCOUNT}")
  [[ -z "${SUBNETWORK:-}" ]] || network+=(--subnetwork "${SUBNETWORK}" --no_use_public_ips)
}

run() {
  if [[ "${DRY_RUN:-0}" == 1 ]]; then
    printf '+'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}

timestamp() { date -u +%Y%m%d-%H%M%S; }

launcher_python() {
  local python="${PYTHON:-${REPO_ROOT}/.venv/bin/python}"
  if [[ "${DRY_RUN:-0}" != 1 && ! -x "${python}" ]] && ! command -v "${python}" >/dev/null; then
    die "no Python at '${python}': run 'make install' (creates .venv) or set PYTHON to a Python 3.11 with this project installed"
  fi
  echo "${python}"
}
