#!/usr/bin/env bash
# Checks an environment after `cdk deploy`: the engine service is stable, runs VERSION (ECS did
# not roll it back), every load balancer target passes /healthz, and no alarm fires.
#
# Usage: check-deployment.sh ENVIRONMENT VERSION
#
# The broker-disconnected alarm only warns unless REQUIRE_BROKER_CONNECTED=true, because the
# engine cannot connect to AWS IoT Core until it speaks TLS (see docs/deployment.md).
# Needs AWS credentials of the environment's account.
set -euo pipefail

if (($# != 2)); then
  echo "usage: $0 ENVIRONMENT VERSION" >&2
  exit 2
fi
environment="$1"
version="$2"
cluster="valmetal-${environment}"
service="valmetal-${environment}-engine"
require_broker="${REQUIRE_BROKER_CONNECTED:-false}"
attempts="${HEALTH_CHECK_ATTEMPTS:-30}"
failures=0

fail() {
  echo "::error::$*" >&2
  failures=$((failures + 1))
}

echo "Waiting until $service in $cluster is stable"
aws ecs wait services-stable --cluster "$cluster" --services "$service"

# The backticks are JMESPath literals for the AWS CLI, not shell expansions.
# shellcheck disable=SC2016
read -r rollout_state task_definition < <(aws ecs describe-services --cluster "$cluster" \
  --services "$service" \
  --query 'services[0].deployments[?status==`PRIMARY`] | [0].[rolloutState, taskDefinition]' \
  --output text)
if [[ "$rollout_state" != COMPLETED ]]; then
  fail "the primary deployment of $service is $rollout_state, not COMPLETED"
fi
# shellcheck disable=SC2016
image="$(aws ecs describe-task-definition --task-definition "$task_definition" \
  --query 'taskDefinition.containerDefinitions[?name==`engine`].image | [0]' --output text)"
if [[ "$image" != *":$version" ]]; then
  fail "$service runs $image, not tag $version; ECS may have rolled the deployment back"
else
  echo "$service runs $image"
fi

target_group="$(aws elbv2 describe-target-groups --names "$service" \
  --query 'TargetGroups[0].TargetGroupArn' --output text)"
healthy=false
for ((attempt = 1; attempt <= attempts; attempt++)); do
  states="$(aws elbv2 describe-target-health --target-group-arn "$target_group" \
    --query 'TargetHealthDescriptions[].TargetHealth.State' --output text)"
  read -r -a state_list <<<"$states"
  unhealthy=0
  for state in "${state_list[@]}"; do
    [[ "$state" == healthy ]] || unhealthy=$((unhealthy + 1))
  done
  echo "Attempt $attempt/$attempts: ${#state_list[@]} targets, $unhealthy not healthy (${states:-none})"
  if ((${#state_list[@]} > 0 && unhealthy == 0)); then
    healthy=true
    break
  fi
  sleep 10
done
if [[ "$healthy" != true ]]; then
  fail "not every target of $service passed the /healthz check after $attempts attempts"
fi

firing="$(aws cloudwatch describe-alarms --alarm-name-prefix "$service-" --state-value ALARM \
  --query 'MetricAlarms[].AlarmName' --output text)"
for alarm in $firing; do
  if [[ "$alarm" == "$service-broker-disconnected" && "$require_broker" != true ]]; then
    echo "::warning::$alarm is firing: the engine is not connected to its MQTT broker"
  else
    fail "alarm $alarm is firing"
  fi
done

if ((failures > 0)); then
  echo "$environment: $failures check(s) failed" >&2
  exit 1
fi
echo "$environment: $service is healthy on $version"
