//! The engine inside the harness, and the direct feed: frames handed to the engine's intake as
//! MQTT ingest hands them (decode, journal, time-series queues, device actor), with no broker,
//! to measure what the engine alone carries.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tokio::sync::watch;
use tokio::time::Instant;
use valmetal_actors::DeviceId;
use valmetal_engine::RunningEngine;
use valmetal_engine::ingest::payload;
use valmetal_engine::storage::Intake;
use valmetal_engine::telemetry::IngestFramesAccepted;

use crate::engine::{EngineSettings, engine_config};
use crate::profile::{Recordings, SimulatedDevice};
use crate::publisher::{ConnectionResult, FleetCounters, FleetOptions};

/// Largest payload the direct feed accepts, as `mqtt.max_payload_bytes` defaults to.
const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// Starts the engine in this process with the configuration a spawned engine gets.
///
/// # Errors
///
/// Fails when the configuration or the engine's stores cannot be set up.
pub async fn start_in_process(settings: &EngineSettings) -> anyhow::Result<RunningEngine> {
    std::fs::create_dir_all(&settings.data_dir)?;
    let path = settings.data_dir.join("engine.toml");
    std::fs::write(&path, engine_config(settings))?;
    let config = valmetal_engine::Config::load(Some(&path)).context("engine configuration")?;
    let rules = valmetal_engine::bundled_rules::load(None).context("bundled rules")?;
    RunningEngine::start(&config, rules)
        .await
        .context("the in-process engine did not start")
}

/// Waits up to 30 s until the engine has subscribed at the broker.
///
/// # Errors
///
/// Fails when it has not by then.
pub async fn wait_connected(engine: &RunningEngine) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !engine.is_broker_connected() {
        if Instant::now() >= deadline {
            anyhow::bail!("the in-process engine did not subscribe at the broker within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Feeds the fleet's frames to `intake` on the fleet's schedule, from one task as MQTT
/// ingest does, and returns what was fed.
///
/// # Errors
///
/// Fails when a simulated device id is invalid, which would be a harness bug.
pub async fn feed(
    intake: Intake,
    options: FleetOptions,
    recordings: Arc<Recordings>,
    counters: Arc<FleetCounters>,
    started: Instant,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<ConnectionResult> {
    let mut devices: Vec<SimulatedDevice> = (0..options.devices)
        .map(|index| SimulatedDevice::new(options.profile, index, &recordings))
        .collect();
    let ids = devices
        .iter()
        .map(|device| DeviceId::parse(&device.id).context("simulated device id"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let unbounded = options.schedule.rate <= 0.0 && options.schedule.burst.is_none();
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut payload = String::with_capacity(512);
    let mut sent = 0u64;
    let mut next = 0usize;
    while sent < options.max_frames && !*stop.borrow() {
        let elapsed = started.elapsed();
        if elapsed >= options.duration {
            break;
        }
        let target = if unbounded {
            sent + 256
        } else {
            options.schedule.due(elapsed) as u64
        }
        .min(options.max_frames);
        while sent < target {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let now_ms = now.as_millis() as i64;
            let device = &mut devices[next];
            let seq = options.seq_base + device.published + 1;
            device.next_frame(
                &recordings,
                seq,
                now_ms,
                now.as_micros() as u64,
                &mut payload,
            );
            take_in(&intake, &ids[next], payload.as_bytes(), now_ms).await;
            counters.published.fetch_add(1, Ordering::Relaxed);
            sent += 1;
            next = (next + 1) % devices.len();
        }
        if unbounded {
            tokio::task::yield_now().await;
        } else {
            ticker.tick().await;
        }
    }
    Ok(ConnectionResult {
        devices,
        reconnect_time: None,
    })
}

/// Takes one message in as MQTT ingest does once the topic is parsed.
async fn take_in(intake: &Intake, device: &DeviceId, bytes: &[u8], now_ms: i64) {
    let Ok(frames) = payload::decode(bytes, MAX_PAYLOAD_BYTES, now_ms) else {
        return;
    };
    let Ok(retained) = intake.journal(device, now_ms, bytes) else {
        tracing::warn!(device.id = %device, "Journal append failed in the direct feed");
        return;
    };
    IngestFramesAccepted(frames.len()).emit();
    intake.accept(device, frames, now_ms, retained).await;
}
