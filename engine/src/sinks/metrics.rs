//! Metrics of the storage sinks, labelled by sink, in Prometheus conventions.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

const QUEUED: &str = "telemetry_sink_records_queued";
const SENT_TOTAL: &str = "telemetry_sink_records_sent_total";
const RETRIED_TOTAL: &str = "telemetry_sink_records_retried_total";
const REJECTED_TOTAL: &str = "telemetry_sink_records_rejected_total";
const DROPPED_TOTAL: &str = "telemetry_sink_records_dropped_total";
const SUPERSEDED_TOTAL: &str = "telemetry_sink_records_superseded_total";
const COALESCED_TOTAL: &str = "telemetry_sink_records_coalesced_total";
const REQUESTS_TOTAL: &str = "telemetry_sink_requests_total";
const REQUEST_SECONDS: &str = "telemetry_sink_request_duration_seconds";
const RECORD_DELAY_SECONDS: &str = "telemetry_sink_record_delay_seconds";

/// Records sent again after a failure or a partial reply.
pub fn retried(sink: &'static str, records: usize) {
    counter!(RETRIED_TOTAL, "sink" => sink).increment(records as u64);
}

/// Records refused for good and written to the dead-letter file.
pub fn rejected(sink: &'static str, reason: &'static str, records: usize) {
    counter!(REJECTED_TOTAL, "sink" => sink, "reason" => reason).increment(records as u64);
}

/// Records not written because the store has a newer version.
pub fn superseded(sink: &'static str, records: usize) {
    counter!(SUPERSEDED_TOTAL, "sink" => sink).increment(records as u64);
}

/// Counts one write request that ended with `outcome` (`ok`, `partial` or an error reason)
/// after `elapsed`.
pub fn request(sink: &'static str, outcome: &'static str, elapsed: Duration) {
    counter!(REQUESTS_TOTAL, "sink" => sink, "outcome" => outcome).increment(1);
    histogram!(REQUEST_SECONDS, "sink" => sink).record(elapsed.as_secs_f64());
}

/// The metrics a sink updates for every record, their handles looked up once when its queue
/// is built instead of in the registry on every record. The engine installs its recorder
/// before it builds any queue, and a queue built with no recorder installed updates nothing.
pub struct RecordMetrics {
    /// Records waiting in the queue, not counting those being written.
    queued: Gauge,
    /// Records replaced in the queue by a newer one of the same key before being written.
    coalesced: Counter,
    /// Records not queued because the queue was full and the overflow policy drops.
    dropped: Counter,
    /// Records the store accepted.
    sent: Counter,
    /// Time from a record's queueing to its write.
    delay: Histogram,
}

impl RecordMetrics {
    pub fn new(sink: &'static str) -> Self {
        Self {
            queued: gauge!(QUEUED, "sink" => sink),
            coalesced: counter!(COALESCED_TOTAL, "sink" => sink),
            dropped: counter!(DROPPED_TOTAL, "sink" => sink),
            sent: counter!(SENT_TOTAL, "sink" => sink),
            delay: histogram!(RECORD_DELAY_SECONDS, "sink" => sink),
        }
    }

    pub fn queued(&self, records: usize) {
        self.queued.set(records as f64);
    }

    pub fn coalesced(&self) {
        self.coalesced.increment(1);
    }

    pub fn dropped(&self) {
        self.dropped.increment(1);
    }

    /// Counts `written` records as sent, each with its time in the queue.
    pub fn sent(&self, written: impl ExactSizeIterator<Item = Duration>) {
        self.sent.increment(written.len() as u64);
        for delay in written {
            self.delay.record(delay.as_secs_f64());
        }
    }
}
