//! Metrics of notifications, emitted through typed events. The `channel` label is a channel
//! name from the configuration, so its values are bounded by the configuration.

use std::time::Duration;

use metrics::{counter, gauge, histogram};

/// Name of the delivery latency histogram, whose buckets the engine's recorder sets.
pub const DELIVERY_LATENCY_SECONDS: &str = "telemetry_notify_delivery_latency_seconds";
/// Bucket bounds of [`DELIVERY_LATENCY_SECONDS`], in seconds: from a quick webhook to a
/// delivery that waited through retries, or through a digest window.
pub const DELIVERY_LATENCY_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0, 1800.0, 7200.0,
];

const SENT_TOTAL: &str = "telemetry_notify_sent_total";
const FAILURES_TOTAL: &str = "telemetry_notify_failures_total";
const DEAD_TOTAL: &str = "telemetry_notify_dead_total";
const QUEUE_DEPTH: &str = "telemetry_notify_queue_depth";
const CREATED_TOTAL: &str = "telemetry_notify_created_total";
const CHANNEL: &str = "channel";

/// A notification was delivered; `latency` runs from its creation in the outbox.
pub struct NotificationDelivered<'a> {
    pub channel: &'a str,
    pub latency: Duration,
}

impl NotificationDelivered<'_> {
    pub fn emit(self) {
        let channel = self.channel.to_owned();
        counter!(SENT_TOTAL, CHANNEL => channel.clone()).increment(1);
        histogram!(DELIVERY_LATENCY_SECONDS, CHANNEL => channel).record(self.latency.as_secs_f64());
    }
}

/// One delivery attempt failed; `reason` is a stable label such as `timeout` or `http_503`.
pub struct NotificationAttemptFailed<'a> {
    pub channel: &'a str,
    pub reason: &'static str,
}

impl NotificationAttemptFailed<'_> {
    pub fn emit(self) {
        counter!(FAILURES_TOTAL, CHANNEL => self.channel.to_owned(), "reason" => self.reason)
            .increment(1);
    }
}

/// A notification will not be tried again.
pub struct NotificationMarkedDead<'a> {
    pub channel: &'a str,
}

impl NotificationMarkedDead<'_> {
    pub fn emit(self) {
        counter!(DEAD_TOTAL, CHANNEL => self.channel.to_owned()).increment(1);
    }
}

/// Notifications waiting for delivery on one channel, queued or to be retried.
pub struct NotificationQueueMeasured<'a> {
    pub channel: &'a str,
    pub depth: i64,
}

impl NotificationQueueMeasured<'_> {
    pub fn emit(self) {
        gauge!(QUEUE_DEPTH, CHANNEL => self.channel.to_owned()).set(self.depth as f64);
    }
}

/// A notification was written to the outbox; `status` is `queued`, `held` or `suppressed`.
pub struct NotificationCreated {
    pub kind: &'static str,
    pub status: &'static str,
}

impl NotificationCreated {
    pub fn emit(self) {
        counter!(CREATED_TOTAL, "kind" => self.kind, "status" => self.status).increment(1);
    }
}
