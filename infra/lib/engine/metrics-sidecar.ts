import { EnvironmentConfig } from '../config';

/**
 * The CloudWatch agent sidecar scrapes the engine's Prometheus endpoint over the task's shared
 * loopback interface and sends selected metrics to CloudWatch in embedded metric format. This
 * is how the engine's own health, `telemetry_ingest_broker_connected`, becomes a CloudWatch
 * metric that an alarm can watch.
 */

/** Namespace the CloudWatch agent uses for scraped Prometheus metrics on ECS. */
export const PROMETHEUS_NAMESPACE = 'ContainerInsights/Prometheus';

/** The engine's gauge: 1 while connected and subscribed to the broker, 0 after it disconnects. */
export const BROKER_CONNECTED_METRIC = 'telemetry_ingest_broker_connected';

/** Engine metrics sent to CloudWatch; the others stay on the engine's `/metrics` page. */
export const EXPORTED_METRICS = [
  BROKER_CONNECTED_METRIC,
  'telemetry_ingest_frames_accepted_total',
  'telemetry_ingest_messages_rejected_total',
  'telemetry_store_alarm_events_dropped_total',
];

/** Scrape job name; it is also the `job` label that selects the engine's metrics. */
export const SCRAPE_JOB = 'valmetal-engine';

export const SCRAPE_INTERVAL_SECONDS = 60;

/** CloudWatch dimensions of every exported metric, set as static Prometheus labels. */
export function metricDimensions(config: EnvironmentConfig, serviceName: string): Record<string, string> {
  return { Environment: config.name, Service: serviceName };
}

/**
 * Builds the Prometheus scrape configuration. It is JSON, which the agent's YAML parser reads.
 */
export function prometheusScrapeConfig(
  config: EnvironmentConfig,
  serviceName: string,
  enginePort: number,
): string {
  return JSON.stringify({
    global: { scrape_interval: `${SCRAPE_INTERVAL_SECONDS}s`, scrape_timeout: '10s' },
    scrape_configs: [
      {
        job_name: SCRAPE_JOB,
        metrics_path: '/metrics',
        static_configs: [
          {
            targets: [`127.0.0.1:${enginePort}`],
            labels: metricDimensions(config, serviceName),
          },
        ],
      },
    ],
  });
}

/** Builds the CloudWatch agent configuration that turns the scraped metrics into EMF events. */
export function cloudWatchAgentConfig(
  config: EnvironmentConfig,
  serviceName: string,
  logGroupName: string,
): string {
  const dimensionNames = Object.keys(metricDimensions(config, serviceName));
  return JSON.stringify({
    agent: { region: config.region },
    logs: {
      metrics_collected: {
        prometheus: {
          log_group_name: logGroupName,
          prometheus_config_path: 'env:PROMETHEUS_CONFIG_CONTENT',
          emf_processor: {
            metric_declaration: [
              {
                source_labels: ['job'],
                label_matcher: `^${SCRAPE_JOB}$`,
                dimensions: [dimensionNames],
                metric_selectors: EXPORTED_METRICS.map((name) => `^${name}$`),
              },
            ],
          },
        },
      },
      force_flush_interval: 15,
    },
  });
}
