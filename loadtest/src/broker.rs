//! A Mosquitto broker for load runs, started by the harness on a loopback port.
//!
//! Mosquitto's defaults suit devices, not a load test: `max_queued_messages 1000` drops QoS 1
//! messages for a subscriber that falls 1000 behind, `max_inflight_messages 20` limits each
//! client's QoS 1 window, and Nagle's algorithm delays small packets. This configuration lifts
//! the queue limits and turns Nagle's algorithm off.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Returns the Mosquitto 2.0 configuration of a load-test broker on `host:port`, where `host`
/// is a loopback address or `localhost`.
pub fn mosquitto_config(host: &str, port: u16) -> String {
    format!(
        "# Mosquitto 2.0 broker for valmetal load runs: loopback only, no persistence.\n\
         listener {port} {host}\n\
         allow_anonymous true\n\
         persistence false\n\
         set_tcp_nodelay true\n\
         max_inflight_messages 0\n\
         max_queued_messages 0\n\
         max_queued_bytes 0\n\
         max_connections -1\n\
         log_type error\n\
         log_type warning\n"
    )
}

/// A Mosquitto child process.
pub struct Broker {
    child: Child,
    pub config: PathBuf,
}

impl Broker {
    /// Writes the configuration into `directory`, starts `mosquitto` on `host:port` and waits
    /// until it accepts connections.
    ///
    /// # Errors
    ///
    /// Fails when `mosquitto` is not installed, the port is taken or the broker does not listen
    /// within 10 s.
    pub async fn start(host: &str, port: u16, directory: &Path) -> anyhow::Result<Self> {
        let config = directory.join("mosquitto.conf");
        std::fs::write(&config, mosquitto_config(host, port))
            .with_context(|| format!("cannot write {}", config.display()))?;
        let log = std::fs::File::create(directory.join("mosquitto.log"))?;
        let mut child = Command::new("mosquitto")
            .arg("-c")
            .arg(&config)
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start mosquitto; install it (Debian: apt-get install mosquitto) or drop --start-broker")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((host, port)).await.is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                bail!(
                    "mosquitto exited with {status}; is port {port} taken? See {}",
                    directory.join("mosquitto.log").display()
                );
            }
            if Instant::now() >= deadline {
                bail!("mosquitto did not listen on {host} port {port} within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { child, config })
    }

    /// Returns the broker's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops the broker.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
