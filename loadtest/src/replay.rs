//! The replay scenario: the bundled recordings over one MQTT connection, each paced by its own
//! timestamps at a speed-up, with the publish time added to every frame.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use rumqttc::{Event, MqttOptions, Packet, QoS};
use tokio::sync::watch;
use tokio::time::Instant;
use valmetal_engine::replay::{ReplayFrame, datasets};

use crate::dashboards::now_us;
use crate::profile::{DeviceKind, SENT_KEY, SimulatedDevice};
use crate::publisher::{ConnectionResult, FleetCounters};

/// One recorded frame and when to publish it.
struct Scheduled {
    at: Duration,
    frame: ReplayFrame,
    kind: DeviceKind,
}

/// What the replay publishes.
#[derive(Debug, Clone)]
pub struct ReplayPlan {
    pub host: String,
    pub port: u16,
    pub topic_prefix: String,
    pub qos: QoS,
    pub speed: f64,
    pub machine_speed: f64,
    pub duration: Duration,
    pub max_frames: u64,
}

/// Returns the ids of the recorded devices: the 100 feed bins, then the machine.
pub fn device_ids() -> Vec<String> {
    let mut ids: Vec<String> = (1..=100).map(datasets::feed_bin_device).collect();
    ids.push(datasets::MACHINE_DEVICE_ID.to_owned());
    ids
}

fn schedule(plan: &ReplayPlan) -> anyhow::Result<Vec<Scheduled>> {
    let bins = datasets::feed_bins(datasets::FEED_BINS_CSV, None)?;
    let machine = datasets::machine_temperature(
        datasets::MACHINE_TEMPERATURE_CSV,
        datasets::MACHINE_DEVICE_ID,
        None,
    )?;
    let mut frames = Vec::with_capacity(bins.len() + machine.len());
    for (stream, speed, kind) in [
        (bins, plan.speed, DeviceKind::FeedBin),
        (machine, plan.machine_speed, DeviceKind::Machine),
    ] {
        let first = stream.first().map_or(0, |frame| frame.ts);
        for frame in stream {
            // A frame whose time steps back is published at once, in file order.
            let offset_ms = ((frame.ts - first).max(0) as f64 / speed).max(0.0);
            frames.push(Scheduled {
                at: Duration::from_secs_f64(offset_ms / 1000.0),
                frame,
                kind,
            });
        }
    }
    frames.sort_by_key(|scheduled| scheduled.at);
    Ok(frames)
}

/// Publishes the recordings until they end, `duration` passes or `max_frames` are sent.
///
/// # Errors
///
/// Fails when the broker cannot be reached.
pub async fn run(
    plan: ReplayPlan,
    counters: Arc<FleetCounters>,
    started: Instant,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<ConnectionResult> {
    let frames = schedule(&plan).context("the bundled recordings do not parse")?;
    let mut devices: Vec<SimulatedDevice> = device_ids()
        .into_iter()
        .enumerate()
        .map(|(index, id)| {
            let kind = if id == datasets::MACHINE_DEVICE_ID {
                DeviceKind::Machine
            } else {
                DeviceKind::FeedBin
            };
            SimulatedDevice::recorded(index as u32, kind, id)
        })
        .collect();
    let mut options = MqttOptions::new(
        format!("valmetal-lt-replay-{}", std::process::id()),
        &plan.host,
        plan.port,
    );
    options
        .set_keep_alive(Duration::from_secs(60))
        .set_clean_session(true)
        .set_inflight(u16::MAX);
    let (client, mut event_loop) = valmetal_engine::mqtt_client::connect(options);
    let poll_counters = Arc::clone(&counters);
    let poller = tokio::spawn(async move {
        loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    poll_counters.connections_up.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    poll_counters.acknowledged.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "Replay connection failed");
                    return;
                }
            }
        }
    });
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sent = 0u64;
    for scheduled in frames {
        if sent >= plan.max_frames || *stop.borrow() {
            break;
        }
        while started.elapsed() < scheduled.at && started.elapsed() < plan.duration {
            ticker.tick().await;
        }
        if started.elapsed() >= plan.duration {
            break;
        }
        let device = devices
            .iter_mut()
            .find(|device| device.id == scheduled.frame.device)
            .context("a recorded frame names an unknown device")?;
        let mut values = scheduled.frame.values.clone();
        values.insert(SENT_KEY.to_owned(), now_us().into());
        let payload = serde_json::json!({
            "ts": scheduled.frame.ts,
            "seq": scheduled.frame.seq,
            "values": values,
        })
        .to_string();
        let watched = match scheduled.kind {
            DeviceKind::FeedBin => values.get("end_weight_kg"),
            DeviceKind::Machine => values.get("temperature"),
        }
        .and_then(serde_json::Value::as_f64)
        .unwrap_or_default();
        device.record(scheduled.frame.ts, watched);
        let topic = format!("{}/{}/telemetry", plan.topic_prefix, device.id);
        if client
            .publish(topic, plan.qos, false, payload.into_bytes())
            .await
            .is_err()
        {
            counters.publish_errors.fetch_add(1, Ordering::Relaxed);
        }
        counters.published.fetch_add(1, Ordering::Relaxed);
        sent += 1;
    }
    if plan.qos != QoS::AtMostOnce {
        let deadline = Instant::now() + Duration::from_secs(10);
        while counters.acknowledged.load(Ordering::Relaxed) < sent && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), poller).await;
    Ok(ConnectionResult {
        devices,
        reconnect_time: None,
    })
}
