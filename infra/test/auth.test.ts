import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { FARMS_ATTRIBUTE, ROLE_ATTRIBUTE } from '../lib/auth-stack';
import {
  REPOSITORY_DIR,
  Resource,
  SynthesizedEnvironment,
  environments,
  onlyResource,
  referencedId,
  resourcesOfType,
} from './support';

const ROLE_CLAIM = `custom:${ROLE_ATTRIBUTE}`;
const FARMS_CLAIM = `custom:${FARMS_ATTRIBUTE}`;

function userPool(env: SynthesizedEnvironment): { id: string; resource: Resource } {
  const pools = Object.entries(resourcesOfType(env.auth, 'AWS::Cognito::UserPool'));
  assert.equal(pools.length, 1, `${env.name}: user pools`);
  const [id, resource] = pools[0];
  return { id, resource };
}

function dashboardClient(env: SynthesizedEnvironment): { id: string; properties: Record<string, any> } {
  const clients = Object.entries(resourcesOfType(env.auth, 'AWS::Cognito::UserPoolClient'));
  assert.equal(clients.length, 1, `${env.name}: app clients`);
  const [id, resource] = clients[0];
  return { id, properties: resource.Properties! };
}

/** Returns the engine container's plain environment variables by name. */
function engineVariables(env: SynthesizedEnvironment): Record<string, any> {
  const definitions = onlyResource(env.engine, 'AWS::ECS::TaskDefinition').Properties!.ContainerDefinitions;
  const engine = definitions.find((definition: any) => definition.Name === 'engine');
  return Object.fromEntries(engine.Environment.map((v: { Name: string; Value: unknown }) => [v.Name, v.Value]));
}

/**
 * Renders a value of the engine template as text. A string stays as it is, and an output of
 * the auth stack that is a `Ref` becomes `{logical id}`. Any other reference fails the test.
 */
function render(env: SynthesizedEnvironment, value: unknown): string {
  if (typeof value === 'string') {
    return value;
  }
  const record = value as Record<string, any>;
  if (record['Fn::Join'] !== undefined) {
    const [separator, parts] = record['Fn::Join'];
    return parts.map((part: unknown) => render(env, part)).join(separator);
  }
  const reference = record['Fn::GetStackOutput'];
  assert.ok(reference, `${env.name}: unexpected value ${JSON.stringify(value)}`);
  assert.equal(reference.StackName, env.stage.auth.stackName, `${env.name}: output of another stack`);
  const output = env.auth.toJSON().Outputs[reference.OutputName];
  assert.ok(output, `${env.name}: the auth stack has no output ${reference.OutputName}`);
  const id = output.Value.Ref;
  assert.equal(typeof id, 'string', `${env.name}: ${reference.OutputName} is not a Ref`);
  return `{${id}}`;
}

describe('user pool', () => {
  test('admins create users only', () => {
    for (const env of environments()) {
      const properties = userPool(env).resource.Properties!;
      assert.deepEqual(properties.AdminCreateUserConfig, { AllowAdminCreateUserOnly: true }, env.name);
      assert.deepEqual(properties.UsernameAttributes, ['email'], `${env.name}: sign-in by e-mail`);
      assert.deepEqual(properties.UsernameConfiguration, { CaseSensitive: false }, env.name);
      assert.deepEqual(properties.AutoVerifiedAttributes, ['email'], env.name);
    }
  });

  test('strong password policy', () => {
    for (const env of environments()) {
      const policy = userPool(env).resource.Properties!.Policies.PasswordPolicy;
      assert.ok(policy.MinimumLength >= 12, `${env.name}: minimum length ${policy.MinimumLength}`);
      assert.equal(policy.RequireLowercase, true, env.name);
      assert.equal(policy.RequireUppercase, true, env.name);
      assert.equal(policy.RequireNumbers, true, env.name);
      assert.equal(policy.RequireSymbols, true, env.name);
      assert.ok(policy.TemporaryPasswordValidityDays <= 7, env.name);
    }
  });

  test('optional totp mfa', () => {
    for (const env of environments()) {
      const properties = userPool(env).resource.Properties!;
      assert.equal(properties.MfaConfiguration, 'OPTIONAL', env.name);
      assert.deepEqual(properties.EnabledMfas, ['SOFTWARE_TOKEN_MFA'], `${env.name}: TOTP only, no SMS`);
    }
  });

  test('recovery by email only', () => {
    for (const env of environments()) {
      const properties = userPool(env).resource.Properties!;
      assert.deepEqual(
        properties.AccountRecoverySetting,
        { RecoveryMechanisms: [{ Name: 'verified_email', Priority: 1 }] },
        env.name,
      );
      assert.deepEqual(
        properties.UserAttributeUpdateSettings,
        { AttributesRequireVerificationBeforeUpdate: ['email'] },
        `${env.name}: a changed address applies once verified`,
      );
    }
  });

  test('retained with retainData', () => {
    const retained = environments().filter((env) => env.config.retainData);
    assert.ok(retained.length > 0, 'no environment in cdk.json sets retainData');
    for (const env of environments()) {
      const { resource } = userPool(env);
      const expectedPolicy = env.config.retainData ? 'Retain' : 'Delete';
      assert.equal(resource.DeletionPolicy, expectedPolicy, env.name);
      assert.equal(resource.UpdateReplacePolicy, expectedPolicy, env.name);
      assert.equal(
        resource.Properties!.DeletionProtection,
        env.config.retainData ? 'ACTIVE' : 'INACTIVE',
        env.name,
      );
    }
  });

  test('custom role and farms attributes', () => {
    for (const env of environments()) {
      const schema: Record<string, any>[] = userPool(env).resource.Properties!.Schema;
      for (const name of [ROLE_ATTRIBUTE, FARMS_ATTRIBUTE]) {
        const attribute = schema.find((entry) => entry.Name === name);
        assert.ok(attribute, `${env.name}: no custom attribute ${name}`);
        assert.equal(attribute.AttributeDataType, 'String', `${env.name}: ${name}`);
        assert.equal(attribute.Mutable, true, `${env.name}: ${name} must change when a user's access changes`);
      }
      const farms = schema.find((entry) => entry.Name === FARMS_ATTRIBUTE)!;
      assert.equal(farms.StringAttributeConstraints.MaxLength, '2048', env.name);
      const role = schema.find((entry) => entry.Name === ROLE_ATTRIBUTE)!;
      const longestRole = Math.max(...['admin', 'operator', 'farm_viewer'].map((name) => name.length));
      assert.ok(Number(role.StringAttributeConstraints.MaxLength) >= longestRole, env.name);
    }
  });

  test('claims match engine defaults', () => {
    // The engine container sets no claim names, so the defaults of docs/configuration.md must
    // be the pool's attribute names with Cognito's `custom:` prefix.
    const documentation = readFileSync(join(REPOSITORY_DIR, 'docs', 'configuration.md'), 'utf8');
    assert.match(documentation, new RegExp(`^\\| \`role_claim\` \\| \`"${ROLE_CLAIM}"\` \\|`, 'm'));
    assert.match(documentation, new RegExp(`^\\| \`farms_claim\` \\| \`"${FARMS_CLAIM}"\` \\|`, 'm'));
    for (const env of environments()) {
      const variables = engineVariables(env);
      assert.equal(variables.VALMETAL_AUTH__ROLE_CLAIM, undefined, env.name);
      assert.equal(variables.VALMETAL_AUTH__FARMS_CLAIM, undefined, env.name);
    }
  });
});

describe('user groups', () => {
  test('one group per role', () => {
    for (const env of environments()) {
      const poolId = userPool(env).id;
      const groups = Object.values(resourcesOfType(env.auth, 'AWS::Cognito::UserPoolGroup')).map(
        (group) => group.Properties!,
      );
      assert.deepEqual(
        groups.map((group) => group.GroupName).sort(),
        ['admin', 'farm_viewer', 'operator'],
        env.name,
      );
      for (const group of groups) {
        assert.deepEqual(group.UserPoolId, { Ref: poolId }, `${env.name}: ${group.GroupName}`);
      }
      const precedence = (name: string) => groups.find((group) => group.GroupName === name)!.Precedence;
      assert.ok(precedence('admin') < precedence('operator'), env.name);
      assert.ok(precedence('operator') < precedence('farm_viewer'), env.name);
    }
  });
});

describe('dashboard client', () => {
  test('public client with srp and refresh', () => {
    for (const env of environments()) {
      const { properties } = dashboardClient(env);
      assert.deepEqual(properties.UserPoolId, { Ref: userPool(env).id }, env.name);
      assert.equal(properties.GenerateSecret, false, `${env.name}: a browser cannot keep a secret`);
      assert.deepEqual(
        [...properties.ExplicitAuthFlows].sort(),
        ['ALLOW_REFRESH_TOKEN_AUTH', 'ALLOW_USER_PASSWORD_AUTH', 'ALLOW_USER_SRP_AUTH'],
        env.name,
      );
      assert.equal(properties.AllowedOAuthFlowsUserPoolClient, false, `${env.name}: no hosted UI flows`);
      assert.equal(properties.AllowedOAuthFlows, undefined, env.name);
      assert.equal(properties.CallbackURLs, undefined, env.name);
    }
  });

  test('tokens valid one hour', () => {
    for (const env of environments()) {
      const { properties } = dashboardClient(env);
      assert.equal(properties.TokenValidityUnits.IdToken, 'minutes', env.name);
      assert.equal(properties.TokenValidityUnits.AccessToken, 'minutes', env.name);
      assert.equal(properties.IdTokenValidity, 60, env.name);
      assert.equal(properties.AccessTokenValidity, 60, env.name);
      assert.equal(properties.EnableTokenRevocation, true, env.name);
    }
  });

  test('user existence errors hidden', () => {
    for (const env of environments()) {
      assert.equal(dashboardClient(env).properties.PreventUserExistenceErrors, 'ENABLED', env.name);
    }
  });

  test('reads role and farms', () => {
    for (const env of environments()) {
      const read: string[] = dashboardClient(env).properties.ReadAttributes;
      assert.ok(read.includes(ROLE_CLAIM), `${env.name}: ${read}`);
      assert.ok(read.includes(FARMS_CLAIM), `${env.name}: ${read}`);
      assert.ok(read.includes('email'), `${env.name}: ${read}`);
    }
  });

  test('cannot write role or farms', () => {
    for (const env of environments()) {
      const write: string[] | undefined = dashboardClient(env).properties.WriteAttributes;
      // Without a list, Cognito's default set applies instead of the attributes checked here.
      assert.ok(Array.isArray(write), `${env.name}: WriteAttributes must be explicit`);
      assert.ok(write.length > 0, `${env.name}: WriteAttributes is empty`);
      assert.ok(!write.includes(ROLE_CLAIM), `${env.name}: users could grant themselves a role`);
      assert.ok(!write.includes(FARMS_CLAIM), `${env.name}: users could grant themselves farms`);
      assert.deepEqual(
        write.filter((name) => name.startsWith('custom:')),
        [],
        `${env.name}: no custom attribute is writable`,
      );
    }
  });
});

describe('auth outputs', () => {
  test('pool, client and issuer', () => {
    for (const env of environments()) {
      const outputs = env.auth.toJSON().Outputs;
      const poolId = userPool(env).id;
      assert.deepEqual(outputs.UserPoolId?.Value, { Ref: poolId }, env.name);
      assert.deepEqual(outputs.DashboardClientId?.Value, { Ref: dashboardClient(env).id }, env.name);
      assert.deepEqual(
        outputs.Issuer?.Value,
        { 'Fn::Join': ['', [`https://cognito-idp.${env.config.region}.amazonaws.com/`, { Ref: poolId }]] },
        env.name,
      );
    }
  });
});

describe('engine auth settings', () => {
  test('jwt mode with cognito issuer', () => {
    for (const env of environments()) {
      const variables = engineVariables(env);
      const issuer = `https://cognito-idp.${env.config.region}.amazonaws.com/{${userPool(env).id}}`;
      assert.equal(variables.VALMETAL_AUTH__MODE, 'jwt', env.name);
      assert.equal(render(env, variables.VALMETAL_AUTH__ISSUER), issuer, env.name);
      assert.equal(render(env, variables.VALMETAL_AUTH__JWKS_URL), `${issuer}/.well-known/jwks.json`, env.name);
      assert.equal(variables.VALMETAL_AUTH__JWKS_FILE, undefined, `${env.name}: jwks_url and jwks_file exclude each other`);
    }
  });

  test('audience is dashboard client', () => {
    for (const env of environments()) {
      const audience = render(env, engineVariables(env).VALMETAL_AUTH__AUDIENCE);
      // The same array form as VALMETAL_STORAGE__TIMESERIES.
      assert.deepEqual(JSON.parse(audience), [`{${dashboardClient(env).id}}`], env.name);
    }
  });

  test('tasks reach jwks over https', () => {
    for (const env of environments()) {
      const network = onlyResource(env.engine, 'AWS::ECS::Service').Properties!.NetworkConfiguration.AwsvpcConfiguration;
      const groupId = referencedId(network.SecurityGroups[0]);
      const group = resourcesOfType(env.engine, 'AWS::EC2::SecurityGroup')[groupId!];
      const egress: Record<string, any>[] = group.Properties!.SecurityGroupEgress;
      const https = egress.filter(
        (rule) =>
          rule.CidrIp === '0.0.0.0/0' &&
          (rule.IpProtocol === '-1' || (rule.IpProtocol === 'tcp' && rule.FromPort <= 443 && rule.ToPort >= 443)),
      );
      assert.ok(https.length > 0, `${env.name}: the service security group blocks outbound HTTPS`);

      // The tasks have no public IP, so each of their subnets needs a default route to a NAT gateway.
      const associations = Object.values(resourcesOfType(env.engine, 'AWS::EC2::SubnetRouteTableAssociation'));
      const routes = Object.values(resourcesOfType(env.engine, 'AWS::EC2::Route'));
      for (const subnet of network.Subnets) {
        const association = associations.find((a) => referencedId(a.Properties!.SubnetId) === referencedId(subnet));
        assert.ok(association, `${env.name}: subnet ${referencedId(subnet)} has no route table`);
        const tableId = referencedId(association.Properties!.RouteTableId);
        const natRoute = routes.find(
          (route) =>
            referencedId(route.Properties!.RouteTableId) === tableId &&
            route.Properties!.DestinationCidrBlock === '0.0.0.0/0' &&
            route.Properties!.NatGatewayId !== undefined,
        );
        assert.ok(natRoute, `${env.name}: subnet ${referencedId(subnet)} has no default route to a NAT gateway`);
      }
    }
  });
});
