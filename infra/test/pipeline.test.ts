import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { parse } from 'yaml';

import { ENGINE_DATA_DIR, ENGINE_PORT, ENGINE_USER, LIVENESS_PATH } from '../lib/engine/task';
import { REPOSITORY_DIR } from './support';

const WORKFLOWS_DIR = join(REPOSITORY_DIR, '.github', 'workflows');

function workflow(name: string): any {
  return parse(readFileSync(join(WORKFLOWS_DIR, name), 'utf8'));
}

function workflowText(name: string): string {
  return readFileSync(join(WORKFLOWS_DIR, name), 'utf8');
}

/** Returns the steps of every job of a workflow, with the job id. */
function steps(parsed: any): { job: string; step: any }[] {
  return Object.entries(parsed.jobs).flatMap(([job, definition]: [string, any]) =>
    (definition.steps ?? []).map((step: any) => ({ job, step })),
  );
}

function stepIndex(list: any[], predicate: (step: any) => boolean, what: string): number {
  const index = list.findIndex(predicate);
  assert.ok(index >= 0, `no step ${what}`);
  return index;
}

describe('workflows', () => {
  test('ci runs both test scripts', () => {
    const ci = workflow('ci.yml');
    assert.ok('pull_request' in ci.on, 'CI must run on pull requests');
    assert.ok('workflow_call' in ci.on, 'the deploy workflow reuses CI');
    const runs = steps(ci).map(({ step }) => step.run ?? '');
    assert.ok(runs.includes('scripts/test'), 'CI does not run scripts/test');
    assert.ok(runs.includes('infra/test.sh'), 'CI does not run infra/test.sh');
  });

  test('deploy tests before building', () => {
    const deploy = workflow('deploy.yml');
    assert.deepEqual(deploy.on.push.branches, ['main']);
    assert.equal(deploy.jobs.test.uses, './.github/workflows/ci.yml');
    assert.equal(deploy.jobs.build.needs, 'test');
  });

  test('image tagged with commit sha', () => {
    const build = workflow('deploy.yml').jobs.build;
    assert.equal(build.env.VERSION, '${{ github.sha }}');
    const docker = build.steps.find((step: any) => /docker build/.test(step.run ?? ''));
    assert.match(docker.run, /--tag "valmetal:\$VERSION"/);
    assert.match(docker.run, /--build-arg VERSION="\$VERSION"/);
  });

  test('staging checked before production', () => {
    const jobs = workflow('deploy.yml').jobs;
    assert.equal(jobs.staging.needs, 'build');
    assert.equal(jobs.production.needs, 'staging');
    assert.equal(jobs.staging.with.environment, 'staging');
    assert.equal(jobs.production.with.environment, 'production');
    for (const job of [jobs.staging, jobs.production]) {
      assert.equal(job.uses, './.github/workflows/deploy-environment.yml');
      assert.equal(job.with.version, '${{ inputs.version || github.sha }}');
    }
    const list = workflow('deploy-environment.yml').jobs.deploy.steps;
    const registry = stepIndex(list, (s) => /cdk deploy "\$STAGE\/Registry"/.test(s.run ?? ''), 'deploying ECR');
    const push = stepIndex(list, (s) => /push-image\.sh/.test(s.run ?? ''), 'pushing the image');
    const all = stepIndex(list, (s) => /cdk deploy "\$STAGE\/\*"/.test(s.run ?? ''), 'deploying all stacks');
    const check = stepIndex(list, (s) => /check-deployment\.sh/.test(s.run ?? ''), 'checking health');
    assert.ok(registry < push, 'the image is pushed before its repository is deployed');
    assert.ok(push < all, 'the stacks are deployed before the image is pushed');
    assert.ok(all < check, 'the health check runs before the deployment');
    assert.match(list[all].run, /-c version="\$VERSION"/);
  });

  test('aws access through oidc only', () => {
    for (const name of ['ci.yml', 'deploy.yml', 'deploy-environment.yml']) {
      const text = workflowText(name);
      assert.doesNotMatch(text, /aws-access-key-id|aws-secret-access-key|AWS_SECRET_ACCESS_KEY/, name);
    }
    const deployJob = workflow('deploy-environment.yml').jobs.deploy;
    const credentials = deployJob.steps.find((s: any) => /configure-aws-credentials@[0-9a-f]{40}/.test(s.uses ?? ''));
    assert.ok(credentials, 'no pinned configure-aws-credentials step');
    assert.equal(credentials.with['role-to-assume'], '${{ vars.AWS_DEPLOY_ROLE_ARN }}');
    assert.equal(workflow('deploy-environment.yml').permissions['id-token'], 'write');
    assert.equal(workflow('deploy.yml').permissions['id-token'], undefined, 'only deploy jobs get OIDC tokens');
  });

  test('deployments never cancelled', () => {
    const concurrency = workflow('deploy.yml').concurrency;
    assert.equal(concurrency.group, 'deploy');
    assert.equal(concurrency['cancel-in-progress'], false);
    assert.ok(workflow('ci.yml').concurrency.group.startsWith('ci-'));
  });

  test('actions pinned to commits', () => {
    for (const name of ['ci.yml', 'deploy.yml', 'deploy-environment.yml']) {
      for (const { job, step } of steps(workflow(name))) {
        if (step.uses !== undefined) {
          assert.match(step.uses, /^[\w-]+\/[\w-]+@[0-9a-f]{40}$/, `${name} ${job}: ${step.uses}`);
        }
      }
    }
  });

  test('shell steps pass shellcheck', (context) => {
    const shellcheck = process.env.SHELLCHECK;
    if (shellcheck === undefined) {
      context.skip('SHELLCHECK is not set; infra/test.sh sets it');
      return;
    }
    const directory = mkdtempSync(join(tmpdir(), 'valmetal-workflow-steps-'));
    try {
      for (const name of ['ci.yml', 'deploy.yml', 'deploy-environment.yml']) {
        steps(workflow(name)).forEach(({ job, step }, index) => {
          if (step.run === undefined) {
            return;
          }
          // GitHub replaces ${{ }} expressions before the shell runs, so a plain word replaces them.
          const script = step.run.replace(/\$\{\{[^}]*\}\}/g, 'EXPRESSION');
          const file = join(directory, `${name}-${job}-${index}.sh`);
          writeFileSync(file, `#!/usr/bin/env bash\nset -eo pipefail\n${script}`);
          const result = spawnSync(shellcheck, [file], { encoding: 'utf8' });
          assert.equal(result.error, undefined, `cannot run ${shellcheck}: ${result.error}`);
          assert.equal(result.status, 0, `${name} ${job} step ${index}:\n${result.stdout}${result.stderr}`);
        });
      }
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });
});

describe('dockerfile', () => {
  const dockerfile = readFileSync(join(REPOSITORY_DIR, 'Dockerfile'), 'utf8');
  const stages = dockerfile.split(/^FROM /m).slice(1);

  test('multi-stage release build', () => {
    assert.equal(stages.length, 2, 'a builder and a runtime stage');
    assert.match(stages[0], /^rust:\$\{RUST_VERSION\}-slim-\$\{DEBIAN_RELEASE\} AS builder/);
    assert.match(stages[0], /cargo build --release --locked -p valmetal-engine --bin valmetal/);
    assert.match(stages[1], /^debian:\$\{DEBIAN_RELEASE\}-slim AS runtime/);
    assert.match(stages[1], /COPY --from=builder \/out\/valmetal \/usr\/local\/bin\/valmetal/);
  });

  test('runtime user matches task', () => {
    const user = /^USER (\S+)$/m.exec(stages[1]);
    assert.ok(user, 'the runtime stage sets no USER');
    assert.equal(user[1], ENGINE_USER);
    assert.doesNotMatch(user[1], /^(0|root)(:|$)/);
  });

  test('healthcheck on healthz with wget', () => {
    const healthcheck = /^HEALTHCHECK [\s\S]*?CMD (.*)$/m.exec(stages[1]);
    assert.ok(healthcheck, 'no HEALTHCHECK');
    assert.ok(healthcheck[1].includes(`wget -q -O /dev/null http://127.0.0.1:${ENGINE_PORT}${LIVENESS_PATH}`));
    assert.match(stages[1], /apt-get install -y --no-install-recommends wget/, 'wget is not installed');
  });

  test('configured from environment', () => {
    assert.match(stages[1], new RegExp(`VALMETAL_HTTP__ADDR=0\\.0\\.0\\.0:${ENGINE_PORT}`));
    assert.match(stages[1], new RegExp(`VALMETAL_STORAGE__DATA_DIR=${ENGINE_DATA_DIR}`));
    assert.match(stages[1], new RegExp(`^VOLUME \\["${ENGINE_DATA_DIR}"\\]$`, 'm'));
    assert.match(stages[1], /^ENTRYPOINT \["\/usr\/local\/bin\/valmetal"\]$/m);
    assert.match(stages[1], /^CMD \["serve"\]$/m);
  });

  test('build context leaves out the rest', () => {
    const ignored = readFileSync(join(REPOSITORY_DIR, '.dockerignore'), 'utf8').split('\n');
    for (const entry of ['.git', 'target', 'infra', '**/node_modules']) {
      assert.ok(ignored.includes(entry), `.dockerignore lacks ${entry}`);
    }
    for (const needed of ['web', 'rules', 'data', 'engine']) {
      assert.ok(!ignored.includes(needed), `.dockerignore drops ${needed}, which the binary compiles in`);
    }
  });
});
