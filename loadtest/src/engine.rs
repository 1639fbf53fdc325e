//! The engine under test: started as a child process, found by pid, or run inside the
//! harness; and what the harness reads of it: CPU time and resident memory from `/proc`,
//! counters from `/metrics`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Clock ticks per second of `/proc/PID/stat` times (`USER_HZ`), which Linux fixes at 100 for
/// user space on every architecture it supports.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// Way the harness reaches the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EngineMode {
    /// Start `valmetal serve` as a child process with a configuration the harness writes.
    Spawn,
    /// Use a running engine at `--http-addr`, with `--engine-pid` for its CPU and memory.
    External,
    /// Run the engine inside the harness process; CPU and memory then include the harness.
    InProcess,
    /// No engine: only the ceiling subscriber consumes the frames.
    None,
}

/// Configuration of a spawned or in-process engine.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub broker_host: String,
    pub broker_port: u16,
    pub topic_prefix: String,
    pub qos: u8,
    pub http_addr: SocketAddr,
    pub data_dir: PathBuf,
}

/// Returns the engine configuration file the harness starts the engine with.
///
/// This is the one place the harness writes engine configuration. Authentication is off,
/// because the harness's dashboards measure fan-out, not sign-in.
pub fn engine_config(settings: &EngineSettings) -> String {
    format!(
        r#"[mqtt]
host = "{host}"
port = {port}
client_id = "valmetal-lt-engine-{pid}"
topic_prefix = "{prefix}"
qos = {qos}
clean_session = true

[http]
addr = "{http}"

[auth]
mode = "off"

[storage]
data_dir = "{data_dir}"
"#,
        host = settings.broker_host,
        port = settings.broker_port,
        pid = std::process::id(),
        prefix = settings.topic_prefix,
        qos = settings.qos,
        http = settings.http_addr,
        data_dir = settings.data_dir.display(),
    )
}

/// A `valmetal serve` child process.
pub struct ChildEngine {
    child: Child,
    pub pid: u32,
    pub log: PathBuf,
}

impl ChildEngine {
    /// Writes the configuration, starts `binary serve` and waits until `/readyz` returns 200.
    ///
    /// # Errors
    ///
    /// Fails when the binary cannot start or the engine is not ready within 60 s; the log file
    /// then has the engine's own account.
    pub async fn start(
        binary: &Path,
        settings: &EngineSettings,
        token: Option<&str>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("cannot create {}", settings.data_dir.display()))?;
        let config = settings.data_dir.join("engine.toml");
        std::fs::write(&config, engine_config(settings))
            .with_context(|| format!("cannot write {}", config.display()))?;
        let log = settings.data_dir.join("engine.log");
        let log_file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let child = Command::new(binary)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start the engine {}; build it with `cargo build --release -p valmetal-engine` or pass --engine-bin",
                    binary.display()
                )
            })?;
        let pid = child.id().context("the engine exited at once")?;
        let engine = Self { child, pid, log };
        wait_ready(settings.http_addr, token, &engine.log).await?;
        Ok(engine)
    }

    /// Stops the engine with SIGTERM, and SIGKILL after 15 s.
    pub async fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

async fn wait_ready(addr: SocketAddr, token: Option<&str>, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok((200, _)) = http_get(addr, "/readyz", token).await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "the engine at {addr} was not ready within 60 s; see {}",
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends a plain HTTP/1.1 GET and returns the status and body.
///
/// # Errors
///
/// Fails when the connection or the read fails, or the response is not HTTP.
pub async fn http_get(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let authorization = token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("not an HTTP response")?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, dechunk(&body)))
}

/// Joins a chunked body; a body that is not chunked comes back unchanged.
fn dechunk(body: &str) -> String {
    let mut rest = body;
    let mut joined = String::new();
    loop {
        let Some((size, after)) = rest.split_once("\r\n") else {
            return body.to_owned();
        };
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            return body.to_owned();
        };
        if size == 0 {
            return joined;
        }
        let Some(chunk) = after.get(..size) else {
            return body.to_owned();
        };
        joined.push_str(chunk);
        rest = after.get(size + 2..).unwrap_or_default();
    }
}

/// Engine counters read from `/metrics`, summed over label values where noted.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EngineCounters {
    pub frames_accepted: u64,
    /// Rejected messages by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Frames by outcome at the shadow: applied, applied_late, unchanged, duplicate.
    pub actor_frames: BTreeMap<String, u64>,
    pub alarms_raised: BTreeMap<String, u64>,
    pub updates_sent: u64,
    pub updates_coalesced: u64,
    pub queue_overflows: u64,
    /// Live device actors (a gauge).
    pub actors: u64,
    /// Device actors created over the run: the gauge's growth.
    pub actors_created: u64,
    pub clients: u64,
    /// Records waiting in the stores' queues, all sinks together (a gauge).
    pub sink_queued: u64,
    /// Records the stores accepted, all sinks together.
    pub sink_sent: u64,
}

impl EngineCounters {
    /// Reads the counters from the Prometheus text of `/metrics`.
    pub fn parse(text: &str) -> Self {
        let mut counters = Self::default();
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let Some((name_labels, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let value = value as u64;
            let (name, labels) = match name_labels.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (name_labels, ""),
            };
            let label = |key: &str| -> String {
                labels
                    .split(',')
                    .find_map(|pair| pair.strip_prefix(key)?.strip_prefix("=\""))
                    .map(|value| value.trim_end_matches('"').to_owned())
                    .unwrap_or_default()
            };
            match name {
                "telemetry_ingest_frames_accepted_total" => counters.frames_accepted = value,
                "telemetry_ingest_messages_rejected_total" => {
                    counters.rejected.insert(label("reason"), value);
                }
                "telemetry_actor_frames_total" => {
                    counters.actor_frames.insert(label("outcome"), value);
                }
                "telemetry_alarm_transitions_total" if label("transition") == "raised" => {
                    *counters.alarms_raised.entry(label("severity")).or_default() += value;
                }
                "telemetry_gateway_messages_sent_total" if label("type") == "update" => {
                    counters.updates_sent = value;
                }
                "telemetry_gateway_updates_coalesced_total" => counters.updates_coalesced = value,
                "telemetry_gateway_queue_overflows_total" => counters.queue_overflows = value,
                "telemetry_registry_actors" => counters.actors = value,
                "telemetry_gateway_clients" => counters.clients = value,
                "telemetry_sink_records_queued" => counters.sink_queued += value,
                "telemetry_sink_records_sent_total" => counters.sink_sent += value,
                _ => {}
            }
        }
        counters
    }

    /// Returns the counters of `self` minus those of an earlier reading; gauges keep their
    /// current value.
    pub fn since(&self, earlier: &Self) -> Self {
        let minus = |now: &BTreeMap<String, u64>, then: &BTreeMap<String, u64>| {
            now.iter()
                .map(|(key, value)| {
                    let before = then.get(key).copied().unwrap_or(0);
                    (key.clone(), value.saturating_sub(before))
                })
                .filter(|(_, value)| *value > 0)
                .collect()
        };
        Self {
            frames_accepted: self.frames_accepted.saturating_sub(earlier.frames_accepted),
            rejected: minus(&self.rejected, &earlier.rejected),
            actor_frames: minus(&self.actor_frames, &earlier.actor_frames),
            alarms_raised: minus(&self.alarms_raised, &earlier.alarms_raised),
            updates_sent: self.updates_sent.saturating_sub(earlier.updates_sent),
            updates_coalesced: self
                .updates_coalesced
                .saturating_sub(earlier.updates_coalesced),
            queue_overflows: self.queue_overflows.saturating_sub(earlier.queue_overflows),
            actors: self.actors,
            actors_created: self.actors.saturating_sub(earlier.actors),
            clients: self.clients,
            sink_queued: self.sink_queued,
            sink_sent: self.sink_sent.saturating_sub(earlier.sink_sent),
        }
    }
}

/// Reads `/metrics` of the engine at `addr`.
///
/// # Errors
///
/// Fails when the endpoint cannot be read or returns a status other than 200.
pub async fn read_counters(
    addr: SocketAddr,
    token: Option<&str>,
) -> anyhow::Result<EngineCounters> {
    let (status, body) = http_get(addr, "/metrics", token).await?;
    if status != 200 {
        bail!("GET /metrics returned status {status}; pass --token if the engine requires one");
    }
    Ok(EngineCounters::parse(&body))
}

/// CPU time and resident memory of a process at one moment.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ProcessSample {
    /// User plus system CPU time of all threads, in seconds.
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
}

/// Reads `/proc/PID/stat` and `/proc/PID/status`.
///
/// # Errors
///
/// Fails when the process is gone or the files cannot be read.
pub fn sample_process(pid: u32) -> anyhow::Result<ProcessSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat; is process {pid} running?"))?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command name.
    let ticks = |index: usize| -> f64 {
        fields
            .get(index)
            .and_then(|field| field.parse::<u64>().ok())
            .unwrap_or(0) as f64
    };
    let cpu_seconds = (ticks(11) + ticks(12)) / CLOCK_TICKS_PER_SECOND;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    Ok(ProcessSample {
        cpu_seconds,
        rss_bytes: rss_kib * 1024,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_parse_prometheus_text() {
        let text = "# TYPE x counter\n\
            telemetry_ingest_frames_accepted_total 120\n\
            telemetry_ingest_messages_rejected_total{reason=\"invalid_json\"} 3\n\
            telemetry_actor_frames_total{outcome=\"applied\"} 119\n\
            telemetry_alarm_transitions_total{transition=\"raised\",severity=\"major\"} 4\n\
            telemetry_alarm_transitions_total{transition=\"cleared\",severity=\"major\"} 2\n\
            telemetry_gateway_messages_sent_total{type=\"update\"} 50\n";
        let counters = EngineCounters::parse(text);
        assert_eq!(counters.frames_accepted, 120);
        assert_eq!(counters.rejected["invalid_json"], 3);
        assert_eq!(counters.actor_frames["applied"], 119);
        assert_eq!(counters.alarms_raised["major"], 4);
        assert_eq!(counters.updates_sent, 50);
    }

    #[test]
    fn own_process_sample_has_memory() {
        let sample = sample_process(std::process::id()).unwrap();
        assert!(sample.rss_bytes > 0);
    }

    #[test]
    fn chunked_body_joined() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
        assert_eq!(dechunk("plain"), "plain");
    }
}
