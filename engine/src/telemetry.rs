//! Metrics of the engine's own stages, emitted through typed events.

use std::sync::LazyLock;

use metrics::{Counter, counter, gauge};

const MESSAGES_REJECTED_TOTAL: &str = "telemetry_ingest_messages_rejected_total";
const FRAMES_ACCEPTED_TOTAL: &str = "telemetry_ingest_frames_accepted_total";
const JOURNAL_FAILURES_TOTAL: &str = "telemetry_ingest_journal_failures_total";
const BROKER_CONNECTED: &str = "telemetry_ingest_broker_connected";
const ALARM_HISTORY_DROPPED_TOTAL: &str = "telemetry_store_alarm_events_dropped_total";
const ALARM_HISTORY_WRITTEN_TOTAL: &str = "telemetry_store_alarm_events_written_total";
const ALARM_HISTORY_FAILED_TOTAL: &str = "telemetry_store_alarm_write_failures_total";
const RULE_RELOADS_TOTAL: &str = "telemetry_rules_reloads_total";
const OUTGOING_DROPPED_TOTAL: &str = "telemetry_ingest_outgoing_dropped_total";
const OUTGOING_PUBLISHED_TOTAL: &str = "telemetry_ingest_outgoing_published_total";

/// An MQTT message was rejected; `reason` is a stable label such as `invalid_json`.
pub struct IngestMessageRejected(pub &'static str);

impl IngestMessageRejected {
    pub fn emit(self) {
        counter!(MESSAGES_REJECTED_TOTAL, "reason" => self.0).increment(1);
    }
}

/// Frames of one message passed validation.
pub struct IngestFramesAccepted(pub usize);

/// Looked up once, on the first message, instead of on every message; the engine installs its
/// recorder before ingest starts.
static FRAMES_ACCEPTED: LazyLock<Counter> = LazyLock::new(|| counter!(FRAMES_ACCEPTED_TOTAL));

impl IngestFramesAccepted {
    pub fn emit(self) {
        FRAMES_ACCEPTED.increment(self.0 as u64);
    }
}

/// A message could not be appended to the journal and was left unacknowledged.
pub struct IngestJournalFailed;

impl IngestJournalFailed {
    pub fn emit(self) {
        counter!(JOURNAL_FAILURES_TOTAL).increment(1);
    }
}

/// The broker connection went up or down.
pub struct IngestConnectionChanged(pub bool);

impl IngestConnectionChanged {
    pub fn emit(self) {
        gauge!(BROKER_CONNECTED).set(if self.0 { 1.0 } else { 0.0 });
    }
}

/// Alarm events could not be queued for the history store.
pub struct StoreAlarmEventsDropped(pub u64);

impl StoreAlarmEventsDropped {
    pub fn emit(self) {
        counter!(ALARM_HISTORY_DROPPED_TOTAL).increment(self.0);
    }
}

/// Alarm events were written to the history store.
pub struct StoreAlarmEventsWritten(pub u64);

impl StoreAlarmEventsWritten {
    pub fn emit(self) {
        counter!(ALARM_HISTORY_WRITTEN_TOTAL).increment(self.0);
    }
}

/// A write of alarm events to the history store failed and will be retried.
pub struct StoreAlarmWriteFailed;

impl StoreAlarmWriteFailed {
    pub fn emit(self) {
        counter!(ALARM_HISTORY_FAILED_TOTAL).increment(1);
    }
}

/// The rules directory changed and was reloaded, or rejected as invalid.
pub struct RulesReloaded(pub bool);

impl RulesReloaded {
    pub fn emit(self) {
        let outcome = if self.0 { "applied" } else { "rejected" };
        counter!(RULE_RELOADS_TOTAL, "outcome" => outcome).increment(1);
    }
}

/// A message for a device could not be queued for publishing.
pub struct OutgoingMessageDropped;

impl OutgoingMessageDropped {
    pub fn emit(self) {
        counter!(OUTGOING_DROPPED_TOTAL).increment(1);
    }
}

/// A message for a device was handed to the MQTT connection.
pub struct OutgoingMessagePublished;

impl OutgoingMessagePublished {
    pub fn emit(self) {
        counter!(OUTGOING_PUBLISHED_TOTAL).increment(1);
    }
}

const AUTH_REJECTED_TOTAL: &str = "telemetry_auth_requests_rejected_total";

/// A request to the API or the WebSocket was turned away; `reason` is the error code, such
/// as `token_expired`.
pub struct AuthRequestRejected(pub &'static str);

impl AuthRequestRejected {
    pub fn emit(self) {
        counter!(AUTH_REJECTED_TOTAL, "reason" => self.0).increment(1);
    }
}
