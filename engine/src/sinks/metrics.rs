//! Metrics of the storage sinks, labelled by sink, in Prometheus conventions.

use std::time::Duration;

use metrics::{counter, gauge, histogram};

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

/// Records waiting in a sink's queue or in flight.
pub fn queued(sink: &'static str, records: usize) {
    gauge!(QUEUED, "sink" => sink).set(records as f64);
}

/// Records the store accepted.
pub fn sent(sink: &'static str, records: usize) {
    counter!(SENT_TOTAL, "sink" => sink).increment(records as u64);
}

/// Records sent again after a failure or a partial reply.
pub fn retried(sink: &'static str, records: usize) {
    counter!(RETRIED_TOTAL, "sink" => sink).increment(records as u64);
}

/// Records refused for good and written to the dead-letter file.
pub fn rejected(sink: &'static str, reason: &'static str, records: usize) {
    counter!(REJECTED_TOTAL, "sink" => sink, "reason" => reason).increment(records as u64);
}

/// Records not queued because the queue was full and the overflow policy drops.
pub fn dropped(sink: &'static str, records: usize) {
    counter!(DROPPED_TOTAL, "sink" => sink).increment(records as u64);
}

/// Records not written because the store has a newer version.
pub fn superseded(sink: &'static str, records: usize) {
    counter!(SUPERSEDED_TOTAL, "sink" => sink).increment(records as u64);
}

/// Records replaced in the queue by a newer one of the same key before being written.
pub fn coalesced(sink: &'static str) {
    counter!(COALESCED_TOTAL, "sink" => sink).increment(1);
}

/// Counts one write request that ended with `outcome` (`ok`, `partial` or an error reason)
/// after `elapsed`.
pub fn request(sink: &'static str, outcome: &'static str, elapsed: Duration) {
    counter!(REQUESTS_TOTAL, "sink" => sink, "outcome" => outcome).increment(1);
    histogram!(REQUEST_SECONDS, "sink" => sink).record(elapsed.as_secs_f64());
}

/// Time from a record's queueing to its write.
pub fn record_delay(sink: &'static str, elapsed: Duration) {
    histogram!(RECORD_DELAY_SECONDS, "sink" => sink).record(elapsed.as_secs_f64());
}
