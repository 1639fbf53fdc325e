//! The ceiling: a bare MQTT subscriber on the same broker that only counts frames and reads
//! their publish time, so a run can say what share of the broker's own delivery rate the
//! engine reaches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use rumqttc::{Event, MqttOptions, Packet, QoS};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::dashboards::{MAX_LATENCY_US, latency_histogram, now_us};
use crate::profile::SENT_KEY;

/// A running bare subscriber.
pub struct CeilingSubscriber {
    pub received: Arc<AtomicU64>,
    /// Microseconds after `epoch` of the last frame received.
    pub last_received_us: Arc<AtomicU64>,
    task: JoinHandle<Histogram<u64>>,
}

impl CeilingSubscriber {
    /// Subscribes to `{prefix}/+/telemetry` at `qos` and returns once the broker confirmed.
    ///
    /// # Errors
    ///
    /// Fails when the broker cannot be reached or rejects the subscription within 30 s.
    pub async fn start(
        host: &str,
        port: u16,
        prefix: &str,
        qos: QoS,
        epoch: Instant,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<Self> {
        let mut options = MqttOptions::new(
            format!("valmetal-lt-ceiling-{}", std::process::id()),
            host,
            port,
        );
        options
            .set_keep_alive(Duration::from_secs(60))
            .set_clean_session(true)
            .set_max_packet_size(1024 * 1024, 1024 * 1024);
        let (client, mut event_loop) = valmetal_engine::mqtt_client::connect(options);
        client
            .subscribe(format!("{prefix}/+/telemetry"), qos)
            .await
            .context("subscribe request failed")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let event = tokio::time::timeout_at(deadline, event_loop.poll())
                .await
                .context("the broker did not confirm the subscription within 30 s")?;
            match event {
                Ok(Event::Incoming(Packet::SubAck(_))) => break,
                Ok(_) => {}
                Err(error) => anyhow::bail!("cannot connect to {host}:{port}: {error}"),
            }
        }
        let received: Arc<AtomicU64> = Arc::default();
        let last_received_us: Arc<AtomicU64> = Arc::default();
        let task = tokio::spawn(count(
            event_loop,
            client,
            Arc::clone(&received),
            Arc::clone(&last_received_us),
            epoch,
            stop,
        ));
        Ok(Self {
            received,
            last_received_us,
            task,
        })
    }

    /// Waits for the subscriber to stop and returns its latency histogram.
    pub async fn finish(self) -> Histogram<u64> {
        self.task.await.unwrap_or_else(|_| latency_histogram())
    }
}

async fn count(
    mut event_loop: rumqttc::EventLoop,
    client: rumqttc::AsyncClient,
    received: Arc<AtomicU64>,
    last_received_us: Arc<AtomicU64>,
    epoch: Instant,
    mut stop: watch::Receiver<bool>,
) -> Histogram<u64> {
    let mut latency = latency_histogram();
    let marker = format!("\"{SENT_KEY}\":");
    loop {
        let event = tokio::select! {
            event = event_loop.poll() => event,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        match event {
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let arrived = now_us();
                received.fetch_add(1, Ordering::Relaxed);
                last_received_us.store(epoch.elapsed().as_micros() as u64, Ordering::Relaxed);
                if let Some(sent) = sent_us(&publish.payload, marker.as_bytes()) {
                    let _ = latency.record(arrived.saturating_sub(sent).clamp(1, MAX_LATENCY_US));
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "Ceiling subscriber connection failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let _ = client.try_disconnect();
    latency
}

/// Reads the publish time from a payload without parsing the JSON.
fn sent_us(payload: &[u8], marker: &[u8]) -> Option<u64> {
    let start = payload
        .windows(marker.len())
        .rposition(|window| window == marker)?
        + marker.len();
    let digits = payload[start..]
        .iter()
        .take_while(|byte| byte.is_ascii_digit())
        .count();
    std::str::from_utf8(&payload[start..start + digits])
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sent_time_read_from_payload() {
        let payload = br#"{"ts":1,"values":{"temperature":70.5,"sent_us":1764800000000123}}"#;
        assert_eq!(
            sent_us(payload, b"\"sent_us\":"),
            Some(1_764_800_000_000_123)
        );
    }
}
