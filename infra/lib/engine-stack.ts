import { CfnOutput, Duration, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

import { APPLICATION_NAME, EnvironmentConfig } from './config';
import { TelemetryTable } from './data-stack';
import { EngineAlarms, deploymentAlarmNames } from './engine/alarms';
import { engineAuthEnvironment } from './engine/auth';
import { EngineDatabase } from './engine/database';
import { engineDocumentsEnvironment } from './engine/documents';
import { createVpc } from './engine/network';
import { engineTaskStatements } from './engine/permissions';
import { engineStorageEnvironment } from './engine/storage';
import { ENGINE_CONTAINER_NAME, ENGINE_PORT, EngineTask, LIVENESS_PATH } from './engine/task';
import { engineFamily, resourcePrefix } from './naming';

/** Idle timeout of the load balancer, long because dashboards keep a WebSocket open for hours. */
export const IDLE_TIMEOUT_SECONDS = 3600;

export interface EngineStackProps extends StackProps {
  readonly config: EnvironmentConfig;
  readonly version: string;
  readonly repository: ecr.IRepository;
  readonly deviceStateTableArn: string;
  readonly deviceStateTableName: string;
  /** Undefined when the environment has no Timestream for LiveAnalytics table. */
  readonly telemetryTable?: TelemetryTable;
  /** Cognito user pool whose tokens the engine accepts on `/api/v1/` and `/ws`. */
  readonly userPoolId: string;
  /** App client of the dashboard in that pool. */
  readonly userPoolClientId: string;
  /** S3 bucket of equipment documents, in the data stack. */
  readonly documentsBucketName: string;
  readonly documentsBucketArn: string;
}

/**
 * The running engine: VPC, ECS cluster and service on Fargate, the load balancer in front of
 * the dashboard, `/ws` and the API, auto scaling, logs and alarms, and the PostgreSQL database,
 * which lives here because it needs the VPC.
 */
export class EngineStack extends Stack {
  readonly service: ecs.FargateService;
  readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  readonly alarms: EngineAlarms;
  readonly database: EngineDatabase;

  constructor(scope: Construct, id: string, props: EngineStackProps) {
    super(scope, id, props);
    const { config } = props;
    const prefix = resourcePrefix(config.name);
    const family = engineFamily(config.name);
    const removalPolicy = config.retainData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;

    const vpc = createVpc(this, config);
    this.database = new EngineDatabase(this, 'Database', { config, vpc, removalPolicy });

    const cluster = new ecs.Cluster(this, 'Cluster', {
      clusterName: prefix,
      vpc,
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
    });
    // Only the FARGATE capacity provider is associated: no EC2 capacity and no Spot, whose
    // interruptions would cut every dashboard's WebSocket.
    const capacityProviders = new ecs.CfnClusterCapacityProviderAssociations(this, 'CapacityProviders', {
      cluster: cluster.clusterName,
      capacityProviders: ['FARGATE'],
      defaultCapacityProviderStrategy: [{ capacityProvider: 'FARGATE', weight: 1 }],
    });

    const logGroup = new logs.LogGroup(this, 'EngineLogs', {
      logGroupName: `/${APPLICATION_NAME}/${config.name}/engine`,
      retention: config.logRetentionDays,
      removalPolicy,
    });
    // A literal name, not a reference, because it is embedded in the sidecar's JSON settings.
    const metricsLogGroupName = `/${APPLICATION_NAME}/${config.name}/engine-metrics`;
    const metricsLogGroup = new logs.LogGroup(this, 'EngineMetricLogs', {
      logGroupName: metricsLogGroupName,
      retention: config.logRetentionDays,
      removalPolicy,
    });

    const task = new EngineTask(this, 'Engine', {
      config,
      version: props.version,
      repository: props.repository,
      logGroup,
      metricsLogGroupName,
      taskStatements: engineTaskStatements({
        config,
        deviceStateTableArn: props.deviceStateTableArn,
        telemetryTableArn: props.telemetryTable?.arn,
        metricsLogGroupName,
        documentsBucketArn: props.documentsBucketArn,
      }),
      storageEnvironment: engineStorageEnvironment({
        config,
        deviceStateTableName: props.deviceStateTableName,
        telemetryTable: props.telemetryTable,
        databaseUrl: this.database.url,
      }),
      authEnvironment: engineAuthEnvironment({
        region: config.region,
        userPoolId: props.userPoolId,
        clientId: props.userPoolClientId,
      }),
      documentsEnvironment: engineDocumentsEnvironment({
        region: config.region,
        bucketName: props.documentsBucketName,
      }),
      databaseSecret: this.database.secret,
    });
    task.node.addDependency(metricsLogGroup);

    const serviceSecurityGroup = new ec2.SecurityGroup(this, 'ServiceSecurityGroup', {
      vpc,
      description: 'valmetal engine tasks: HTTP from the load balancer only',
      // Tasks reach the MQTT broker, ECR, CloudWatch, the data stores and the Cognito JWKS
      // over HTTPS and MQTT through the NAT gateways, and the database on its port.
      allowAllOutbound: true,
    });
    this.database.allowConnectionsFrom(serviceSecurityGroup, 'PostgreSQL from the engine tasks');

    this.service = new ecs.FargateService(this, 'Service', {
      serviceName: family,
      cluster,
      taskDefinition: task.taskDefinition,
      capacityProviderStrategies: [{ capacityProvider: 'FARGATE', weight: 1 }],
      platformVersion: ecs.FargatePlatformVersion.LATEST,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      assignPublicIp: false,
      securityGroups: [serviceSecurityGroup],
      enableECSManagedTags: true,
      propagateTags: ecs.PropagatedTagSource.TASK_DEFINITION,
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      healthCheckGracePeriod: Duration.seconds(60),
      circuitBreaker: { enable: true, rollback: true },
      deploymentAlarms: {
        alarmNames: deploymentAlarmNames(config),
        behavior: ecs.AlarmBehavior.ROLLBACK_ON_ALARM,
      },
    });
    this.service.node.addDependency(capacityProviders);

    // Every task keeps the state of every device, because each one subscribes to all
    // equipment topics. More tasks share the dashboards' WebSockets and REST calls, but each
    // task still handles every message.
    const scaling = this.service.autoScaleTaskCount({
      minCapacity: config.minTasks,
      maxCapacity: config.maxTasks,
    });
    scaling.scaleOnCpuUtilization('CpuScaling', {
      targetUtilizationPercent: 60,
      scaleOutCooldown: Duration.minutes(1),
      scaleInCooldown: Duration.minutes(5),
    });
    scaling.scaleOnMemoryUtilization('MemoryScaling', {
      targetUtilizationPercent: 75,
      scaleOutCooldown: Duration.minutes(1),
      scaleInCooldown: Duration.minutes(5),
    });

    const { loadBalancer, targetGroup } = this.createLoadBalancer(config, vpc);
    this.loadBalancer = loadBalancer;

    this.alarms = new EngineAlarms(this, 'Alarms', {
      config,
      service: this.service,
      loadBalancer,
      targetGroup,
    });

    new CfnOutput(this, 'LoadBalancerDnsName', {
      description: 'Point the dashboard DNS name (the certificate name) at this address',
      value: loadBalancer.loadBalancerDnsName,
    });
    new CfnOutput(this, 'ClusterName', { value: cluster.clusterName });
    new CfnOutput(this, 'ServiceName', { value: this.service.serviceName });
    new CfnOutput(this, 'TargetGroupArn', { value: targetGroup.targetGroupArn });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.alarms.topic.topicArn });
    new CfnOutput(this, 'DatabaseEndpoint', { value: this.database.instance.dbInstanceEndpointAddress });
    new CfnOutput(this, 'DatabaseSecretArn', {
      description: 'Secret with the user and password of the engine database',
      value: this.database.secret.secretArn,
    });
  }

  private createLoadBalancer(config: EnvironmentConfig, vpc: ec2.IVpc) {
    const securityGroup = new ec2.SecurityGroup(this, 'LoadBalancerSecurityGroup', {
      vpc,
      description: 'valmetal load balancer: HTTPS and HTTP from the allowed networks',
      allowAllOutbound: false,
    });
    for (const cidr of config.ingressCidrs) {
      securityGroup.addIngressRule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(443), `HTTPS from ${cidr}`);
      securityGroup.addIngressRule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(80), `HTTP redirect from ${cidr}`);
    }

    const loadBalancer = new elbv2.ApplicationLoadBalancer(this, 'LoadBalancer', {
      loadBalancerName: engineFamily(config.name),
      vpc,
      internetFacing: true,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      securityGroup,
      idleTimeout: Duration.seconds(IDLE_TIMEOUT_SECONDS),
      dropInvalidHeaderFields: true,
      deletionProtection: config.retainData,
    });

    loadBalancer.addListener('Http', {
      port: 80,
      protocol: elbv2.ApplicationProtocol.HTTP,
      open: false,
      defaultAction: elbv2.ListenerAction.redirect({ protocol: 'HTTPS', port: '443', permanent: true }),
    });
    const https = loadBalancer.addListener('Https', {
      port: 443,
      protocol: elbv2.ApplicationProtocol.HTTPS,
      certificates: [elbv2.ListenerCertificate.fromArn(config.certificateArn)],
      sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
      open: false,
    });

    // The target health check requests /healthz, not /readyz, because /readyz returns 503 while
    // the broker is unreachable. ECS would then replace every healthy task in a loop during a
    // broker outage. The broker-disconnected alarm watches readiness instead.
    const targetGroup = https.addTargets('Engine', {
      targetGroupName: engineFamily(config.name),
      port: ENGINE_PORT,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targets: [
        this.service.loadBalancerTarget({ containerName: ENGINE_CONTAINER_NAME, containerPort: ENGINE_PORT }),
      ],
      healthCheck: {
        path: LIVENESS_PATH,
        healthyHttpCodes: '200',
        interval: Duration.seconds(15),
        timeout: Duration.seconds(5),
        healthyThresholdCount: 2,
        unhealthyThresholdCount: 3,
      },
      // Connections still open after this are cut, and the dashboards reconnect on their own.
      deregistrationDelay: Duration.seconds(30),
    });

    // Prometheus metrics are for the sidecar on the task's loopback interface, not the internet.
    https.addAction('HideMetrics', {
      priority: 10,
      conditions: [elbv2.ListenerCondition.pathPatterns(['/metrics', '/metrics/*'])],
      action: elbv2.ListenerAction.fixedResponse(404, {
        contentType: 'text/plain',
        messageBody: 'not found',
      }),
    });

    return { loadBalancer, targetGroup };
  }
}
