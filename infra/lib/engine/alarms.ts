import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';

import { EnvironmentConfig } from '../config';
import { engineFamily } from '../naming';
import {
  BROKER_CONNECTED_METRIC,
  PROMETHEUS_NAMESPACE,
  SCRAPE_INTERVAL_SECONDS,
  metricDimensions,
} from './metrics-sidecar';

/** Fixed names of the engine's alarms. */
export function alarmNames(config: EnvironmentConfig) {
  const family = engineFamily(config.name);
  return {
    target5xx: `${family}-target-5xx`,
    loadBalancer5xx: `${family}-alb-5xx`,
    unhealthyTargets: `${family}-unhealthy-targets`,
    cpuHigh: `${family}-cpu-high`,
    brokerDisconnected: `${family}-broker-disconnected`,
  };
}

/**
 * Names of the alarms that make ECS roll a deployment back when they fire during it. The broker
 * alarm is not one of them: a broker outage is no fault of the new version.
 */
export function deploymentAlarmNames(config: EnvironmentConfig): string[] {
  const names = alarmNames(config);
  return [names.target5xx, names.loadBalancer5xx, names.unhealthyTargets];
}

export interface EngineAlarmsProps {
  readonly config: EnvironmentConfig;
  readonly service: ecs.FargateService;
  readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  readonly targetGroup: elbv2.ApplicationTargetGroup;
}

/**
 * The engine's alarms. Each has a fixed name, so the ECS service can name the ones that roll a
 * deployment back without a dependency cycle, and each notifies the environment's SNS topic.
 */
export class EngineAlarms extends Construct {
  readonly topic: sns.Topic;
  /** HTTP 5xx returned by the engine. */
  readonly target5xx: cloudwatch.Alarm;
  /** HTTP 5xx returned by the load balancer itself, such as 503 with no healthy target. */
  readonly loadBalancer5xx: cloudwatch.Alarm;
  /** Targets failing the `/healthz` health check. */
  readonly unhealthyTargets: cloudwatch.Alarm;
  readonly cpuHigh: cloudwatch.Alarm;
  /** The engine's own readiness metric: a task lost or never reached its MQTT broker. */
  readonly brokerDisconnected: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: EngineAlarmsProps) {
    super(scope, id);
    const { config } = props;
    const family = engineFamily(config.name);

    this.topic = new sns.Topic(this, 'Topic', {
      topicName: `${family}-alarms`,
      displayName: `valmetal ${config.name} engine alarms`,
      enforceSSL: true,
    });
    if (config.alarmEmail !== '') {
      this.topic.addSubscription(new subscriptions.EmailSubscription(config.alarmEmail));
    }

    const oneMinute = Duration.minutes(1);
    const names = alarmNames(config);
    this.target5xx = this.alarm('Target5xx', {
      alarmName: names.target5xx,
      alarmDescription: 'The engine answered 5 or more requests with HTTP 5xx in 2 of 3 minutes',
      metric: props.targetGroup.metrics.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, {
        period: oneMinute,
        statistic: cloudwatch.Stats.SUM,
      }),
      threshold: 5,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.loadBalancer5xx = this.alarm('LoadBalancer5xx', {
      alarmName: names.loadBalancer5xx,
      alarmDescription: 'The load balancer returned 5 or more HTTP 5xx of its own in 2 of 3 minutes',
      metric: props.loadBalancer.metrics.httpCodeElb(elbv2.HttpCodeElb.ELB_5XX_COUNT, {
        period: oneMinute,
        statistic: cloudwatch.Stats.SUM,
      }),
      threshold: 5,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.unhealthyTargets = this.alarm('UnhealthyTargets', {
      alarmName: names.unhealthyTargets,
      alarmDescription: "A task failed the load balancer's /healthz check for 3 minutes",
      metric: props.targetGroup.metrics.unhealthyHostCount({
        period: oneMinute,
        statistic: cloudwatch.Stats.MAXIMUM,
      }),
      threshold: 1,
      evaluationPeriods: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.cpuHigh = this.alarm('CpuHigh', {
      alarmName: names.cpuHigh,
      alarmDescription: 'Average CPU of the engine tasks stayed above 85% for 5 minutes',
      metric: props.service.metricCpuUtilization({
        period: oneMinute,
        statistic: cloudwatch.Stats.AVERAGE,
      }),
      threshold: 85,
      evaluationPeriods: 5,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.MISSING,
    });
    // The minimum over all tasks is 0 as soon as one task is disconnected. No data means that
    // no task reported its gauge (the engine publishes it after its first connection, the sidecar
    // may be down, or no task runs), which is as bad as a disconnection.
    this.brokerDisconnected = this.alarm('BrokerDisconnected', {
      alarmName: names.brokerDisconnected,
      alarmDescription:
        `${BROKER_CONNECTED_METRIC} was below 1, or missing, for 5 minutes: ` +
        'an engine task is not connected and subscribed to its MQTT broker, so /readyz returns 503',
      metric: new cloudwatch.Metric({
        namespace: PROMETHEUS_NAMESPACE,
        metricName: BROKER_CONNECTED_METRIC,
        dimensionsMap: metricDimensions(config, family),
        period: Duration.seconds(SCRAPE_INTERVAL_SECONDS),
        statistic: cloudwatch.Stats.MINIMUM,
      }),
      threshold: 1,
      evaluationPeriods: 5,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
  }

  private alarm(id: string, props: cloudwatch.AlarmProps): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, id, props);
    alarm.addAlarmAction(new actions.SnsAction(this.topic));
    alarm.addOkAction(new actions.SnsAction(this.topic));
    return alarm;
  }
}
