//! Command-line options of `valmetal-loadtest`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::dashboards::Selection;
use crate::engine::EngineMode;
use crate::profile::Profile;

/// Highest device count the harness simulates.
pub const MAX_DEVICES: u32 = 1_000_000;
/// Highest dashboard client count.
pub const MAX_DASHBOARDS: u32 = 20_000;
/// Longest run.
pub const MAX_DURATION: Duration = Duration::from_secs(600);

/// Load shape of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// A constant offered rate after the ramp.
    Steady,
    /// The steady rate plus `--burst-frames` extra frames at once every `--burst-every`.
    Burst,
    /// The steady rate, with every device connection dropped and reopened at once halfway.
    ReconnectStorm,
    /// Many dashboards (default 1000) watching the same devices (default 10).
    Dashboards,
    /// The bundled recordings, paced by their own timestamps at `--speed`.
    Replay,
    /// Only the bare subscriber: what the broker delivers without the engine.
    Ceiling,
    /// Frames handed to an engine inside the harness with no broker: the engine alone.
    Direct,
}

/// Load, latency and correctness runs against the valmetal engine.
#[derive(Debug, Clone, Parser)]
#[command(name = "valmetal-loadtest", version, about)]
pub struct Args {
    /// Load shape to run.
    #[arg(long, value_enum, default_value = "steady")]
    pub scenario: Scenario,
    /// MQTT broker as HOST:PORT; loopback only.
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub broker: String,
    /// Start Mosquitto on the `--broker` port with a load-test configuration (no queue limits,
    /// Nagle's algorithm off) for the run.
    #[arg(long)]
    pub start_broker: bool,
    /// Topic prefix the engine subscribes to.
    #[arg(long, default_value = "valmetal/equipment")]
    pub topic_prefix: String,
    /// Simulated devices, 1 to 1,000,000.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DEVICES)))]
    pub devices: u32,
    /// MQTT connections the devices share; equal to `--devices` gives each device its own.
    /// Default: one per device up to 16.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DEVICES)))]
    pub connections: Option<u32>,
    /// Which recordings the devices report.
    #[arg(long, value_enum, default_value = "mixed")]
    pub profile: Profile,
    /// Offered rate of the whole fleet in frames per second; 0 publishes as fast as the broker
    /// takes frames.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Time over which the rate rises linearly from 0 to `--rate`.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub ramp: Duration,
    /// Publishing time, at most 10 minutes.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Frames published at most; the run ends at this count or `--duration`, whichever is
    /// first.
    #[arg(long, default_value_t = 10_000_000)]
    pub max_frames: u64,
    /// MQTT QoS of the devices' publishes and of the subscriptions, 0 or 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub qos: u8,
    /// Burst scenario: time between bursts.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub burst_every: Duration,
    /// Burst scenario: frames per burst.
    #[arg(long, default_value_t = 5000)]
    pub burst_frames: u64,
    /// Replay scenario: device seconds per real second for the feed bins.
    #[arg(long, default_value_t = 600.0)]
    pub speed: f64,
    /// Replay scenario: device seconds per real second for the machine, whose recording spans
    /// 79 days.
    #[arg(long, default_value_t = 60_000.0)]
    pub machine_speed: f64,
    /// WebSocket dashboard clients. Default: 1000 in the dashboards scenario, else 10.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_DASHBOARDS)))]
    pub dashboards: Option<u32>,
    /// Devices each dashboard subscribes to; 0 subscribes to all devices.
    #[arg(long, default_value_t = 10)]
    pub watch: u32,
    /// Which devices each dashboard watches. Default: `same` in the dashboards scenario, else
    /// `spread`.
    #[arg(long, value_enum)]
    pub selection: Option<Selection>,
    /// Also measure the ceiling first: the same load to a bare subscriber on the same broker.
    #[arg(long)]
    pub ceiling: bool,
    /// How the harness reaches the engine.
    #[arg(long, value_enum, default_value = "spawn")]
    pub engine: EngineMode,
    /// The `valmetal` binary to spawn. Default: `valmetal` beside this program.
    #[arg(long)]
    pub engine_bin: Option<PathBuf>,
    /// Process id of an external engine, for its CPU time and memory from `/proc`.
    #[arg(long)]
    pub engine_pid: Option<u32>,
    /// The engine's HTTP address; for a spawned engine, port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub http_addr: SocketAddr,
    /// Bearer token for `/ws` (sent as `?access_token=`) and `/metrics`.
    #[arg(long, env = "VALMETAL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Maximum wait, after publishing ends, for the engine and dashboards to catch up.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain: Duration,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Directory for the broker's and engine's files. Default: a temporary directory removed
    /// after the run.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// No progress line on standard error.
    #[arg(long)]
    pub quiet: bool,
}

impl Args {
    /// Returns the dashboard client count in force.
    pub fn dashboard_count(&self) -> u32 {
        match (self.dashboards, self.scenario) {
            (Some(count), _) => count,
            (None, Scenario::Dashboards) => 1000,
            (None, Scenario::Ceiling) => 0,
            (None, _) => 10,
        }
    }

    /// Returns the dashboard selection in force.
    pub fn selection(&self) -> Selection {
        match (self.selection, self.scenario) {
            (Some(selection), _) => selection,
            (None, Scenario::Dashboards) => Selection::Same,
            (None, _) => Selection::Spread,
        }
    }

    /// Returns the connection count in force.
    pub fn connection_count(&self) -> u32 {
        self.connections
            .unwrap_or(self.devices.min(16))
            .min(self.devices)
    }

    /// Returns the broker's host and port.
    ///
    /// # Errors
    ///
    /// Fails when `--broker` is not HOST:PORT on a loopback address.
    pub fn broker_address(&self) -> anyhow::Result<(String, u16)> {
        let (host, port) = self
            .broker
            .rsplit_once(':')
            .ok_or_else(|| anyhow::anyhow!("--broker {:?} must be HOST:PORT", self.broker))?;
        let host = host
            .strip_prefix('[')
            .and_then(|inner| inner.strip_suffix(']'))
            .unwrap_or(host);
        let port: u16 = port.parse().map_err(|_| {
            anyhow::anyhow!("--broker port {port:?} must be a number from 1 to 65535")
        })?;
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|address| address.is_loopback());
        if !loopback {
            anyhow::bail!(
                "--broker {host} is not a loopback address; load runs stay on this machine"
            );
        }
        Ok((host.to_owned(), port))
    }

    /// Checks the bounds clap cannot express.
    ///
    /// # Errors
    ///
    /// Lists every option out of bounds.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        if self.duration > MAX_DURATION || self.duration.is_zero() {
            problems.push(format!(
                "--duration must be more than 0 and at most {}s",
                MAX_DURATION.as_secs()
            ));
        }
        if self.drain > Duration::from_secs(120) {
            problems.push("--drain must be at most 120s".to_owned());
        }
        if !(self.rate >= 0.0 && self.rate <= 10_000_000.0) {
            problems.push("--rate must be from 0 to 10000000 frames/s".to_owned());
        }
        if self.speed <= 0.0 || self.machine_speed <= 0.0 {
            problems.push("--speed and --machine-speed must be above 0".to_owned());
        }
        if self.burst_every.is_zero() {
            problems.push("--burst-every must be above 0".to_owned());
        }
        if !self.http_addr.ip().is_loopback() {
            problems.push(format!(
                "--http-addr {} is not a loopback address",
                self.http_addr
            ));
        }
        if self.engine == EngineMode::External && self.http_addr.port() == 0 {
            problems.push("--engine external needs --http-addr with the engine's port".to_owned());
        }
        if let Err(error) = self.broker_address() {
            problems.push(error.to_string());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("invalid options:\n  {}", problems.join("\n  "))
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Args;

    fn broker(address: &str) -> anyhow::Result<(String, u16)> {
        Args::try_parse_from(["valmetal-loadtest", "--broker", address])?.broker_address()
    }

    #[test]
    fn broker_accepts_loopback_forms() {
        assert_eq!(
            broker("127.0.0.1:1883").unwrap(),
            ("127.0.0.1".to_owned(), 1883)
        );
        assert_eq!(
            broker("localhost:1883").unwrap(),
            ("localhost".to_owned(), 1883)
        );
        assert_eq!(broker("[::1]:1883").unwrap(), ("::1".to_owned(), 1883));
    }

    #[test]
    fn broker_rejects_other_hosts() {
        assert!(broker("192.0.2.1:1883").is_err());
        assert!(broker("[2001:db8::1]:1883").is_err());
        assert!(broker("127.0.0.1").is_err());
    }
}
