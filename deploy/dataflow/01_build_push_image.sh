#!/usr/bin/env bash
# Build the GPU worker image (deploy/dataflow/Dockerfile) and push it to Artifact Registry.
#
#   BUILDER=cloudbuild (default): Cloud Build builds and pushes (no local Docker needed).
#   BUILDER=docker: local `docker build` + `docker push` (needs Docker with BuildKit and
#                   `gcloud auth configure-docker REGION-docker.pkg.dev`, done here).
# Creates the Artifact Registry repository AR_REPO in REGION when it is missing.
# Needs: PROJECT REGION IMAGE (AR_REPO for the repository check). DRY_RUN=1 prints the commands.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require PROJECT REGION IMAGE
BUILDER="${BUILDER:-cloudbuild}"
[[ "${BUILDER}" == cloudbuild || "${BUILDER}" == docker ]] \
  || die "BUILDER must be cloudbuild or docker (got '${BUILDER}')"
[[ "${IMAGE}" == *-docker.pkg.dev/*/*/*:* ]] \
  || die "IMAGE must be an Artifact Registry name with a tag, REGION-docker.pkg.dev/PROJECT/REPO/NAME:TAG (got '${IMAGE}')"
[[ "${IMAGE}" != *:latest ]] || die "IMAGE: use a versioned tag, not :latest (workers must all pull the same image)"
REGISTRY="${IMAGE%%/*}"

cd "${REPO_ROOT}"

if [[ -n "${AR_REPO:-}" ]]; then
  if [[ "${DRY_RUN:-0}" == 1 ]] \
    || ! gcloud artifacts repositories describe "${AR_REPO}" --project "${PROJECT}" --location "${REGION}" >/dev/null 2>&1; then
    run gcloud artifacts repositories create "${AR_REPO}" --project "${PROJECT}" --location "${REGION}" \
      --repository-format docker --description "fineinstructions-beam Dataflow worker images"
  fi
fi

case "${BUILDER}" in
  cloudbuild)
    run gcloud builds submit --project "${PROJECT}" --region "${REGION}" \
      --config deploy/dataflow/cloudbuild.yaml \
      --ignore-file deploy/dataflow/build.gcloudignore \
      --substitutions "_IMAGE=${IMAGE}" \
      .
    ;;
  docker)
    run gcloud auth configure-docker "${REGISTRY}" --quiet
    export DOCKER_BUILDKIT=1
    run docker build --file deploy/dataflow/Dockerfile --target worker --tag "${IMAGE}" .
    run docker push "${IMAGE}"
    ;;
esac

echo "Image: ${IMAGE}"
