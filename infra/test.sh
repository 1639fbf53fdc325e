#!/usr/bin/env bash
# Tests the deployment side of valmetal without an AWS account or a Docker engine:
#   1. installs the CDK app's npm packages (npm ci) when package-lock.json changed,
#   2. compiles the app and its tests with tsc,
#   3. installs the linters of lint-requirements.txt from PyPI into a virtual environment,
#   4. runs the assertion tests with Node's test runner,
#   5. synthesizes every environment with `cdk synth`, offline, into a temporary directory,
#   6. lints the Dockerfile (hadolint), the GitHub workflows (JSON schema and zizmor) and the
#      shell scripts (shellcheck).
# Every step runs even after a failure; the script exits 1 if any step failed.
#
# Environment: VALMETAL_LINT_VENV sets where the linters are installed (default: a directory
# under ~/.cache). Needs Node.js 20 or newer with npm, Python 3 with venv, and git.
set -euo pipefail

infra_dir="$(cd "$(dirname "$0")" && pwd)"
repository_dir="$(dirname "$infra_dir")"
cd "$infra_dir"

lint_venv="${VALMETAL_LINT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/valmetal-infra-lint}"
scratch_dir="$(mktemp -d)"
trap 'rm -rf "$scratch_dir"' EXIT

# Synth must not reach AWS: no credentials, no instance metadata, no telemetry or notices.
export CDK_DISABLE_CLI_TELEMETRY=1
export AWS_EC2_METADATA_DISABLED=true
offline_env=(env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE
  -u AWS_CONTAINER_CREDENTIALS_RELATIVE_URI -u AWS_CONTAINER_CREDENTIALS_FULL_URI
  -u AWS_WEB_IDENTITY_TOKEN_FILE AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null)

summary=()
failed=0
script_start=$SECONDS

# Runs one step and records its result and duration; a failing step does not stop the others.
run_step() {
  local name="$1"
  shift
  local start=$SECONDS
  echo
  echo "==> $name"
  if "$@"; then
    summary+=("ok      $name ($((SECONDS - start)) s)")
  else
    summary+=("FAILED  $name ($((SECONDS - start)) s)")
    failed=$((failed + 1))
  fi
}

check_node() {
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')" || return 1
  if ((major < 20)); then
    echo "error: Node.js $major is too old; aws-cdk-lib needs Node.js 20 or newer" >&2
    return 1
  fi
  echo "Node.js $(node --version), npm $(npm --version)"
}

install_packages() {
  # npm records what it installed in node_modules/.package-lock.json.
  if [[ -f node_modules/.package-lock.json && node_modules/.package-lock.json -nt package-lock.json ]]; then
    echo "node_modules is up to date with package-lock.json"
    return 0
  fi
  npm ci --no-audit --no-fund
}

build() {
  # A clean output directory keeps tests that were renamed or deleted from running.
  rm -rf dist && npm run --silent build
}

install_linters() {
  local stamp="$lint_venv/requirements.txt"
  if [[ -x "$lint_venv/bin/python" ]] && cmp -s lint-requirements.txt "$stamp"; then
    echo "Linters in $lint_venv are up to date"
    return 0
  fi
  rm -rf "$lint_venv"
  python3 -m venv "$lint_venv" \
    && "$lint_venv/bin/pip" install --quiet --disable-pip-version-check -r lint-requirements.txt \
    && cp lint-requirements.txt "$stamp" \
    && echo "Installed the linters into $lint_venv"
}

run_assertion_tests() {
  # The workflow test runs shellcheck on the workflows' shell steps when it is available.
  SHELLCHECK="$lint_venv/bin/shellcheck" node --test dist/test/*.test.js
}

synthesize() {
  local version out="$scratch_dir/cdk.out"
  version="$(git -C "$repository_dir" rev-parse HEAD 2>/dev/null)" \
    || version=0000000000000000000000000000000000000000
  "${offline_env[@]}" npx cdk synth --no-notices --no-version-reporting --quiet \
    -c version="$version" -o "$out" || return 1
  local templates
  templates="$(find "$out" -name '*.template.json' | wc -l)"
  echo "Synthesized $templates templates for version $version"
  if ((templates != 15)); then
    echo "error: expected 15 templates (5 stacks in each of 3 environments), found $templates" >&2
    return 1
  fi
}

lint_dockerfile() {
  "$lint_venv/bin/hadolint" "$repository_dir/Dockerfile" && echo "hadolint: Dockerfile passed"
}

lint_workflows() {
  local workflows=("$repository_dir"/.github/workflows/*.yml)
  "$lint_venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows "${workflows[@]}" || return 1
  # Low-severity findings are style advice. Among them, the self-repository hint suggests a
  # `uses:` syntax that GitHub's workflow schema does not describe.
  "$lint_venv/bin/zizmor" --offline --min-severity medium "${workflows[@]}"
}

lint_shell_scripts() {
  "$lint_venv/bin/shellcheck" test.sh scripts/*.sh && echo "shellcheck: scripts passed"
}

run_step "Node.js 20 or newer" check_node
run_step "npm packages" install_packages
run_step "TypeScript build" build
run_step "linters from PyPI" install_linters
run_step "assertion tests" run_assertion_tests
run_step "cdk synth of all environments, offline" synthesize
run_step "Dockerfile lint" lint_dockerfile
run_step "GitHub workflow lint" lint_workflows
run_step "shell script lint" lint_shell_scripts

echo
echo "infra/test.sh summary ($((SECONDS - script_start)) s):"
printf '  %s\n' "${summary[@]}"
echo "Docker is not run here: the image is checked by hadolint and the Dockerfile tests only."
if ((failed > 0)); then
  echo "infra/test.sh: $failed of ${#summary[@]} steps failed; see the FAILED lines above and the output of those steps" >&2
  exit 1
fi
echo "infra/test.sh: all ${#summary[@]} steps passed"
