//! Metrics of the WebSocket gateway, emitted through typed events.

use metrics::{counter, gauge};

const CLIENTS: &str = "telemetry_gateway_clients";
const MESSAGES_SENT_TOTAL: &str = "telemetry_gateway_messages_sent_total";
const UPDATES_COALESCED_TOTAL: &str = "telemetry_gateway_updates_coalesced_total";
const QUEUE_OVERFLOWS_TOTAL: &str = "telemetry_gateway_queue_overflows_total";
const CLIENT_ERRORS_TOTAL: &str = "telemetry_gateway_client_errors_total";

/// The number of connected dashboard clients changed.
pub struct GatewayClientsCounted(pub usize);

impl GatewayClientsCounted {
    pub fn emit(self) {
        #[allow(
            clippy::cast_precision_loss,
            reason = "a client count fits f64 exactly"
        )]
        gauge!(CLIENTS).set(self.0 as f64);
    }
}

/// A message was written to a client.
pub struct GatewayMessageSent(pub &'static str);

impl GatewayMessageSent {
    pub fn emit(self) {
        counter!(MESSAGES_SENT_TOTAL, "type" => self.0).increment(1);
    }
}

/// An update merged into one already pending for the same client and device.
pub struct GatewayUpdatesCoalesced;

impl GatewayUpdatesCoalesced {
    pub fn emit(self) {
        counter!(UPDATES_COALESCED_TOTAL).increment(1);
    }
}

/// A client's event queue overflowed and was replaced by a snapshot.
pub struct GatewayQueueOverflowed;

impl GatewayQueueOverflowed {
    pub fn emit(self) {
        counter!(QUEUE_OVERFLOWS_TOTAL).increment(1);
    }
}

/// A client sent a message the gateway rejected.
pub struct GatewayClientMessageRejected(pub &'static str);

impl GatewayClientMessageRejected {
    pub fn emit(self) {
        counter!(CLIENT_ERRORS_TOTAL, "code" => self.0).increment(1);
    }
}
