//! Publishing replay frames to a broker, paced by their device times and a speed-up factor.
//!
//! Each stream keeps its own clock: frame `i` is published `(ts_i - ts_0) / speed` after the
//! stream starts, so data sets from different years play side by side. A frame whose time
//! steps backwards is published at once, in file order, as a device resending old data would.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::datasets::ReplayFrame;
use crate::ingest::topic;
use crate::mqtt_client;

/// Broker, topic and QoS of a replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub host: String,
    pub port: u16,
    pub topic_prefix: String,
    pub client_id: String,
    pub qos: QoS,
}

/// Frames to publish on one clock.
#[derive(Debug, Clone)]
pub struct ReplayStream {
    pub name: String,
    pub frames: Vec<ReplayFrame>,
    /// Device time per engine time; 0 publishes as fast as the broker takes them.
    pub speed: f64,
}

/// Counts of a finished replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplaySummary {
    pub published: u64,
    /// QoS 1 publishes the broker acknowledged.
    pub acknowledged: u64,
}

/// Error of a replay.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(
        "cannot connect to the MQTT broker at {host}:{port} within {seconds}s: {reason}; check --broker"
    )]
    Connect {
        host: String,
        port: u16,
        seconds: u64,
        reason: String,
    },
    #[error("publishing failed: {0}")]
    Publish(#[from] rumqttc::ClientError),
}

/// Time allowed for the first connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed, after the last publish, for the broker to acknowledge everything.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Publishes every stream concurrently and returns once all are published and acknowledged,
/// or when `stop` turns true.
///
/// # Errors
///
/// Returns [`ReplayError`] when the broker cannot be reached or the client fails.
pub async fn replay(
    options: ReplayOptions,
    streams: Vec<ReplayStream>,
    stop: watch::Receiver<bool>,
) -> Result<ReplaySummary, ReplayError> {
    let mut mqtt = MqttOptions::new(&options.client_id, &options.host, options.port);
    mqtt.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_inflight(200);
    let (client, event_loop) = mqtt_client::connect(mqtt);
    let acknowledged = Arc::new(AtomicU64::new(0));
    let closing = Arc::new(AtomicBool::new(false));
    let (connected_tx, connected_rx) = oneshot::channel();
    let poller = tokio::spawn(poll(
        event_loop,
        Arc::clone(&acknowledged),
        Arc::clone(&closing),
        connected_tx,
    ));
    wait_connected(&options, connected_rx).await?;

    let published = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for stream in streams {
        let context = StreamContext {
            client: client.clone(),
            options: options.clone(),
            published: Arc::clone(&published),
            stop: stop.clone(),
        };
        tasks.push(tokio::spawn(publish_stream(context, stream)));
    }
    for task in tasks {
        task.await.map_err(|error| ReplayError::Connect {
            host: options.host.clone(),
            port: options.port,
            seconds: 0,
            reason: format!("replay task failed: {error}"),
        })??;
    }

    let published = published.load(Ordering::Acquire);
    if options.qos != QoS::AtMostOnce {
        wait_acknowledged(&acknowledged, published).await;
    }
    closing.store(true, Ordering::Release);
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), poller).await;
    Ok(ReplaySummary {
        published,
        acknowledged: acknowledged.load(Ordering::Acquire),
    })
}

struct StreamContext {
    client: AsyncClient,
    options: ReplayOptions,
    published: Arc<AtomicU64>,
    stop: watch::Receiver<bool>,
}

async fn publish_stream(context: StreamContext, stream: ReplayStream) -> Result<(), ReplayError> {
    let Some(first) = stream.frames.first() else {
        return Ok(());
    };
    info!(replay.stream = %stream.name, frames = stream.frames.len(), speed = stream.speed, "Replay started");
    let first_ts = first.ts;
    let mut newest_ts = first_ts;
    let started = Instant::now();
    let mut last_report = Instant::now();
    for (index, frame) in stream.frames.iter().enumerate() {
        if *context.stop.borrow() {
            info!(replay.stream = %stream.name, published = index, "Replay stopped");
            return Ok(());
        }
        newest_ts = newest_ts.max(frame.ts);
        if stream.speed > 0.0 {
            let offset_ms = (newest_ts - first_ts) as f64 / stream.speed;
            tokio::time::sleep_until(started + Duration::from_secs_f64(offset_ms / 1000.0)).await;
        }
        let topic = topic::telemetry_topic(&context.options.topic_prefix, &frame.device);
        context
            .client
            .publish(topic, context.options.qos, false, frame.payload())
            .await?;
        context.published.fetch_add(1, Ordering::AcqRel);
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            info!(replay.stream = %stream.name, published = index + 1, total = stream.frames.len(), "Replay progress");
        }
    }
    info!(replay.stream = %stream.name, published = stream.frames.len(), "Replay finished");
    Ok(())
}

async fn poll(
    mut event_loop: rumqttc::EventLoop,
    acknowledged: Arc<AtomicU64>,
    closing: Arc<AtomicBool>,
    connected: oneshot::Sender<Result<(), String>>,
) {
    let mut connected = Some(connected);
    let mut failures = 0_u32;
    loop {
        match event_loop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                failures = 0;
                if let Some(sender) = connected.take() {
                    let _ = sender.send(Ok(()));
                }
            }
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                acknowledged.fetch_add(1, Ordering::AcqRel);
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(_) if closing.load(Ordering::Acquire) => return,
            Err(error) => {
                failures += 1;
                if failures == 3
                    && let Some(sender) = connected.take()
                {
                    let _ = sender.send(Err(error.to_string()));
                    return;
                }
                warn!(%error, "Replay connection failed; reconnecting");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

async fn wait_connected(
    options: &ReplayOptions,
    connected: oneshot::Receiver<Result<(), String>>,
) -> Result<(), ReplayError> {
    let failure = |reason: String| ReplayError::Connect {
        host: options.host.clone(),
        port: options.port,
        seconds: CONNECT_TIMEOUT.as_secs(),
        reason,
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connected).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(reason))) => Err(failure(reason)),
        Ok(Err(_)) => Err(failure("connection task ended".into())),
        Err(_) => Err(failure("timed out".into())),
    }
}

async fn wait_acknowledged(acknowledged: &AtomicU64, published: u64) {
    let deadline = Instant::now() + ACK_TIMEOUT;
    while acknowledged.load(Ordering::Acquire) < published {
        if Instant::now() >= deadline {
            warn!(
                published,
                acknowledged = acknowledged.load(Ordering::Acquire),
                "Broker did not acknowledge every publish in time"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    debug!(published, "Every publish acknowledged");
}
