//! The simulated fleet: devices spread over MQTT connections, each connection publishing its
//! share of the offered rate on its own schedule.
//!
//! The schedule is a count of frames due since the start: a linear ramp to the target rate,
//! then the rate, plus the burst frames of the burst scenario. A connection publishes what is
//! due every millisecond, so the offered rate holds as long as the broker takes it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::profile::{Profile, Recordings, SimulatedDevice};

/// Offered load over time.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Target total rate in frames per second; 0 publishes as fast as the broker takes frames.
    pub rate: f64,
    pub ramp: Duration,
    /// Extra frames sent at once every `burst_every`, when set.
    pub burst: Option<(Duration, u64)>,
    /// Time at which every connection drops and reconnects, when set.
    pub reconnect_at: Option<Duration>,
}

impl Schedule {
    /// Returns the frames due in total after `elapsed`, before any cap.
    pub fn due(&self, elapsed: Duration) -> f64 {
        let seconds = elapsed.as_secs_f64();
        let ramp = self.ramp.as_secs_f64();
        let steady = if seconds < ramp {
            self.rate * seconds * seconds / (2.0 * ramp)
        } else {
            self.rate * (ramp / 2.0 + (seconds - ramp))
        };
        let bursts = self.burst.map_or(0.0, |(every, frames)| {
            (seconds / every.as_secs_f64().max(0.001)).floor() * frames as f64
        });
        steady + bursts
    }
}

/// Where and how the fleet connects.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub host: String,
    pub port: u16,
    pub topic_prefix: String,
    pub qos: QoS,
    pub devices: u32,
    pub connections: u32,
    pub profile: Profile,
    pub schedule: Schedule,
    /// Frames the whole fleet publishes at most.
    pub max_frames: u64,
    pub duration: Duration,
    /// Base of every device's `seq`, so a later run's frames are never taken as duplicates.
    pub seq_base: u64,
}

/// Counters shared by the connections, read by the progress line.
#[derive(Debug, Default)]
pub struct FleetCounters {
    pub published: AtomicU64,
    pub acknowledged: AtomicU64,
    pub publish_errors: AtomicU64,
    pub connections_up: AtomicU64,
    pub reconnects: AtomicU64,
}

/// What one connection did.
#[derive(Debug)]
pub struct ConnectionResult {
    pub devices: Vec<SimulatedDevice>,
    /// Time from the reconnect storm's disconnect to the new connection's acknowledgement.
    pub reconnect_time: Option<Duration>,
}

/// A running fleet.
pub struct Fleet {
    pub counters: Arc<FleetCounters>,
    pub started: Instant,
    tasks: Vec<JoinHandle<anyhow::Result<ConnectionResult>>>,
}

impl Fleet {
    /// Connects every connection, then starts publishing on all of them at once.
    ///
    /// # Errors
    ///
    /// Fails when a connection cannot be made within 30 s.
    pub async fn start(
        options: FleetOptions,
        recordings: Arc<Recordings>,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<Self> {
        let counters = Arc::new(FleetCounters::default());
        let connections = options.connections.clamp(1, options.devices);
        let mut connected = Vec::with_capacity(connections as usize);
        let run = std::process::id();
        for number in 0..connections {
            let client_id = format!("valmetal-lt-{run}-{number}");
            let link = connect(&options, &client_id)
                .await
                .with_context(|| format!("connection {number} to the broker failed"))?;
            counters.connections_up.fetch_add(1, Ordering::Relaxed);
            connected.push((client_id, link));
        }
        let (start_sender, start) = watch::channel(false);
        let started = Instant::now();
        let share = 1.0 / f64::from(connections);
        let mut tasks = Vec::with_capacity(connected.len());
        for (number, (client_id, link)) in connected.into_iter().enumerate() {
            let devices: Vec<SimulatedDevice> = (number as u32..options.devices)
                .step_by(connections as usize)
                .map(|index| SimulatedDevice::new(options.profile, index, &recordings))
                .collect();
            let connection = Connection {
                options: options.clone(),
                client_id,
                share,
                max_frames: share_of(options.max_frames, connections, number as u32),
                devices,
                recordings: Arc::clone(&recordings),
                counters: Arc::clone(&counters),
            };
            tasks.push(tokio::spawn(connection.run(
                link,
                started,
                start.clone(),
                stop.clone(),
            )));
        }
        let _ = start_sender.send(true);
        Ok(Self {
            counters,
            started,
            tasks,
        })
    }

    /// Waits for every connection to finish and returns what each did.
    ///
    /// # Errors
    ///
    /// Fails when a connection task failed or panicked.
    pub async fn finish(self) -> anyhow::Result<Vec<ConnectionResult>> {
        let mut results = Vec::with_capacity(self.tasks.len());
        for task in self.tasks {
            results.push(task.await.context("a publishing connection panicked")??);
        }
        Ok(results)
    }
}

/// Returns connection `number`'s share of `total`, so the shares add up to `total`.
fn share_of(total: u64, connections: u32, number: u32) -> u64 {
    let connections = u64::from(connections);
    total / connections + u64::from(u64::from(number) < total % connections)
}

struct Link {
    client: AsyncClient,
    event_loop: EventLoop,
}

async fn connect(options: &FleetOptions, client_id: &str) -> anyhow::Result<Link> {
    let mut mqtt = MqttOptions::new(client_id, &options.host, options.port);
    mqtt.set_keep_alive(Duration::from_secs(60))
        .set_clean_session(true)
        .set_inflight(u16::MAX)
        .set_max_packet_size(1024 * 1024, 1024 * 1024);
    let (client, mut event_loop) = valmetal_engine::mqtt_client::connect(mqtt);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let event = tokio::time::timeout_at(deadline, event_loop.poll())
            .await
            .context("no connection acknowledgement within 30 s")?;
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(Link { client, event_loop }),
            Ok(_) => {}
            Err(error) => {
                anyhow::bail!(
                    "cannot connect to {}:{}: {error}; check --broker",
                    options.host,
                    options.port
                )
            }
        }
    }
}

/// One MQTT connection and the devices it carries.
struct Connection {
    options: FleetOptions,
    client_id: String,
    /// This connection's fraction of the offered rate.
    share: f64,
    max_frames: u64,
    devices: Vec<SimulatedDevice>,
    recordings: Arc<Recordings>,
    counters: Arc<FleetCounters>,
}

impl Connection {
    async fn run(
        mut self,
        link: Link,
        started: Instant,
        mut start: watch::Receiver<bool>,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<ConnectionResult> {
        let _ = start.wait_for(|started| *started).await;
        let Link { client, event_loop } = link;
        let acknowledged = Arc::new(AtomicU64::new(0));
        let mut poller = tokio::spawn(poll(
            event_loop,
            Arc::clone(&self.counters),
            Arc::clone(&acknowledged),
        ));
        let mut client = client;
        let mut reconnect_time = None;
        let mut reconnect_pending = self.options.schedule.reconnect_at;
        let mut ticker = tokio::time::interval(Duration::from_millis(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut sent: u64 = 0;
        let mut next_device = 0usize;
        let mut payload = String::with_capacity(512);
        let topics: Vec<String> = self
            .devices
            .iter()
            .map(|device| format!("{}/{}/telemetry", self.options.topic_prefix, device.id))
            .collect();
        let unbounded = self.options.schedule.rate <= 0.0 && self.options.schedule.burst.is_none();
        while sent < self.max_frames && !*stop.borrow() {
            let elapsed = started.elapsed();
            if elapsed >= self.options.duration {
                break;
            }
            if reconnect_pending.is_some_and(|at| elapsed >= at) {
                reconnect_pending = None;
                let began = Instant::now();
                let _ = client.disconnect().await;
                let _ = tokio::time::timeout(Duration::from_secs(2), &mut poller).await;
                poller.abort();
                let link = connect(&self.options, &self.client_id).await?;
                self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                reconnect_time = Some(began.elapsed());
                client = link.client;
                poller = tokio::spawn(poll(
                    link.event_loop,
                    Arc::clone(&self.counters),
                    Arc::clone(&acknowledged),
                ));
            }
            let target = if unbounded {
                sent + 64
            } else {
                (self.options.schedule.due(elapsed) * self.share) as u64
            };
            let target = target.min(self.max_frames);
            while sent < target {
                let device = &mut self.devices[next_device];
                let seq = self.options.seq_base + device.published + 1;
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                device.next_frame(
                    &self.recordings,
                    seq,
                    now.as_millis() as i64,
                    now.as_micros() as u64,
                    &mut payload,
                );
                let topic = topics[next_device].clone();
                if let Err(error) = client
                    .publish(topic, self.options.qos, false, payload.as_bytes().to_vec())
                    .await
                {
                    tracing::debug!(%error, "Publish request failed");
                    self.counters.publish_errors.fetch_add(1, Ordering::Relaxed);
                }
                self.counters.published.fetch_add(1, Ordering::Relaxed);
                sent += 1;
                next_device = (next_device + 1) % self.devices.len();
            }
            if !unbounded {
                ticker.tick().await;
            }
        }
        if self.options.qos != QoS::AtMostOnce {
            wait_for_acknowledgements(&acknowledged, sent).await;
        }
        let _ = client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut poller).await;
        poller.abort();
        Ok(ConnectionResult {
            devices: self.devices,
            reconnect_time,
        })
    }
}

/// Waits up to 10 s until the broker has acknowledged `sent` publishes of one connection, so
/// disconnecting does not drop publishes still in flight.
async fn wait_for_acknowledgements(acknowledged: &AtomicU64, sent: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while acknowledged.load(Ordering::Relaxed) < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn poll(
    mut event_loop: EventLoop,
    counters: Arc<FleetCounters>,
    acknowledged: Arc<AtomicU64>,
) {
    loop {
        match event_loop.poll().await {
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                counters.acknowledged.fetch_add(1, Ordering::Relaxed);
                acknowledged.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(%error, "Publishing connection ended");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_ramps_then_holds_rate() {
        let schedule = Schedule {
            rate: 1000.0,
            ramp: Duration::from_secs(2),
            burst: None,
            reconnect_at: None,
        };
        assert_eq!(schedule.due(Duration::from_secs(1)), 250.0);
        assert_eq!(schedule.due(Duration::from_secs(2)), 1000.0);
        assert_eq!(schedule.due(Duration::from_secs(3)), 2000.0);
    }

    #[test]
    fn shares_add_up_to_total() {
        let total: u64 = (0..7).map(|number| share_of(100, 7, number)).sum();
        assert_eq!(total, 100);
    }
}
