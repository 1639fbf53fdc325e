#!/usr/bin/env node
import { execFileSync } from 'node:child_process';

import { App } from 'aws-cdk-lib';

import { addEnvironments } from '../lib/app';
import { VERSION_CONTEXT_KEY } from '../lib/config';

const app = new App();
// Without `-c version=SHA`, the checked-out commit names the image to deploy.
if (app.node.tryGetContext(VERSION_CONTEXT_KEY) === undefined) {
  try {
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
    app.node.setContext(VERSION_CONTEXT_KEY, head);
  } catch (error) {
    throw new Error(
      `no -c ${VERSION_CONTEXT_KEY}=SHA given and \`git rev-parse HEAD\` failed (${String(error)}); ` +
        'pass the full commit SHA of the image to deploy',
    );
  }
}
addEnvironments(app);
app.synth();
