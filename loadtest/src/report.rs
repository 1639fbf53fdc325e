//! The result of a run: a JSON document for comparing runs and a readable table.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::engine::EngineCounters;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    /// Summarizes a histogram of microseconds.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |micros: u64| micros as f64 / 1000.0;
        Self {
            count: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
        }
    }
}

/// Publishing counts of the simulated fleet.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PublishSummary {
    pub devices: u32,
    pub connections: u32,
    pub qos: u8,
    /// Target rate in frames per second; 0 means as fast as the broker takes frames.
    pub target_rate: f64,
    pub published: u64,
    /// QoS 1 publishes the broker acknowledged.
    pub acknowledged: u64,
    pub publish_errors: u64,
    pub seconds: f64,
    /// Published frames per second of publishing.
    pub achieved_rate: f64,
    pub reconnects: u64,
    /// Maximum time a connection took to reconnect in the reconnect storm.
    pub max_reconnect_ms: Option<f64>,
}

/// Counts and latency of the bare subscriber.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CeilingSummary {
    pub published: u64,
    pub received: u64,
    /// Frames received per second, from the first publish to the last frame received.
    pub rate: f64,
    pub latency: LatencySummary,
}

/// Engine figures, from its counters and `/proc`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EngineSummary {
    pub pid: Option<u32>,
    /// Counter changes over the run.
    pub counters: EngineCounters,
    /// Frames accepted per second, from the first publish to the last accepted frame.
    pub rate: f64,
    /// `rate` divided by the ceiling's, when the run measured a ceiling.
    pub fraction_of_ceiling: Option<f64>,
    pub cpu_seconds: f64,
    /// Engine CPU time per accepted frame, in microseconds.
    pub cpu_us_per_frame: f64,
    /// Average CPU use over the run, in percent of one core.
    pub cpu_percent: f64,
    /// Whether the stores' queues emptied within the drain limit; the CPU figures include
    /// storing the frames only up to that point.
    pub stores_drained: bool,
    /// Time from the last accepted frame until the stores' queues were empty, or until the
    /// drain limit when they were not.
    pub store_drain_seconds: f64,
    pub rss_start_bytes: u64,
    pub rss_end_bytes: u64,
    /// Resident memory added per connected dashboard client, before any frame.
    pub rss_per_client_bytes: Option<f64>,
    /// Resident memory added per new device actor over the run, shadow included.
    pub rss_per_device_bytes: Option<f64>,
    /// True when the engine runs inside the harness, whose own CPU and memory are included.
    pub in_process: bool,
}

/// Figures of the dashboard clients.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DashboardSummary {
    pub clients: u32,
    pub devices_per_client: u32,
    pub failed_clients: u64,
    pub updates: u64,
    /// Updates received per second over the publishing time.
    pub deliveries_per_second: f64,
    /// Frames merged into later updates by design, summed over clients and devices.
    pub coalesced: u64,
    /// Frames of watched devices neither delivered nor coalesced.
    pub missing: u64,
    /// Raises of the checked rules received, and expected, summed over clients.
    pub raises_received: u64,
    pub raises_expected: u64,
    pub latency: LatencySummary,
}

/// One correctness check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

/// Everything a run reports.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub scenario: String,
    /// The command line that produced the report.
    pub command: String,
    /// Start of the run, in milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    pub cores: usize,
    pub open_file_limit: u64,
    pub publish: PublishSummary,
    pub ceiling: Option<CeilingSummary>,
    pub engine: Option<EngineSummary>,
    pub dashboards: Option<DashboardSummary>,
    pub checks: Vec<Check>,
}

impl Report {
    /// Returns true when every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|check| check.passed)
    }

    /// Renders the report as a readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let publish = &self.publish;
        let _ = writeln!(out, "scenario       {}", self.scenario);
        let direct = self.scenario == "direct";
        if direct {
            let _ = writeln!(
                out,
                "fleet          {} devices fed to the engine in this process, no broker",
                publish.devices
            );
        } else {
            let _ = writeln!(
                out,
                "fleet          {} devices over {} connections, QoS {}",
                publish.devices, publish.connections, publish.qos
            );
        }
        let offered = if publish.target_rate > 0.0 {
            format!("{:.0} frames/s", publish.target_rate)
        } else {
            "as fast as possible".to_owned()
        };
        let acknowledged = if direct {
            String::new()
        } else {
            format!("{} acknowledged, ", publish.acknowledged)
        };
        let _ = writeln!(
            out,
            "offered        {offered}; achieved {:.0} frames/s ({} frames in {:.1} s, {acknowledged}{} errors)",
            publish.achieved_rate, publish.published, publish.seconds, publish.publish_errors
        );
        if publish.reconnects > 0 {
            let _ = writeln!(
                out,
                "reconnects     {} (slowest {:.0} ms)",
                publish.reconnects,
                publish.max_reconnect_ms.unwrap_or_default()
            );
        }
        if let Some(ceiling) = &self.ceiling {
            let _ = writeln!(
                out,
                "ceiling        {:.0} frames/s ({} of {} frames reached the bare subscriber)",
                ceiling.rate, ceiling.received, ceiling.published
            );
        }
        if let Some(engine) = &self.engine {
            write_engine(&mut out, engine);
        }
        if let Some(dashboards) = &self.dashboards {
            write_dashboards(&mut out, dashboards);
        }
        let _ = writeln!(
            out,
            "\nlatency (ms)          count      p50      p90      p99    p99.9      max"
        );
        if let Some(ceiling) = &self.ceiling {
            write_latency(&mut out, "publish → subscriber", &ceiling.latency);
        }
        if let Some(dashboards) = &self.dashboards {
            write_latency(&mut out, "publish → dashboard", &dashboards.latency);
        }
        let _ = writeln!(out, "\nchecks");
        for check in &self.checks {
            let mark = if check.passed { "pass" } else { "FAIL" };
            let _ = writeln!(out, "  {mark}  {:<22} {}", check.name, check.detail);
        }
        out
    }
}

fn write_engine(out: &mut String, engine: &EngineSummary) {
    let counters = &engine.counters;
    let fraction = engine
        .fraction_of_ceiling
        .map(|fraction| format!(", {:.1} % of the ceiling", fraction * 100.0))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "engine         {:.0} frames/s{fraction}; accepted {}, rejected {:?}",
        engine.rate, counters.frames_accepted, counters.rejected
    );
    let _ = writeln!(
        out,
        "engine CPU     {:.2} s, {:.2} µs per frame, {:.0} % of one core on average{}",
        engine.cpu_seconds,
        engine.cpu_us_per_frame,
        engine.cpu_percent,
        if engine.in_process {
            " (harness included)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "stores         {} records written to all stores; {} {:.1} s after the last frame",
        counters.sink_sent,
        if engine.stores_drained {
            "queues empty"
        } else {
            "records still queued at the drain limit,"
        },
        engine.store_drain_seconds
    );
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let _ = writeln!(
        out,
        "engine memory  {:.1} MiB → {:.1} MiB resident; {} actors",
        mib(engine.rss_start_bytes),
        mib(engine.rss_end_bytes),
        counters.actors
    );
    if let Some(per_device) = engine.rss_per_device_bytes {
        let _ = writeln!(
            out,
            "per device     {per_device:.0} bytes resident per new device actor"
        );
    }
    if let Some(per_client) = engine.rss_per_client_bytes {
        let _ = writeln!(
            out,
            "per client     {per_client:.0} bytes resident per dashboard client"
        );
    }
}

fn write_dashboards(out: &mut String, dashboards: &DashboardSummary) {
    let _ = writeln!(
        out,
        "dashboards     {} clients × {} devices; {} updates ({:.0}/s), {} coalesced, {} missing, {} failed clients",
        dashboards.clients,
        dashboards.devices_per_client,
        dashboards.updates,
        dashboards.deliveries_per_second,
        dashboards.coalesced,
        dashboards.missing,
        dashboards.failed_clients
    );
}

fn write_latency(out: &mut String, label: &str, latency: &LatencySummary) {
    let _ = writeln!(
        out,
        "{label:<20} {:>6} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
        latency.count,
        latency.p50_ms,
        latency.p90_ms,
        latency.p99_ms,
        latency.p999_ms,
        latency.max_ms
    );
}
