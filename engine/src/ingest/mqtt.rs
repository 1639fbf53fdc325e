//! The ingest loop: one rumqttc connection with a persistent session, QoS 1 by default,
//! reconnecting with backoff and resubscribing after every connection.
//!
//! A message is acknowledged to the broker only after its frames are in the device actor's
//! mailbox, or after it was rejected. Bad messages are rejected one by one; none stops the
//! loop or affects the messages around it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectionError, Event, MqttOptions, Packet, Publish, QoS};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, error, info, info_span, warn};
use valmetal_actors::clock::now_ms;
use valmetal_actors::retained::Retained;
use valmetal_actors::{DeviceId, DeviceRegistry, PresenceReport};

use super::rejects::RejectLog;
use super::topic::{self, TopicKind};
use super::{payload, status};
use crate::config::MqttConfig;
use crate::events::OutgoingMessage;
use crate::mqtt_client;
use crate::sinks::backoff::Backoff;
use crate::storage::Intake;
use crate::telemetry::{
    IngestConnectionChanged, IngestFramesAccepted, IngestJournalFailed, OutgoingMessagePublished,
};

/// Largest packet accepted from the broker: the MQTT 3.1.1 maximum. A smaller limit makes
/// rumqttc drop the connection on an oversized message, and a persistent session redelivers
/// it on every reconnect. So every message is received, and the payload decoder rejects an
/// oversized one against `mqtt.max_payload_bytes`.
const MQTT_MAX_PACKET_BYTES: usize = 268_435_455;

/// Largest packet the engine sends: a shadow delta of the maximum number of desired keys with
/// maximum-length values fits.
pub const MAX_OUTGOING_PACKET_BYTES: usize = 1024 * 1024;

/// First wait before reconnecting; it doubles per failure up to `mqtt.max_reconnect_delay`.
const FIRST_RECONNECT_DELAY: Duration = Duration::from_millis(250);

/// The ingest loop's configuration and the stages it feeds.
pub struct MqttIngest {
    config: MqttConfig,
    registry: Arc<DeviceRegistry>,
    intake: Intake,
    /// Messages to publish to devices over the same connection.
    outgoing: mpsc::Receiver<OutgoingMessage>,
}

/// A running ingest loop.
pub struct IngestHandle {
    connected: Arc<AtomicBool>,
    taken: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl IngestHandle {
    /// Returns true while the broker connection is up and the subscriptions are active.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Returns how many messages the loop has taken in or rejected since it started.
    pub fn messages_taken(&self) -> u64 {
        self.taken.load(Ordering::Acquire)
    }

    /// Returns a flag that follows the broker connection.
    pub fn connected_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.connected)
    }

    /// Disconnects from the broker and waits for the loop to end.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

impl MqttIngest {
    pub fn new(
        config: MqttConfig,
        registry: Arc<DeviceRegistry>,
        intake: Intake,
        outgoing: mpsc::Receiver<OutgoingMessage>,
    ) -> Self {
        Self {
            config,
            registry,
            intake,
            outgoing,
        }
    }

    /// Starts the loop on the current tokio runtime.
    pub fn start(self) -> IngestHandle {
        let connected = Arc::new(AtomicBool::new(false));
        let taken = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = watch::channel(false);
        let span = info_span!("mqtt_ingest", mqtt.broker = %format!("{}:{}", self.config.host, self.config.port));
        let task = tokio::spawn(
            self.run(Arc::clone(&connected), Arc::clone(&taken), stopped)
                .instrument(span),
        );
        IngestHandle {
            connected,
            taken,
            stop,
            task,
        }
    }

    fn options(&self) -> MqttOptions {
        let config = &self.config;
        let mut options = MqttOptions::new(&config.client_id, &config.host, config.port);
        options
            .set_keep_alive(config.keep_alive)
            .set_clean_session(config.clean_session)
            .set_manual_acks(true)
            .set_max_packet_size(MQTT_MAX_PACKET_BYTES, MAX_OUTGOING_PACKET_BYTES);
        options
    }

    fn qos(&self) -> QoS {
        if self.config.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        }
    }

    async fn run(
        mut self,
        connected: Arc<AtomicBool>,
        taken: Arc<AtomicU64>,
        mut stopped: watch::Receiver<bool>,
    ) {
        let (client, mut event_loop) = mqtt_client::connect(self.options());
        let rejects = RejectLog::default();
        let mut delay = FIRST_RECONNECT_DELAY;
        info!(mqtt.client_id = %self.config.client_id, "MQTT ingest starting");
        loop {
            let event = tokio::select! {
                event = event_loop.poll() => event,
                Some(message) = self.outgoing.recv() => {
                    publish_outgoing(&client, message);
                    continue;
                }
                _ = stopped.changed() => break,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    delay = FIRST_RECONNECT_DELAY;
                    info!(session_present = ack.session_present, "MQTT connected");
                    self.subscribe(&client);
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    let rejected = ack
                        .return_codes
                        .iter()
                        .any(|code| matches!(code, rumqttc::SubscribeReasonCode::Failure));
                    if rejected {
                        error!(codes = ?ack.return_codes, "MQTT broker rejected a subscription; check the broker's ACL for the topic prefix");
                    } else {
                        info!("MQTT subscriptions active");
                    }
                    set_connected(&connected, !rejected);
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    // A message waiting for room in a full store queue, or for the journal's
                    // disk, gives way to shutdown unacknowledged: the broker or the journal
                    // delivers it again at the next start.
                    let watcher = stopped.clone();
                    let handled = tokio::select! {
                        handled = self.handle_publish(&publish, &rejects, &watcher) => handled,
                        _ = stopped.changed() => break,
                    };
                    if handled {
                        acknowledge(&client, publish);
                    }
                    taken.fetch_add(1, Ordering::Release);
                }
                Ok(_) => {}
                Err(error) => {
                    set_connected(&connected, false);
                    delay = self.back_off(&error, delay, &mut stopped).await;
                    if *stopped.borrow() {
                        break;
                    }
                }
            }
        }
        self.disconnect(&client, &mut event_loop).await;
        set_connected(&connected, false);
        info!("MQTT ingest stopped");
    }

    fn subscribe(&self, client: &AsyncClient) {
        let qos = self.qos();
        let filters = topic::filters(&self.config.topic_prefix);
        let subscriptions = filters
            .iter()
            .map(|filter| rumqttc::SubscribeFilter::new(filter.clone(), qos));
        match client.try_subscribe_many(subscriptions) {
            Ok(()) => debug!(filters = ?filters, "MQTT subscribe sent"),
            Err(error) => {
                error!(%error, "MQTT subscribe request failed; it is retried on the next connection")
            }
        }
    }

    /// Takes one message in; returns false when it must not be acknowledged, so the broker
    /// delivers it again.
    async fn handle_publish(
        &self,
        publish: &Publish,
        rejects: &RejectLog,
        stopped: &watch::Receiver<bool>,
    ) -> bool {
        let (device, kind) = match topic::parse(&self.config.topic_prefix, &publish.topic) {
            Ok(parsed) => parsed,
            Err(error) => {
                let reason = match error {
                    topic::TopicError::InvalidDeviceId { .. } => "invalid_device_id",
                    _ => "invalid_topic",
                };
                rejects.reject(reason, "", &publish.topic, &error);
                return true;
            }
        };
        match kind {
            TopicKind::Telemetry => {
                let received_at = now_ms();
                match payload::decode(&publish.payload, self.config.max_payload_bytes, received_at)
                {
                    Ok(frames) => {
                        let Some(retained) = self
                            .journal_with_retry(&device, received_at, &publish.payload, stopped)
                            .await
                        else {
                            return false;
                        };
                        IngestFramesAccepted(frames.len()).emit();
                        self.intake
                            .accept(&device, frames, received_at, retained)
                            .await;
                    }
                    Err(error) => {
                        rejects.reject(error.reason(), device.as_str(), &publish.topic, &error)
                    }
                }
            }
            TopicKind::Status => match status::parse(&publish.payload) {
                Ok(online) => {
                    self.registry
                        .deliver(&device, PresenceReport { online })
                        .await
                }
                Err(error) => {
                    rejects.reject("invalid_status", device.as_str(), &publish.topic, &error)
                }
            },
        }
        true
    }

    /// Appends a message to the journal, retrying with backoff while the append fails (a
    /// full disk, say): ingest waits, as it does for a full store queue, and the broker keeps
    /// the messages behind this one. Returns `None` when shutdown begins first.
    async fn journal_with_retry(
        &self,
        device: &DeviceId,
        received_at: i64,
        payload: &[u8],
        stopped: &watch::Receiver<bool>,
    ) -> Option<Option<Retained>> {
        let backoff = Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_secs(5),
        };
        let mut attempt = 0;
        loop {
            match self.intake.journal(device, received_at, payload) {
                Ok(retained) => return Some(retained),
                Err(error) => {
                    IngestJournalFailed.emit();
                    if attempt % 20 == 0 {
                        error!(%error, device.id = %device, attempt, "Journal append failed; ingest waits and retries, so free space in the data directory");
                    }
                }
            }
            if *stopped.borrow() {
                return None;
            }
            tokio::time::sleep(backoff.wait(attempt)).await;
            attempt = attempt.saturating_add(1);
        }
    }

    /// Waits before the next connection attempt and returns the following delay.
    async fn back_off(
        &self,
        error: &ConnectionError,
        delay: Duration,
        stopped: &mut watch::Receiver<bool>,
    ) -> Duration {
        warn!(%error, retry_in_ms = delay.as_millis() as u64, "MQTT connection failed; reconnecting");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stopped.changed() => {}
        }
        (delay * 2).min(self.config.max_reconnect_delay)
    }

    async fn disconnect(&self, client: &AsyncClient, event_loop: &mut rumqttc::EventLoop) {
        if client.try_disconnect().is_err() {
            return;
        }
        let drain = async {
            while let Ok(event) = event_loop.poll().await {
                if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    break;
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(2), drain)
            .await
            .is_err()
        {
            debug!("MQTT disconnect did not complete within 2s");
        }
    }
}

fn publish_outgoing(client: &AsyncClient, message: OutgoingMessage) {
    match client.try_publish(&message.topic, QoS::AtLeastOnce, false, message.payload) {
        Ok(()) => OutgoingMessagePublished.emit(),
        Err(error) => {
            warn!(%error, mqtt.topic = %message.topic, "Publishing to a device failed; the next change sends again")
        }
    }
}

fn acknowledge(client: &AsyncClient, publish: Publish) {
    if publish.qos == QoS::AtMostOnce {
        return;
    }
    if client.try_ack(&publish).is_ok() {
        return;
    }
    let client = client.clone();
    tokio::spawn(async move {
        if let Err(error) = client.ack(&publish).await {
            debug!(%error, "MQTT acknowledgement not sent; the broker will redeliver");
        }
    });
}

fn set_connected(flag: &AtomicBool, connected: bool) {
    if flag.swap(connected, Ordering::AcqRel) != connected {
        IngestConnectionChanged(connected).emit();
    }
}
