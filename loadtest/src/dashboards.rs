//! Dashboard clients: WebSocket connections to `/ws` that subscribe to devices and measure how
//! long each update took from the device's publish to its arrival here.
//!
//! Every update carries a shadow version that grows by one per accepted frame, so a client
//! tells delivered frames from frames the engine coalesced by design (the versions skipped).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::profile::is_checked_rule;

/// Highest latency the histograms record, in microseconds; longer ones are clamped to it.
pub const MAX_LATENCY_US: u64 = 60_000_000;

/// Returns an empty latency histogram in microseconds with three significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("the bounds are valid")
}

/// Returns the time since the Unix epoch in microseconds.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64)
}

/// Which devices each dashboard watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    /// Dashboard `k` watches devices `k × M` to `k × M + M − 1`, wrapping around the fleet.
    Spread,
    /// Every dashboard watches devices 0 to M − 1.
    Same,
}

/// Where the dashboards connect and what they watch.
#[derive(Debug, Clone)]
pub struct DashboardOptions {
    /// `ws://HOST:PORT/ws`, with `access_token` already appended when a token is set.
    pub url: String,
    pub clients: u32,
    /// Devices per client; 0 subscribes to all devices.
    pub watch: u32,
    pub selection: Selection,
    /// Ids of the fleet's devices, by index.
    pub device_ids: Arc<Vec<String>>,
}

/// Counters shared by the clients, read by the progress line.
#[derive(Debug, Default)]
pub struct DashboardCounters {
    pub connected: AtomicU64,
    pub updates: AtomicU64,
    pub alarms: AtomicU64,
    pub errors: AtomicU64,
}

/// One client's view of one watched device.
#[derive(Debug, Clone, Default)]
pub struct WatchedDevice {
    /// Version in the subscription's snapshot; 0 for a device that had not reported.
    pub baseline: u64,
    pub last_version: u64,
    pub delivered: u64,
    /// Versions skipped between two updates: frames merged into a later update.
    pub coalesced: u64,
    /// Raises of the checked rules received.
    pub raises: u64,
}

/// What one client saw.
#[derive(Debug)]
pub struct ClientResult {
    pub latency: Histogram<u64>,
    pub devices: HashMap<String, WatchedDevice>,
    pub snapshots: u64,
    pub error: Option<String>,
}

/// Running dashboard clients.
pub struct Dashboards {
    pub counters: Arc<DashboardCounters>,
    tasks: Vec<JoinHandle<ClientResult>>,
}

/// Devices watched by client `number`, as indexes into the fleet.
pub fn watched_by(options: &DashboardOptions, number: u32) -> Vec<usize> {
    let fleet = options.device_ids.len();
    if options.watch == 0 || fleet == 0 {
        return Vec::new();
    }
    let count = (options.watch as usize).min(fleet);
    let first = match options.selection {
        Selection::Spread => number as usize * count,
        Selection::Same => 0,
    };
    (0..count).map(|offset| (first + offset) % fleet).collect()
}

impl Dashboards {
    /// Connects every client and waits until each has its subscription's snapshot.
    ///
    /// # Errors
    ///
    /// Fails when a client cannot connect or subscribe within 60 s.
    pub async fn connect(
        options: &DashboardOptions,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<Self> {
        let counters = Arc::new(DashboardCounters::default());
        let mut tasks = Vec::with_capacity(options.clients as usize);
        let (ready_sender, mut ready) = tokio::sync::mpsc::channel(options.clients.max(1) as usize);
        for number in 0..options.clients {
            let devices: Vec<String> = watched_by(options, number)
                .into_iter()
                .map(|index| options.device_ids[index].clone())
                .collect();
            let client = Client {
                url: options.url.clone(),
                subscribe_all: options.watch == 0,
                devices,
                counters: Arc::clone(&counters),
            };
            tasks.push(tokio::spawn(client.run(ready_sender.clone(), stop.clone())));
            // Pace connection set-up so the engine's accept queue does not overflow.
            if number % 200 == 199 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        drop(ready_sender);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        for _ in 0..options.clients {
            match tokio::time::timeout_at(deadline, ready.recv()).await {
                Ok(Some(Ok(()))) => {}
                Ok(Some(Err(error))) => anyhow::bail!("a dashboard client failed: {error}"),
                Ok(None) => anyhow::bail!("a dashboard client ended before subscribing"),
                Err(_) => anyhow::bail!(
                    "dashboard clients did not all subscribe within 60 s ({} of {} did)",
                    counters.connected.load(Ordering::Relaxed),
                    options.clients
                ),
            }
        }
        Ok(Self { counters, tasks })
    }

    /// Waits for every client to end (after `stop`) and returns what each saw.
    pub async fn finish(self) -> Vec<ClientResult> {
        let mut results = Vec::with_capacity(self.tasks.len());
        for task in self.tasks {
            match task.await {
                Ok(result) => results.push(result),
                Err(error) => results.push(ClientResult {
                    latency: latency_histogram(),
                    devices: HashMap::new(),
                    snapshots: 0,
                    error: Some(format!("client task failed: {error}")),
                }),
            }
        }
        results
    }
}

struct Client {
    url: String,
    subscribe_all: bool,
    devices: Vec<String>,
    counters: Arc<DashboardCounters>,
}

/// The fields of a server message that the harness reads; the rest is skipped unparsed.
#[derive(Deserialize)]
struct ServerMessage<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(default, borrow)]
    device: Option<&'a str>,
    #[serde(default)]
    version: Option<u64>,
    #[serde(default)]
    changes: Option<Changes>,
    #[serde(default, borrow)]
    transition: Option<&'a str>,
    #[serde(default, borrow)]
    alarm: Option<AlarmFields<'a>>,
    #[serde(default)]
    devices: Option<Vec<SnapshotDevice>>,
}

#[derive(Deserialize)]
struct Changes {
    /// The value of [`crate::profile::SENT_KEY`].
    #[serde(rename = "sent_us", default)]
    sent: Option<ChangedValue>,
}

#[derive(Deserialize)]
struct ChangedValue {
    value: f64,
}

#[derive(Deserialize)]
struct AlarmFields<'a> {
    #[serde(borrow)]
    device: &'a str,
    #[serde(borrow)]
    rule: &'a str,
}

#[derive(Deserialize)]
struct SnapshotDevice {
    device: String,
    version: u64,
}

impl Client {
    async fn run(
        self,
        ready: tokio::sync::mpsc::Sender<anyhow::Result<()>>,
        mut stop: watch::Receiver<bool>,
    ) -> ClientResult {
        let mut result = ClientResult {
            latency: latency_histogram(),
            devices: self
                .devices
                .iter()
                .map(|device| (device.clone(), WatchedDevice::default()))
                .collect(),
            snapshots: 0,
            error: None,
        };
        let mut socket = match self.subscribe().await {
            Ok(socket) => {
                self.counters.connected.fetch_add(1, Ordering::Relaxed);
                socket
            }
            Err(error) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                result.error = Some(format!("{error:#}"));
                let _ = ready.send(Err(error)).await;
                return result;
            }
        };
        let mut signalled = Some(ready);
        loop {
            let message = tokio::select! {
                message = socket.next() => message,
                _ = stop.wait_for(|stopped| *stopped) => break,
            };
            let text = match message {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(_))) | None => {
                    result.error = Some("the engine closed the connection".into());
                    break;
                }
                Some(Ok(_)) => continue,
                Some(Err(error)) => {
                    result.error = Some(format!("read failed: {error}"));
                    break;
                }
            };
            let arrived = now_us();
            let Ok(message) = serde_json::from_str::<ServerMessage>(text.as_str()) else {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            self.take(&mut result, &message, arrived);
            if message.kind == "snapshot"
                && let Some(ready) = signalled.take()
            {
                let _ = ready.send(Ok(())).await;
            }
        }
        if result.error.is_some() {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
        }
        let _ = socket.close(None).await;
        result
    }

    async fn subscribe(
        &self,
    ) -> anyhow::Result<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    > {
        let (mut socket, _) = tokio::time::timeout(
            Duration::from_secs(30),
            tokio_tungstenite::connect_async_with_config(&self.url, None, true),
        )
        .await
        .context("WebSocket connection timed out after 30 s")?
        .context("WebSocket connection failed")?;
        let request = if self.subscribe_all {
            serde_json::json!({"type": "subscribe", "all": true})
        } else {
            serde_json::json!({"type": "subscribe", "devices": self.devices})
        };
        socket
            .send(Message::Text(request.to_string().into()))
            .await
            .context("sending the subscription failed")?;
        Ok(socket)
    }

    fn take(&self, result: &mut ClientResult, message: &ServerMessage<'_>, arrived: u64) {
        match message.kind {
            "update" => {
                self.counters.updates.fetch_add(1, Ordering::Relaxed);
                if let Some(sent) = message
                    .changes
                    .as_ref()
                    .and_then(|changes| changes.sent.as_ref())
                {
                    let latency = arrived.saturating_sub(sent.value as u64);
                    let _ = result.latency.record(latency.clamp(1, MAX_LATENCY_US));
                }
                let (Some(device), Some(version)) = (message.device, message.version) else {
                    return;
                };
                let watched = result.devices.entry(device.to_owned()).or_default();
                let previous = watched.last_version.max(watched.baseline);
                watched.delivered += 1;
                watched.coalesced += version.saturating_sub(previous + 1);
                watched.last_version = version;
            }
            "snapshot" => {
                result.snapshots += 1;
                for device in message.devices.iter().flatten() {
                    let watched = result.devices.entry(device.device.clone()).or_default();
                    if result.snapshots == 1 {
                        watched.baseline = device.version;
                    } else {
                        // A snapshot after a queue overflow replaces the updates it skipped.
                        let previous = watched.last_version.max(watched.baseline);
                        watched.coalesced += device.version.saturating_sub(previous);
                    }
                    watched.last_version = watched.last_version.max(device.version);
                }
            }
            "alarm" => {
                self.counters.alarms.fetch_add(1, Ordering::Relaxed);
                let Some(alarm) = &message.alarm else {
                    return;
                };
                if message.transition == Some("raised") && is_checked_rule(alarm.rule) {
                    result
                        .devices
                        .entry(alarm.device.to_owned())
                        .or_default()
                        .raises += 1;
                }
            }
            _ => {}
        }
    }
}
