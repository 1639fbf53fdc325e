#!/usr/bin/env bash
# Pushes the engine image of one commit to an environment's ECR repository.
#
# Usage: push-image.sh ENVIRONMENT VERSION
#
# ENVIRONMENT is a settings name of infra/cdk.json (staging, production); VERSION is the full
# commit SHA. The local image valmetal:VERSION is pushed as REPOSITORY:VERSION. Tags are
# immutable, so when the repository has the tag already (a rerun, or a redeploy of an older
# commit) nothing is pushed and no local image is needed. Needs AWS credentials and docker.
set -euo pipefail

if (($# != 2)); then
  echo "usage: $0 ENVIRONMENT VERSION" >&2
  exit 2
fi
environment="$1"
version="$2"
repository_name="valmetal-${environment}-engine"

if ! [[ "$version" =~ ^[0-9a-f]{40}$ ]]; then
  echo "error: VERSION must be a full 40-character commit SHA, got '$version'" >&2
  exit 2
fi

if output="$(aws ecr describe-images --repository-name "$repository_name" \
  --image-ids imageTag="$version" --output text 2>&1)"; then
  echo "$repository_name already has tag $version; not pushing"
  exit 0
elif [[ "$output" != *ImageNotFoundException* ]]; then
  echo "error: cannot look up tag $version in $repository_name: $output" >&2
  exit 1
fi

local_image="valmetal:$version"
if ! docker image inspect "$local_image" >/dev/null 2>&1; then
  echo "error: $repository_name has no tag $version and there is no local image $local_image;" \
    "build it, or redeploy a commit whose image was pushed before" >&2
  exit 1
fi

repository_uri="$(aws ecr describe-repositories --repository-names "$repository_name" \
  --query 'repositories[0].repositoryUri' --output text)"
registry="${repository_uri%%/*}"
aws ecr get-login-password | docker login --username AWS --password-stdin "$registry"
docker tag "$local_image" "$repository_uri:$version"
docker push "$repository_uri:$version"
echo "Pushed $repository_uri:$version (image id $(docker image inspect --format '{{.Id}}' "$local_image"))"
