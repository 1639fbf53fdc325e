/**
 * Per-environment settings, read from the CDK context (`cdk.json` or `-c` flags) and validated
 * before any construct is created, so a typo fails `cdk synth` with the key that is wrong.
 */

/** Environments the app deploys, in pipeline order. */
export const ENVIRONMENT_NAMES = ['development', 'staging', 'production'] as const;
export type EnvironmentName = (typeof ENVIRONMENT_NAMES)[number];

/** Context key of the settings object in `cdk.json`. */
export const SETTINGS_CONTEXT_KEY = 'valmetal';

/** Context key of the git commit SHA that tags the image and every resource. */
export const VERSION_CONTEXT_KEY = 'version';

export const APPLICATION_NAME = 'valmetal';

/** Settings of one environment; every field is required in `cdk.json`. */
export interface EnvironmentConfig {
  readonly name: EnvironmentName;
  /** 12-digit AWS account id. */
  readonly account: string;
  readonly region: string;
  /** Availability zones of the VPC, listed so that synth needs no AWS lookup. */
  readonly availabilityZones: string[];
  readonly vpcCidr: string;
  readonly natGateways: number;
  /** ACM certificate of the HTTPS listener; it must be in the environment's region. */
  readonly certificateArn: string;
  /**
   * DNS name of the dashboard, such as `valmetal.example.com`, without scheme or path. The
   * documents bucket accepts browser uploads and downloads from `https://{dashboardDomain}`.
   */
  readonly dashboardDomain: string;
  /** Networks allowed to reach the load balancer on ports 443 and 80. */
  readonly ingressCidrs: string[];
  /** MQTT broker host, normally the account's AWS IoT Core ATS endpoint. */
  readonly mqttHost: string;
  readonly mqttPort: number;
  /** Topic prefix of the equipment topics, `{prefix}/{device_id}/telemetry`. */
  readonly topicPrefix: string;
  readonly minTasks: number;
  readonly maxTasks: number;
  readonly logRetentionDays: number;
  /**
   * Whether to create the Timestream for LiveAnalytics database. AWS closed that service to
   * new customers on 2025-06-20, so an account that never used it must set this to false.
   */
  readonly timestreamLiveAnalytics: boolean;
  readonly timestreamMemoryRetentionHours: number;
  readonly timestreamMagneticRetentionDays: number;
  /** Keep stateful resources (tables, database, repository, logs) when their stack is deleted. */
  readonly retainData: boolean;
  /** RDS instance class of the PostgreSQL database, without the `db.` prefix, such as `t4g.micro`. */
  readonly databaseInstanceType: string;
  /** Allocated gp3 storage of the database in GiB, 20 to 65536. */
  readonly databaseStorageGiB: number;
  /** Whether RDS keeps a standby of the database in a second availability zone. */
  readonly databaseMultiAz: boolean;
  /** Days RDS keeps automated backups of the database, 1 to 35. */
  readonly databaseBackupRetentionDays: number;
  /** Address subscribed to the alarm topic; empty for none. */
  readonly alarmEmail: string;
  /** CloudWatch agent image of the metrics sidecar, pinned to a release tag. */
  readonly cloudwatchAgentImage: string;
}

/** Values that CloudWatch Logs accepts as a retention period, in days. */
export const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
  3288, 3653,
];

type FieldKind = 'string' | 'number' | 'boolean' | 'string[]';

const FIELD_KINDS: Record<Exclude<keyof EnvironmentConfig, 'name'>, FieldKind> = {
  account: 'string',
  region: 'string',
  availabilityZones: 'string[]',
  vpcCidr: 'string',
  natGateways: 'number',
  certificateArn: 'string',
  dashboardDomain: 'string',
  ingressCidrs: 'string[]',
  mqttHost: 'string',
  mqttPort: 'number',
  topicPrefix: 'string',
  minTasks: 'number',
  maxTasks: 'number',
  logRetentionDays: 'number',
  timestreamLiveAnalytics: 'boolean',
  timestreamMemoryRetentionHours: 'number',
  timestreamMagneticRetentionDays: 'number',
  retainData: 'boolean',
  databaseInstanceType: 'string',
  databaseStorageGiB: 'number',
  databaseMultiAz: 'boolean',
  databaseBackupRetentionDays: 'number',
  alarmEmail: 'string',
  cloudwatchAgentImage: 'string',
};

/** Reads context values by key, as `Node.tryGetContext` does. */
export type ContextReader = (key: string) => unknown;

/**
 * Builds the settings of one environment from the context.
 *
 * The object `valmetal.defaults` gives values shared by all environments and
 * `valmetal.environments.<name>` overrides them. A flat key `valmetal:<name>:<field>` given with
 * `-c` overrides both, so a pipeline can pass an account id without editing `cdk.json`. Its
 * string value is converted to the field's type, and lists are comma-separated.
 *
 * @throws Error listing every missing or invalid value.
 */
export function readEnvironmentConfig(name: EnvironmentName, context: ContextReader): EnvironmentConfig {
  const settings = asRecord(context(SETTINGS_CONTEXT_KEY), `context key "${SETTINGS_CONTEXT_KEY}"`);
  const defaults = asRecord(settings.defaults ?? {}, `"${SETTINGS_CONTEXT_KEY}.defaults"`);
  const environments = asRecord(settings.environments, `"${SETTINGS_CONTEXT_KEY}.environments"`);
  const own = asRecord(environments[name], `"${SETTINGS_CONTEXT_KEY}.environments.${name}"`);

  const problems: string[] = [];
  const values: Record<string, unknown> = { name };
  for (const [field, kind] of Object.entries(FIELD_KINDS)) {
    const overrideKey = `${SETTINGS_CONTEXT_KEY}:${name}:${field}`;
    const override = context(overrideKey);
    let value = override !== undefined ? fromFlag(override, kind) : (own[field] ?? defaults[field]);
    if (value === undefined) {
      problems.push(`${name}.${field} is missing; set it in cdk.json or with -c ${overrideKey}=VALUE`);
      continue;
    }
    if (!hasKind(value, kind)) {
      problems.push(`${name}.${field} must be a ${kind}, got ${JSON.stringify(value)}`);
      continue;
    }
    values[field] = value;
  }
  if (problems.length === 0) {
    problems.push(...validate(values as unknown as EnvironmentConfig));
  }
  if (problems.length > 0) {
    throw new Error(`Invalid settings for environment "${name}":\n  - ${problems.join('\n  - ')}`);
  }
  return values as unknown as EnvironmentConfig;
}

/**
 * Checks that a version is a full 40-character git commit SHA.
 *
 * @throws Error naming the value and how to pass a valid one.
 */
export function validateVersion(version: unknown): string {
  if (typeof version !== 'string' || !/^[0-9a-f]{40}$/.test(version)) {
    throw new Error(
      `context "${VERSION_CONTEXT_KEY}" must be a full 40-character lowercase git commit SHA, ` +
        `got ${JSON.stringify(version)}; pass -c ${VERSION_CONTEXT_KEY}=$(git rev-parse HEAD)`,
    );
  }
  return version;
}

function validate(config: EnvironmentConfig): string[] {
  return [
    ...locationProblems(config),
    ...loadBalancerProblems(config),
    ...engineProblems(config),
    ...storageProblems(config),
    ...databaseProblems(config),
  ];
}

/** Checks the account, region, zones and network of an environment. */
function locationProblems(config: EnvironmentConfig): string[] {
  const problems: string[] = [];
  const at = (field: string) => `${config.name}.${field}`;
  if (!/^\d{12}$/.test(config.account)) {
    problems.push(`${at('account')} must be a 12-digit AWS account id, got "${config.account}"`);
  }
  if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(config.region)) {
    problems.push(`${at('region')} is not a region name such as eu-west-1: "${config.region}"`);
  }
  if (config.availabilityZones.length < 2) {
    problems.push(`${at('availabilityZones')} needs at least 2 zones for the load balancer`);
  }
  for (const zone of config.availabilityZones) {
    if (!zone.startsWith(config.region) || !/^[a-z]$/.test(zone.slice(config.region.length))) {
      problems.push(`${at('availabilityZones')} entry "${zone}" is not a zone of ${config.region}`);
    }
  }
  if (!isIpv4Cidr(config.vpcCidr)) {
    problems.push(`${at('vpcCidr')} is not an IPv4 CIDR block: "${config.vpcCidr}"`);
  }
  if (!Number.isInteger(config.natGateways) || config.natGateways < 1) {
    problems.push(`${at('natGateways')} must be at least 1, because tasks run in private subnets`);
  }
  return problems;
}

/** Checks the certificate, the dashboard's DNS name and the allowed networks of the load balancer. */
function loadBalancerProblems(config: EnvironmentConfig): string[] {
  const problems: string[] = [];
  const at = (field: string) => `${config.name}.${field}`;
  const certificate = /^arn:aws[a-z-]*:acm:([a-z0-9-]+):(\d{12}):certificate\/[0-9a-f-]+$/.exec(
    config.certificateArn,
  );
  if (certificate === null) {
    problems.push(`${at('certificateArn')} is not an ACM certificate ARN: "${config.certificateArn}"`);
  } else if (certificate[1] !== config.region) {
    problems.push(`${at('certificateArn')} is in ${certificate[1]}; the load balancer needs one in ${config.region}`);
  }
  if (!isDnsName(config.dashboardDomain)) {
    problems.push(
      `${at('dashboardDomain')} is not a lowercase DNS name such as valmetal.example.com, ` +
        `without scheme, port or path: "${config.dashboardDomain}"`,
    );
  }
  if (config.ingressCidrs.length === 0) {
    problems.push(`${at('ingressCidrs')} is empty, so nothing could reach the load balancer`);
  }
  for (const cidr of config.ingressCidrs) {
    if (!isIpv4Cidr(cidr)) {
      problems.push(`${at('ingressCidrs')} entry "${cidr}" is not an IPv4 CIDR block`);
    }
  }
  return problems;
}

/** Checks the broker, topic prefix, task counts, alarm address and sidecar image. */
function engineProblems(config: EnvironmentConfig): string[] {
  const problems: string[] = [];
  const at = (field: string) => `${config.name}.${field}`;
  if (config.mqttHost.trim() === '') {
    problems.push(`${at('mqttHost')} is empty; set the AWS IoT Core endpoint of the account`);
  }
  if (!Number.isInteger(config.mqttPort) || config.mqttPort < 1 || config.mqttPort > 65535) {
    problems.push(`${at('mqttPort')} must be a TCP port, got ${config.mqttPort}`);
  }
  const prefixProblem = topicPrefixProblem(config.topicPrefix);
  if (prefixProblem !== undefined) {
    problems.push(`${at('topicPrefix')} ${prefixProblem}`);
  }
  if (!Number.isInteger(config.minTasks) || config.minTasks < 1) {
    problems.push(`${at('minTasks')} must be at least 1`);
  }
  if (!Number.isInteger(config.maxTasks) || config.maxTasks < config.minTasks) {
    problems.push(`${at('maxTasks')} must be an integer of at least minTasks (${config.minTasks})`);
  }
  if (config.alarmEmail !== '' && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(config.alarmEmail)) {
    problems.push(`${at('alarmEmail')} is not an e-mail address: "${config.alarmEmail}"`);
  }
  const image = config.cloudwatchAgentImage;
  if (!/^[^\s:]+:[A-Za-z0-9_.-]+$/.test(image) || image.endsWith(':latest')) {
    problems.push(`${at('cloudwatchAgentImage')} must name an image with a release tag other than latest`);
  }
  return problems;
}

/** Checks the retention periods of logs and Timestream. */
function storageProblems(config: EnvironmentConfig): string[] {
  const problems: string[] = [];
  const at = (field: string) => `${config.name}.${field}`;
  if (!LOG_RETENTION_DAYS.includes(config.logRetentionDays)) {
    problems.push(`${at('logRetentionDays')} must be one of ${LOG_RETENTION_DAYS.join(', ')}`);
  }
  const memoryHours = config.timestreamMemoryRetentionHours;
  if (!Number.isInteger(memoryHours) || memoryHours < 1 || memoryHours > 8766) {
    problems.push(`${at('timestreamMemoryRetentionHours')} must be 1 to 8766 hours`);
  }
  const magneticDays = config.timestreamMagneticRetentionDays;
  if (!Number.isInteger(magneticDays) || magneticDays < 1 || magneticDays > 73000) {
    problems.push(`${at('timestreamMagneticRetentionDays')} must be 1 to 73000 days`);
  }
  return problems;
}

/** Checks the size and backups of the PostgreSQL database. */
function databaseProblems(config: EnvironmentConfig): string[] {
  const problems: string[] = [];
  const at = (field: string) => `${config.name}.${field}`;
  const instanceType = config.databaseInstanceType;
  if (instanceType.startsWith('db.')) {
    problems.push(`${at('databaseInstanceType')} must be given without the "db." prefix, such as "t4g.micro": "${instanceType}"`);
  } else if (!/^[a-z][a-z0-9-]*\.[a-z0-9]+$/.test(instanceType)) {
    problems.push(`${at('databaseInstanceType')} is not an instance class such as "t4g.micro": "${instanceType}"`);
  }
  const storage = config.databaseStorageGiB;
  if (!Number.isInteger(storage) || storage < 20 || storage > 65536) {
    problems.push(`${at('databaseStorageGiB')} must be 20 to 65536 GiB, the gp3 range of RDS for PostgreSQL`);
  }
  const backupDays = config.databaseBackupRetentionDays;
  if (!Number.isInteger(backupDays) || backupDays < 1 || backupDays > 35) {
    problems.push(`${at('databaseBackupRetentionDays')} must be 1 to 35 days; 0 would turn automated backups off`);
  }
  return problems;
}

/** Applies the engine's rule for `mqtt.topic_prefix`: levels separated by `/`, none empty, no wildcards. */
function topicPrefixProblem(prefix: string): string | undefined {
  if (prefix === '') {
    return 'is empty';
  }
  if (/[+#*?$]/.test(prefix)) {
    return `"${prefix}" contains a wildcard or policy-variable character (+ # * ? $)`;
  }
  if (prefix.split('/').some((level) => level === '')) {
    return `"${prefix}" has an empty level`;
  }
  return undefined;
}

/**
 * Checks for a host name of at least two labels. Upper case is rejected so that the bucket's
 * CORS origin is written as browsers send the `Origin` header, with the host in lower case.
 */
function isDnsName(value: string): boolean {
  const label = '[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?';
  return value.length <= 253 && new RegExp(`^${label}(\\.${label})+$`).test(value);
}

function isIpv4Cidr(value: string): boolean {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(value);
  if (match === null) {
    return false;
  }
  const octets = match.slice(1, 5).map(Number);
  return octets.every((octet) => octet <= 255) && Number(match[5]) <= 32;
}

function fromFlag(value: unknown, kind: FieldKind): unknown {
  if (typeof value !== 'string') {
    return value;
  }
  switch (kind) {
    case 'number':
      return value.trim() === '' ? value : Number(value);
    case 'boolean':
      if (value === 'true') {
        return true;
      }
      if (value === 'false') {
        return false;
      }
      return value;
    case 'string[]':
      return value.split(',').map((item) => item.trim()).filter((item) => item !== '');
    default:
      return value;
  }
}

function hasKind(value: unknown, kind: FieldKind): boolean {
  switch (kind) {
    case 'string[]':
      return Array.isArray(value) && value.every((item) => typeof item === 'string');
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    default:
      return typeof value === kind;
  }
}

function asRecord(value: unknown, description: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`${description} must be an object in cdk.json`);
  }
  return value as Record<string, unknown>;
}
