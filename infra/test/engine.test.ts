import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { IDLE_TIMEOUT_SECONDS } from '../lib/engine-stack';
import { deploymentAlarmNames } from '../lib/engine/alarms';
import { BROKER_CONNECTED_METRIC, PROMETHEUS_NAMESPACE } from '../lib/engine/metrics-sidecar';
import {
  CLIENT_ID_FILE,
  ENGINE_DATA_DIR,
  ENGINE_PORT,
  ENGINE_USER,
  LIVENESS_PATH,
  RESTART_ATTEMPT_PERIOD_SECONDS,
} from '../lib/engine/task';
import { engineClientIdPrefix, engineFamily } from '../lib/naming';
import {
  REPOSITORY_DIR,
  Resource,
  SynthesizedEnvironment,
  VERSION,
  environments,
  iamStatements,
  onlyResource,
  referencedId,
  resourcesOfType,
  subnetIds,
} from './support';

/** The dashboard pings its WebSocket this often (`PING_INTERVAL_MS` in web/app.js). */
const DASHBOARD_PING_SECONDS = 20;

/** Default `drain_timeout` of each engine sink (`BatcherConfig` in engine/src/sinks/batcher.rs). */
const SINK_DRAIN_SECONDS = 10;
/** The engine's MQTT and HTTP drains on SIGTERM, 2 s each, before the sinks drain. */
const INGEST_AND_HTTP_DRAIN_SECONDS = 4;

function taskDefinition(env: SynthesizedEnvironment): Resource {
  return onlyResource(env.engine, 'AWS::ECS::TaskDefinition');
}

function container(env: SynthesizedEnvironment, name: string): Record<string, any> {
  const found = taskDefinition(env).Properties!.ContainerDefinitions.find((c: any) => c.Name === name);
  assert.ok(found, `${env.name}: no container named ${name}`);
  return found;
}

function service(env: SynthesizedEnvironment): Record<string, any> {
  return onlyResource(env.engine, 'AWS::ECS::Service').Properties!;
}

/** Returns the value of a plain environment variable of a container definition. */
function variable(definition: Record<string, any>, name: string): unknown {
  return definition.Environment.find((v: { Name: string }) => v.Name === name)?.Value;
}

/**
 * Builds the set of `VALMETAL_*` variables that docs/configuration.md documents. A heading such
 * as "### `[storage.journal]`" opens a section. The first cell of a table row lists its keys,
 * such as "`aws.region`, `aws.endpoint_url`", and each dot becomes a double underscore.
 */
function documentedVariables(documentation: string): Set<string> {
  const documented = new Set<string>();
  let sections: string[] = [];
  for (const line of documentation.split('\n')) {
    if (/^#{2,3} /.test(line)) {
      sections = [...line.matchAll(/`\[([\w.]+)\]`/g)].map((match) => match[1]);
      continue;
    }
    const firstCell = /^\| ([^|]+) \|/.exec(line);
    if (firstCell === null) {
      continue;
    }
    const keys = [...firstCell[1].matchAll(/`([\w.]+)`/g)].map((match) => match[1]);
    for (const section of sections) {
      for (const key of keys) {
        const path = `${section}.${key}`.split('.').map((part) => part.toUpperCase());
        documented.add(`VALMETAL_${path.join('__')}`);
      }
    }
  }
  return documented;
}

describe('task definition', () => {
  test('one family per environment', () => {
    // The engine serves the dashboard from its own binary, so a web-client family would be empty.
    for (const env of environments()) {
      const definitions = env.templates.flatMap((t) => Object.values(resourcesOfType(t, 'AWS::ECS::TaskDefinition')));
      assert.equal(definitions.length, 1, `${env.name}: task definitions`);
      assert.equal(definitions[0].Properties!.Family, engineFamily(env.name));
      const services = env.templates.flatMap((t) => Object.values(resourcesOfType(t, 'AWS::ECS::Service')));
      assert.equal(services.length, 1, `${env.name}: services`);
    }
  });

  test('cpu and memory at task level', () => {
    for (const env of environments()) {
      const properties = taskDefinition(env).Properties!;
      assert.equal(properties.Cpu, '512', env.name);
      assert.equal(properties.Memory, '1024', env.name);
      for (const definition of properties.ContainerDefinitions) {
        assert.equal(definition.Cpu, undefined, `${env.name}: ${definition.Name} sets container CPU`);
        assert.equal(definition.Memory, undefined, `${env.name}: ${definition.Name} sets a container memory limit`);
      }
    }
  });

  test('awsvpc network mode', () => {
    for (const env of environments()) {
      assert.equal(taskDefinition(env).Properties!.NetworkMode, 'awsvpc', env.name);
    }
  });

  test('fargate capacity provider only', () => {
    for (const env of environments()) {
      assert.deepEqual(taskDefinition(env).Properties!.RequiresCompatibilities, ['FARGATE'], env.name);
      const properties = service(env);
      assert.equal(properties.LaunchType, undefined, `${env.name}: a launch type bypasses the capacity provider`);
      assert.deepEqual(
        properties.CapacityProviderStrategy.map((s: any) => s.CapacityProvider),
        ['FARGATE'],
        env.name,
      );
      const association = onlyResource(env.engine, 'AWS::ECS::ClusterCapacityProviderAssociations').Properties!;
      assert.deepEqual(association.CapacityProviders, ['FARGATE'], env.name);
      assert.deepEqual(
        association.DefaultCapacityProviderStrategy.map((s: any) => s.CapacityProvider),
        ['FARGATE'],
        env.name,
      );
    }
  });

  test('engine image tagged with commit', () => {
    for (const env of environments()) {
      const image = JSON.stringify(container(env, 'engine').Image);
      assert.match(image, new RegExp(`:${VERSION}"`), `${env.name}: ${image}`);
      assert.match(image, /EngineRepository/, `${env.name}: image is not from the engine repository`);
    }
  });

  test('engine runs unprivileged', () => {
    for (const env of environments()) {
      const engine = container(env, 'engine');
      assert.equal(engine.User, ENGINE_USER, env.name);
      assert.doesNotMatch(engine.User, /^0(:|$)|^root/, env.name);
      assert.equal(engine.ReadonlyRootFilesystem, true, env.name);
      assert.equal(engine.Privileged, undefined, env.name);
      assert.deepEqual(
        engine.MountPoints,
        [{ ContainerPath: ENGINE_DATA_DIR, ReadOnly: false, SourceVolume: 'data' }],
        `${env.name}: the data directory needs a writable volume`,
      );
    }
  });

  test('container health check on healthz', () => {
    for (const env of environments()) {
      const check = container(env, 'engine').HealthCheck;
      assert.equal(check.Command[0], 'CMD-SHELL', env.name);
      assert.match(check.Command[1], new RegExp(`^wget .*http://127\\.0\\.0\\.1:${ENGINE_PORT}${LIVENESS_PATH} `), env.name);
    }
  });

  test('engine settings are documented keys', () => {
    // The engine rejects unknown configuration keys, so every VALMETAL_ variable must map to a
    // key of docs/configuration.md.
    const documentation = readFileSync(join(REPOSITORY_DIR, 'docs', 'configuration.md'), 'utf8');
    const documented = documentedVariables(documentation);
    assert.ok(documented.has('VALMETAL_MQTT__CLIENT_ID'), 'the documentation parser found no keys');
    assert.ok(
      documented.has('VALMETAL_STORAGE__DYNAMODB__AWS__REGION'),
      'the documentation parser found no nested keys',
    );
    for (const env of environments()) {
      const engine = container(env, 'engine');
      const names = engine.Environment.map((v: { Name: string }) => v.Name);
      const secrets = (engine.Secrets ?? []).map((v: { Name: string }) => v.Name);
      const fromCommand = [...engine.Command.join(' ').matchAll(/VALMETAL_\w+/g)].map((m) => m[0]);
      for (const name of [...names, ...secrets, ...fromCommand].filter((n: string) => n.startsWith('VALMETAL_'))) {
        assert.ok(documented.has(name), `${env.name}: ${name} is not a documented engine setting`);
      }
      assert.equal(variable(engine, 'VALMETAL_HTTP__ADDR'), `0.0.0.0:${ENGINE_PORT}`, env.name);
      assert.equal(variable(engine, 'VALMETAL_MQTT__TOPIC_PREFIX'), env.config.topicPrefix, env.name);
      assert.equal(variable(engine, 'VALMETAL_MQTT__HOST'), env.config.mqttHost, env.name);
      assert.equal(variable(engine, 'VALMETAL_STORAGE__DATA_DIR'), ENGINE_DATA_DIR, env.name);
    }
  });

  test('client id within connect grant', () => {
    for (const env of environments()) {
      const command = container(env, 'engine').Command.join(' ');
      const prefix = engineClientIdPrefix(env.name);
      assert.ok(
        command.includes(`[ -s ${CLIENT_ID_FILE} ] || cat /proc/sys/kernel/random/uuid > ${CLIENT_ID_FILE};`),
        `${env.name}: the client id is not created once per task: ${command}`,
      );
      assert.ok(
        command.includes(`VALMETAL_MQTT__CLIENT_ID="${prefix}$(cat ${CLIENT_ID_FILE})"`),
        `${env.name}: ${command}`,
      );
      assert.ok(CLIENT_ID_FILE.startsWith(`${ENGINE_DATA_DIR}/`), 'the client id file is not on the task volume');
      assert.match(command, /exec \/usr\/local\/bin\/valmetal serve$/, env.name);
      const connect = iamStatements(env.engine).filter((s) => s.actions.includes('iot:Connect'));
      assert.equal(connect.length, 1, env.name);
      assert.deepEqual(connect[0].resources, [
        `arn:aws:iot:${env.config.region}:${env.config.account}:client/${prefix}*`,
      ]);
    }
  });

  test('engine restarts inside its task', () => {
    for (const env of environments()) {
      const engine = container(env, 'engine');
      assert.deepEqual(
        engine.RestartPolicy,
        { Enabled: true, RestartAttemptPeriod: RESTART_ATTEMPT_PERIOD_SECONDS },
        env.name,
      );
      assert.ok(RESTART_ATTEMPT_PERIOD_SECONDS >= 60, 'ECS accepts at least 60 s');
      assert.ok(RESTART_ATTEMPT_PERIOD_SECONDS <= 1800, 'ECS accepts at most 1800 s');
      assert.equal(engine.Essential, true, env.name);
      // The journal survives a restart only on a task volume: no host path, EFS or Docker volume.
      const volumes = taskDefinition(env).Properties!.Volumes;
      assert.deepEqual(volumes, [{ Name: 'data' }], `${env.name}: the data volume is not a plain task volume`);
      const mount = engine.MountPoints.find((m: any) => m.SourceVolume === 'data');
      assert.equal(mount?.ContainerPath, variable(engine, 'VALMETAL_STORAGE__DATA_DIR'), env.name);
      assert.equal(mount?.ReadOnly, false, env.name);
    }
  });

  test('stop timeout covers sink drains', () => {
    for (const env of environments()) {
      const engine = container(env, 'engine');
      const timeseries = JSON.parse(String(variable(engine, 'VALMETAL_STORAGE__TIMESERIES')));
      // One sink per time-series store, one for device documents and one for the equipment.
      const sinks = timeseries.length + 2;
      const needed = INGEST_AND_HTTP_DRAIN_SECONDS + sinks * SINK_DRAIN_SECONDS;
      assert.ok(engine.StopTimeout >= needed, `${env.name}: stop timeout ${engine.StopTimeout} s, drains need ${needed} s`);
      assert.ok(engine.StopTimeout <= 120, `${env.name}: Fargate allows at most 120 s`);
    }
  });
});

describe('service', () => {
  test('managed tags propagated from task definition', () => {
    for (const env of environments()) {
      assert.equal(service(env).EnableECSManagedTags, true, env.name);
      assert.equal(service(env).PropagateTags, 'TASK_DEFINITION', env.name);
    }
  });

  test('tasks in private subnets without public ip', () => {
    for (const env of environments()) {
      const network = service(env).NetworkConfiguration.AwsvpcConfiguration;
      assert.equal(network.AssignPublicIp, 'DISABLED', env.name);
      const used = network.Subnets.map(referencedId).sort();
      assert.deepEqual(used, subnetIds(env.engine, 'Private'), env.name);
      assert.equal(used.length, env.config.availabilityZones.length, env.name);
      for (const [id, subnet] of Object.entries(resourcesOfType(env.engine, 'AWS::EC2::Subnet'))) {
        if (used.includes(id)) {
          assert.notEqual(subnet.Properties!.MapPublicIpOnLaunch, true, `${env.name}: ${id}`);
        }
      }
    }
  });

  test('auto scaling on cpu and memory', () => {
    for (const env of environments()) {
      const target = onlyResource(env.engine, 'AWS::ApplicationAutoScaling::ScalableTarget').Properties!;
      assert.equal(target.ScalableDimension, 'ecs:service:DesiredCount', env.name);
      assert.equal(target.MinCapacity, env.config.minTasks, env.name);
      assert.equal(target.MaxCapacity, env.config.maxTasks, env.name);
      const metrics = Object.values(resourcesOfType(env.engine, 'AWS::ApplicationAutoScaling::ScalingPolicy'))
        .map((policy) => {
          assert.equal(policy.Properties!.PolicyType, 'TargetTrackingScaling', env.name);
          return policy.Properties!.TargetTrackingScalingPolicyConfiguration.PredefinedMetricSpecification
            .PredefinedMetricType;
        })
        .sort();
      assert.deepEqual(metrics, ['ECSServiceAverageCPUUtilization', 'ECSServiceAverageMemoryUtilization'], env.name);
    }
  });

  test('circuit breaker and alarms roll back', () => {
    for (const env of environments()) {
      const deployment = service(env).DeploymentConfiguration;
      assert.deepEqual(deployment.DeploymentCircuitBreaker, { Enable: true, Rollback: true }, env.name);
      assert.equal(deployment.MinimumHealthyPercent, 100, env.name);
      assert.deepEqual(
        deployment.Alarms,
        { AlarmNames: deploymentAlarmNames(env.config), Enable: true, Rollback: true },
        env.name,
      );
      const alarmNames = Object.values(resourcesOfType(env.engine, 'AWS::CloudWatch::Alarm')).map(
        (alarm) => alarm.Properties!.AlarmName,
      );
      for (const name of deployment.Alarms.AlarmNames) {
        assert.ok(alarmNames.includes(name), `${env.name}: deployment alarm ${name} does not exist`);
      }
    }
  });
});

describe('load balancer', () => {
  function listener(env: SynthesizedEnvironment, port: number): Record<string, any> {
    const found = Object.values(resourcesOfType(env.engine, 'AWS::ElasticLoadBalancingV2::Listener')).filter(
      (l) => l.Properties!.Port === port,
    );
    assert.equal(found.length, 1, `${env.name}: listeners on port ${port}`);
    return found[0].Properties!;
  }

  test('https with certificate from context', () => {
    for (const env of environments()) {
      const https = listener(env, 443);
      assert.equal(https.Protocol, 'HTTPS', env.name);
      assert.deepEqual(https.Certificates, [{ CertificateArn: env.config.certificateArn }], env.name);
      assert.match(https.SslPolicy, /^ELBSecurityPolicy-TLS13-/, env.name);
    }
  });

  test('http redirects to https', () => {
    for (const env of environments()) {
      const http = listener(env, 80);
      assert.equal(http.Protocol, 'HTTP', env.name);
      assert.deepEqual(
        http.DefaultActions,
        [{ Type: 'redirect', RedirectConfig: { Port: '443', Protocol: 'HTTPS', StatusCode: 'HTTP_301' } }],
        env.name,
      );
    }
  });

  test('idle timeout suits websockets', () => {
    for (const env of environments()) {
      const attributes = onlyResource(env.engine, 'AWS::ElasticLoadBalancingV2::LoadBalancer').Properties!
        .LoadBalancerAttributes;
      const idle = attributes.find((a: any) => a.Key === 'idle_timeout.timeout_seconds');
      assert.equal(idle?.Value, String(IDLE_TIMEOUT_SECONDS), env.name);
      assert.ok(IDLE_TIMEOUT_SECONDS >= 3600, 'dashboards hold a WebSocket for hours');
      assert.ok(IDLE_TIMEOUT_SECONDS > 3 * DASHBOARD_PING_SECONDS);
      const stickiness = onlyResource(env.engine, 'AWS::ElasticLoadBalancingV2::TargetGroup').Properties!
        .TargetGroupAttributes?.find((a: any) => a.Key === 'stickiness.enabled');
      assert.notEqual(stickiness?.Value, 'true', `${env.name}: sticky sessions are not needed`);
    }
  });

  test('internet-facing in public subnets', () => {
    for (const env of environments()) {
      const loadBalancer = onlyResource(env.engine, 'AWS::ElasticLoadBalancingV2::LoadBalancer').Properties!;
      assert.equal(loadBalancer.Scheme, 'internet-facing', env.name);
      assert.equal(loadBalancer.Type, 'application', env.name);
      assert.deepEqual(loadBalancer.Subnets.map(referencedId).sort(), subnetIds(env.engine, 'Public'), env.name);
    }
  });

  test('ingress only from allowed networks', () => {
    for (const env of environments()) {
      const loadBalancer = onlyResource(env.engine, 'AWS::ElasticLoadBalancingV2::LoadBalancer').Properties!;
      const groupId = referencedId(loadBalancer.SecurityGroups[0])!;
      const group = resourcesOfType(env.engine, 'AWS::EC2::SecurityGroup')[groupId].Properties!;
      const rules = group.SecurityGroupIngress.map((r: any) => `${r.CidrIp}:${r.FromPort}`).sort();
      const expected = env.config.ingressCidrs.flatMap((cidr) => [`${cidr}:443`, `${cidr}:80`]).sort();
      assert.deepEqual(rules, expected, env.name);
      assert.ok(!rules.some((r: string) => r.startsWith('0.0.0.0/0')), `${env.name}: open to the internet`);
    }
  });

  test('target health check on healthz', () => {
    for (const env of environments()) {
      const group = onlyResource(env.engine, 'AWS::ElasticLoadBalancingV2::TargetGroup').Properties!;
      assert.equal(group.HealthCheckPath, LIVENESS_PATH, env.name);
      assert.equal(group.Matcher.HttpCode, '200', env.name);
      assert.equal(group.TargetType, 'ip', env.name);
      assert.equal(group.Port, ENGINE_PORT, env.name);
    }
  });

  test('metrics path not exposed', () => {
    for (const env of environments()) {
      const rule = onlyResource(env.engine, 'AWS::ElasticLoadBalancingV2::ListenerRule').Properties!;
      assert.deepEqual(rule.Conditions[0].PathPatternConfig.Values, ['/metrics', '/metrics/*'], env.name);
      assert.equal(rule.Actions[0].Type, 'fixed-response', env.name);
      assert.equal(rule.Actions[0].FixedResponseConfig.StatusCode, '404', env.name);
    }
  });
});

describe('observability', () => {
  function alarms(env: SynthesizedEnvironment): Record<string, any>[] {
    return Object.values(resourcesOfType(env.engine, 'AWS::CloudWatch::Alarm')).map((a) => a.Properties!);
  }

  test('container insights enabled', () => {
    for (const env of environments()) {
      const cluster = onlyResource(env.engine, 'AWS::ECS::Cluster').Properties!;
      assert.deepEqual(cluster.ClusterSettings, [{ Name: 'containerInsights', Value: 'enabled' }], env.name);
    }
  });

  test('log group per service with retention', () => {
    for (const env of environments()) {
      const groups = resourcesOfType(env.engine, 'AWS::Logs::LogGroup');
      for (const [id, group] of Object.entries(groups)) {
        assert.equal(group.Properties!.RetentionInDays, env.config.logRetentionDays, `${env.name}: ${id}`);
      }
      const engineLogs = container(env, 'engine').LogConfiguration;
      assert.equal(engineLogs.LogDriver, 'awslogs', env.name);
      const groupId = referencedId(engineLogs.Options['awslogs-group'])!;
      assert.equal(groups[groupId].Properties!.LogGroupName, `/valmetal/${env.name}/engine`, env.name);
    }
  });

  test('alarms on 5xx', () => {
    for (const env of environments()) {
      const names = alarms(env).map((a) => `${a.Namespace}/${a.MetricName}`);
      assert.ok(names.includes('AWS/ApplicationELB/HTTPCode_Target_5XX_Count'), env.name);
      assert.ok(names.includes('AWS/ApplicationELB/HTTPCode_ELB_5XX_Count'), env.name);
    }
  });

  test('alarm on cpu', () => {
    for (const env of environments()) {
      const cpu = alarms(env).filter((a) => a.Namespace === 'AWS/ECS' && a.MetricName === 'CPUUtilization');
      assert.equal(cpu.length, 1, env.name);
      assert.equal(cpu[0].ComparisonOperator, 'GreaterThanThreshold', env.name);
      const dimensions = cpu[0].Dimensions.map((d: any) => d.Name).sort();
      assert.deepEqual(dimensions, ['ClusterName', 'ServiceName'], env.name);
    }
  });

  test('alarm on engine broker metric', () => {
    for (const env of environments()) {
      const broker = alarms(env).filter((a) => a.MetricName === BROKER_CONNECTED_METRIC);
      assert.equal(broker.length, 1, env.name);
      const alarm = broker[0];
      assert.equal(alarm.Namespace, PROMETHEUS_NAMESPACE, env.name);
      assert.equal(alarm.Statistic, 'Minimum', env.name);
      assert.equal(alarm.ComparisonOperator, 'LessThanThreshold', env.name);
      assert.equal(alarm.Threshold, 1, env.name);
      assert.equal(alarm.TreatMissingData, 'breaching', `${env.name}: a silent engine must alarm`);

      // The sidecar must publish that metric with the dimensions the alarm watches.
      const agent = container(env, 'cloudwatch-agent');
      assert.equal(agent.Essential, false, env.name);
      const variable = (name: string) => agent.Environment.find((v: any) => v.Name === name).Value;
      const scrape = JSON.parse(variable('PROMETHEUS_CONFIG_CONTENT'));
      const target = scrape.scrape_configs[0].static_configs[0];
      assert.deepEqual(target.targets, [`127.0.0.1:${ENGINE_PORT}`], env.name);
      const dimensions = Object.fromEntries(alarm.Dimensions.map((d: any) => [d.Name, d.Value]));
      assert.deepEqual(target.labels, dimensions, env.name);
      const agentConfig = JSON.parse(variable('CW_CONFIG_CONTENT'));
      const declaration = agentConfig.logs.metrics_collected.prometheus.emf_processor.metric_declaration[0];
      assert.ok(declaration.metric_selectors.includes(`^${BROKER_CONNECTED_METRIC}$`), env.name);
      assert.deepEqual(declaration.dimensions, [Object.keys(dimensions)], env.name);
    }
  });

  test('every alarm notifies the topic', () => {
    for (const env of environments()) {
      const topicId = Object.keys(resourcesOfType(env.engine, 'AWS::SNS::Topic'))[0];
      for (const alarm of alarms(env)) {
        assert.deepEqual(alarm.AlarmActions, [{ Ref: topicId }], `${env.name}: ${alarm.AlarmName}`);
      }
    }
  });
});
